"""The live-policy example: the simulation keeps running during the search, trials never
touch its state, and the searched policy beats the initial one on the live tank."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))

import live_policy as lp

import symbiont
from symbiont.models.mutation import MutationModel
from symbiont.testing import reset


def test_the_policy_is_searched_while_the_simulation_runs_and_its_state_is_untouched() -> None:
    rt = symbiont.Runtime(store=False)
    steps_before = lp.TANK.steps
    try:
        report = lp.main(runtime=rt, model=MutationModel(seed=4), evaluations=30)
    finally:
        rt.close()
    try:
        assert report.best_score > report.baseline_score, report.summary()
        # the live loop kept stepping during the search...
        assert lp.TANK.steps - steps_before > 20
        # ...and only it stepped the live tank: every trial ran HORIZON steps on its own copy
        history = lp.TANK.history
        assert history == list(range(history[0], history[0] + len(history)))
        assert lp.TANK.steps == history[-1]
        # trials started from the live tank as it was then, not from its initial state
        assert report.best is not None and report.best.metrics["from_step"] > 0
        # on one snapshot of the live tank, the live policy now tracks better than the initial
        assert error_from_snapshot(lp.policy) < error_from_snapshot(lambda level, target: 0.3)
    finally:
        reset(lp.policy)


def error_from_snapshot(fn) -> float:  # type: ignore[no-untyped-def]
    tank = copy.deepcopy(lp.TANK)
    error = 0.0
    for _ in range(lp.HORIZON):
        lp.step(tank, fn(tank.level, tank.target))
        error += (tank.level - tank.target) ** 2
    return error
