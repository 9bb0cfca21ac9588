"""A metric example: the score improves across revisions.

`predict` should model measurements that follow y = 3.2·x − 1.5 (with noise). The metric is
the mean squared error on the data (minimised); each accepted revision must score no worse
than the active one, so the error goes down revision after revision.

    python examples/curve_fit.py
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable

import symbiont

_rng = random.Random(7)
DATA: list[tuple[float, float]] = [
    (x, 3.2 * x - 1.5 + _rng.gauss(0.0, 0.3)) for x in [i / 4 for i in range(-20, 21)]
]


PROMPT = (
    "Make `predict` fit better by changing the two numbers given to `slope` and "
    "`intercept`; keep the rest as it is. After each try you are told about which numbers "
    "fit better."
)


@symbiont.evolvable(timeout=2.0, typecheck=False)
def predict(x: float) -> float:
    """Predict y for x with a straight line: slope * x + intercept."""
    slope = 1.0
    intercept = 0.0
    return slope * x + intercept


def mse(fn: Callable[[float], float]) -> symbiont.Score:
    misses = [fn(x) - y for x, y in DATA]
    errors = [miss**2 for miss in misses]
    return symbiont.Score(
        value=sum(errors) / len(errors),
        metrics={"max_error": max(errors) ** 0.5},
        # One actionable line, no data point: Qwen2.5-Coder-0.5B turned the worst point
        # ("x=-5.0, 12.577 too high") into `if x == -5.0: return 12.577` and a "mean miss"
        # into a `find_missing` function; told which way, it moved the intercept too far;
        # told "raise the slope by about 2.2", it wrote loops that search for a slope. Told
        # the numbers that fit, it writes them (accepted at attempt 1 in two of two runs).
        artifacts={"to fit better": _which_way(misses)},
    )


def _which_way(misses: list[float]) -> str:
    """The slope and intercept to move to, those of the least-squares line through the
    points, unless the line is already that close (its misses' own line is about flat)."""
    xs = [x for x, _ in DATA]
    off = statistics.linear_regression(xs, misses)
    if abs(off.slope) < 0.05 and abs(off.intercept) < 0.05:
        return "keep the slope and the intercept"
    best = statistics.linear_regression(xs, [y for _, y in DATA])
    return f"slope = {best.slope:.1f} and intercept = {best.intercept:.1f}, about"


def main(
    *,
    runtime: symbiont.Runtime | None = None,
    model: object | None = None,
    attempts: int = 30,
    on_attempt: object | None = None,
) -> symbiont.EvolveReport:
    own = runtime is None
    rt = runtime or symbiont.Runtime()
    try:
        return rt.evolve_sync(
            predict,
            model,  # type: ignore[arg-type]
            prompt=PROMPT,
            metric=mse,
            direction="minimize",
            accept="better",
            attempts=attempts,
            on_attempt=on_attempt,  # type: ignore[arg-type]
        )
    finally:
        if own:
            rt.close()


if __name__ == "__main__":
    print(main().summary())
