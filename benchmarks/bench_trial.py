"""Trial overhead: fork the live process, confine the child, run a trivial candidate, collect.

Target: p50 ≤ 5 ms for a confined trial (the default). The unconfined fork (`trial="fork"`,
trusted code) is measured in the same rounds, interleaved with the confined one so both see
the same machine load; the per-round difference is the price of confinement. Shown for
comparison: the kernel's floor (bare fork + exit + reap), what a network namespace would
add (unshare(CLONE_NEWNET) in a bare fork; the confined trial denies sockets with seccomp
instead), an in-process trial (no isolation), and both forked modes from a parent holding
256 MiB of live state, since fork's cost grows with the page tables it copies.
Run: python benchmarks/bench_trial.py
"""

from __future__ import annotations

import ctypes
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _report import percentile, write_section

from symbiont.trial import TrialLimits, confinement_report, run_forked, run_inprocess

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _candidate(x: int) -> int:
    return x + 1


def _job() -> dict[str, Any]:
    return {"score": float(_candidate(41))}


class Samples:
    """Wall-clock ms per run, CPU ms per run (this process plus the children it reaped
    during the run) and minor page faults per run (same two). CPU moves less with the load
    of other processes than wall-clock does; the page-fault count does not move with it at
    all, and after a fork each fault is a page copied (a few microseconds each here), so it
    is the figure to compare before and after a change on a busy machine."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.faults: list[int] = []

    def time(self, run: Callable[[], Any]) -> None:
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = time.process_time()
        t = time.perf_counter()
        result = run()
        self.wall.append((time.perf_counter() - t) * 1000.0)
        cpu = time.process_time() - cpu
        me_after = resource.getrusage(resource.RUSAGE_SELF)
        kids_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        child = (kids_after.ru_utime + kids_after.ru_stime) - (kids.ru_utime + kids.ru_stime)
        self.cpu.append((cpu + child) * 1000.0)
        self.faults.append(
            me_after.ru_minflt - me.ru_minflt + kids_after.ru_minflt - kids.ru_minflt
        )
        assert result.ok, result


def _measure(run: Callable[[], Any], reps: int, warmup: int) -> Samples:
    for _ in range(warmup):
        run()
    samples = Samples()
    for _ in range(reps):
        samples.time(run)
    return samples


def _interleaved(
    a: Callable[[], Any], b: Callable[[], Any], rounds: int, warmup: int
) -> tuple[Samples, Samples]:
    """Both runners once per round, in alternating order, so load affects them alike."""
    for _ in range(warmup):
        a()
        b()
    xs, ys = Samples(), Samples()
    for i in range(rounds):
        if i % 2:
            ys.time(b)
            xs.time(a)
        else:
            xs.time(a)
            ys.time(b)
    return xs, ys


class _Bare:
    ok = True


def _bare_fork(netns: bool = False) -> _Bare:
    """The floor: fork, `_exit` at once, reap. No pipes, no isolation, no job."""
    pid = os.fork()
    if pid == 0:
        if netns:
            _libc.unshare(CLONE_NEWNET)
        os._exit(0)
    os.waitpid(pid, 0)
    return _Bare()


def main() -> str:
    limits = TrialLimits(timeout_s=10.0)
    rows: list[tuple[str, Samples, str]] = []
    load_before = os.getloadavg()[0]
    protections = confinement_report()

    def confined() -> Any:
        return run_forked(_job, limits)

    def unconfined() -> Any:
        return run_forked(_job, limits, confine=False)

    conf, fork = _interleaved(confined, unconfined, rounds=300, warmup=30)
    rows.append(("confined trial (fork + confine + trivial job + collect)", conf, "≤ 5 ms p50"))
    rows.append(('unconfined fork trial (`trial="fork"`, trusted code)', fork, "—"))
    bare = _measure(_bare_fork, reps=400, warmup=40)
    rows.append(("bare `os.fork()` + `_exit` + `waitpid` (the kernel's floor)", bare, "—"))
    netns = _measure(lambda: _bare_fork(netns=True), reps=200, warmup=20)
    rows.append(
        ("bare fork + `unshare(CLONE_NEWNET)` (not used: seccomp denies sockets)", netns, "—")
    )
    inproc = _measure(lambda: run_inprocess(_job, limits), reps=5000, warmup=200)
    rows.append(("in-process trial (no isolation)", inproc, "—"))
    heap = bytearray(256 << 20)  # touched below, so its pages (and page tables) are real
    for i in range(0, len(heap), 4096):
        heap[i] = 1
    big_conf, big_fork = _interleaved(confined, unconfined, rounds=100, warmup=10)
    big_bare = _measure(_bare_fork, reps=100, warmup=10)
    del heap
    rows.append(("confined trial, parent holding 256 MiB", big_conf, "—"))
    rows.append(("unconfined fork trial, parent holding 256 MiB", big_fork, "—"))
    rows.append(("bare fork, parent holding 256 MiB", big_bare, "—"))

    p50 = percentile(conf.wall, 50)
    cpu50 = percentile(conf.cpu, 50)
    added = statistics.median(c - f for c, f in zip(conf.wall, fork.wall, strict=True))
    added_cpu = statistics.median(c - f for c, f in zip(conf.cpu, fork.cpu, strict=True))
    verdict = "met" if p50 <= 5.0 else "NOT met"
    lines = [
        "## Trial overhead (fork, confine, run a trivial candidate, collect)",
        "",
        "| trial | p50 ms | p95 ms | CPU p50 ms | page faults p50 | n | target |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
        *[
            f"| {name} | {percentile(s.wall, 50):.3f} | {percentile(s.wall, 95):.3f} | "
            f"{percentile(s.cpu, 50):.3f} | {percentile(s.faults, 50):.0f} | {len(s.wall)} | "
            f"{target} |"
            for name, s, target in rows
        ],
        "",
        f"Target: confined trial p50 ≤ 5 ms — measured **{p50:.2f} ms** wall-clock ({verdict} "
        f"at this load), **{cpu50:.2f} ms** of CPU (this process plus the child); "
        f"confinement adds **{added:.2f} ms** wall-clock and **{added_cpu:.2f} ms** of CPU "
        "(medians of the per-round differences, confined minus unconfined). The "
        "forked figures include pipe set-up, fork, the child's set-up (signals, stdio, "
        "rlimits; confined: wiping secrets, emptying the environment, Landlock, closing "
        "descriptors, dropping capabilities, seccomp), the job, the JSON report, waiting "
        "for the exit and reaping.",
        "",
        "Protections of a confined trial on this machine: "
        + "; ".join(f"{name}: {state}" for name, state in protections.items())
        + ".",
        "",
        f"Machine: {os.cpu_count()} CPUs, load average {load_before:.2f} at the start "
        "(the figures are wall-clock and rise with the load of other processes).",
        "",
        "Command: `python benchmarks/bench_trial.py`",
    ]
    return write_section("trial", "\n".join(lines))


if __name__ == "__main__":
    print(main())
