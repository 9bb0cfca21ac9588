"""Evolvable functions for the bounded-loop tests (no type check unless a test needs one)."""

from __future__ import annotations

import symbiont


@symbiont.evolvable(timeout=5.0, typecheck=False)
def bump(x: int) -> int:
    """Return x plus one."""
    return x


@symbiont.evolvable(timeout=5.0)
def halve(x: int) -> int:
    """Return x halved, rounded down."""
    return x
