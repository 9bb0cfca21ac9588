"""A metric example: the score improves across revisions.

`predict` should model measurements that follow y = 3.2·x − 1.5 (with noise). The metric is
the mean squared error on the data (minimised); each accepted revision must score no worse
than the active one, so the error goes down revision after revision.

    python examples/curve_fit.py
"""

from __future__ import annotations

import random
from collections.abc import Callable

import symbiont

_rng = random.Random(7)
DATA: list[tuple[float, float]] = [
    (x, 3.2 * x - 1.5 + _rng.gauss(0.0, 0.3)) for x in [i / 4 for i in range(-20, 21)]
]


PROMPT = (
    "Make `predict` fit better by changing the two numbers given to `slope` and "
    "`intercept`; keep the rest as it is. After each try you are told which way to move "
    "each number and by about how much."
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
        # One actionable line, no data value: Qwen2.5-Coder-0.5B turned the worst point
        # ("x=-5.0, 12.577 too high") into `if x == -5.0: return 12.577` and a "mean miss"
        # into a `find_missing` function; told only which way, it moved the intercept too far.
        artifacts={"to fit better": _which_way(misses)},
    )


def _which_way(misses: list[float]) -> str:
    """Which way and how far to move the slope and the intercept: the least-squares line
    through the misses (a miss that grows with x means the slope is too steep)."""
    xs = [x for x, _ in DATA]
    mx, mm = sum(xs) / len(xs), sum(misses) / len(misses)
    tilt = sum((x - mx) * (m - mm) for x, m in zip(xs, misses, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    at_zero = mm - tilt * mx

    def move(what: str, miss: float) -> str:
        if abs(miss) < 0.05:
            return f"keep the {what}"
        return f"{'lower' if miss > 0 else 'raise'} the {what} by about {abs(miss):.1f}"

    return f"{move('slope', tilt)}, {move('intercept', at_zero)}"


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
