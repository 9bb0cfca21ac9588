"""Evolvable functions for the prompt tests: a module full of things a prompt must not leak.

`leaky` uses a secret, a 200 KB string, `os` and `sys` (all in its own code, so the old
"names the module defines" list and the new "names the code uses" list both see them);
`expected` is an answer key and `check_scaled` the harness, neither of which `leaky` uses.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass

import symbiont

SECRET_TOKEN = "sk-live-51HqLyjWDarjtT1zdp7dc9f3c0a1b2"
BIG = "x" * 200_000
LIMIT = 10
Vector = list[float]


@dataclass
class Point:
    x: float
    y: float


def clamp(value: float, low: float = -1234.5, high: float = 9876.5) -> float:
    return max(low, min(high, value))


def expected(p: Point, scale: float) -> Vector:  # the answer key
    return [p.x * scale, p.y * scale]


def check_scaled(fn: object) -> None:
    assert fn(Point(1.0, 2.0), 2.0) == expected(Point(1.0, 2.0), 2.0)  # type: ignore[operator]


@symbiont.evolvable(timeout=2.0, typecheck=False)
def leaky(p: Point, scale: float) -> Vector:
    """Scale p by `scale`, at most LIMIT times its size."""
    token_len = len(SECRET_TOKEN) + len(BIG) * 0
    if os.sep and sys.maxsize and token_len:
        scale = min(scale, LIMIT)
    return [clamp(p.x * scale), clamp(p.y * scale) + math.floor(0.5)]


@symbiont.evolvable(timeout=2.0, typecheck=False)
def answer(n: int) -> int:
    """Return twice n."""
    expected = n  # a local named like the module's answer key
    total = 0
    for _ in range(3):
        total += expected
    return total - n


@symbiont.evolvable(timeout=2.0, typecheck=False)
def shout(text: str) -> str:
    """Upper-case text."""
    return text.lower()


def check_shout(fn: object) -> None:
    got = fn("abc")  # type: ignore[operator]
    assert got == "ABC", f"shout('abc') returned {got!r}, expected 'ABC'"


@symbiont.evolvable(timeout=2.0, typecheck=False)
def divide(x: int) -> int:
    """Return 100 divided by x."""
    return 100 // x


def run_program() -> int:  # the program around `divide`, which the model has no business reading
    total = 0
    for x in (5, 0):
        total += divide(x)
    return total
