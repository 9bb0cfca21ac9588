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
    "Lower the mean squared error of `predict` on the measured points. They lie near a "
    "straight line y = slope * x + intercept: change the slope and the intercept in the "
    "return line to numbers that fit them better. The feedback after each try says where "
    "the line misses."
)


@symbiont.evolvable(timeout=2.0, typecheck=False)
def predict(x: float) -> float:
    """Predict y for x with a straight line: slope * x + intercept."""
    return 1.0 * x + 0.0


def mse(fn: Callable[[float], float]) -> symbiont.Score:
    misses = [fn(x) - y for x, y in DATA]
    errors = [miss**2 for miss in misses]
    worst = max(range(len(DATA)), key=lambda i: errors[i])
    x, miss = DATA[worst][0], misses[worst]
    side = "high" if miss > 0 else "low"
    return symbiont.Score(
        value=sum(errors) / len(errors),
        metrics={"max_error": max(errors) ** 0.5},
        artifacts={
            "worst point": f"x={x}, where the line is {abs(miss):.3f} too {side}",
            "mean miss": f"{sum(misses) / len(misses):+.3f} (line minus points, on average)",
            "to fit better": _which_way(misses),
        },
    )


def _which_way(misses: list[float]) -> str:
    """Which way to move the slope and the intercept: the signs of the least-squares line
    through the misses (a miss that grows with x means the slope is too steep)."""
    xs = [x for x, _ in DATA]
    mx, mm = sum(xs) / len(xs), sum(misses) / len(misses)
    tilt = sum((x - mx) * (m - mm) for x, m in zip(xs, misses, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    at_zero = mm - tilt * mx

    def move(what: str, miss: float) -> str:
        return (
            f"keep the {what}"
            if abs(miss) < 0.05
            else f"{'lower' if miss > 0 else 'raise'} the {what}"
        )

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
