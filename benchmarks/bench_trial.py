"""Trial overhead: fork the live process, run a trivial candidate, collect its JSON report.

Target: p50 ≤ 5 ms for a forked trial. An in-process trial (no isolation) is shown for
comparison, and a forked trial from a parent holding 256 MiB of live state, since fork's
cost grows with the page tables it copies. Run: python benchmarks/bench_trial.py
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _report import percentile, write_section

from symbiont.trial import TrialLimits, run_forked, run_inprocess


def _candidate(x: int) -> int:
    return x + 1


def _job() -> dict[str, Any]:
    return {"score": float(_candidate(41))}


def _measure(run: Callable[[], Any], reps: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(reps):
        t = time.perf_counter()
        result = run()
        samples.append((time.perf_counter() - t) * 1000.0)
        assert result.ok, result
    return samples


class _Bare:
    ok = True


def _bare_fork() -> _Bare:
    """The floor: fork, `_exit` at once, reap. No pipes, no isolation, no job."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return _Bare()


def main() -> str:
    limits = TrialLimits(timeout_s=10.0)
    rows: list[tuple[str, list[float], str]] = []
    load_before = os.getloadavg()[0]
    forked = _measure(lambda: run_forked(_job, limits), reps=400, warmup=40)
    rows.append(("forked trial (fork + trivial job + collect)", forked, "≤ 5 ms p50"))
    bare = _measure(_bare_fork, reps=400, warmup=40)
    rows.append(("bare `os.fork()` + `_exit` + `waitpid` (the kernel's floor)", bare, "—"))
    inproc = _measure(lambda: run_inprocess(_job, limits), reps=5000, warmup=200)
    rows.append(("in-process trial (no isolation)", inproc, "—"))
    heap = bytearray(256 << 20)  # touched below, so its pages (and page tables) are real
    for i in range(0, len(heap), 4096):
        heap[i] = 1
    big = _measure(lambda: run_forked(_job, limits), reps=100, warmup=10)
    big_bare = _measure(_bare_fork, reps=100, warmup=10)
    del heap
    rows.append(("forked trial, parent holding 256 MiB", big, "—"))
    rows.append(("bare fork, parent holding 256 MiB", big_bare, "—"))

    p50 = percentile(forked, 50)
    lines = [
        "## Trial overhead (fork, run a trivial candidate, collect)",
        "",
        "| trial | p50 ms | p95 ms | n | target |",
        "| --- | ---: | ---: | ---: | --- |",
        *[
            f"| {name} | {percentile(s, 50):.3f} | {percentile(s, 95):.3f} | {len(s)} | {target} |"
            for name, s, target in rows
        ],
        "",
        f"Target: forked trial p50 ≤ 5 ms — measured **{p50:.2f} ms** "
        f"({'met' if p50 <= 5.0 else 'NOT met'}). The forked figure includes pipe set-up, "
        "fork, the child's isolation set-up (signals, stdio, rlimits), the job, the JSON "
        "report, waiting for the exit and reaping.",
        "",
        f"Machine: {os.cpu_count()} CPUs, load average {load_before:.2f} at the start "
        "(the figures are wall-clock and rise with the load of other processes).",
        "",
        "Command: `python benchmarks/bench_trial.py`",
    ]
    return write_section("trial", "\n".join(lines))


if __name__ == "__main__":
    print(main())
