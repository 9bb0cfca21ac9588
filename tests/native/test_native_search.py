"""A population search over a native kernel: candidates compiled by Numba, the best promoted."""

from __future__ import annotations

import math

import numba
from native_targets import approx_pi

import symbiont
from symbiont.models import ScriptedModel
from symbiont.search import Budget

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
        h.activate(0)
        del h.revisions[1:]
