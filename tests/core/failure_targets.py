"""Evolvable functions whose live failures the tests in test_core_live_failures.py record."""

from __future__ import annotations

import symbiont


@symbiont.evolvable(typecheck=False)
def ratio(items: list[int], scale: float) -> float:
    """The sum of `items` divided by `scale`."""
    return sum(items) / scale


@symbiont.evolvable(typecheck=False)
def pick(table: dict[str, int], name: str) -> int:
    """The entry `name` of `table`."""
    return table[name]


def caller(items: list[int]) -> float:
    """Not evolvable: a frame between the program and the evolvable that raises."""
    return ratio(items, 0.0)


@symbiont.evolvable(typecheck=False)
def shifted(x: float) -> float:
    """1 / x, shifted by one."""
    return 1.0 / x + 1.0
