"""Timing a kernel robustly, for metrics: warm-up, repeats, median."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class KernelTiming:
    median_s: float  # median seconds per call
    best_s: float
    repeats: int
    number: int  # calls per repeat

    @property
    def speed(self) -> float:
        """Calls per second at the median: higher is better (a metric to maximize)."""
        return 1.0 / self.median_s if self.median_s > 0 else float("inf")


def time_kernel(
    kernel: Callable[..., Any],
    *args: Any,
    warmup: int = 3,
    repeats: int = 7,
    number: int | None = None,
    min_repeat_s: float = 0.005,
) -> KernelTiming:
    """Seconds per call of `kernel(*args)`: `warmup` calls first (Numba compiles lazily,
    caches warm), then `repeats` timings of `number` calls each (chosen so one repeat takes
    at least `min_repeat_s` when not given), reported as the median per call. The median of
    several repeats is robust to a machine that is busy for part of the run."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be ≥ 1 and warmup ≥ 0, not {repeats} and {warmup}")
    for _ in range(warmup):
        kernel(*args)
    clock = time.perf_counter
    if number is None:
        number = 1
        while True:
            t0 = clock()
            for _ in range(number):
                kernel(*args)
            if clock() - t0 >= min_repeat_s or number >= 1 << 20:
                break
            number *= 4
    per_call = []
    for _ in range(repeats):
        t0 = clock()
        for _ in range(number):
            kernel(*args)
        per_call.append((clock() - t0) / number)
    return KernelTiming(statistics.median(per_call), min(per_call), repeats, number)
