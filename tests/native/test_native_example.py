"""examples/native_sim.py and `symbiont demo native` run; time_kernel counts and reports."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import symbiont
from symbiont.native import time_kernel

EXAMPLES = Path(__file__).parents[2] / "examples"


def test_time_kernel_warms_up_repeats_and_reports_the_median() -> None:
    calls = []

    def kernel(x: float) -> float:
        calls.append(x)
        return x

    timing = time_kernel(kernel, 1.0, warmup=2, repeats=5, number=3)
    assert len(calls) == 2 + 5 * 3
    assert timing.repeats == 5 and timing.number == 3
    assert 0 < timing.best_s <= timing.median_s
    assert timing.speed == pytest.approx(1 / timing.median_s)
    with pytest.raises(ValueError, match="repeats"):
        time_kernel(kernel, 1.0, repeats=0)


def test_the_simulation_keeps_running_while_its_kernel_is_evolved() -> None:
    sys.path.insert(0, str(EXAMPLES))
    try:
        import native_sim
    finally:
        sys.path.remove(str(EXAMPLES))
    rt = symbiont.Runtime(store=False)
    try:
        result = native_sim.main(runtime=rt, measure_s=0.2)
    finally:
        rt.close()
    h = native_sim.diffuse.symbiont
    try:
        assert result["report"].ok, result["report"].summary()
        assert h.active.number == 1 and "no modulo" in h.active.source
        assert result["steps_per_s_before"] > 0 and result["steps_per_s_after"] > 0
        assert result["heat_kept"]  # the swap under the running simulation lost nothing
        native_sim.check(native_sim.diffuse)  # the live function is still right
        u = np.ones((4, 4))
        out = np.zeros((4, 4))
        native_sim.diffuse(u, out, 0.5)
        assert (out == 1.0).all()  # a uniform field does not change
    finally:
        h.activate(0)
