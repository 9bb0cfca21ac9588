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
    "Lower the mean squared error of the prediction on DATA: the points in DATA lie near a "
    "straight line, so give the line a better slope and intercept (plain Python, no "
    "libraries)."
)


@symbiont.evolvable(timeout=2.0, typecheck=False)
def predict(x: float) -> float:
    """Predict y for x: a straight line fitted to DATA."""
    return 1.0 * x + 0.0


def mse(fn: Callable[[float], float]) -> symbiont.Score:
    errors = [(fn(x) - y) ** 2 for x, y in DATA]
    worst = max(range(len(DATA)), key=lambda i: errors[i])
    return symbiont.Score(
        value=sum(errors) / len(errors),
        metrics={"max_error": max(errors) ** 0.5},
        artifacts={"worst point": f"x={DATA[worst][0]}, y={DATA[worst][1]:.3f}"},
    )


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
