"""A live simulation whose control policy is searched while it runs, its state untouched.

A water tank fills through a valve the policy opens (0 … 1) and drains through a hole. The
simulation steps in a background thread the whole time. Each candidate policy is scored in a
forked trial: the child takes the *live* tank as it is at that moment (copy-on-write, nothing
rebuilt) and runs it forward; whatever the child does to the tank stays in the child. The
best policy is swapped into the running simulation.

    python examples/live_policy.py
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import symbiont
from symbiont.search import Budget

HORIZON = 300  # steps a candidate is simulated for


@dataclass
class Tank:
    level: float = 2.0
    target: float = 6.0
    steps: int = 0
    history: list[int] = field(default_factory=list)  # the step numbers the live loop ran


TANK = Tank()


@symbiont.evolvable(timeout=5.0, typecheck=False)
def policy(level: float, target: float) -> float:
    """How far to open the inflow valve (0 = shut, 1 = open) for the next step."""
    return 0.3 + 0.0 * (target - level)


def step(tank: Tank, valve: float) -> None:
    valve = min(1.0, max(0.0, valve))
    tank.level = max(0.0, tank.level + 0.5 * valve - 0.08 * math.sqrt(tank.level))
    tank.steps += 1


def tracking(fn: Callable[[float, float], float]) -> symbiont.Score:
    """Minus the mean squared distance to the target over HORIZON steps, run forward from
    the live tank (in the trial's forked child: the live tank is not touched)."""
    tank = TANK  # the child's copy-on-write view of the live object
    start = tank.steps
    error = 0.0
    for _ in range(HORIZON):
        step(tank, fn(tank.level, tank.target))
        error += (tank.level - tank.target) ** 2
    return symbiont.Score(-error / HORIZON, metrics={"from_step": float(start)})


class LiveLoop:
    """Steps the live tank with the live policy every `period` seconds in a thread."""

    def __init__(self, period: float = 0.002) -> None:
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tank", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            step(TANK, policy(TANK.level, TANK.target))
            TANK.history.append(TANK.steps)
            if TANK.steps % 500 == 0:  # the tank's demand changes now and then
                TANK.target = 4.0 if TANK.target > 5 else 6.0
            time.sleep(self.period)

    def __enter__(self) -> LiveLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main(
    *, runtime: symbiont.Runtime | None = None, model: object | None = None, evaluations: int = 60
) -> object:
    own = runtime is None
    rt = runtime or symbiont.Runtime()
    try:
        with LiveLoop():
            return rt.search_sync(
                policy,
                model,
                prompt="Keep the tank level at the target: open the valve more when it is low.",
                metric=tracking,
                budget=Budget(evaluations=evaluations),
                parallel=2,
            )
    finally:
        if own:
            rt.close()


if __name__ == "__main__":
    report = main()
    print(report.summary())  # type: ignore[attr-defined]
    print(f"the live loop ran {TANK.steps} steps meanwhile; level {TANK.level:.2f}")
