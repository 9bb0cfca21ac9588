"""The controller: a population search over revisions of one evolvable function.

`parallel` workers (asyncio tasks) each loop: pick an island (round robin), sample a parent
and inspirations from the program database, ask a model (chosen by the ensemble's bandit),
apply SEARCH/REPLACE edits or take the whole function, refuse exact and near duplicates,
run the pipeline and the evaluator (a forked trial, off the event loop's thread, so up to
`parallel` trials run at once), place the candidate, promote a new best that beats the
active revision, and record it (its revision and its search row in one store transaction,
which the search's writer thread commits while the next request goes out:
`symbiont.search.writer`). Every `migration_interval` evaluations the islands pass their
bests along a ring.

Budgets (evaluations, seconds, tokens, cost) and `target` stop the search; evaluations are
reserved before a request so in-flight work never overshoots. A search is a record: with
`resume=True` the newest search of the function is replayed from the store (grids, archive,
duplicates, counters, the bandit's statistics) and continues.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import resource
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from symbiont.diagnostics import Diagnostic
from symbiont.errors import SymbiontError
from symbiont.evolvable import Evolvable, Revision, content_hash
from symbiont.evolve import _model_origin
from symbiont.models.base import Message, Model, ModelReply
from symbiont.models.retry import call_with_retries
from symbiont.pipeline import (
    DEFAULT_POLICY,
    Extracted,
    PipelineConfig,
    PipelineResult,
    Target,
    extract_and_parse,
    run_pipeline,
)
from symbiont.search.config import SearchConfig
from symbiont.search.database import Program, ProgramDatabase, fingerprint
from symbiont.search.edits import EditError, apply_edits, parse_edits
from symbiont.search.evaluator import Evaluation
from symbiont.search.executors import Executor, ForkedExecutor
from symbiont.search.novelty import NoveltyFilter
from symbiont.search.prompts import PromptBuilder
from symbiont.search.proposer import Arm, Ensemble, ModelStats
from symbiont.search.writer import CandidateWrite, CandidateWriter
from symbiont.store.searches import CandidateRecord, SearchRepository

if TYPE_CHECKING:
    from symbiont.embed.base import Embedder
    from symbiont.runtime import Runtime

MAX_MODEL_FAILURES = 5  # requests failed in a row (after retries) before the search stops
MAX_FRUITLESS = 50  # candidates in a row that reached no trial before the search stops


class SearchError(SymbiontError):
    """A search cannot start (no working starting point, nothing to resume, ...)."""


@dataclass(frozen=True, slots=True)
class CurvePoint:
    evaluations: int
    seconds: float  # search time, all sessions of a resumed search
    best: float


@dataclass(slots=True)
class SearchReport:
    function: str
    search_id: int | None
    baseline_score: float | None
    best: Revision | None = None
    best_score: float | None = None
    evaluations: int = 0
    candidates: int = 0
    curve: list[CurvePoint] = field(default_factory=list)
    island_bests: list[float | None] = field(default_factory=list)
    rejections: Counter[str] = field(default_factory=Counter)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    models: dict[str, ModelStats] = field(default_factory=dict)
    promoted: list[int] = field(default_factory=list)
    migrations: int = 0
    trial_cpu_s: float = 0.0  # CPU time of the trial processes, taken from the live program
    duration_s: float = 0.0  # this session
    stop_reason: str = ""
    resumed: bool = False

    @property
    def evaluations_per_s(self) -> float:
        return self.evaluations / self.duration_s if self.duration_s > 0 else 0.0

    def summary(self) -> str:
        best = (
            f"best r{self.best.number} score {self.best_score:.6g}"
            if self.best is not None and self.best_score is not None
            else "no best"
        )
        base = f" (start {self.baseline_score:.6g})" if self.baseline_score is not None else ""
        lines = [
            f"{self.function}: {best}{base} after {self.evaluations} evaluations, "
            f"{self.candidates} candidates in {self.duration_s:.2f} s"
            + (f" [search #{self.search_id}]" if self.search_id is not None else ""),
            f"  stopped: {self.stop_reason}",
            "  island bests: "
            + ", ".join("-" if b is None else f"{b:.6g}" for b in self.island_bests),
            f"  tokens: {self.input_tokens:,} in, {self.output_tokens:,} out; "
            f"cost ${self.cost_usd:.4f}; trial CPU {self.trial_cpu_s:.2f} s; "
            f"migrations {self.migrations}",
        ]
        if self.rejections:
            lines.append(
                "  rejected: " + ", ".join(f"{k} {n}" for k, n in self.rejections.most_common())
            )
        if self.promoted:  # the last few: a long search may promote hundreds of times
            shown = ", ".join(f"r{n}" for n in self.promoted[-8:])
            more = len(self.promoted) - 8
            lines.append(f"  promoted: {'… ' if more > 0 else ''}{shown}")
            if more > 0:
                lines[-1] += f" ({len(self.promoted)} in all)"
        for s in self.models.values():
            lines.append(
                f"  model {s.name}: {s.calls} calls, {s.improvements} improvements, "
                f"{s.failures} failures, {s.input_tokens:,}+{s.output_tokens:,} tokens"
            )
        return "\n".join(lines)


@dataclass(slots=True)
class _Proposal:
    """What one request produced before the pipeline."""

    reply: ModelReply | None
    text: str  # what goes to the pipeline
    input_tokens: int = 0
    output_tokens: int = 0
    diagnostic: Diagnostic | None = None  # a failure before the pipeline


class SearchController:
    def __init__(
        self,
        runtime: Runtime,
        handle: Evolvable,
        models: Model | list[Any],
        config: SearchConfig,
        *,
        embedder: Embedder | None = None,
        resume: bool = False,
        on_progress: Callable[[SearchReport], None] | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.runtime = runtime
        self.executor = executor if executor is not None else ForkedExecutor()
        self.handle = handle
        self.config = config
        self.ensemble = Ensemble(
            models if isinstance(models, list) else [models],
            bandit=config.bandit,
            rng=random.Random(config.seed + 1),
        )
        self.resume = resume
        self.on_progress = on_progress
        self.rng = random.Random(config.seed)
        self.repo = SearchRepository(runtime.store) if runtime.store is not None else None
        self._writer: CandidateWriter | None = None  # made once the search has its record
        self._next_number: int | None = None  # the number the store gives the next revision
        self._renumberings: list[dict[int, int]] = []  # applied to memory, in order (_absorb)
        self.function_id = runtime._function_id(handle)
        if config.novelty_threshold is not None and embedder is None:
            from symbiont.embed.hashing import HashingEmbedder

            embedder = HashingEmbedder()
        self.novelty = NoveltyFilter(embedder, config.novelty_threshold)
        self.db = ProgramDatabase(
            config.islands,
            config.features,
            maximize=config.direction == "maximize",
            archive_size=config.archive_size,
            seed_source=handle.active.source,
        )
        self.report = SearchReport(handle.key, None, None)
        self._in_flight = 0
        self._island_turn = 0
        self._elapsed_before = 0.0  # search seconds of earlier sessions
        self._started = 0.0
        self._stop = ""
        self._model_failures = 0
        self._fruitless = 0
        self._migrated_at = 0
        self._promoting = asyncio.Lock()  # new bests decide their promotion one at a time
        timeout = handle.options.timeout_s if config.timeout_s is None else config.timeout_s
        self.timeout_s = float(timeout)
        self._trial_options: dict[str, Any] = {
            "maximize": config.direction == "maximize",
            "timeout_s": self.timeout_s,
        }
        typecheck = handle.options.typecheck if config.typecheck is None else config.typecheck
        policy = handle.options.policy if handle.options.policy is not None else DEFAULT_POLICY
        self.pipeline_config = PipelineConfig(typecheck=typecheck, policy=policy)
        self.harness = tuple(x for x in (config.check, config.metric) if x is not None) + tuple(
            s.metric for s in config.stages
        )
        self.prompts = PromptBuilder(
            handle,
            prompt=config.prompt,
            direction=config.direction,
            harness=self.harness,
            max_chars=config.max_prompt_chars,
        )

    # -- the whole search -----------------------------------------------------------------
    async def run(self) -> SearchReport:
        await asyncio.to_thread(self.executor.open, self.handle, self.config)
        self._started = time.monotonic()
        cpu0 = _children_cpu()
        self.target = dataclasses.replace(
            await asyncio.to_thread(
                Target.from_function, self.handle.fn, owned_names=self.handle.owned_names
            ),
            declared_code=self.handle.declared_code,
        )
        try:
            resumed = self.resume and await asyncio.to_thread(self._replay)
            if not resumed:
                await self._seed()
            self.report.resumed = bool(resumed)
            self._check_stop()
            if not self._stop:
                workers = [asyncio.create_task(self._worker()) for _ in range(self.config.parallel)]
                try:
                    await asyncio.gather(*workers)
                except BaseException:
                    for w in workers:
                        w.cancel()
                    raise
            await self._settle(wait=True)  # every candidate committed; a store error raised
        finally:
            # Ended, failed or cancelled: what is pending is committed before the report
            # returns (blocking: a second cancellation cannot cut it short).
            self._close_writer()
            close = getattr(self.executor, "close", None)
            if close is not None:  # workers it keeps (a pool) end with the search
                await asyncio.to_thread(close)
            self.report.trial_cpu_s = _children_cpu() - cpu0
            self.report.duration_s = time.monotonic() - self._started
            self.report.stop_reason = self._stop or "stopped"
            self._fill_report()
            if self.repo is not None and self.report.search_id is not None:
                best = self.db.best
                await asyncio.to_thread(
                    self.repo.finish,
                    self.report.search_id,
                    self.report.stop_reason,
                    best.number if best else None,
                    best.score if best else None,
                    finished=bool(self._stop),
                )
        return self.report

    def _elapsed(self) -> float:
        return self._elapsed_before + time.monotonic() - self._started

    def _check_stop(self) -> None:
        if self._stop:
            return
        budget, r = self.config.budget, self.report
        best = self.db.best
        if best is not None and self.config.reached(best.score):
            self._stop = (
                f"target {self.config.target:.6g} reached (r{best.number}, {best.score:.6g})"
            )
        elif budget.evaluations is not None and r.evaluations >= budget.evaluations:
            self._stop = f"evaluation budget spent ({r.evaluations} of {budget.evaluations})"
        elif budget.seconds is not None and time.monotonic() - self._started >= budget.seconds:
            self._stop = f"time budget spent ({budget.seconds:g} s)"
        elif budget.tokens is not None and r.input_tokens + r.output_tokens >= budget.tokens:
            self._stop = (
                f"token budget spent ({r.input_tokens + r.output_tokens:,} of {budget.tokens:,})"
            )
        elif budget.cost_usd is not None and r.cost_usd >= budget.cost_usd:
            self._stop = f"cost budget spent (${r.cost_usd:.4f} of ${budget.cost_usd:.4f})"
        elif self._model_failures >= MAX_MODEL_FAILURES:
            self._stop = f"the models failed {self._model_failures} requests in a row"
        elif self._fruitless >= MAX_FRUITLESS:
            self._stop = (
                f"{self._fruitless} candidates in a row reached no evaluation (duplicates or "
                "broken code): the proposers seem exhausted"
            )

    # -- start: a new search, or the stored one replayed ----------------------------------
    async def _seed(self) -> None:
        active = self.handle.active
        evaluation = await asyncio.to_thread(self._evaluate, None)
        self.report.evaluations += 1
        if not evaluation.ok or evaluation.score is None:
            why = evaluation.diagnostic.message if evaluation.diagnostic else evaluation.kind
            raise SearchError(
                f"{self.handle.key}: the active revision r{active.number} fails its evaluation, "
                f"so the search has no starting point: {why}"
            )
        score = evaluation.score
        if active.score is None:
            active.score, active.metrics, active.artifacts = (
                score.value,
                score.metrics,
                score.artifacts,
            )
            await asyncio.to_thread(self.runtime._update_revision, self.handle, active)
        self.report.baseline_score = score.value
        if self.repo is not None and self.function_id is not None:
            self.report.search_id = await asyncio.to_thread(
                self.repo.start, self.function_id, self.config.describe()
            )
        features = self.db.describe(active.source, score.metrics)
        for island in range(self.config.islands):
            program = Program(
                active.number,
                active.source,
                score.value,
                features,
                island,
                None,
                dict(score.metrics),
                dict(score.artifacts),
            )
            self.db.add(program)
            row = CandidateRecord(
                island,
                "seed",
                revision_number=active.number,
                evaluated=island == 0,
                score=score.value,
                features=features,
                elapsed_s=self._elapsed(),
            )
            await self._write(row, None)
        self.novelty.remember(
            active.content_hash or content_hash(active.source), active.source, active.number
        )
        self._new_best()

    def _replay(self) -> bool:
        """Rebuild the newest stored search of this function; False when there is none."""
        if self.repo is None or self.function_id is None:
            raise SearchError("resume=True needs a store (the runtime has none)")
        record = self.repo.latest(self.function_id)
        if record is None:
            return False
        self.runtime._load_stored(self.handle)
        self.report.search_id = record.id
        self.repo.reopen(record.id)
        revisions = {r.number: r for r in self.handle.revisions}
        stats = {arm.stats.name: arm for arm in self.ensemble.arms}
        rows = self.repo.candidates(record.id)
        for row in rows:
            rev = revisions.get(row.revision_number) if row.revision_number is not None else None
            self._elapsed_before = max(self._elapsed_before, row.elapsed_s)
            self.report.candidates += int(row.kind not in ("seed", "migrant"))
            self.report.evaluations += int(row.evaluated)
            self.report.input_tokens += row.input_tokens
            self.report.output_tokens += row.output_tokens
            self.report.cost_usd += row.cost_usd or 0.0
            arm = stats.get(row.model or "")
            if arm is not None and row.kind not in ("seed", "migrant"):
                self.ensemble.record(
                    arm,
                    input_tokens=row.input_tokens,
                    output_tokens=row.output_tokens,
                    cost_usd=row.cost_usd,
                    failed=row.kind == "model",
                    evaluated=row.evaluated,
                    improved=row.improved,
                )
            if row.kind == "seed" and self.report.baseline_score is None:
                self.report.baseline_score = row.score
                if rev is not None:  # distances stay measured from the search's start
                    self.db.set_origin(rev.source)
            if row.kind in ("seed", "evaluated", "migrant") and rev is not None:
                if row.score is None:
                    continue
                program = Program(
                    rev.number, rev.source, row.score, dict(row.features), row.island,
                    row.parent_number, dict(rev.metrics),
                )  # fmt: skip
                self.db.add(program)
                if row.kind == "migrant":
                    self.report.migrations += 1
                self.novelty.remember(
                    rev.content_hash or content_hash(rev.source), rev.source, rev.number,
                    embed=row.kind == "evaluated",
                )  # fmt: skip
                self._new_best()
            elif row.kind not in ("seed", "migrant"):
                self.report.rejections[row.kind] += 1
                if rev is not None and rev.source:
                    self.novelty.remember(
                        rev.content_hash or content_hash(rev.source), rev.source, rev.number,
                        embed=False,
                    )  # fmt: skip
        self._migrated_at = self.report.evaluations // self.config.migration_interval
        return self.db.best is not None

    # -- one worker -----------------------------------------------------------------------
    async def _worker(self) -> None:
        budget = self.config.budget
        while True:
            self._check_stop()
            if self._stop:
                return
            if (
                budget.evaluations is not None
                and self.report.evaluations + self._in_flight >= budget.evaluations
            ):
                await asyncio.sleep(0.005)  # a candidate in flight may yet give its slot back
                continue
            self._in_flight += 1
            try:
                await self._one()
            finally:
                self._in_flight -= 1
            if self.on_progress is not None:
                self._fill_report()
                self.on_progress(self.report)

    async def _one(self) -> None:
        cfg = self.config
        island = self._island_turn % cfg.islands
        self._island_turn += 1
        parent = self.db.sample_parent(island, self.rng, cfg.selection, cfg.tournament_size)
        inspirations = self.db.inspirations(
            island, parent, self.rng, cfg.top_inspirations, cfg.diverse_inspirations
        )
        top = {p.number for p in self.db.elites(island)[: cfg.top_inspirations + 1]}
        shown = [
            (p, "one of the best" if p.number in top else "a different approach")
            for p in inspirations
        ]
        messages = self.prompts.messages(parent, shown)
        arm = self.ensemble.choose()
        hints = {
            "target": self.handle.name,
            "sources": [parent.source, *[p.source for p in inspirations]],
        }
        proposal = await self._propose(arm, messages, hints, parent)
        tokens_in, tokens_out = proposal.input_tokens, proposal.output_tokens
        cost = self.ensemble.cost(arm, tokens_in, tokens_out)
        self.report.input_tokens += tokens_in
        self.report.output_tokens += tokens_out
        self.report.cost_usd += cost or 0.0
        self.report.candidates += 1
        # The parent's number is read here: `since` says as of which renumbering (`_refresh`).
        since = len(self._renumberings)
        base = CandidateRecord(
            island,
            "model",
            parent_number=parent.number,
            model=arm.stats.name,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cost_usd=cost,
        )
        revision = Revision(
            number=-1,
            source="",
            parents=(parent.number,),
            origin=_model_origin(arm.model),
            model=(proposal.reply.model if proposal.reply else "") or arm.stats.name,
            status="rejected",
            stage="model",
            reply=proposal.reply.text if proposal.reply else "",
        )
        if proposal.reply is None:  # the model failed
            self._model_failures += 1
            self.ensemble.record(arm, failed=True)
            await self._reject(base, None, "model", since)
            return
        self._model_failures = 0
        if proposal.diagnostic is not None:  # an edit that never matched
            revision.stage, revision.diagnostics = "edit", (proposal.diagnostic,)
            self.ensemble.record(
                arm, input_tokens=tokens_in, output_tokens=tokens_out, cost_usd=cost
            )
            await self._reject(base, revision, "edit", since)
            return
        # Without a type check, extract and pipeline take about a millisecond: a thread hop
        # would cost more than it saves. The type check runs off the event loop's thread.
        # The reply's code is extracted and parsed once, for the duplicate check and for the
        # pipeline.
        slow = self.pipeline_config.typecheck
        if slow:
            extracted = await asyncio.to_thread(extract_and_parse, proposal.text, self.target)
        else:
            extracted = extract_and_parse(proposal.text, self.target)
        source = extracted.source if extracted is not None else ""
        chash, shape = fingerprint(source, extracted.tree) if extracted else ("", None)
        if source:
            verdict = self.novelty.check(chash, source)
            if verdict.kind != "new":
                self.ensemble.record(
                    arm, input_tokens=tokens_in, output_tokens=tokens_out, cost_usd=cost
                )
                since = self._refresh(base, revision, since)  # before reading another
                base.revision_number = verdict.of
                await self._reject(base, None, verdict.kind, since)
                return
        result = (
            await asyncio.to_thread(self._pipeline, proposal.text, extracted)
            if slow
            else self._pipeline(proposal.text, extracted)
        )
        if result.candidate is None:
            revision.source = source
            revision.content_hash = chash
            revision.stage, revision.diagnostics = result.stage, tuple(result.diagnostics)
            self.ensemble.record(
                arm, input_tokens=tokens_in, output_tokens=tokens_out, cost_usd=cost
            )
            await self._reject(base, revision, result.stage, since)
            return
        candidate = result.candidate
        if candidate.source != source:  # the pipeline restored the head or a docstring
            chash, shape = fingerprint(candidate.source)
        revision.source, revision.content_hash = candidate.source, chash
        evaluation = await self._evaluate_async(candidate)
        self.report.evaluations += 1
        self._fruitless = 0
        score = evaluation.score
        if score is not None:
            revision.score, revision.metrics, revision.artifacts = (
                score.value,
                score.metrics,
                score.artifacts,
            )
        improved = evaluation.ok and score is not None and cfg.better(score.value, parent.score)
        self.ensemble.record(
            arm,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cost_usd=cost,
            evaluated=True,
            improved=improved,
        )
        base.evaluated, base.improved = True, improved
        base.score = score.value if score is not None else None
        if not evaluation.ok:
            revision.stage = (
                "evaluate" if evaluation.kind in ("cascade", "check_failed") else "trial"
            )
            revision.diagnostics = (evaluation.diagnostic,) if evaluation.diagnostic else ()
            await self._reject(base, revision, evaluation.kind, since)
            return
        assert score is not None
        revision.status, revision.stage = "accepted", "evaluate"
        revision.code, revision.helpers_code = candidate.code, candidate.helpers_code
        revision.helper_names = candidate.helper_names
        features = self.db.describe(candidate.source, score.metrics, shape)
        base.kind, base.features = "evaluated", features
        best = self.db.best
        if cfg.promote != "never" and (best is None or cfg.better(score.value, best.score)):
            # A new best: decide and record its promotion one candidate at a time. Two
            # candidates in flight must not both be judged against the same active
            # revision: the second's compare-and-set would lose to the first's, and a
            # better second one would never be promoted.
            async with self._promoting:
                # A promote callable is user code that may read the store: it sees every
                # earlier candidate committed.
                await self._settle(wait=callable(cfg.promote))
                promote = self._promotion_wanted(revision)
                expected = self.handle.active.number
                number = self._number(revision)
                # Live first, then the store: a body that fails to go live is recorded
                # without its activation; the store's compare-and-set decides whether the
                # promotion stands (`_settle` follows another process's that won).
                promote = promote and self._promote(revision)
                self._record(base, revision, since, promote_over=expected if promote else None)
        else:
            number, _ = await self._write(base, revision, since)
        program = Program(
            number, candidate.source, score.value, features, island, parent.number,
            dict(score.metrics), dict(score.artifacts),
        )  # fmt: skip
        self.db.add(program)
        self.novelty.remember(revision.content_hash, candidate.source, number)
        self._new_best()
        await self._maybe_migrate()

    async def _propose(
        self, arm: Arm, messages: list[Message], hints: dict[str, Any], parent: Program
    ) -> _Proposal:
        """Ask the model; apply edits, re-asking with feedback when a SEARCH block misses."""
        tokenises = _model_origin(arm.model) != "mutation"
        proposal = _Proposal(None, "")
        conversation = list(messages)
        for attempt in range(self.config.edit_retries + 1):
            try:
                reply, _retries = await call_with_retries(
                    arm.model, conversation, hints=hints, max_retries=self.config.max_retries
                )
            except Exception as exc:  # one failed request, not a failed search
                proposal.diagnostic = Diagnostic("model", "error", f"{type(exc).__name__}: {exc}")
                proposal.reply = None
                return proposal
            proposal.reply = reply
            proposal.input_tokens += reply.usage.input_tokens or (
                _estimate(conversation) if tokenises else 0
            )
            proposal.output_tokens += reply.usage.output_tokens or (
                len(reply.text) // 4 if tokenises else 0
            )
            edits = parse_edits(reply.text)
            if not edits:
                proposal.text, proposal.diagnostic = reply.text, None
                return proposal
            try:
                source = apply_edits(parent.source, edits)
            except EditError as exc:
                proposal.diagnostic = Diagnostic("edit", "no_match", str(exc))
                if attempt < self.config.edit_retries:
                    conversation += [
                        {"role": "assistant", "content": reply.text},
                        {"role": "user", "content": str(exc)},
                    ]
                continue
            proposal.text, proposal.diagnostic = f"```python\n{source}\n```", None
            return proposal
        return proposal

    def _pipeline(self, text: str, extracted: Extracted | None) -> PipelineResult:
        return run_pipeline(text, self.target, self.pipeline_config, extracted=extracted)

    async def _evaluate_async(self, candidate: Any) -> Evaluation:
        """The trial, off the event loop's thread; an executor that can wait on the loop
        itself (`evaluate_async`, the worker pool) saves the thread hop."""
        run = getattr(self.executor, "evaluate_async", None)
        if run is None:
            return await asyncio.to_thread(self._evaluate, candidate)
        cfg = self.config
        evaluation: Evaluation = await run(
            self.handle, candidate, cfg.check, cfg.all_stages, **self._trial_options
        )
        return evaluation

    def _evaluate(self, candidate: Any) -> Evaluation:
        cfg = self.config
        return self.executor.evaluate(
            self.handle, candidate, cfg.check, cfg.all_stages, **self._trial_options
        )

    async def _reject(
        self, row: CandidateRecord, revision: Revision | None, kind: str, since: int
    ) -> None:
        row.kind = kind
        self.report.rejections[kind] += 1
        if not row.evaluated:
            self._fruitless += 1
        await self._write(row, revision, since)
        if revision is not None and revision.source:  # never evaluated again in this search
            self.novelty.remember(
                revision.content_hash, revision.source, revision.number, embed=False
            )

    async def _write(
        self, row: CandidateRecord, revision: Revision | None, since: int | None = None
    ) -> tuple[int, bool]:
        """Record the candidate (and its revision) in one store transaction; its number.

        With a store the transaction is handed to the search's writer (`_record`), which
        commits it while the search goes on; first the writer's news is acted on (`_settle`).
        `since`: how many renumberings had been applied when the row's and the revision's
        numbers were read (None: they are read now)."""
        await self._settle()
        number = self._number(revision) if revision is not None else -1
        self._record(row, revision, since)
        return number, False

    def _number(self, revision: Revision) -> int:
        """Give `revision` its number and keep it in the handle: the lineage's next. With a
        store the store gives it when the writer commits the candidate; the number given
        here is the one it will give (nobody else adds to the lineage, or `_settle` maps
        the numbers once the writer says otherwise)."""
        h = self.handle
        if self.repo is None or self.function_id is None or self.report.search_id is None:
            with self.runtime._lock:
                revision.number = h.next_number()
                h.add_revision(revision)
            return revision.number
        if self._next_number is None:
            assert self.runtime.store is not None
            stored = self.runtime.store.next_revision_number(self.function_id)
            self._next_number = max(stored, h.next_number())
        revision.number = self._next_number
        self._next_number += 1
        h.add_revision(revision)
        return revision.number

    def _record(
        self,
        row: CandidateRecord,
        revision: Revision | None,
        since: int | None = None,
        *,
        promote_over: int | None = None,
    ) -> None:
        """Hand the candidate's transaction to the writer: the revision (numbered by
        `_number`), the row, and with `promote_over` (the active revision number the
        candidate was judged against) its activation, compare-and-set. No await between
        `_number` and this: the writer's renumbering is applied only when nothing is pending.

        Numbers read before a renumbering (`since` of them had been applied then: the
        parent's, the revision a duplicate names) are brought up to date here."""
        row.elapsed_s = self._elapsed()
        row.at = time.time()
        if since is not None:
            self._refresh(row, revision, since)
        if self.repo is None or self.function_id is None or self.report.search_id is None:
            return
        if self._writer is None:
            self._writer = CandidateWriter(self.repo, self.report.search_id, self.function_id)
        self._writer.submit(CandidateWrite(row, revision, promote_over))

    async def _settle(self, *, wait: bool = False) -> None:
        """Act on the writer's news once nothing is pending: raise its error, apply the
        numbers the store gave otherwise, follow another process's promotion that won.
        Waits for the writer when `wait`, when it has news, or when it is full."""
        writer = self._writer
        if writer is None or not (wait or writer.attention or writer.full):
            return
        await writer.flush()
        lost = self._absorb(writer)
        if lost:
            await asyncio.to_thread(self.runtime._adopt_active, self.handle)

    def _absorb(self, writer: CandidateWriter, *, raise_error: bool = True) -> bool:
        """After a drain: raise a failed write's error (the writer stays stopped); apply a
        renumbering to the handle, the program database and the novelty filter; forget the
        promotions that lost their compare-and-set. True when one did (the store's active
        revision is another process's, to follow). After a failed write the store's active
        revision goes live again: a new best goes live before its commit, and one the store
        did not record must not stay live."""
        if writer.error is not None:
            with contextlib.suppress(Exception):  # the store may be what failed
                self.runtime._adopt_active(self.handle)
            if raise_error:
                raise writer.error
        renumbered, lost = writer.take()
        if renumbered:
            self._renumberings.append(renumbered)
            self.handle.renumber(renumbered)
            self.db.renumber(renumbered)
            self.novelty.renumber(renumbered)
            self.report.promoted = [renumbered.get(n, n) for n in self.report.promoted]
            lost = [renumbered.get(n, n) for n in lost]
            self._next_number = None  # asked of the store again
        if lost:
            self.report.promoted = [n for n in self.report.promoted if n not in lost]
        return bool(lost)

    def _refresh(self, row: CandidateRecord, revision: Revision | None, since: int) -> int:
        """Bring the revision numbers `row` and `revision` hold, read when `since`
        renumberings had been applied, up to date (the parent's; the revision a duplicate or
        a migrant names); how many have been applied now. (Called before a number is read
        into them again, and when they are recorded: each is read as of one count.)"""
        now = len(self._renumberings)
        if since < now:
            if row.parent_number is not None:
                row.parent_number = self._current(row.parent_number, since)
            if revision is None and row.revision_number is not None:
                row.revision_number = self._current(row.revision_number, since)
            elif revision is not None:
                revision.parents = tuple(self._current(p, since) for p in revision.parents)
        return now

    def _current(self, number: int, since: int) -> int:
        """A revision number read when `since` renumberings had been applied, as it is now."""
        for renumbered in self._renumberings[since:]:
            number = renumbered.get(number, number)
        return number

    def _close_writer(self) -> None:
        """Commit what is pending (blocking) and end the writer; its news is applied, its
        error not raised (the search ended with another, or `_settle` raised it)."""
        writer = self._writer
        if writer is None:
            return
        writer.close()
        if self._absorb(writer, raise_error=False) and writer.error is None:
            self.runtime._adopt_active(self.handle)

    # -- best, promotion, migration -------------------------------------------------------
    def _new_best(self) -> bool:
        best = self.db.best
        if best is None:
            return False
        curve = self.report.curve
        if curve and curve[-1].best == best.score:
            return False
        if curve and not self.config.better(best.score, curve[-1].best):
            return False
        curve.append(CurvePoint(self.report.evaluations, round(self._elapsed(), 4), best.score))
        return True

    def _promotion_wanted(self, revision: Revision) -> bool:
        """Should this new best replace the active revision (the `promote` policy)?"""
        policy = self.config.promote
        active = self.handle.active
        if policy == "never":
            return False
        if policy == "best":
            return active.score is None or self.config.better(revision.score or 0.0, active.score)
        return bool(policy(revision, active))  # type: ignore[operator]

    def _promote(self, revision: Revision) -> bool:
        """Make the new best live; False when it fails to (e.g. a helper failing at module
        level), and then it is recorded with the reason and without its activation."""
        try:
            self.handle.activate(revision)
        except Exception as exc:
            revision.diagnostics = (Diagnostic("promote", "error", f"{type(exc).__name__}: {exc}"),)
            return False
        self.report.promoted.append(revision.number)
        return True

    async def _maybe_migrate(self) -> None:
        due = self.report.evaluations // self.config.migration_interval
        if due <= self._migrated_at:
            return
        self._migrated_at = due
        for migrant, destination in self.db.migrate():
            self.report.migrations += 1
            since = len(self._renumberings)  # each row's numbers are read as of now
            row = CandidateRecord(
                destination,
                "migrant",
                revision_number=migrant.number,
                parent_number=migrant.parent,
                score=migrant.score,
                features=migrant.features,
            )
            await self._write(row, None, since)

    def _fill_report(self) -> None:
        r = self.report
        best = self.db.best
        if best is not None:
            r.best_score = best.score
            if r.best is None or r.best.number != best.number:  # a lookup is a scan
                try:
                    r.best = self.handle.revision(best.number)
                except Exception:
                    r.best = None
        r.island_bests = [i.best.score if i.best else None for i in self.db.islands]
        r.models = self.ensemble.stats()


def _estimate(messages: list[Message]) -> int:
    return sum(len(str(m.get("content") or "")) for m in messages) // 4


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
