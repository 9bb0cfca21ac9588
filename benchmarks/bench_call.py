"""Call overhead: an evolvable function vs. the same plain function vs. a Python wrapper.

Target: an evolvable call costs ≤ 1.05× a plain call (there is no wrapper: promotion swaps
`__code__` in place). Run: python benchmarks/bench_call.py
"""

from __future__ import annotations

import functools
import statistics
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import _bench_targets as t
from _report import write_section


def wrapper(fn):  # the cheapest possible decorator-with-wrapper, for comparison
    @functools.wraps(fn)
    def call(*args, **kwargs):
        return fn(*args, **kwargs)

    return call


def per_call_ns(
    stmt: str, setup_globals: dict, number: int = 1_000_000, repeat: int = 15
) -> list[float]:
    timer = timeit.Timer(stmt, globals=setup_globals)
    return [x / number * 1e9 for x in timer.repeat(repeat=repeat, number=number)]


def main() -> str:
    import symbiont  # noqa: F401

    wrapped = wrapper(t.plain_add)
    # Swap a real candidate in, so the figure is for a promoted revision, not revision 0.
    t.evolved_add.symbiont.install(t.swap_source_code(), None, ())
    g = {"plain": t.plain_add, "evolved": t.evolved_add, "wrapped": wrapped}
    rows = []
    # Interleave the runs so drift of the machine affects all three alike, and compare each
    # round's figures with the same round's plain figure (a ratio per round, then the median).
    samples: dict[str, list[float]] = {"plain": [], "evolved": [], "wrapped": []}
    for _ in range(15):
        for name in samples:
            samples[name].append(min(per_call_ns(f"{name}(1, 2)", g, number=200_000, repeat=3)))
    for name in ("plain", "evolved", "wrapped"):
        med = statistics.median(samples[name])
        best = min(samples[name])
        ratios = [x / p for x, p in zip(samples[name], samples["plain"], strict=True)]
        rows.append((name, med, best, statistics.median(ratios)))
    ratio = rows[1][3]
    lines = [
        "## Call overhead (evolvable vs. plain vs. wrapper)",
        "",
        "| function | median ns/call | best ns/call | × plain (median of per-round ratios) |",
        "| --- | ---: | ---: | ---: |",
        *[f"| {n} | {m:.1f} | {b:.1f} | {r:.3f} |" for n, m, b, r in rows],
        "",
        f"Target: evolvable ≤ 1.05× plain — measured **{ratio:.3f}×** "
        f"({'met' if ratio <= 1.05 else 'NOT met'}). The evolvable is a promoted revision "
        "(its `__code__` was swapped); a `functools.wraps` wrapper is shown for comparison.",
        "",
        "Command: `python benchmarks/bench_call.py`",
    ]
    return write_section("call", "\n".join(lines))


if __name__ == "__main__":
    print(main())
