"""The evolve loop: prompt → model → pipeline → trial → evaluate → promote → feedback.

One call of `run_evolve` is one conversation with the model about one function. Each
attempt goes through every stage until one rejects it; the rejection's diagnostics become the
next user message. Accepted candidates are promoted at once (the live function changes).

The loop is bounded: each request carries the task, a digest of older attempts and the last
few exchanges (`symbiont.conversation`), a run may have a token budget, and a reply over a
size cap or cut off by the length limit is answered without being parsed. A candidate seen
before (`symbiont.repeats`, whatever stage rejected it) resets the conversation. A model
that fails is one failed attempt; the run stops after `max_model_failures` in a row. Every
slow stage (pipeline with type check, trial) runs off the event loop's thread, so `await
runtime.evolve(...)` never stalls the caller's other tasks.

`evolve` is the one-lineage case of the population search (`symbiont.search`): the model
call, the pipeline, the trial (the search's evaluator, the metric as a one-stage cascade)
and the compare-and-set promotion are the same code. What stays its own is how candidates
are proposed (one conversation about the active revision, not parents sampled from a
population) and how they are recorded (runs and attempts, which `symbiont history` shows).
The runtime is reached through the `Recorder` interface only, so this module does not
import `symbiont.runtime` (which imports it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from symbiont import feedback, prompting
from symbiont.conversation import Conversation, Exchange, estimate_tokens
from symbiont.diagnostics import Diagnostic
from symbiont.errors import TransientModelError
from symbiont.evaluation import AcceptRule, Check, Direction, Metric, Score, is_acceptable
from symbiont.evolvable import Evolvable, Failure, Revision, content_hash, tree_hash
from symbiont.models.base import Message, Model, ModelReply
from symbiont.models.retry import call_with_retries
from symbiont.pipeline import (
    DEFAULT_POLICY,
    Extracted,
    PipelineConfig,
    Target,
    extract_and_parse,
    run_pipeline,
)
from symbiont.repeats import normalised_hash, repeat_key
from symbiont.search.config import Stage
from symbiont.search.evaluator import Evaluation, evaluate
from symbiont.search.evaluator import run_trial as _run_trial  # noqa: F401 (its old home)


class Recorder(Protocol):
    """What the loop needs from its runtime: where revisions, attempts and activations are
    recorded (the store, when there is one) and the live failures it shows the model.
    `symbiont.Runtime` is the implementation; the loop imports nothing from it."""

    def take_failures(self, fn: Callable[..., Any] | None = None) -> list[Failure]: ...

    def _start_run(self, h: Evolvable, config: EvolveConfig, model: Model) -> int | None: ...

    def _record(self, h: Evolvable, rev: Revision) -> None: ...

    def _update_revision(self, h: Evolvable, rev: Revision) -> None: ...

    def _set_active(
        self, h: Evolvable, rev: Revision, reason: str = ..., expected: int | None = ...
    ) -> bool: ...

    def _adopt_active(self, h: Evolvable) -> Revision: ...

    def _add_attempt(self, run_id: int | None, a: AttemptReport) -> None: ...

    def _finish_run(self, run_id: int | None, report: EvolveReport) -> None: ...


@dataclass(frozen=True, slots=True)
class EvolveConfig:
    prompt: str = ""
    check: Check | None = None
    metric: Metric | None = None
    direction: Direction = "maximize"
    accept: AcceptRule = "not_worse"
    attempts: int = 10
    stop_on_accept: bool | None = (
        None  # None: stop at the first accepted candidate unless a metric is given
    )
    typecheck: bool | None = None  # None: the evolvable's option
    timeout_s: float | None = None  # None: the evolvable's option
    max_retries: int = 5  # transient model errors, per attempt; they do not use up attempts
    origin: str | None = (
        None  # recorded on revisions; default "mutation" for MutationModel else "model"
    )
    context: prompting.Context = None  # values or text the caller chose to show the model
    history: int = 3  # exchanges (reply + our answer) each request repeats verbatim
    max_prompt_tokens: int | None = 8192  # estimated (chars / 4) bound on one request
    token_budget: int | None = None  # input + output tokens for the whole run
    max_reply_bytes: int = 256 * 1024  # a longer reply is refused unread
    max_model_failures: int = 3  # consecutive attempts failed at the model before stopping

    def __post_init__(self) -> None:
        if self.history < 0:
            raise ValueError(f"history must be >= 0 exchanges, not {self.history}")
        for name in ("max_prompt_tokens", "token_budget"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be a positive number of tokens or None, not {value}")
        if self.max_reply_bytes < 1:
            raise ValueError(f"max_reply_bytes must be positive, not {self.max_reply_bytes}")
        if self.max_model_failures < 1:
            raise ValueError(
                f"max_model_failures must be at least 1, not {self.max_model_failures}"
            )


@dataclass(slots=True)
class AttemptReport:
    index: int
    stage: str  # the stage that rejected the candidate, or "promote" when it was accepted
    accepted: bool
    revision: int | None  # the revision number the candidate was recorded as
    diagnostics: tuple[Diagnostic, ...] = ()
    score: float | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    input_tokens: int = 0
    output_tokens: int = 0
    model_latency_s: float = 0.0
    retries: int = 0
    repeated: bool = False

    def summary(self) -> str:
        verdict = "accepted" if self.accepted else f"rejected at {self.stage}"
        first = self.diagnostics[0].message.splitlines()[0] if self.diagnostics else ""
        score = f" score={self.score:.6g}" if self.score is not None else ""
        tokens = f" [{self.input_tokens:,}+{self.output_tokens:,} tokens]"
        retries = f" [{self.retries} retries]" if self.retries else ""
        return f"attempt {self.index}: {verdict}{score}{tokens}{retries}" + (
            f" — {first}" if first else ""
        )


@dataclass(slots=True)
class EvolveReport:
    function: str
    accepted: Revision | None  # the last revision accepted in this run, if any
    attempts: list[AttemptReport]
    baseline_score: float | None
    started_at: float
    duration_s: float = 0.0
    run_id: int | None = None
    stop_reason: str = ""  # why the run ended, in words
    notes: list[str] = field(default_factory=list)  # things the person should know

    @property
    def ok(self) -> bool:
        return self.accepted is not None

    @property
    def input_tokens(self) -> int:
        return sum(a.input_tokens for a in self.attempts)

    @property
    def output_tokens(self) -> int:
        return sum(a.output_tokens for a in self.attempts)

    def summary(self) -> str:
        head = (
            f"{self.function}: accepted r{self.accepted.number}"
            if self.accepted
            else f"{self.function}: no candidate accepted"
        )
        lines = [f"{head} after {len(self.attempts)} attempt(s) in {self.duration_s:.2f} s"]
        if self.stop_reason:
            lines.append(f"  stopped: {self.stop_reason}")
        lines += [f"  note: {note}" for note in self.notes]
        lines.append(f"  tokens: {self.input_tokens:,} in, {self.output_tokens:,} out")
        lines += ["  " + a.summary() for a in self.attempts]
        return "\n".join(lines)


def _model_origin(model: Model) -> str:
    return "mutation" if type(model).__name__ == "MutationModel" else "model"


async def run_evolve(
    runtime: Recorder,
    handle: Evolvable,
    model: Model,
    config: EvolveConfig,
    *,
    on_attempt: Callable[[AttemptReport], None] | None = None,
) -> EvolveReport:
    started = time.time()
    report = EvolveReport(handle.key, None, [], None, started)
    origin = config.origin or _model_origin(model)
    typecheck = handle.options.typecheck if config.typecheck is None else config.typecheck
    timeout_s = handle.options.timeout_s if config.timeout_s is None else config.timeout_s
    stop_on_accept = (
        config.metric is None if config.stop_on_accept is None else config.stop_on_accept
    )
    policy = handle.options.policy if handle.options.policy is not None else DEFAULT_POLICY
    pipeline_config = PipelineConfig(typecheck=typecheck, policy=policy)
    def_line = prompting.function_head(handle)  # what every correction restates
    run_id = runtime._start_run(handle, config, model)
    report.run_id = run_id

    # The active revision's score is the bar a candidate must reach; and when a check is
    # given, whether the active revision passes it is the most concrete statement of the
    # task there is ("the increment is 1, expected a constant between 5 and 20"): the first
    # prompt shows that failure, so even a small model starts from what is wrong.
    active = handle.active
    active_failure: Diagnostic | None = None
    if config.check is not None or (config.metric is not None and active.score is None):
        base = await asyncio.to_thread(_evaluate, handle, None, config, timeout_s)
        if base.kind == "check_failed":
            active_failure = base.diagnostic
        elif base.ok and base.score is not None and active.score is None:
            s = base.score
            active.score, active.metrics, active.artifacts = s.value, s.metrics, s.artifacts
            runtime._update_revision(handle, active)
    report.baseline_score = active.score

    # Reading and parsing the module's source once per run, not once per attempt.
    target = dataclasses.replace(
        await asyncio.to_thread(Target.from_function, handle.fn, owned_names=handle.owned_names),
        declared_code=handle.declared_code,
    )
    failures = runtime.take_failures(handle.fn)

    harness = tuple(x for x in (config.check, config.metric) if x is not None)

    fresh = False  # the task no longer shows the active body (see FRESH_AFTER)

    def first_messages() -> list[Message]:
        return prompting.first_messages(
            handle,
            config.prompt,
            failures,
            context=config.context,
            harness=harness,
            active_failure=active_failure if handle.active.number == active.number else None,
            show_active=not fresh,
        )

    conversation = Conversation(
        first_messages(), window=config.history, max_tokens=config.max_prompt_tokens
    )
    shown_active = handle.active.number
    repeats = await asyncio.to_thread(_RepeatIndex, handle)  # parses every rejected revision
    spent = 0
    model_failures = 0  # in a row
    repeats_in_a_row = 0
    same_failures = 0  # candidates failing the check exactly as the active revision does
    # A server that reports no usage is estimated (about 4 characters per token); the
    # offline mutation proposer tokenises nothing, and its zero is the truth.
    tokenises = _model_origin(model) != "mutation"

    def estimate(text: str | list[Message]) -> int:
        return estimate_tokens(text) if tokenises else 0

    async def finish(attempt: AttemptReport) -> None:
        report.attempts.append(attempt)
        # Store writes off the loop's thread too: another process may hold the write lock.
        await asyncio.to_thread(runtime._add_attempt, run_id, attempt)
        if on_attempt:
            on_attempt(attempt)

    for index in range(1, config.attempts + 1):
        active = handle.active
        if active.number != shown_active:  # the task shows the active revision and its score
            fresh, same_failures = False, 0
            conversation.set_first(first_messages())
            def_line = prompting.function_head(handle)
            shown_active = active.number
        messages = conversation.messages()
        if config.token_budget is not None:
            needed = estimate_tokens(messages)
            if spent + needed > config.token_budget:
                report.stop_reason = (
                    f"token budget spent: {spent:,} of {config.token_budget:,} tokens used, and "
                    f"the next request needs about {needed:,} more"
                )
                break
        hints = {
            "target": handle.name,
            "sources": prompting.sources_for_hints(handle),
            "avoid": [r.source for r in handle.revisions if not r.accepted and r.source][-200:],
            # After a repeat, sample more widely: the model's likeliest reply is one it sent.
            "temperature": repeat_temperature(repeats_in_a_row),
        }
        retried: list[int] = []
        try:
            reply, retries = await call_with_retries(
                model,
                messages,
                hints=hints,
                max_retries=config.max_retries,
                on_retry=lambda n, _exc, _delay, seen=retried: seen.append(n),
            )
        except TransientModelError as exc:  # retries exhausted: this attempt failed, not the run
            model_failures += 1
            diag = Diagnostic(
                "model",
                "error",
                f"{type(exc).__name__}: {exc} (after {len(retried)} "
                f"retr{'y' if len(retried) == 1 else 'ies'})",
            )
            await finish(AttemptReport(index, "model", False, None, (diag,), retries=len(retried)))
            if model_failures >= config.max_model_failures:
                report.stop_reason = (
                    f"the model failed {model_failures} attempts in a row; the last error: {exc}"
                )
                break
            continue
        except Exception as exc:  # not worth retrying (a refused key, an unknown model, ...)
            diag = Diagnostic("model", "error", f"{type(exc).__name__}: {exc}")
            await finish(AttemptReport(index, "model", False, None, (diag,), retries=len(retried)))
            report.stop_reason = f"the model could not be used: {type(exc).__name__}: {exc}"
            break
        model_failures = 0

        attempt = AttemptReport(
            index,
            "extract",
            False,
            None,
            input_tokens=reply.usage.input_tokens or estimate(messages),
            output_tokens=reply.usage.output_tokens or estimate(reply.text),
            model_latency_s=reply.latency_s,
            retries=retries,
        )
        spent += attempt.input_tokens + attempt.output_tokens
        parents = (active.number,)
        revision = Revision(
            number=-1,
            source="",
            parents=parents,
            origin=origin,
            model=reply.model or getattr(model, "name", None),
            status="rejected",
            stage="extract",
            reply=reply.text,
        )
        shown_reply = reply.text
        refused = _refuse_reply(reply, config.max_reply_bytes)
        key = judged_key = ""
        if refused is not None:  # too long to read, or cut off: not parsed at all
            revision.reply = shown_reply = _head(reply.text)
            revision.diagnostics = attempt.diagnostics = (refused,)
            answer = _reply_correction(refused, handle.name, def_line)
        else:
            t0 = time.perf_counter()
            # extracted and parsed once: for the hash, the repeat key and the pipeline
            extracted, key = await asyncio.to_thread(_extract_with_key, reply.text, target)
            attempt.timings["extract"] = time.perf_counter() - t0
            source = extracted.source if extracted is not None else ""
            revision.source = source
            revision.content_hash = tree_hash(extracted.tree, source) if extracted else ""
            earlier = repeats.find(key, handle.active)
            result = None
            if earlier is None:
                if target.owned_names != handle.owned_names:  # a promotion installed helpers
                    target = dataclasses.replace(target, owned_names=handle.owned_names)
                t0 = time.perf_counter()
                # Off the loop's thread: the type check can take a while.
                result = await asyncio.to_thread(
                    run_pipeline, reply.text, target, pipeline_config, extracted=extracted
                )
                attempt.timings.update(result.timings)
                attempt.timings.setdefault("pipeline", time.perf_counter() - t0)
                # The same function once the pipeline's repairs are done (a docstring's
                # quotes, an unused import, a demonstration cut) is a repeat as well: a
                # small model re-sends its idea with the layout changed.
                if result.notes and result.source:
                    judged_key = normalised_hash(result.source)
                    if judged_key != key:
                        earlier = repeats.find(judged_key, handle.active)
            if earlier is not None:
                note = Diagnostic(
                    "model",
                    "repeat",
                    f"this exact function was already tried as r{earlier.number}"
                    + (
                        " (it is the active one)"
                        if earlier.number == handle.active.number
                        else f" and rejected at {earlier.stage}"
                    ),
                )
                revision.stage, revision.diagnostics = "model", (note,)
                attempt.stage, attempt.diagnostics, attempt.repeated = "model", (note,), True
                repeats_in_a_row += 1
                await asyncio.to_thread(runtime._record, handle, revision)
                repeats.add(key, revision)
                if judged_key:
                    repeats.add_alias(judged_key, revision)
                attempt.revision = revision.number
                await finish(attempt)
                # Start the conversation afresh so the model is not anchored on its repeat.
                conversation.reset(
                    feedback.correction((note,), name=handle.name, def_line=def_line),
                    dropped=Exchange(index, "", "", "repeat"),
                )
                continue
            repeats_in_a_row = 0
            assert result is not None
            await _judge_candidate(
                runtime, handle, config, result, revision, attempt, report, timeout_s
            )
            answer = ""

        if revision.number < 0:
            await asyncio.to_thread(runtime._record, handle, revision)
        if key:
            repeats.add(key, revision)
        if judged_key:
            repeats.add_alias(judged_key, revision)
        attempt.revision = revision.number
        await finish(attempt)

        if attempt.accepted and stop_on_accept:
            report.stop_reason = f"accepted r{revision.number}"
            break
        if attempt.accepted:
            answer = feedback.accepted(attempt.score, handle.active.artifacts)
        elif not answer:
            answer = feedback.correction(
                attempt.diagnostics,
                name=handle.name,
                def_line=def_line,
                timeout_s=timeout_s,
                score=attempt.score,
                active_score=handle.active.score,
                direction=config.direction,
            )
        exchange = Exchange(index, shown_reply, answer, _outcome(attempt), _first_line(attempt))
        # Edits of a failing active revision that fail exactly as it does: the model is
        # anchored on the code it was shown (a small one changes quotes and keeps the bug).
        # After FRESH_AFTER of them, the task stops showing the active body and asks for the
        # function written afresh from its head and docstring.
        if active_failure is not None and _fails_like(attempt, active_failure):
            same_failures += 1
        if same_failures >= FRESH_AFTER and not fresh and not attempt.accepted:
            fresh = True
            conversation.set_first(first_messages())
            conversation.reset(
                feedback.write_afresh(active_failure, name=handle.name, def_line=def_line),
                dropped=exchange,
            )
            continue
        conversation.add(exchange)

    if not report.stop_reason:
        report.stop_reason = f"all {config.attempts} attempts used"
    report.duration_s = time.time() - started
    runtime._finish_run(run_id, report)
    return report


async def _judge_candidate(
    runtime: Recorder,
    handle: Evolvable,
    config: EvolveConfig,
    result: Any,
    revision: Revision,
    attempt: AttemptReport,
    report: EvolveReport,
    timeout_s: float,
) -> None:
    """Trial and promotion of what came out of the pipeline; fills `revision` and `attempt`."""
    candidate = result.candidate
    revision.stage, revision.diagnostics = result.stage, tuple(result.diagnostics)
    if candidate is None:
        attempt.stage, attempt.diagnostics = result.stage, tuple(result.diagnostics)
        return
    if candidate.source != revision.source or not revision.content_hash:  # repaired
        revision.source, revision.content_hash = candidate.source, content_hash(candidate.source)
    active = handle.active
    # Trial: run check and metric in a forked child of this very process.
    t1 = time.perf_counter()
    evaluation = await asyncio.to_thread(_evaluate, handle, candidate, config, timeout_s)
    attempt.timings["trial"] = time.perf_counter() - t1
    verdict = _judge(evaluation, active, config)
    if isinstance(verdict, Score):
        revision.score, revision.metrics = verdict.value, verdict.metrics
        revision.artifacts = verdict.artifacts
        attempt.score = verdict.value
    if isinstance(verdict, tuple):  # rejected: (stage, diagnostics, score)
        stage, diags, score = verdict
        attempt.stage, attempt.diagnostics = stage, diags
        revision.stage, revision.diagnostics = stage, diags
        if score is not None:
            revision.score = attempt.score = score
        return
    revision.status, revision.stage = "accepted", "promote"
    revision.code = candidate.code
    revision.helpers_code = candidate.helpers_code
    revision.helper_names = candidate.helper_names
    t2 = time.perf_counter()
    runtime._record(handle, revision)
    try:
        handle.activate(revision)
    except Exception as exc:  # e.g. a helper that fails at module level
        diag = Diagnostic("promote", "error", f"{type(exc).__name__}: {exc}")
        revision.status, revision.stage, revision.diagnostics = "rejected", "promote", (diag,)
        attempt.stage, attempt.diagnostics = "promote", (diag,)
        runtime._update_revision(handle, revision)
        return
    # A compare-and-set in the store: promote only over the revision this candidate was
    # evaluated against. Another process that promoted meanwhile wins; this one follows it.
    if not runtime._set_active(handle, revision, expected=active.number):
        winner = runtime._adopt_active(handle)
        diag = Diagnostic(
            "promote",
            "conflict",
            f"another process made r{winner.number} active while this candidate was tried "
            f"against r{active.number}; its promotion stands",
        )
        revision.status, revision.stage, revision.diagnostics = "rejected", "promote", (diag,)
        attempt.stage, attempt.diagnostics = "promote", (diag,)
        runtime._update_revision(handle, revision)
        return
    attempt.timings["promote"] = time.perf_counter() - t2
    attempt.stage, attempt.accepted = "promote", True
    report.accepted = revision


class _RepeatIndex:
    """The repeat keys of the revisions a new candidate must not repeat: every rejected one
    (this run's and earlier runs') and the active one."""

    def __init__(self, handle: Evolvable) -> None:
        self._rejected: dict[str, Revision] = {}
        self._keys: dict[int, str] = {}
        for rev in handle.revisions:
            if rev.status == "rejected" and (rev.source or rev.reply):
                self._rejected.setdefault(self._key(rev), rev)

    def _key(self, rev: Revision) -> str:
        key = self._keys.get(rev.number)
        if key is None:
            key = self._keys[rev.number] = repeat_key(rev.source, rev.reply)
        return key

    def add(self, key: str, rev: Revision) -> None:
        self._keys[rev.number] = key
        if rev.status == "rejected":
            self._rejected.setdefault(key, rev)

    def add_alias(self, key: str, rev: Revision) -> None:
        """A second key for a rejected revision: its code as the pipeline repaired it."""
        if rev.status == "rejected":
            self._rejected.setdefault(key, rev)

    def find(self, key: str, active: Revision) -> Revision | None:
        if active.source and self._key(active) == key:
            return active
        return self._rejected.get(key)


def _extract_with_key(reply: str, target: Target) -> tuple[Extracted | None, str]:
    """The code the reply holds and its tree (None when no code is found: the pipeline's
    extract stage will report it properly), and the attempt's repeat key."""
    extracted = extract_and_parse(reply, target)
    return extracted, repeat_key(extracted.source if extracted is not None else "", reply)


# Corrections for replies that are not read at all. They restate the function to write.
TRUNCATED_CORRECTION = (
    "Your reply was truncated: it hit the length limit before it ended, so the function is "
    "incomplete. Send a shorter function: only `{name}` (and any small helper it needs) in one "
    "```python block, with no explanation or examples. The `def` line is:\n"
    "```python\n{def_line}\n```"
)
TOO_LARGE_CORRECTION = (
    "{message}\nSend only the function `{name}` (and any small helper it needs) in one "
    "```python block. The `def` line is:\n```python\n{def_line}\n```"
)


def _refuse_reply(reply: ModelReply, max_bytes: int) -> Diagnostic | None:
    """A diagnostic for a reply that is not parsed: over the size cap, or cut off."""
    size = len(reply.text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        return Diagnostic(
            "extract",
            "too_large",
            f"your reply is {size:,} bytes, over the limit of {max_bytes:,} bytes; it was not read",
        )
    if reply.finish_reason == "length":
        return Diagnostic(
            "extract",
            "truncated",
            "your reply was cut off by the length limit (finish_reason=length) after "
            f"{len(reply.text):,} characters",
        )
    return None


def _reply_correction(diag: Diagnostic, name: str, def_line: str) -> str:
    if diag.kind == "truncated":
        return TRUNCATED_CORRECTION.format(name=name, def_line=def_line)
    return TOO_LARGE_CORRECTION.format(message=diag.message, name=name, def_line=def_line)


def _head(text: str, limit: int = 4000) -> str:
    """A long reply as it is kept and shown again: its beginning, and how much is cut."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[… {len(text) - limit:,} more characters not kept]"


_OUTCOMES = {
    "truncated": "truncated reply",
    "too_large": "oversized reply",
    "check_failed": "check failure",
    "worse_score": "worse score",
    "timeout": "timeout",
    "extract": "reply without code",
    "parse": "syntax error",
    "signature": "signature mismatch",
    "policy": "refused name or import",
    "typecheck": "type error",
    "compile": "compile error",
    "trial": "exception in the trial",
    "promote": "failed promotion",
}


def _outcome(attempt: AttemptReport) -> str:
    """The category an attempt is counted under in the conversation's digest."""
    if attempt.accepted:
        return "accepted revision"
    kind = attempt.diagnostics[0].kind if attempt.diagnostics else ""
    return _OUTCOMES.get(kind) or _OUTCOMES.get(attempt.stage) or f"{attempt.stage} failure"


def _first_line(attempt: AttemptReport, limit: int = 100) -> str:
    if attempt.accepted or not attempt.diagnostics:
        return ""
    lines = attempt.diagnostics[0].message.strip().splitlines()
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _evaluate(
    handle: Evolvable, candidate: Any, config: EvolveConfig, timeout_s: float
) -> Evaluation:
    """The trial of `search`'s evaluator, with the metric as a one-stage cascade."""
    stages = () if config.metric is None else (Stage(config.metric, None, "metric"),)
    return evaluate(
        handle,
        candidate,
        config.check,
        stages,
        maximize=config.direction == "maximize",
        timeout_s=timeout_s,
    )


def _judge(
    evaluation: Evaluation, active: Revision, config: EvolveConfig
) -> Score | tuple[str, tuple[Diagnostic, ...], float | None] | None:
    """An evaluation's verdict: the candidate's Score (or None without a metric) when it
    may be promoted, or (stage, diagnostics, score) when it is rejected."""
    if not evaluation.ok:  # a failed trial, or a failed check (there are no thresholds)
        diag = evaluation.diagnostic or Diagnostic("trial", "exception", "the trial failed")
        return ("evaluate" if evaluation.kind == "check_failed" else "trial", (diag,), None)
    if config.metric is None:
        return None
    score = evaluation.score
    assert score is not None  # the metric ran: it is the cascade's one stage
    if not is_acceptable(score.value, active.score, config.direction, config.accept):
        extra = "; ".join(f"{k}={v:.6g}" for k, v in score.metrics.items())
        arts = feedback.artifact_lines(score.artifacts)
        diag = Diagnostic(
            "evaluate",
            "worse_score",
            f"score {score.value:.6g} vs. active r{active.number} {active.score:.6g} "
            f"({config.direction})" + (f"; {extra}" if extra else ""),
            detail=arts or None,
        )
        return ("evaluate", (diag,), score.value)
    return score


# Candidates failing the check exactly as the active revision does before the task asks
# for the function written afresh (without showing the active body).
FRESH_AFTER = 2


def _fails_like(attempt: AttemptReport, failure: Diagnostic) -> bool:
    """Did `attempt` fail the check with the same message as the active revision?"""
    return (
        attempt.stage == "evaluate"
        and len(attempt.diagnostics) == 1
        and attempt.diagnostics[0].kind == failure.kind
        and attempt.diagnostics[0].message == failure.message
    )


# Sampling temperature asked for after consecutive repeats (None: the model's own setting).
REPEAT_TEMPERATURES = (None, 1.0, 1.2)


def repeat_temperature(repeats_in_a_row: int) -> float | None:
    """The temperature to ask for after `repeats_in_a_row` repeated replies: the model's own
    after a new reply, then higher, so a model stuck on one reply samples others."""
    return REPEAT_TEMPERATURES[min(repeats_in_a_row, len(REPEAT_TEMPERATURES) - 1)]
