"""A population search over a native kernel: candidates compiled by Numba, the best promoted."""

from __future__ import annotations

import math

import numba
import numpy as np
from native_targets import approx_pi

import symbiont
from symbiont.models import ScriptedModel
from symbiont.native import compile_kernel, time_kernel
from symbiont.search import Budget
from symbiont.testing import reset

LEIBNIZ = """
def approx_pi(n: int) -> float:
    s = 0.0
    for k in range(n):
        s += (-1.0) ** k / (2 * k + 1)
    return 4.0 * s
"""

LEIBNIZ_PAIRED = """
def approx_pi(n: int) -> float:
    s = 0.0
    for k in range(0, 2 * n, 2):
        s += 1.0 / (2 * k + 1) - 1.0 / (2 * k + 3)
    return 4.0 * s
"""

NOT_NUMBA = """
def approx_pi(n: int) -> float:
    return float(len(str(n)))  + {"a": 1}["a"]
"""


def closeness(fn) -> float:
    return -abs(fn(1000) - math.pi)


def test_search_compiles_candidates_natively_and_promotes_the_best() -> None:
    replies = [f"```python\n{s}\n```" for s in (NOT_NUMBA, LEIBNIZ, LEIBNIZ_PAIRED)]
    model = ScriptedModel(replies)  # NOT_NUMBA is refused by the native stage
    rt = symbiont.Runtime(store=False)
    h = approx_pi.symbiont
    declared = h.native
    try:
        report = rt.search_sync(
            approx_pi, model, metric=closeness, budget=Budget(evaluations=4), parallel=1
        )
        assert report.best is not None and report.best_score is not None
        assert report.best_score > -1e-3  # 2000 paired terms: |error| ~ 2.5e-4
        assert "1.0 / (2 * k + 3)" in report.best.source
        assert h.active.number == report.best.number  # promoted
        assert abs(approx_pi(1000) - math.pi) < 1e-3
        kernel = h.native
        assert kernel is not declared and isinstance(kernel, numba.core.registry.CPUDispatcher)
    finally:
        rt.close()
        reset(h.fn)


WRONG_BUT_FAST = """
def weighted_sum(xs: Vector, bias: float) -> float:
    return bias
"""

UNROLLED = """
def weighted_sum(xs: Vector, bias: float) -> float:
    n = xs.shape[0]
    a = 0.0
    b = 0.0
    i = 0
    while i + 1 < n:
        a += xs[i]
        b += xs[i + 1]
        i += 2
    if i < n:
        a += xs[i]
    return bias + WEIGHT * (a + b)
"""


def kernel_seconds(fn) -> float:
    """The metric a model is asked to lower: the kernel's median time per call."""
    return time_kernel(fn, np.arange(2000.0), 0.5, warmup=2, repeats=3).median_s


def check_weighted_sum(fn) -> None:
    xs = np.array([1.0, -2.0, 0.25, 8.0, 3.0])
    # 2 * (1 - 2 + 0.25 + 8 + 3) + 0.5 = 21
    assert fn(xs, 0.5) == 21.0, f"weighted_sum returned {fn(xs, 0.5)}"


def test_search_with_a_timing_metric_keeps_only_correct_kernels() -> None:
    from native_targets import weighted_sum

    replies = [f"```python\n{s}\n```" for s in (WRONG_BUT_FAST, UNROLLED)]
    rt = symbiont.Runtime(store=False)
    h = weighted_sum.symbiont
    try:
        report = rt.search_sync(
            weighted_sum,
            ScriptedModel(replies),
            metric=kernel_seconds,
            check=check_weighted_sum,
            direction="minimize",
            budget=Budget(evaluations=3),
            parallel=1,
            promote="never",
        )
        assert report.rejections == {"check_failed": 1}, report.summary()  # the wrong one
        assert report.evaluations == 3  # the declared body, then the two candidates
        assert report.best is not None and "return bias\n" not in report.best.source
        assert report.best_score is not None and 0 < report.best_score < 1.0  # seconds
        assert report.baseline_score is not None and report.baseline_score > 0
        assert h.active.number == 0  # promote="never"
        best = compile_kernel(report.best.source, h.native_spec, h.fn.__globals__, disk=False)
        assert best.dispatcher(np.arange(7.0), 1.0) == 1.0 + 2 * 21.0
    finally:
        rt.close()
        reset(h.fn)
