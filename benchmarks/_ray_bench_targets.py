"""The function and metrics bench_search_ray.py searches with; a module of its own so that a
Ray worker can import them by path (the benchmark puts this folder on the workers' path)."""

from __future__ import annotations

import symbiont


@symbiont.evolvable(timeout=10.0, typecheck=False)
def bump(x: int) -> int:
    """Return x plus something."""
    return x


def trivial(fn) -> float:  # type: ignore[no-untyped-def]
    """One call: the row measures the harness and the trial's transport, not the metric."""
    return float(fn(0))


def heavy(fn) -> float:  # type: ignore[no-untyped-def]
    """An evaluation worth distributing: 300,000 calls (about 40-60 ms of CPU here)."""
    total = 0
    for i in range(300_000):
        total += fn(i) - i
    return total / 300_000
