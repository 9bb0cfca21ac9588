"""Evolvables declared with each trial mode, for tests/core/test_core_trial_modes.py."""

from __future__ import annotations

import symbiont


@symbiont.evolvable(timeout=5.0, typecheck=False)
def confined_double(x: int) -> int:
    """Return 2 * x."""
    return x + x


@symbiont.evolvable(timeout=5.0, typecheck=False, trial="fork")
def trusted_double(x: int) -> int:
    """Return 2 * x."""
    return x + x
