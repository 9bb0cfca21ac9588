"""Evolvable functions and metrics the Ray executor tests import by module path.

A Ray worker imports this module afresh (the tests put its folder on the workers' path), so
everything here is module level: nothing the driver builds at run time reaches a worker.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

import symbiont
from symbiont import Score


@symbiont.evolvable(timeout=5.0, typecheck=False)
def peak(x: float) -> float:
    """A value to maximise at x = 3: candidates change the constants."""
    return -((x - 1.0) ** 2)


@symbiont.evolvable(timeout=4.0, memory_mb=200, typecheck=False)
def work(n: int) -> int:
    """Return n + 1."""
    return n


@symbiont.evolvable(timeout=1.0, typecheck=False, trial="inprocess")
def work_trusted(n: int) -> int:
    """Return n + 1."""
    return n


@symbiont.evolvable(timeout=5.0, typecheck=False)
def label(n: int) -> Any:
    """A short label for n."""
    return "n"


def score_peak(fn) -> Score:  # type: ignore[no-untyped-def]
    """The value at 3, and where it was computed (the trial's process and its parent)."""
    return Score(float(fn(3.0)), artifacts={"pid": str(os.getpid()), "ppid": str(os.getppid())})


def score_work(fn) -> float:  # type: ignore[no-untyped-def]
    """1 when fn(4) == 5; a candidate answering 13 makes this metric crash its process."""
    value = fn(4)
    if value == 13:
        ctypes.string_at(0)  # reads address 0: SIGSEGV
    return 1.0 if value == 5 else 0.0


def score_label(fn) -> Score:  # type: ignore[no-untyped-def]
    """The label goes back as an artifact, whatever the candidate made it."""
    out = fn(4)
    return Score(float(len(out)) if isinstance(out, str) else 0.0, artifacts={"label": out})
