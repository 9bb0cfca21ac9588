"""MCP `run_capability` round trip over stdio vs a direct `Library.run`, same capability, tier
and store.

Target (DESIGN.md): the MCP round trip p50 within 2 ms of `Library.run` p50. The server is the
real `symbiont mcp` subprocess, the client the `mcp` SDK's `ClientSession`; the capability is
the HR example `get_salary_details` (reads the employee JSON file through a host function).
Direct and MCP calls alternate, so both see the same machine load. The MCP figure includes
the client's own work (JSON-RPC encoding, pydantic validation), as an agent would see it.

Run: python benchmarks/bench_mcp.py [--tier wasm process] [-n 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from mcp import ClientSession, StdioServerParameters, stdio_client
from symbiont.library import Library

sys.path.insert(0, str(Path(__file__).parent))
from _report import percentile, write_section

HR = Path(__file__).resolve().parents[1] / "examples" / "hr"
SYMBIONT = str(Path(sys.executable).parent / "symbiont")
CAPABILITY, INPUT = "get_salary_details", {"employee_id": "E007"}


def _seed(home: Path, tier: str) -> Library:
    lib = Library(home / "symbiont.db", data_root=home / "data", tier=tier, typecheck=False)
    report = lib.import_dir(HR)
    assert not report.failed, report.failed
    return lib


async def _measure(home: Path, lib: Library, tier: str, n: int) -> dict[str, list[float]]:
    params = StdioServerParameters(
        command=SYMBIONT,
        args=["mcp", "--tier", tier, "--poll", "0", "--expose", "all"],
        env={"SYMBIONT_HOME": str(home)},
    )
    times: dict[str, list[float]] = {"direct": [], "mcp": [], "mcp_tool": [], "ping": []}
    with (home / "server.err").open("w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            await session.list_tools()
            args = {"id": CAPABILITY, "input": INPUT}
            for _ in range(20):  # warm-up: the sandbox, the code paths, the store pages
                lib.run(CAPABILITY, INPUT)
                await session.call_tool("run_capability", args)
                await session.call_tool(CAPABILITY, INPUT)
            for _ in range(n):
                t = time.perf_counter()
                result = lib.run(CAPABILITY, INPUT)
                times["direct"].append((time.perf_counter() - t) * 1000)
                assert result.ok, result.error
                t = time.perf_counter()
                reply = await session.call_tool("run_capability", args)
                times["mcp"].append((time.perf_counter() - t) * 1000)
                assert not reply.is_error, reply.content
                t = time.perf_counter()
                reply = await session.call_tool(CAPABILITY, INPUT)
                times["mcp_tool"].append((time.perf_counter() - t) * 1000)
                assert not reply.is_error, reply.content
                t = time.perf_counter()
                await session.send_ping()
                times["ping"].append((time.perf_counter() - t) * 1000)
    return times


async def _handler_only(home: Path, lib: Library, tier: str, n: int) -> list[float]:
    """The server's own work per call (argument check, worker-thread hand-off, result JSON),
    without a transport: its tools/call handler called in this process, minus Library.run."""
    import types as pytypes

    import mcp_types as types

    from symbiont.mcp.server import CapabilityServer, ServerOptions

    server = CapabilityServer(ServerOptions(poll_s=0), library=lib)
    ctx: Any = pytypes.SimpleNamespace(session=object())
    params = types.CallToolRequestParams(
        name="run_capability", arguments={"id": CAPABILITY, "input": INPUT}
    )
    for _ in range(10):
        await server._call_tool(ctx, params)
    diffs = []
    for _ in range(n):
        t = time.perf_counter()
        lib.run(CAPABILITY, INPUT)
        direct = time.perf_counter() - t
        t = time.perf_counter()
        await server._call_tool(ctx, params)
        diffs.append((time.perf_counter() - t - direct) * 1000)
    return diffs


def row(name: str, ms: list[float], direct_p50: float, target: str = "") -> str:
    p50 = percentile(ms, 50)
    extra = f"+{p50 - direct_p50:.2f}" if ms is not None and name != "Library.run (direct)" else ""
    return f"| {name} | {p50:.2f} | {percentile(ms, 95):.2f} | {extra} | {len(ms)} | {target} |"


def _tier_section(tier: str, n: int) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="bench-mcp-") as tmp:
        home = Path(tmp)
        lib = _seed(home, tier)
        try:
            load = os.getloadavg()[0]
            times = anyio.run(_measure, home, lib, tier, n)
            handler = anyio.run(_handler_only, home, lib, tier, n)
            tier = lib.tier  # as it ran (wasm falls back to process when unavailable)
        finally:
            lib.close()
    direct = percentile(times["direct"], 50)
    overhead = [m - d for m, d in zip(times["mcp"], times["direct"], strict=True)]
    return [
        f"### {tier} tier",
        "",
        "| call | p50 ms | p95 ms | p50 over direct, ms | n | target |",
        "|---|---|---|---|---|---|",
        row("Library.run (direct)", times["direct"], direct),
        row("MCP run_capability over stdio", times["mcp"], direct, "≤ +2 ms"),
        row("MCP per-capability tool over stdio (--expose all)", times["mcp_tool"], direct),
        f"| MCP ping over stdio (protocol and transport only) | "
        f"{percentile(times['ping'], 50):.2f} | {percentile(times['ping'], 95):.2f} |  | "
        f"{len(times['ping'])} |  |",
        "",
        f"Median of the paired differences (MCP − direct, call by call): "
        f"{statistics.median(overhead):.2f} ms; the server's own handler work (the same call "
        f"in-process, no transport, minus Library.run): {statistics.median(handler):.2f} ms. "
        f"Load average (1 min) at the start: {load:.1f} on {os.cpu_count()} cores.",
        "",
    ]


def main() -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--tier", nargs="+", default=["wasm", "process"], choices=("wasm", "process", "inprocess")
    )
    parser.add_argument("-n", type=int, default=300)
    opts = parser.parse_args()
    sys.setswitchinterval(0.0005)  # as `symbiont mcp` does
    lines = ["## MCP: run_capability round trip over stdio vs Library.run", ""]
    for tier in opts.tier:
        lines += _tier_section(tier, opts.n)
    lines += [
        f"Capability `{CAPABILITY}` on the HR example data; server `symbiont mcp` as a "
        "subprocess, client the `mcp` SDK's ClientSession; direct and MCP calls alternate, so "
        "both see the same load. A round trip wakes two processes: on a loaded machine each "
        "wake-up waits for a free core, which the ping row shows.",
        "",
        f"Command: `python benchmarks/bench_mcp.py --tier {' '.join(opts.tier)} -n {opts.n}`",
    ]
    return write_section("mcp", "\n".join(lines))


if __name__ == "__main__":
    print(main())
