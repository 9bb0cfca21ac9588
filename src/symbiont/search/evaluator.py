"""The evaluator: a candidate's check and cascade stages, in one trial — for `search` and
for `evolve` (whose metric is a one-stage cascade) alike.

The trial is a forked child of the live process (confined, killable, with its own timeout
and memory limit: `run_trial`), or in-process when the evolvable is trusted. Inside it the
candidate is swapped in (`install_candidate`), the check runs first (`run_check`), then the
stages in order; a stage whose score misses its threshold stops the cascade, so the later,
dearer stages are never paid for. The candidate's score is the last stage it reached.
`read_trial` turns what came back into an `Evaluation`, whichever executor ran the trial.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from symbiont import returns
from symbiont.diagnostics import Diagnostic
from symbiont.evaluation import Check, Score, as_score
from symbiont.evolvable import Evolvable
from symbiont.search.config import Stage
from symbiont.trial import TrialLimits, TrialResult, exception_diagnostic, run_forked, run_inprocess


@dataclass(slots=True)
class Evaluation:
    ok: bool  # passed the check and every stage it reached without error
    score: Score | None  # the last stage reached
    stages_run: int
    kind: str  # "evaluated" | "cascade" | "check_failed" | the trial diagnostic's kind
    diagnostic: Diagnostic | None = None
    duration_s: float = 0.0


def install_candidate(fn: Any, candidate: Any) -> Any:
    """Bind the candidate's helpers and swap its code into `fn` (in a trial: no locks, since
    in a forked child a lock held by another parent thread stays held); returns the code
    object to restore."""
    previous = fn.__code__
    if candidate is not None:
        if candidate.helpers_code is not None:
            exec(candidate.helpers_code, fn.__globals__)
        set_code(fn, candidate.code)
    return previous


def set_code(fn: Any, code: Any) -> None:
    """`fn.__code__ = code`; a native evolvable's callers (who hold a callable around its
    kernel, symbiont.native) are switched to the kernel that code calls."""
    fn.__code__ = code
    entry = getattr(getattr(fn, "symbiont", None), "native_entry", None)
    if entry is not None:
        entry.follow()


def run_check(
    fn: Any, check: Check, candidate: Any, *, retrace: bool = False
) -> dict[str, Any] | None:
    """Run the user's check on `fn`: None when it passes, the `check_failed` diagnostic
    (as a dict) when it fails on its own; an exception raised inside the candidate's code
    propagates (a trial failure, with the candidate's frames). With `retrace` (in a trial
    apart from the live process only: the check runs again) the diagnostic's detail starts
    with the lines the function returned the values the failure quotes from
    (`symbiont.returns`)."""
    started = time.perf_counter()
    try:
        check(fn)
    except Exception as exc:  # a failing check: is it the candidate's fault?
        if candidate is not None and _candidate_frames(exc, candidate):
            raise  # an exception inside the candidate: a trial failure
        took = time.perf_counter() - started
        # The traceback starts at this function's frame: drop it, so the model sees the
        # check's assertion, not symbiont's harness.
        if exc.__traceback__ is not None:
            exc = exc.with_traceback(exc.__traceback__.tb_next)
        diag = exception_diagnostic(exc, frame_prefix=None, stage="evaluate")
        if retrace and took <= returns.MAX_FIRST_RUN_S:
            where = returns.where_returned(fn, check, diag.message)
            if where:
                detail = where + ("\n" + diag.detail if diag.detail else "")
                diag = dataclasses.replace(diag, detail=detail)
        return diag.to_dict()
    return None


def _candidate_frames(exc: BaseException, candidate: Any) -> int:
    filename = candidate.filename if candidate is not None else None
    tb = exc.__traceback__
    n = 0
    while tb is not None:
        if filename is not None and tb.tb_frame.f_code.co_filename == filename:
            n += 1
        tb = tb.tb_next
    return n


def run_trial(
    handle: Evolvable, job: Callable[[], Any], timeout_s: float, frame: str | None
) -> TrialResult:
    """Run `job` as the evolvable's options say: a confined fork (the default), an
    unconfined fork (`trial="fork"`) or in-process (`trial="inprocess"`), with its memory
    limit and `timeout_s`."""
    opts = handle.options
    limits = TrialLimits(
        timeout_s=timeout_s,
        memory_bytes=None if opts.memory_mb is None else opts.memory_mb * 1024 * 1024,
    )
    if opts.trial == "inprocess":
        return run_inprocess(job, limits, frame_prefix=frame)
    return run_forked(job, limits, frame_prefix=frame, confine=opts.trial != "fork")


def trial_tails(trial: TrialResult) -> str:
    """The ends of the trial's stdout and stderr, as a diagnostic's detail shows them."""
    parts = []
    if trial.stdout_tail.strip():
        parts.append("stdout (last lines):\n" + trial.stdout_tail.strip()[-1500:])
    if trial.stderr_tail.strip():
        parts.append("stderr (last lines):\n" + trial.stderr_tail.strip()[-1500:])
    return "\n".join(parts)


def _passes(value: float, threshold: float | None, maximize: bool) -> bool:
    if threshold is None:
        return True
    return value >= threshold if maximize else value <= threshold


def cascade_job(
    handle: Evolvable,
    candidate: Any,
    check: Check | None,
    stages: tuple[Stage, ...],
    maximize: bool,
    restore: bool,
) -> Callable[[], dict[str, Any]]:
    """The function the trial runs; returns a JSON-able dict."""
    fn = handle.fn
    retrace = handle.options.trial != "inprocess"  # the check may run twice: not in the host

    def job() -> dict[str, Any]:
        previous = install_candidate(fn, candidate)
        try:
            if check is not None:
                failed = run_check(fn, check, candidate, retrace=retrace)
                if failed is not None:
                    return {"check_failed": failed, "stages": []}
            scores: list[dict[str, Any]] = []
            for stage in stages:
                score = as_score(stage.metric(fn))
                scores.append(score.to_dict())
                if not _passes(score.value, stage.threshold, maximize):
                    return {"stages": scores, "stopped": len(scores) - 1}
            return {"stages": scores}
        finally:
            if restore:
                set_code(fn, previous)

    return job


def evaluate(
    handle: Evolvable,
    candidate: Any,
    check: Check | None,
    stages: tuple[Stage, ...],
    *,
    maximize: bool,
    timeout_s: float,
) -> Evaluation:
    """Run the trial (blocking: call it through `asyncio.to_thread`)."""
    restore = handle.options.trial == "inprocess"
    job = cascade_job(handle, candidate, check, stages, maximize, restore)
    frame = candidate.filename if candidate is not None else None
    return read_trial(run_trial(handle, job, timeout_s, frame), stages)


def read_trial(trial: TrialResult, stages: tuple[Stage, ...]) -> Evaluation:
    """What a finished trial of `cascade_job` says about the candidate (every executor's
    trials end here: forked here, or in a Ray worker)."""
    if not trial.ok or trial.diagnostic is not None:
        diag = trial.diagnostic or Diagnostic("trial", "exception", "the trial failed")
        tails = trial_tails(trial)
        if tails:
            diag = dataclasses.replace(diag, detail=((diag.detail or "") + "\n" + tails).strip())
        return Evaluation(False, None, 0, diag.kind or "trial", diag, trial.duration_s)
    value = trial.value if isinstance(trial.value, dict) else {}
    if "check_failed" in value:
        diag = dataclasses.replace(
            Diagnostic.from_dict(value["check_failed"]), stage="evaluate", kind="check_failed"
        )
        return Evaluation(False, None, 0, "check_failed", diag, trial.duration_s)
    scores = [Score.from_dict(s) for s in value.get("stages", [])]
    last = scores[-1] if scores else None
    if "stopped" in value:
        i = int(value["stopped"])
        stage = stages[i]
        name = stage.name or getattr(stage.metric, "__name__", f"stage {i + 1}")
        diag = Diagnostic(
            "evaluate",
            "cascade",
            f"stage {i + 1} ({name}) scored {scores[i].value:.6g}, short of its threshold "
            f"{stage.threshold:.6g}; later stages were not run",
        )
        return Evaluation(False, last, len(scores), "cascade", diag, trial.duration_s)
    return Evaluation(True, last, len(scores), "evaluated", None, trial.duration_s)
