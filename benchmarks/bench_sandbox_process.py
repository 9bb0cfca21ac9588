"""Per-call cost of the process tier (cold and warm), the inprocess tier and a plain call.

Target: process tier ≤ 10 ms p50 per warm call (a fresh confined worker every call: fork from
the zygote, rlimits, Landlock, seccomp, run, JSON result, reap). Cold = a new ProcessSandbox's
first call, which also starts and probes the zygote. Run: python benchmarks/bench_sandbox_process.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _report import percentile, write_section

from symbiont.sandbox.base import Limits, Permissions
from symbiont.sandbox.inprocess import InProcessSandbox
from symbiont.sandbox.process import ProcessSandbox

SOURCE = "def main(a, b):\n    return a + b\n"
HOST_SOURCE = "from symbiont.host import now_ms\n\ndef main():\n    return now_ms() > 0\n"


def plain(a: int, b: int) -> int:
    return a + b


def timed(fn, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def row(name: str, ms: list[float], target: str) -> str:
    return (
        f"| {name} | {percentile(ms, 50):.4f} | {percentile(ms, 95):.4f} | {len(ms)} | {target} |"
    )


def main() -> str:
    perms, limits = Permissions(), Limits()
    cold: list[float] = []
    for _ in range(5):
        t = time.perf_counter()
        sb = ProcessSandbox()
        assert sb.run(SOURCE, "main", '{"a": 1, "b": 2}', perms, limits).output == 3
        cold.append((time.perf_counter() - t) * 1000)
        sb.close()
    with ProcessSandbox() as sb:
        for _ in range(20):  # warm-up
            sb.run(SOURCE, "main", '{"a": 1, "b": 2}', perms, limits)
        warm = timed(lambda: sb.run(SOURCE, "main", '{"a": 1, "b": 2}', perms, limits), 300)
        host = timed(lambda: sb.run(HOST_SOURCE, "main", "{}", perms, limits), 100)
    ip = InProcessSandbox()
    for _ in range(50):
        ip.run(SOURCE, "main", '{"a": 1, "b": 2}', perms, limits)
    inproc = timed(lambda: ip.run(SOURCE, "main", '{"a": 1, "b": 2}', perms, limits), 1000)
    plain_ms = timed(lambda: plain(1, 2), 10000)
    lines = [
        "## Sandbox: process tier per call",
        "",
        "| call | p50 ms | p95 ms | n | target |",
        "|---|---|---|---|---|",
        row("process tier, warm (fresh confined worker per call)", warm, "≤ 10 ms p50"),
        row("process tier, warm, one host call (now_ms)", host, ""),
        row("process tier, cold (new sandbox: zygote start + probe + call)", cold, ""),
        row("inprocess tier (no isolation)", inproc, ""),
        row("plain Python call", plain_ms, ""),
        "",
        "Command: `python benchmarks/bench_sandbox_process.py`",
    ]
    return write_section("sandbox_process", "\n".join(lines))


if __name__ == "__main__":
    print(main())
