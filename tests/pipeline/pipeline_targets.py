"""Example module whose functions the pipeline tests evolve (a real file: inspect and ty read it).

Old `typing` spellings are deliberate: the signature stage must equate them with new ones.
"""

# ruff: noqa: UP006, UP035, UP037, UP045

from __future__ import annotations

import math
import typing as tp
from dataclasses import dataclass
from typing import List, Optional

import symbiont


@dataclass
class State:
    count: int
    name: str = "x"


SCALE = 3


def helper_double(x: int) -> int:
    return x * 2


@symbiont.evolvable
def step(state: State, k: int = 3) -> State:
    """Increment the count by k."""
    return State(state.count + k, state.name)


def scale(xs: List[int], factor: Optional[float] = None, *, clamp: bool = False) -> list[float]:
    """Multiply each item by factor (SCALE when None)."""
    f = SCALE if factor is None else factor
    return [min(x * f, 1.0) if clamp else x * f for x in xs]


def shapes(
    a: int, /, b: tp.Dict[str, int], *args: int, c: int = 1, **kw: str
) -> "tp.Tuple[int, ...]":
    return (a, len(b), *args, c, len(kw))


async def fetch(n: int) -> int:
    return n + 1


def numbers(n: int) -> tp.Iterator[int]:
    yield from range(n)


def area(r: float) -> float:
    return math.pi * r * r
