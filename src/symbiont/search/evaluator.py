"""The evaluator: a candidate's check and cascade stages, in one trial.

The trial is a forked child of the live process (confined, killable, with its own timeout
and memory limit — `symbiont.evolve._run_trial`, the same runner `evolve` uses), or
in-process when the evolvable is trusted. Inside it the check runs first, then the stages in
order; a stage whose score misses its threshold stops the cascade, so the later, dearer
stages are never paid for. The candidate's score is the last stage it reached.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from symbiont.diagnostics import Diagnostic
from symbiont.evaluation import Check, Score, as_score
from symbiont.evolvable import Evolvable
from symbiont.evolve import _run_trial, _tails, install_candidate, run_check
from symbiont.search.config import Stage


@dataclass(slots=True)
class Evaluation:
    ok: bool  # passed the check and every stage it reached without error
    score: Score | None  # the last stage reached
    stages_run: int
    kind: str  # "evaluated" | "cascade" | "check_failed" | the trial diagnostic's kind
    diagnostic: Diagnostic | None = None
    duration_s: float = 0.0


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

    def job() -> dict[str, Any]:
        previous = install_candidate(fn, candidate)
        try:
            if check is not None:
                failed = run_check(fn, check, candidate)
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
                fn.__code__ = previous

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
    trial = _run_trial(handle, job, timeout_s, frame)
    if not trial.ok or trial.diagnostic is not None:
        diag = trial.diagnostic or Diagnostic("trial", "exception", "the trial failed")
        tails = _tails(trial)
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
