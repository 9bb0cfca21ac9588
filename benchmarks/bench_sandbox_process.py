"""Per-call cost of the process tier (cold and warm), the inprocess tier and a plain call.

Target: process tier ≤ 10 ms p50 per warm call (a fresh confined worker every call: fork from
the zygote, namespaces, rlimits, uid switch, Landlock, seccomp, run, JSON result, exit).
Cold = a new ProcessSandbox's first call, which also starts and probes the zygote.

Warm calls are measured twice: back to back (the next call starts as soon as one returns)
and paced (20 ms apart, like calls an agent makes between model replies), each with the
zygote's spare (the next worker forked and confined while the current call runs) and
without it (every call forks and confines its own worker on its path). Latency depends on
how busy the machine is, so the load average is printed with the figures, and so is the CPU
time per call (this process, the zygote and its workers), which depends on it far less.

Run: python benchmarks/bench_sandbox_process.py
     python benchmarks/bench_sandbox_process.py --against REV   (also: this tree against git
     revision REV, warm calls only, in alternating rounds so both see the same load)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _report import percentile, write_section

from symbiont.sandbox.base import Limits, Permissions
from symbiont.sandbox.inprocess import InProcessSandbox
from symbiont.sandbox.process import ProcessSandbox

SOURCE = "def main(a, b):\n    return a + b\n"
INPUT = '{"a": 1, "b": 2}'
HOST_SOURCE = "from symbiont.host import now_ms\n\ndef main():\n    return now_ms() > 0\n"
PACE_S = 0.02
TICKS = os.sysconf("SC_CLK_TCK")


def plain(a: int, b: int) -> int:
    return a + b


def timed(fn, n: int, pace: float = 0.0) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(n):
        if pace:
            time.sleep(pace)
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def _zygote_cpu_s(sb: ProcessSandbox) -> float:
    """CPU seconds of the sandbox's zygote (the process in its PID namespace) and of the
    workers it reaped: utime, stime, cutime, cstime from /proc."""
    total = 0.0
    for zygote in sb._all:
        outer = zygote.proc.pid
        with open(f"/proc/{outer}/task/{outer}/children") as fh:
            for inner in fh.read().split():
                with open(f"/proc/{inner}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                total += sum(int(x) for x in fields[11:15]) / TICKS
    return total


def warm(spare: bool, n: int, pace: float, source: str = SOURCE, inp: str = INPUT):  # type: ignore[no-untyped-def]
    """Latencies (ms) of `n` warm calls and the CPU ms per call (this process + zygote)."""
    perms, limits = Permissions(), Limits()
    with ProcessSandbox(_without=() if spare else ("spare worker",)) as sb:
        for _ in range(20):  # warm-up: the zygote is up, the spare (if any) confined
            sb.run(source, "main", inp, perms, limits)
        t0, z0 = os.times(), _zygote_cpu_s(sb)
        ms = timed(lambda: sb.run(source, "main", inp, perms, limits), n, pace)
        t1, z1 = os.times(), _zygote_cpu_s(sb)
    own = (t1.user + t1.system) - (t0.user + t0.system)
    return ms, (own + z1 - z0) * 1000 / n


def row(name: str, ms: list[float], cpu: float | None, target: str) -> str:
    cpu_text = f"{cpu:.1f}" if cpu is not None else ""
    return (
        f"| {name} | {percentile(ms, 50):.2f} | {percentile(ms, 95):.2f} | {len(ms)} "
        f"| {cpu_text} | {target} |"
    )


def warm_pair(n: int = 150) -> dict[str, float]:
    """p50 ms and CPU ms per call of warm calls, paced and back to back (for `--against`)."""
    paced, paced_cpu = warm(True, n, PACE_S)
    b2b, b2b_cpu = warm(True, n, 0.0)
    return {
        "paced": percentile(paced, 50),
        "paced_cpu": paced_cpu,
        "b2b": percentile(b2b, 50),
        "b2b_cpu": b2b_cpu,
    }


def _realtime() -> None:
    os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(1))


def _can_run_realtime() -> bool:
    try:
        subprocess.run(["true"], preexec_fn=_realtime, check=True)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def _warm_pair_of(src: str, realtime: bool = False) -> dict[str, float]:
    """`warm_pair` in a new interpreter that imports symbiont from `src`; `realtime`: under
    SCHED_RR priority 1 (inherited by its zygote and workers), so the load of other
    programs on the machine does not queue ahead of the calls."""
    code = (
        f"import json, sys; sys.path[:0] = [{src!r}, {str(Path(__file__).parent)!r}]; "
        "import symbiont; assert symbiont.__file__.startswith(sys.path[0]), symbiont.__file__; "
        "import bench_sandbox_process as b; print(json.dumps(b.warm_pair()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=_realtime if realtime else None,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def against(rev: str, rounds: int = 3) -> str:
    """This tree against revision `rev`: alternating rounds, medians of the rounds; at
    normal priority, and under SCHED_RR where this process may set it (root)."""
    repo = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(repo), "archive", rev, "src"], capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        trees = {rev: str(Path(tmp) / "src"), "this tree": str(repo / "src")}
        modes = [False, True] if _can_run_realtime() else [False]
        seen: dict[tuple[str, bool], list[dict[str, float]]] = {}
        loads = [os.getloadavg()[0]]
        for _ in range(rounds):
            for realtime in modes:
                for name, src in trees.items():
                    seen.setdefault((name, realtime), []).append(_warm_pair_of(src, realtime))
                    loads.append(os.getloadavg()[0])
    lines = [
        f"### Process tier, this tree against {rev}",
        "",
        "| tree | scheduling | paced p50 ms | paced CPU ms/call | back-to-back p50 ms "
        "| back-to-back CPU ms/call |",
        "|---|---|---|---|---|---|",
    ]
    for (name, realtime), rows in seen.items():
        med = {k: percentile([r[k] for r in rows], 50) for k in rows[0]}
        policy = "SCHED_RR 1" if realtime else "normal"
        lines.append(
            f"| {name} | {policy} | {med['paced']:.2f} | {med['paced_cpu']:.1f} "
            f"| {med['b2b']:.2f} | {med['b2b_cpu']:.1f} |"
        )
    lines += [
        "",
        f"Medians of {rounds} alternating rounds of 150 warm calls each way; load average "
        f"{min(loads):.1f}–{max(loads):.1f} (2 shared cores, other sessions' work). Under "
        "SCHED_RR (the measuring process, its zygote and workers) that work does not queue "
        "ahead of the calls: the latency the code itself costs, as on an otherwise idle "
        "machine; at normal priority, what a caller on this machine saw.",
        "",
        f"Command: `python benchmarks/bench_sandbox_process.py --against {rev}`",
    ]
    return "\n".join(lines)


def main() -> str:
    perms, limits = Permissions(), Limits()
    load_start = os.getloadavg()[0]
    cold: list[float] = []
    for _ in range(5):
        t = time.perf_counter()
        sb = ProcessSandbox()
        assert sb.run(SOURCE, "main", INPUT, perms, limits).output == 3
        cold.append((time.perf_counter() - t) * 1000)
        sb.close()
    paced, paced_cpu = warm(True, 200, PACE_S)
    b2b, b2b_cpu = warm(True, 300, 0.0)
    host, host_cpu = warm(True, 100, PACE_S, HOST_SOURCE, "{}")
    paced_ns, paced_ns_cpu = warm(False, 200, PACE_S)
    b2b_ns, b2b_ns_cpu = warm(False, 300, 0.0)
    load_end = os.getloadavg()[0]
    ip = InProcessSandbox()
    for _ in range(50):
        ip.run(SOURCE, "main", INPUT, perms, limits)
    inproc = timed(lambda: ip.run(SOURCE, "main", INPUT, perms, limits), 1000)
    plain_ms = timed(lambda: plain(1, 2), 10000)
    lines = [
        "## Sandbox: process tier per call",
        "",
        "| call | p50 ms | p95 ms | n | CPU ms per call | target |",
        "|---|---|---|---|---|---|",
        row("process tier, warm, paced 20 ms apart", paced, paced_cpu, "≤ 10 ms p50"),
        row("process tier, warm, back to back", b2b, b2b_cpu, "≤ 10 ms p50"),
        row("process tier, warm, one host call (now_ms), paced", host, host_cpu, ""),
        row("… without the spare worker, paced", paced_ns, paced_ns_cpu, ""),
        row("… without the spare worker, back to back", b2b_ns, b2b_ns_cpu, ""),
        row("process tier, cold (new sandbox: zygote start + probe + call)", cold, None, ""),
        row("inprocess tier (no isolation)", inproc, None, ""),
        row("plain Python call", plain_ms, None, ""),
        "",
        "Warm: a fresh confined worker per call (fork from the zygote, IPC and mount "
        "namespaces, scratch tmpfs, rlimits, uid switch, Landlock, seccomp, run, exit); "
        "with the spare, the zygote forks and confines the next call's worker while the "
        "current call runs. CPU ms per call: this process plus the zygote and the workers "
        "it reaped (/proc utime+stime), the work a call costs the machine whoever waits for "
        f"it. Load average (2 shared cores): {load_start:.1f} at the start, "
        f"{load_end:.1f} after the warm calls.",
        "",
        "Command: `python benchmarks/bench_sandbox_process.py`",
    ]
    return write_section("sandbox_process", "\n".join(lines))


if __name__ == "__main__":
    if "--against" in sys.argv:
        text = main() + "\n\n" + against(sys.argv[sys.argv.index("--against") + 1])
        print(write_section("sandbox_process", text))
    else:
        print(main())
