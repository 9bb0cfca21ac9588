"""Evolvable functions used by the core tests (a real module, so its source can be read)."""

from __future__ import annotations

import threading
from typing import Optional

import symbiont

gate = threading.Event()
entered = threading.Event()


@symbiont.evolvable
def tagged(x: int) -> tuple[int, int]:
    """Return (tag, tag) computed in two separate steps; a call that mixed two revisions
    would return two different tags."""
    a = 0
    total = 0
    for i in range(x):
        total += i
    b = 0
    return (a, b)


@symbiont.evolvable(timeout=1.5, typecheck=False, trial="inprocess")
def slow_then_answer() -> str:
    """Blocks until the test opens the gate, then answers."""
    entered.set()
    gate.wait(5)
    return "old"


# fmt: off
@symbiont.evolvable
def with_everything(a: int, /, b: Optional[list[int]] = None,  # noqa: UP045 (captured as written)
     *args: str, c: float = 1.5, **kw: bool) -> dict[str, int]:
    """Docstring of with_everything."""
    return {}
# fmt: on
