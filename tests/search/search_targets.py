"""Evolvable functions the search tests drive."""

from __future__ import annotations

import symbiont


@symbiont.evolvable(timeout=5.0, typecheck=False)
def peak(x: float) -> float:
    """A value to maximise at x = 3: candidates change the constants."""
    return -((x - 1.0) ** 2)


@symbiont.evolvable(timeout=2.0, typecheck=False)
def work(n: int) -> int:
    """Return n + 1."""
    return n


def score_peak(fn) -> float:
    return float(fn(3.0))


def score_work(fn) -> float:
    return 1.0 if fn(4) == 5 else 0.0


def score_peak_slowly(fn) -> float:
    import time

    time.sleep(0.05)  # slow enough for a test to kill the search in the middle
    return float(fn(3.0))
