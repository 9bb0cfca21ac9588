"""Evolvable functions for the atomic-swap and side-effect tests (a real module: its source is read)."""

from __future__ import annotations

import threading

import symbiont

gate = threading.Event()
entered = threading.Event()
DATA = [1, 2, 3]


@symbiont.evolvable(typecheck=False, trial="inprocess")
def revision_and_helper(x: int) -> tuple[int, int]:
    """Return (the revision's own number, what the revision's helper answers)."""
    total = 0
    for i in range(x):
        total += i
    return (0, 0)


@symbiont.evolvable(typecheck=False, trial="inprocess")
def blocking_answer() -> int:
    """Blocks until the test opens the gate, then answers with a helper's value."""
    entered.set()
    gate.wait(5)
    return 0
