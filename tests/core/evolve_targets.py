"""Evolvable functions the evolve-loop tests drive with scripted model replies."""

from __future__ import annotations

import symbiont

SCALE = 3  # a module constant candidates may use


def helper_double(x: int) -> int:
    return 2 * x


@symbiont.evolvable(timeout=2.0)
def triple(x: int) -> int:
    """Return x multiplied by three."""
    return x


@symbiont.evolvable(timeout=1.0, typecheck=False)
def objective(x: float) -> float:
    """A value to minimise: candidates change the constant."""
    return (x - 10.0) ** 2


@symbiont.evolvable(timeout=2.0, typecheck=False)
def fragile(x: int) -> int:
    """Return 100 // x."""
    return 100 // x
