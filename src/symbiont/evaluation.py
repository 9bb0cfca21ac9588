"""How a candidate is judged: a `check` that raises on failure and/or a `metric` that scores.

Both receive the function itself (with the candidate's body swapped in), so they call it
exactly as the program does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Direction = Literal["maximize", "minimize"]
AcceptRule = Literal["not_worse", "better"] | Callable[[float | None, float], bool]


@dataclass(frozen=True, slots=True)
class Score:
    """A metric's verdict: the value to optimise, plus named metrics and text artifacts that
    go back to the model (e.g. {"p95_ms": 3.1}, {"slowest input": "[9, 8, 7, ...]"})."""

    value: float
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "metrics": self.metrics, "artifacts": self.artifacts}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Score:
        return cls(
            value=float(data["value"]),
            metrics={str(k): float(v) for k, v in (data.get("metrics") or {}).items()},
            artifacts={str(k): str(v) for k, v in (data.get("artifacts") or {}).items()},
        )


Check = Callable[[Callable[..., Any]], Any]
Metric = Callable[[Callable[..., Any]], "float | Score"]


def as_score(result: float | int | Score) -> Score:
    """Normalise a metric's return value; refuses non-numbers and NaN with a clear message."""
    if isinstance(result, Score):
        score = result
    elif isinstance(result, bool) or not isinstance(result, int | float):
        raise TypeError(
            f"a metric must return a float or a symbiont.Score, not {type(result).__name__}"
        )
    else:
        score = Score(float(result))
    if not math.isfinite(score.value):
        raise ValueError(f"the metric returned a non-finite score ({score.value})")
    return score


def is_acceptable(
    candidate: float, active: float | None, direction: Direction, rule: AcceptRule
) -> bool:
    """Promotion rule for a candidate that passed its check."""
    if callable(rule):
        return bool(rule(active, candidate))
    if active is None:
        return True
    sign = 1.0 if direction == "maximize" else -1.0
    diff = sign * (candidate - active)
    return diff > 0 if rule == "better" else diff >= 0
