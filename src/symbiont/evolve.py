"""The evolve loop: prompt → model → pipeline → trial → evaluate → promote → feedback.

One call of `run_evolve` is one conversation with the model about one function. Each
attempt goes through every stage until one rejects it; the rejection's diagnostics become the
next user message. Accepted candidates are promoted at once (the live function changes).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from symbiont import feedback
from symbiont.diagnostics import Diagnostic
from symbiont.evaluation import AcceptRule, Check, Direction, Metric, Score, as_score, is_acceptable
from symbiont.evolvable import Evolvable, Revision, content_hash
from symbiont.models.base import Message, Model
from symbiont.pipeline import DEFAULT_POLICY, PipelineConfig, Target, run_pipeline
from symbiont.trial import TrialLimits, TrialResult, run_forked, run_inprocess

if TYPE_CHECKING:
    from symbiont.runtime import Runtime


@dataclass(frozen=True, slots=True)
class EvolveConfig:
    prompt: str = ""
    check: Check | None = None
    metric: Metric | None = None
    direction: Direction = "maximize"
    accept: AcceptRule = "not_worse"
    attempts: int = 10
    stop_on_accept: bool | None = None  # None: stop at the first accepted candidate unless a metric is given
    typecheck: bool | None = None  # None: the evolvable's option
    timeout_s: float | None = None  # None: the evolvable's option
    max_retries: int = 5  # transient model errors, per attempt; they do not use up attempts
    origin: str | None = None  # recorded on revisions; default "mutation" for MutationModel else "model"


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
        return f"attempt {self.index}: {verdict}{score}" + (f" — {first}" if first else "")


@dataclass(slots=True)
class EvolveReport:
    function: str
    accepted: Revision | None  # the last revision accepted in this run, if any
    attempts: list[AttemptReport]
    baseline_score: float | None
    started_at: float
    duration_s: float = 0.0
    run_id: int | None = None

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
        lines += ["  " + a.summary() for a in self.attempts]
        return "\n".join(lines)


def _model_origin(model: Model) -> str:
    return "mutation" if type(model).__name__ == "MutationModel" else "model"


def _trial_job(
    handle: Evolvable,
    candidate: Any,
    check: Check | None,
    metric: Metric | None,
    restore: bool,
) -> Callable[[], dict[str, Any]]:
    """The function the trial runner runs (in a forked child, or in-process when trusted)."""
    fn = handle.fn

    def job() -> dict[str, Any]:
        previous = fn.__code__
        # No locks here: in a forked child, a lock held by another parent thread stays held.
        if candidate is not None:
            if candidate.helpers_code is not None:
                exec(candidate.helpers_code, fn.__globals__)
            fn.__code__ = candidate.code
        try:
            out: dict[str, Any] = {}
            if check is not None:
                try:
                    check(fn)
                except Exception as exc:  # a failing check: is it the candidate's fault?
                    from symbiont.trial import exception_diagnostic

                    frames = _candidate_frames(exc, candidate)
                    if frames:
                        raise  # an exception inside the candidate: a trial failure
                    out["check_failed"] = exception_diagnostic(
                        exc, frame_prefix=None, stage="evaluate"
                    ).to_dict()
                    return out
            if metric is not None:
                out["score"] = as_score(metric(fn)).to_dict()
            return out
        finally:
            if restore:
                fn.__code__ = previous

    return job


def _candidate_frames(exc: BaseException, candidate: Any) -> int:
    filename = candidate.filename if candidate is not None else None
    tb = exc.__traceback__
    n = 0
    while tb is not None:
        if filename is not None and tb.tb_frame.f_code.co_filename == filename:
            n += 1
        tb = tb.tb_next
    return n


def _run_trial(handle: Evolvable, job: Callable[[], Any], timeout_s: float, frame: str | None) -> TrialResult:
    opts = handle.options
    limits = TrialLimits(
        timeout_s=timeout_s,
        memory_bytes=None if opts.memory_mb is None else opts.memory_mb * 1024 * 1024,
    )
    if opts.trial == "inprocess":
        return run_inprocess(job, limits, frame_prefix=frame)
    return run_forked(job, limits, frame_prefix=frame)


async def run_evolve(
    runtime: Runtime,
    handle: Evolvable,
    model: Model,
    config: EvolveConfig,
    *,
    on_attempt: Callable[[AttemptReport], None] | None = None,
) -> EvolveReport:
    from symbiont.models.retry import call_with_retries

    started = time.time()
    report = EvolveReport(handle.key, None, [], None, started)
    origin = config.origin or _model_origin(model)
    typecheck = handle.options.typecheck if config.typecheck is None else config.typecheck
    timeout_s = handle.options.timeout_s if config.timeout_s is None else config.timeout_s
    stop_on_accept = config.metric is None if config.stop_on_accept is None else config.stop_on_accept
    policy = handle.options.policy if handle.options.policy is not None else DEFAULT_POLICY
    pipeline_config = PipelineConfig(typecheck=typecheck, policy=policy)
    def_line = handle.signature.render(with_docstring=False)
    run_id = runtime._start_run(handle, config, model)
    report.run_id = run_id

    # The active revision's score is the bar a candidate must reach.
    active = handle.active
    if config.metric is not None and active.score is None:
        job = _trial_job(handle, None, None, config.metric, restore=False)
        base = await asyncio.to_thread(_run_trial, handle, job, timeout_s, None)
        if base.ok and isinstance(base.value, dict) and "score" in base.value:
            s = Score.from_dict(base.value["score"])
            active.score, active.metrics, active.artifacts = s.value, s.metrics, s.artifacts
            runtime._update_revision(handle, active)
    report.baseline_score = active.score

    # Reading and parsing the module's source once per run, not once per attempt.
    target = dataclasses.replace(
        Target.from_function(handle.fn, owned_names=handle.owned_names),
        declared_code=handle.declared_code,
    )
    failures = runtime.take_failures(handle.fn)
    first_messages = _first_messages(handle, config.prompt, failures)
    messages: list[Message] = list(first_messages)

    for index in range(1, config.attempts + 1):
        active = handle.active
        hints = {
            "target": handle.name,
            "sources": _sources_for_hints(handle),
            "avoid": [r.source for r in handle.revisions if not r.accepted and r.source][-200:],
        }
        try:
            reply, retries = await call_with_retries(
                model, messages, hints=hints, max_retries=config.max_retries
            )
        except Exception as exc:  # the model could not be reached at all
            diag = Diagnostic("model", "error", f"{type(exc).__name__}: {exc}")
            attempt = AttemptReport(index, "model", False, None, (diag,))
            report.attempts.append(attempt)
            runtime._add_attempt(run_id, attempt)
            if on_attempt:
                on_attempt(attempt)
            break

        attempt = AttemptReport(
            index,
            "extract",
            False,
            None,
            input_tokens=reply.usage.input_tokens,
            output_tokens=reply.usage.output_tokens,
            model_latency_s=reply.latency_s,
            retries=retries,
        )
        parents = (active.number,)
        t0 = time.perf_counter()
        if target.owned_names != handle.owned_names:  # a promotion installed helpers
            target = dataclasses.replace(target, owned_names=handle.owned_names)
        result = run_pipeline(reply.text, target, pipeline_config)
        attempt.timings.update(result.timings)
        attempt.timings.setdefault("pipeline", time.perf_counter() - t0)
        candidate = result.candidate
        # Without a candidate there is no source; the reply itself is kept on the revision.
        source = candidate.source if candidate is not None else ""
        chash = content_hash(source) if source else ""

        revision = Revision(
            number=-1,
            source=source,
            parents=parents,
            origin=origin,
            model=reply.model or getattr(model, "name", None),
            status="rejected",
            stage=result.stage,
            diagnostics=tuple(result.diagnostics),
            content_hash=chash,
            reply=reply.text,
        )

        repeated = bool(chash) and any(
            r.content_hash == chash and r.number != revision.number
            for r in handle.revisions
            if r.status == "rejected" or r.number == active.number
        )
        if candidate is not None and repeated:
            note = Diagnostic(
                "model",
                "repeat",
                "this exact function was already tried"
                + (" and rejected" if chash != active.content_hash else " (it is the active one)"),
            )
            revision.stage, revision.diagnostics = "model", (note,)
            attempt.stage, attempt.diagnostics, attempt.repeated = "model", (note,), True
            runtime._record(handle, revision)
            attempt.revision = revision.number
            report.attempts.append(attempt)
            runtime._add_attempt(run_id, attempt)
            if on_attempt:
                on_attempt(attempt)
            # Start the conversation afresh so the model is not anchored on its own repeat.
            messages = [*first_messages, {"role": "user", "content": feedback.correction(
                (note,), name=handle.name, def_line=def_line)}]
            continue

        if candidate is None:
            attempt.stage, attempt.diagnostics = result.stage, tuple(result.diagnostics)
        else:
            # Trial: run check and metric in a forked child of this very process.
            t1 = time.perf_counter()
            job = _trial_job(
                handle, candidate, config.check, config.metric,
                restore=handle.options.trial == "inprocess",
            )
            trial = await asyncio.to_thread(_run_trial, handle, job, timeout_s, candidate.filename)
            attempt.timings["trial"] = time.perf_counter() - t1
            verdict = _judge(trial, active, config)
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
            else:
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
                else:
                    attempt.timings["promote"] = time.perf_counter() - t2
                    runtime._set_active(handle, revision)
                    attempt.stage, attempt.accepted = "promote", True
                    report.accepted = revision

        if revision.number < 0:
            runtime._record(handle, revision)
        attempt.revision = revision.number
        report.attempts.append(attempt)
        runtime._add_attempt(run_id, attempt)
        if on_attempt:
            on_attempt(attempt)

        if attempt.accepted and stop_on_accept:
            break
        messages.append({"role": "assistant", "content": reply.text})
        if attempt.accepted:
            messages.append(
                {"role": "user", "content": feedback.ACCEPTED.format(score=attempt.score)}
            )
        else:
            messages.append(
                {
                    "role": "user",
                    "content": feedback.correction(
                        attempt.diagnostics,
                        name=handle.name,
                        def_line=def_line,
                        timeout_s=timeout_s,
                        score=attempt.score,
                        active_score=handle.active.score,
                        direction=config.direction,
                    ),
                }
            )

    report.duration_s = time.time() - started
    runtime._finish_run(run_id, report)
    return report


def _judge(
    trial: TrialResult, active: Revision, config: EvolveConfig
) -> Score | tuple[str, tuple[Diagnostic, ...], float | None] | None:
    """A trial's verdict: the candidate's Score (or None without a metric) when it may be
    promoted, or (stage, diagnostics, score) when it is rejected."""
    if not trial.ok or trial.diagnostic is not None:
        diag = trial.diagnostic or Diagnostic("trial", "exception", "the trial failed")
        tails = _tails(trial)
        if tails:
            diag = dataclasses.replace(diag, detail=((diag.detail or "") + "\n" + tails).strip())
        return ("trial", (diag,), None)
    value = trial.value if isinstance(trial.value, dict) else {}
    if "check_failed" in value:
        return ("evaluate", (_check_failed(value["check_failed"]),), None)
    if config.metric is None:
        return None
    score = Score.from_dict(value["score"])
    if not is_acceptable(score.value, active.score, config.direction, config.accept):
        extra = "; ".join(f"{k}={v:.6g}" for k, v in score.metrics.items())
        arts = "\n".join(f"{k}: {v}" for k, v in score.artifacts.items())
        diag = Diagnostic(
            "evaluate",
            "worse_score",
            f"score {score.value:.6g} vs. active r{active.number} {active.score:.6g} "
            f"({config.direction})" + (f"; {extra}" if extra else ""),
            detail=arts or None,
        )
        return ("evaluate", (diag,), score.value)
    return score


def _check_failed(data: dict[str, Any]) -> Diagnostic:
    d = Diagnostic.from_dict(data)
    return dataclasses.replace(d, stage="evaluate", kind="check_failed")


def _tails(trial: TrialResult) -> str:
    parts = []
    if trial.stdout_tail.strip():
        parts.append("stdout (last lines):\n" + trial.stdout_tail.strip()[-1500:])
    if trial.stderr_tail.strip():
        parts.append("stderr (last lines):\n" + trial.stderr_tail.strip()[-1500:])
    return "\n".join(parts)


def _sources_for_hints(handle: Evolvable) -> list[str]:
    active = handle.active
    others = [r for r in handle.revisions if r.accepted and r.number != active.number and r.source]
    others.sort(key=lambda r: (r.score is None, -(r.score or 0.0)))
    return [active.source, *[r.source for r in others[:4]]]


def _first_messages(handle: Evolvable, prompt: str, failures: Sequence[Any]) -> list[Message]:
    active = handle.active
    sig = handle.signature
    names = _module_names(handle)
    context = feedback.CONTEXT.format(names=names) if names else ""
    fails = ""
    if failures:
        fails = feedback.LIVE_FAILURES.format(
            failures="\n\n".join(f.diagnostic.render() for f in failures[-5:])
        )
    score = f", score {active.score:.6g}" if active.score is not None else ""
    task = feedback.TASK.format(
        prompt=prompt.strip() or "Improve this function.",
        module=sig.module,
        signature=sig.render(),
        context=context,
        active_number=active.number,
        active_score=score,
        active_source=active.source.rstrip(),
        failures=fails,
    )
    return [{"role": "system", "content": feedback.SYSTEM}, {"role": "user", "content": task}]


def _module_names(handle: Evolvable, limit: int = 30) -> str:
    """A short list of the module-level helpers, types and constants a candidate may use."""
    import inspect
    import types as _types

    out: list[str] = []
    for name, value in handle.fn.__globals__.items():
        if name.startswith("_") or value is handle.fn or name in handle.owned_names:
            continue
        if isinstance(value, _types.ModuleType):
            out.append(f"- module {name}")
        elif isinstance(value, _types.FunctionType) and value.__module__ == handle.fn.__module__:
            try:
                out.append(f"- def {name}{inspect.signature(value)}")
            except (TypeError, ValueError):
                out.append(f"- def {name}(...)")
        elif isinstance(value, type) and value.__module__ == handle.fn.__module__:
            out.append(f"- class {name}")
        elif isinstance(value, int | float | str | bool) and name.isupper():
            out.append(f"- {name} = {value!r}")
        if len(out) >= limit:
            break
    return "\n".join(out)
