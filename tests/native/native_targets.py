"""Native evolvables the tests evolve (declared at import, like a user's module)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import numba
import numpy as np
import numpy.typing as npt

import symbiont

Vector = Annotated[npt.NDArray[np.float64], 1]

WEIGHT = 2.0


@symbiont.evolvable(native=True, typecheck=False, timeout=20)
def weighted_sum(xs: Vector, bias: float) -> float:
    """Sum of WEIGHT * x over xs, plus bias."""
    total = bias
    for i in range(xs.shape[0]):
        total += WEIGHT * xs[i]
    return total


@symbiont.evolvable(backend="numba", typecheck=False, timeout=20)
def count_above(xs: Vector, threshold: float, strict: bool) -> int:
    """How many elements of xs are above threshold (or equal to it unless strict)."""
    n = 0
    for x in xs:
        if x > threshold or (not strict and x == threshold):
            n += 1
    return n


@symbiont.evolvable(typecheck=False)
def plain_double(x: int) -> int:
    return 2 * x


@symbiont.evolvable(native=True, typecheck=False, timeout=20)
def clamp(x: float, lo: float, hi: float) -> float:
    """x limited to [lo, hi]."""
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


@symbiont.evolvable(native=True, typecheck=False, timeout=20)
def approx_pi(n: int) -> float:
    """An approximation of pi from n terms."""
    return 3.0


@symbiont.evolvable(native=True, typecheck=False, timeout=3)
def halve(x: float) -> float:
    return x / 2.0


@symbiont.evolvable(native=True, typecheck=False, timeout=20)
def pick(flag: bool, a: float, b: float) -> float:
    """a when flag, else b."""
    return a if flag else b


class _CrashesTheCompiler:
    """A module global that kills the process compiling a body that reads it: Numba asks a
    global's `_numba_type_` while typing the body, so this stands in for a compiler crash."""

    @property
    def _numba_type_(self) -> None:
        import os

        os.abort()


CRASHES_THE_COMPILER = _CrashesTheCompiler()


IN_CALL: list[Callable[[], None]] = []  # run from inside a call of `step` (by the kernel)


def _during_call() -> None:
    while IN_CALL:
        IN_CALL.pop()()


@symbiont.evolvable(native=True, typecheck=False, timeout=20)
def step(x: float) -> float:
    """x + 1, running the hooks in IN_CALL in the middle of the call (from machine code)."""
    with numba.objmode():
        _during_call()
    return x + 1.0
