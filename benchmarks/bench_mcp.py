"""MCP `run_capability` round trip over stdio vs a direct `Library.run`, same capability, tier
and store, with the SDK's own floor measured in the same run.

Target (issue 13): the MCP round trip p50 within 2 ms of `Library.run` p50. The server is the
real `symbiont mcp` subprocess, the client the `mcp` SDK's `ClientSession` (what an agent
sees: its JSON-RPC encoding and pydantic validation are in the figure); the capability is the
HR example `get_salary_details` (reads the employee JSON file through a host function).

Part of any round trip is not symbiont's: the SDK's server and client machinery and the
pipes between two processes. Two bare SDK servers (benchmarks/_mcp_bare_server.py: the SDK's
low-level `Server`, one tool that does nothing) run next to symbiont's, one with the SDK's
defaults (its stdio transport, its OpenTelemetry middleware) and one served as symbiont serves
(its stdio transport, no idle tracing middleware), and every round of the loop calls each of
them once, so all rows see the same load:

    symbiont's own cost = (MCP run_capability − Library.run) − (bare no-op tool, served alike)

On a loaded machine the scheduler treats a process that sleeps between calls (the server)
differently from one that keeps running (this one): the same `Library.run` was measured both
faster and slower in the other process, by several ms. A second direct row times
`Library.run` inside a helper process that also sleeps between calls (no MCP, no transport in
the timing), and the split is given against both. The CPU table is the split the load moves
least.

CPU time per call is taken over the same interleaved rounds (load moves wall times, much less
CPU time), so every process sees the same load: each server process's (from /proc, all its
threads, the wasm tier's background refills included) beyond the `Library.run` it does, the
bare servers', and the client's (its thread, around each call).

When valgrind is installed (or with `--instructions`; `--no-instructions` skips it), the
instructions each server process executes per call are counted too, by callgrind (switched on
around 40 calls after a warm-up; not for the wasm tier): the load does not move them, so
they compare versions of the server, and the hot path (symbiont.mcp.hotpath) with the SDK
path (`symbiont mcp --no-hot-path`), which the timed rows also show side by side.

Run: python benchmarks/bench_mcp.py [--tier wasm process] [-n 300] [--no-instructions]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, cast

import anyio

from mcp import ClientSession, StdioServerParameters, stdio_client
from symbiont.library import Library

sys.path.insert(0, str(Path(__file__).parent))
from _report import percentile, write_section

HERE = Path(__file__).resolve().parent
HR = HERE.parent / "examples" / "hr"
SYMBIONT = str(Path(sys.executable).parent / "symbiont")
BARE = str(HERE / "_mcp_bare_server.py")
CAPABILITY, INPUT = "get_salary_details", {"employee_id": "E007"}
PAUSE_S = 0.015  # before each timed call
RUN_ARGS = {"id": CAPABILITY, "input": INPUT}
ROWS = (
    ("direct", "Library.run (direct)"),
    ("direct_woken", "Library.run timed in a process woken for each call, as the server is"),
    ("mcp", "MCP run_capability over stdio (hot path, the default)"),
    ("mcp_sdk", "MCP run_capability over stdio, SDK path (--no-hot-path)"),
    ("mcp_tool", "MCP per-capability tool over stdio (--expose all, hot path)"),
    (
        "mcp_raw",
        "MCP run_capability over stdio, hot path, a minimal JSON-RPC client (no SDK client)",
    ),
    ("ping", "MCP ping, symbiont server (protocol and transport only)"),
    ("bare_loop", "bare SDK server, no-op tool, served as symbiont serves"),
    ("bare_sdk", "bare SDK server, no-op tool, the SDK's defaults (stdio_server(), tracing)"),
)


def _seed(home: Path, tier: str) -> Library:
    lib = Library(home / "symbiont.db", data_root=home / "data", tier=tier, typecheck=False)
    report = lib.import_dir(HR)
    assert not report.failed, report.failed
    return lib


def _cpu_s(pid: int) -> float:
    """User + system CPU time of one process (its threads, not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _child_pid(argv: list[str]) -> int:
    """The pid of this process's child whose command line ends with `argv`."""
    tail = "".join(f"{a}\0" for a in argv)
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            cmdline = (entry / "cmdline").read_bytes().decode()
        except OSError:
            continue
        if ppid == me and cmdline.endswith(tail):
            return int(entry.name)
    raise RuntimeError(f"no child process running ... {' '.join(argv)}")


async def _open(stack: AsyncExitStack, home: Path, argv: list[str], errlog: Any) -> ClientSession:
    params = StdioServerParameters(
        command=argv[0], args=argv[1:], env={**os.environ, "SYMBIONT_HOME": str(home)}
    )
    read, write = await stack.enter_async_context(stdio_client(params, errlog=errlog))
    session = await stack.enter_async_context(ClientSession(read, write))
    await session.initialize()
    await session.list_tools()
    return session


class _WokenDirect:
    """`_mcp_bare_server.py direct`: a Library.run per line, its own timing printed back."""

    def __init__(self, process: Any) -> None:
        from anyio.streams.buffered import BufferedByteReceiveStream

        self._process = process
        self._lines = BufferedByteReceiveStream(process.stdout)

    async def run(self) -> float:
        await self._process.stdin.send(b"run\n")
        line = (await self._lines.receive_until(b"\n", 10_000)).decode()
        if line.startswith("error"):
            raise RuntimeError(line)
        return float(line)


class _LineClient:
    """A minimal MCP client: JSON-RPC lines written to the server's stdin, lines read from its
    stdout until the answer (notifications skipped). It shows what the server and the pipes
    add to a call without the SDK ClientSession's own CPU per call (an agent that is not the
    Python SDK — a desktop client, a Node or Rust agent — pays its own client's instead)."""

    def __init__(self, process: Any) -> None:
        from anyio.streams.buffered import BufferedByteReceiveStream

        self._process = process
        self._lines = BufferedByteReceiveStream(process.stdout)
        self._id = 0

    async def _send(self, message: dict[str, Any]) -> None:
        await self._process.stdin.send(json.dumps(message).encode() + b"\n")

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._id += 1
        await self._send({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        while True:
            message = json.loads(await self._lines.receive_until(b"\n", 1 << 24))
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    async def open(self) -> None:
        info = {"name": "bench-mcp-line-client", "version": "0"}
        await self.request(
            "initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": info}
        )
        await self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})


async def _timed(into: list[float], call: Callable[[], Awaitable[Any]]) -> Any:
    t = time.perf_counter()
    result = await call()
    into.append((time.perf_counter() - t) * 1000)
    return result


async def _measure(home: Path, lib: Library, tier: str, n: int) -> dict[str, Any]:
    symbiont_argv = [SYMBIONT, "mcp", "--tier", tier, "--poll", "0", "--expose", "all"]
    # A second server for the per-capability tool row, so that each server runs one
    # capability per round as the direct rows do: the wasm tier instantiates the next
    # instance in the background after a call, and a second call right after the first
    # would wait for it. (`--top-k` does nothing with `--expose all`: it tells them apart.)
    tool_argv = [*symbiont_argv, "--top-k", "9"]
    # the same server with every message through the SDK's server (symbiont.mcp.hotpath off)
    sdk_argv = [*symbiont_argv, "--no-hot-path"]
    # the default server driven by `_LineClient` (`--top-k` again only tells it apart)
    raw_argv = [*symbiont_argv, "--top-k", "8"]
    times: dict[str, list[float]] = {key: [] for key, _ in ROWS}
    cpu: dict[str, float] = {}
    with (home / "server.err").open("w") as errlog:
        async with AsyncExitStack() as stack:
            mcp = await _open(stack, home, symbiont_argv, errlog)
            mcp_tools = await _open(stack, home, tool_argv, errlog)
            mcp_sdk = await _open(stack, home, sdk_argv, errlog)
            bare_loop = await _open(stack, home, [sys.executable, BARE, "loop"], errlog)
            bare_sdk = await _open(stack, home, [sys.executable, BARE, "sdk"], errlog)
            helper = await stack.enter_async_context(
                await anyio.open_process(
                    [sys.executable, BARE, "direct", tier, CAPABILITY, json.dumps(INPUT)],
                    env={**os.environ, "SYMBIONT_HOME": str(home)},
                    stderr=errlog,
                )
            )
            woken = _WokenDirect(helper)
            raw_process = await stack.enter_async_context(
                await anyio.open_process(
                    raw_argv, env={**os.environ, "SYMBIONT_HOME": str(home)}, stderr=errlog
                )
            )
            raw = _LineClient(raw_process)
            await raw.open()
            calls: dict[str, Callable[[], Awaitable[Any]]] = {
                "mcp": lambda: mcp.call_tool("run_capability", RUN_ARGS),
                "mcp_sdk": lambda: mcp_sdk.call_tool("run_capability", RUN_ARGS),
                "mcp_tool": lambda: mcp_tools.call_tool(CAPABILITY, INPUT),
                "mcp_raw": lambda: raw.request(
                    "tools/call", {"name": "run_capability", "arguments": RUN_ARGS}
                ),
                # on the tool server, so the run_capability server's CPU is its calls' alone
                "ping": mcp_tools.send_ping,
                "bare_loop": lambda: bare_loop.call_tool("noop", {}),
                "bare_sdk": lambda: bare_sdk.call_tool("noop", {}),
            }
            for _ in range(20):  # warm-up: the sandbox, the code paths, the store pages
                lib.run(CAPABILITY, INPUT)
                await woken.run()
                for call in calls.values():
                    await call()
            # Each process's CPU time over all the rounds (so every row sees the same load;
            # the wasm tier's background refills are in it); the client's (this thread's)
            # around each MCP call; this process's other CPU time is its own Library.run's.
            pids = {
                "direct_woken": helper.pid,
                "mcp": _child_pid(symbiont_argv[-3:]),
                "mcp_sdk": _child_pid(sdk_argv[-3:]),
                "mcp_raw": _child_pid(raw_argv[-2:]),
                "bare_loop": _child_pid([BARE, "loop"]),
                "bare_sdk": _child_pid([BARE, "sdk"]),
            }
            server_cpu = {key: _cpu_s(pid) for key, pid in pids.items()}
            client_cpu = {key: 0.0 for key in times if key != "direct"}
            own_start = time.process_time()
            order = ["direct", "direct_woken", *calls]
            for i in range(n):  # one round: every row once, each round starting one further
                for key in order[i % len(order) :] + order[: i % len(order)]:
                    # A pause before each call: what a sandbox does in the background after
                    # a call (the wasm tier readies its next instance at nice 10) settles
                    # before the next row, whichever process it is in, as it would between
                    # the calls of a client that reads the results.
                    await anyio.sleep(PAUSE_S)
                    if key == "direct":
                        t = time.perf_counter()
                        result = lib.run(CAPABILITY, INPUT)
                        times["direct"].append((time.perf_counter() - t) * 1000)
                        assert result.ok, result.error
                        continue
                    c = time.thread_time()
                    if key == "direct_woken":
                        times["direct_woken"].append(await woken.run())
                    else:
                        reply = await _timed(times[key], calls[key])
                        failed = (
                            reply.get("isError")
                            if isinstance(reply, dict)
                            else getattr(reply, "is_error", False)
                        )
                        assert not failed, reply
                    client_cpu[key] += time.thread_time() - c
            await anyio.sleep(0.5)  # the wasm tier's refill after the last call
            own = time.process_time() - own_start
            cpu["direct"] = (own - sum(client_cpu.values())) / n * 1000
            for key, pid in pids.items():
                cpu[f"{key}_server"] = (_cpu_s(pid) - server_cpu[key]) / n * 1000
            for key, spent in client_cpu.items():
                cpu[f"{key}_client"] = spent / n * 1000
    return {"times": times, "cpu": cpu}


async def _handler_only(lib: Library, n: int) -> list[float]:
    """The server's own work per call (argument check, worker-thread hand-off, result),
    without a transport or the SDK: its tools/call handler called in this process, minus a
    Library.run timed just before it."""
    import types as pytypes

    import mcp_types as types

    from symbiont.mcp.server import CapabilityServer, ServerOptions

    server = CapabilityServer(ServerOptions(poll_s=0), library=lib)
    server._runs_on_loop = True  # as serve_stdio sets it
    ctx: Any = pytypes.SimpleNamespace(session=object(), protocol_version="2025-11-25")
    params = types.CallToolRequestParams(name="run_capability", arguments=RUN_ARGS)
    try:
        for _ in range(10):
            await server._call_tool(ctx, params)
        diffs = []
        for _ in range(n):
            # a pause before each: the sandbox readies its next instance or worker in the
            # background after a call, as it has time to between the calls of a client
            await anyio.sleep(0.02)
            t = time.perf_counter()
            lib.run(CAPABILITY, INPUT)
            direct = time.perf_counter() - t
            await anyio.sleep(0.02)
            t = time.perf_counter()
            await server._call_tool(ctx, params)
            diffs.append((time.perf_counter() - t - direct) * 1000)
    finally:
        server.close()
    return diffs


async def _server_instructions(home: Path, argv: list[str], tool: str, args: Any, n: int) -> int:
    """Instructions the server process `argv` executes per `tools/call` of `tool`."""
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        out = f"{tmp}/cg.out"
        valgrind = ["--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
        params = StdioServerParameters(
            command="valgrind",
            args=[*valgrind, *argv],
            env={**os.environ, "SYMBIONT_HOME": str(home)},
        )
        with (home / "server.err").open("a") as errlog:
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write, read_timeout_seconds=None) as session,
            ):
                await session.initialize()  # slow under valgrind: no timeout
                for _ in range(10):
                    await session.call_tool(tool, args)
                pid = _child_pid(argv[-2:])
                toggle = ["callgrind_control", "-i"]
                subprocess.run([*toggle, "on", str(pid)], capture_output=True, check=True)
                for _ in range(n):
                    await session.call_tool(tool, args)
                subprocess.run([*toggle, "off", str(pid)], capture_output=True, check=True)
        return _callgrind_total(out) // n


def _callgrind_total(path: str) -> int:
    for _ in range(100):  # valgrind writes the file as the process exits
        if Path(path).is_file():
            for line in Path(path).read_text().splitlines():
                if line.startswith("totals:"):
                    return int(line.split()[1])
        time.sleep(0.1)
    raise RuntimeError(f"callgrind wrote no totals to {path}")


def _helper_instructions(home: Path, tier: str, n: int) -> int:
    """Instructions per Library.run in the helper process (`_mcp_bare_server.py direct`)."""
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        out = f"{tmp}/cg.out"
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
        cmd += [sys.executable, BARE, "direct", tier, CAPABILITY, json.dumps(INPUT)]
        env = {**os.environ, "SYMBIONT_HOME": str(home)}
        with subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
        ) as proc:
            assert proc.stdin is not None and proc.stdout is not None

            def runs(count: int) -> None:
                for _ in range(count):
                    proc.stdin.write(b"run\n")
                    proc.stdin.flush()
                    proc.stdout.readline()

            runs(10)
            toggle = ["callgrind_control", "-i"]
            subprocess.run([*toggle, "on", str(proc.pid)], capture_output=True, check=True)
            runs(n)
            subprocess.run([*toggle, "off", str(proc.pid)], capture_output=True, check=True)
            proc.stdin.close()
        return _callgrind_total(out) // n


def _instruction_section(tier: str, n: int = 40) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="bench-mcp-cg-") as tmp:
        home = Path(tmp)
        _seed(home, tier).close()
        server = [sys.executable, SYMBIONT, "mcp", "--tier", tier, "--poll", "0", "--expose", "all"]
        # Library.run grows a little with the runs the store has recorded: the helper is
        # counted before and after the servers, and the mean taken.
        before = _helper_instructions(home, tier, n)
        counts = {
            "run": anyio.run(_server_instructions, home, server, "run_capability", RUN_ARGS, n),
            "run_sdk": anyio.run(
                _server_instructions,
                home,
                [*server, "--no-hot-path"],
                "run_capability",
                RUN_ARGS,
                n,
            ),
            "tool": anyio.run(_server_instructions, home, server, CAPABILITY, INPUT, n),
            "bare": anyio.run(
                _server_instructions, home, [sys.executable, BARE, "loop"], "noop", {}, n
            ),
        }
        counts["direct"] = (before + _helper_instructions(home, tier, n)) // 2
    return [
        f"Instructions per call in the server process ({tier} tier; valgrind callgrind, "
        f"{n} calls; the load does not move them):",
        "",
        "| process, call | instructions | beyond Library.run |",
        "|---|---:|---:|",
        f"| helper process, Library.run | {counts['direct']:,} | |",
        f"| symbiont mcp, run_capability, hot path | {counts['run']:,} | "
        f"{counts['run'] - counts['direct']:,} |",
        f"| symbiont mcp, run_capability, SDK path (--no-hot-path) | {counts['run_sdk']:,} | "
        f"{counts['run_sdk'] - counts['direct']:,} |",
        f"| symbiont mcp, per-capability tool, hot path | {counts['tool']:,} | "
        f"{counts['tool'] - counts['direct']:,} |",
        f"| bare SDK server, no-op tool (served as symbiont serves) | {counts['bare']:,} | |",
        "",
        f"The hot path saves {counts['run_sdk'] - counts['run']:,} instructions per "
        "run_capability in the server. (The helper's Library.run is counted before and after "
        "the servers and the mean taken: it grows with the runs the store records, so ±0.1 M "
        "in the 'beyond' column is within the method's reach; the difference between the two "
        "paths is not, they run the same calls on the same store one after the other.)",
        "",
    ]


# -- where a tools/call's instructions go in the server, stage by stage (--stages) ---------------
_STAGE_RUN = {
    "capability_id": CAPABILITY,
    "version": 1,
    "output": {"employee_id": "E007", "name": "Grace Hopper", "base": 98000, "bonus": 5000},
    "duration_s": 0.004321,
    "tier": "process",
}
_STAGE_LINE = (
    json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {"name": "run_capability", "arguments": RUN_ARGS},
        }
    ).encode()
    + b"\n"
)
STAGES = {
    "parse": "the SDK's parse of the line into its message union (symbiont's stdio reader)",
    "params": "the runner's checks of the params (surface, CallToolRequestParams)",
    "handler": "symbiont's handler around Library.run (argument check, result; the run stubbed)",
    "respond": "the result checked and re-dumped by the surface, the response model dumped",
    "hot": "the hot path's own parse and response (HotPath.take, wire_result, response_bytes)",
}


def _stage_child(k: int) -> None:
    """Under callgrind: for each stage name read on stdin, run it `k` times, say `done`."""
    import asyncio

    import mcp_types as types
    from mcp.shared.message import SessionMessage
    from mcp_types import methods

    from symbiont.mcp.hotpath import HotPath, response_bytes, wire_result
    from symbiont.mcp.server import CapabilityServer, ServerOptions, ok_result

    class NoLibrary:  # the handler's run is stubbed: Library.run is measured on its own
        def list(self) -> list[Any]:
            return []

    class Ready:
        def hot_path_ready(self) -> bool:
            return True

        def capability_tool_names(self) -> tuple[str, ...]:
            return ()

    server = CapabilityServer(ServerOptions(poll_s=0), library=cast(Any, NoLibrary()))
    server._runs_on_loop = True
    server._run_sync = lambda cap_id, value: _STAGE_RUN  # type: ignore[method-assign]
    params = json.loads(_STAGE_LINE)["params"]
    result = ok_result(_STAGE_RUN)
    hot = HotPath(cast(Any, Ready()), cast(Any, None))

    async def handler() -> None:
        for _ in range(k):
            await server.call_tool("run_capability", dict(RUN_ARGS))

    def run(stage: str) -> None:
        for _ in range(k):
            if stage == "parse":
                SessionMessage(
                    types.jsonrpc_message_adapter.validate_json(_STAGE_LINE, by_name=False)
                )
            elif stage == "params":
                methods.validate_client_request("tools/call", "2025-11-25", params)
                types.CallToolRequestParams.model_validate(params, by_name=False)
            elif stage == "respond":
                wire = methods.serialize_server_result("tools/call", "2025-11-25", dict(result))
                response = types.JSONRPCResponse(jsonrpc="2.0", id=7, result=wire)
                response.model_dump_json(by_alias=True, exclude_unset=True).encode()
            elif stage == "hot":
                call = hot.take(_STAGE_LINE)
                assert call is not None
                response_bytes(call[0], wire_result(result))
        if stage == "handler":
            asyncio.run(handler())

    for line in sys.stdin:
        run(line.strip())
        print("done", flush=True)
    server.close()


def _stage_section(k: int = 200) -> list[str]:
    """Instructions per call of each stage, in one process under callgrind (switched on for
    each stage's `k` repetitions, after a warm-up of each)."""
    import subprocess

    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = f"{tmp}/cg.out"
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
        cmd += [sys.executable, __file__, "--stage-child", str(k)]
        with subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        ) as proc:
            assert proc.stdin is not None and proc.stdout is not None

            def stage(name: str) -> None:
                proc.stdin.write(name + "\n")
                proc.stdin.flush()
                assert proc.stdout.readline().strip() == "done", name

            ctl = ["callgrind_control"]
            for name in STAGES:
                stage(name)  # warm-up
                subprocess.run([*ctl, "-i", "on", str(proc.pid)], capture_output=True, check=True)
                stage(name)
                subprocess.run([*ctl, "-i", "off", str(proc.pid)], capture_output=True, check=True)
                subprocess.run([*ctl, "-d", str(proc.pid)], capture_output=True, check=True)
                dumps = sorted(Path(tmp).glob("cg.out.*"), key=lambda p: int(p.suffix[1:]))
                counts[name] = _callgrind_total(str(dumps[-1])) // k
            proc.stdin.close()
    lines = [
        f"Where a run_capability's instructions go in the server, stage by stage (callgrind, "
        f"in one process, {k} repetitions of each after a warm-up; the SDK's dispatcher, "
        "relay task and per-request session are the rest of the SDK path's total above):",
        "",
        "| stage | instructions per call |",
        "|---|---:|",
    ]
    lines += [f"| {what} | {counts[name]:,} |" for name, what in STAGES.items()]
    return [*lines, ""]


def _row(name: str, ms: list[float], direct_p50: float | None, target: str = "") -> str:
    p50 = percentile(ms, 50)
    over = f"{p50 - direct_p50:+.2f}" if direct_p50 is not None else ""
    return f"| {name} | {p50:.2f} | {percentile(ms, 95):.2f} | {over} | {len(ms)} | {target} |"


def _paired(a: list[float], b: list[float]) -> float:
    return statistics.median(x - y for x, y in zip(a, b, strict=True))


def _tier_section(tier: str, n: int) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="bench-mcp-") as tmp:
        home = Path(tmp)
        lib = _seed(home, tier)
        try:
            load = os.getloadavg()
            measured = anyio.run(_measure, home, lib, tier, n)
            handler = anyio.run(_handler_only, lib, n)
            load_end = os.getloadavg()
            tier = lib.tier  # as it ran (wasm falls back to process when unavailable)
        finally:
            lib.close()
    times, cpu = measured["times"], measured["cpu"]
    direct = percentile(times["direct"], 50)
    lines = [
        f"### {tier} tier",
        "",
        "| call | p50 ms | p95 ms | p50 over direct, ms | n | target |",
        "|---|---|---|---|---|---|",
    ]
    for key, name in ROWS:
        over = direct if key in ("mcp", "mcp_sdk", "mcp_tool", "mcp_raw", "direct_woken") else None
        lines.append(_row(name, times[key], over, "≤ +2 ms" if key in ("mcp", "mcp_raw") else ""))
    over_direct = _paired(times["mcp"], times["direct_woken"])
    over_direct_sdk = _paired(times["mcp_sdk"], times["direct_woken"])
    floor = statistics.median(times["bare_loop"])
    beyond = cpu["mcp_server"] - cpu["direct_woken_server"]
    beyond_sdk = cpu["mcp_sdk_server"] - cpu["direct_woken_server"]
    lines += [
        "",
        f"**Split** (medians of the round-by-round differences): MCP run_capability − "
        f"Library.run, hot path: {_paired(times['mcp'], times['direct']):.2f} ms against this "
        f"process's own Library.run, {over_direct:.2f} ms against the one timed in a woken "
        f"process; SDK path: {_paired(times['mcp_sdk'], times['direct']):.2f} ms and "
        f"{over_direct_sdk:.2f} ms. Hot path − SDK path, call by call: "
        f"{_paired(times['mcp'], times['mcp_sdk']):+.2f} ms. For scale, the SDK's floor (a bare "
        f"SDK server's no-op tool, served alike, round trip) is {floor:.2f} ms, and the SDK "
        f"client's own CPU per call is in the table below: the hot path takes the server's "
        f"share of the floor away, not the client's. The SDK's defaults (its stdio transport, "
        f"its tracing middleware) would cost "
        f"{_paired(times['bare_sdk'], times['bare_loop']):+.2f} ms more per call than the bare "
        f"server served alike. The server's tools/call handler alone (in-process, no SDK, no "
        f"transport, minus Library.run): {statistics.median(handler):.2f} ms.",
        "",
        "| CPU time per call, ms | server | client (SDK ClientSession, or the minimal one) |",
        "|---|---|---|",
        f"| Library.run (direct, in the client) | — | {cpu['direct']:.2f} |",
        f"| Library.run in the woken helper process | {cpu['direct_woken_server']:.2f} | — |",
        f"| symbiont mcp, run_capability, hot path | {cpu['mcp_server']:.2f} "
        f"(beyond the helper's Library.run: {beyond:.2f}) | {cpu['mcp_client']:.2f} |",
        f"| symbiont mcp, run_capability, SDK path | {cpu['mcp_sdk_server']:.2f} "
        f"(beyond the helper's Library.run: {beyond_sdk:.2f}) | {cpu['mcp_sdk_client']:.2f} |",
        f"| symbiont mcp, run_capability, hot path, minimal client | {cpu['mcp_raw_server']:.2f} "
        f"(beyond the helper's Library.run: {cpu['mcp_raw_server'] - cpu['direct_woken_server']:.2f}) "
        f"| {cpu['mcp_raw_client']:.2f} |",
        f"| bare SDK server, no-op tool, served as symbiont serves | {cpu['bare_loop_server']:.2f} | "
        f"{cpu['bare_loop_client']:.2f} |",
        f"| bare SDK server, no-op tool, SDK's defaults | {cpu['bare_sdk_server']:.2f} | "
        f"{cpu['bare_sdk_client']:.2f} |",
        "",
        f"Load average (1 min) {load[0]:.1f} at the start, {load_end[0]:.1f} at the end, on "
        f"{os.cpu_count()} cores.",
        "",
    ]
    return lines


def main() -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--tier", nargs="+", default=["wasm", "process"], choices=("wasm", "process", "inprocess")
    )
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument(
        "--instructions",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also count instructions with callgrind (default: when valgrind is installed)",
    )
    parser.add_argument(
        "--stages", action="store_true", help="also count instructions stage by stage"
    )
    parser.add_argument("--stage-child", type=int, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.stage_child is not None:
        _stage_child(opts.stage_child)
        return ""
    if opts.instructions is None:  # `make bench` runs every script without arguments
        opts.instructions = all(shutil.which(t) for t in ("valgrind", "callgrind_control"))
    sys.setswitchinterval(0.0005)  # as `symbiont mcp` does
    lines = ["## MCP: run_capability round trip over stdio vs Library.run", ""]
    for tier in opts.tier:
        lines += _tier_section(tier, opts.n)
        if opts.instructions and tier != "wasm":  # wasmtime's machine code under valgrind: hours
            lines += _instruction_section(tier)
    if opts.stages:
        lines += _stage_section()
    lines += [
        f"Capability `{CAPABILITY}` on the HR example data; server `symbiont mcp` as a "
        "subprocess, client the `mcp` SDK's ClientSession; each round calls every row once, "
        f"with a {PAUSE_S * 1000:.0f} ms pause before each call, each round starting one row "
        "further, so all rows see the same load and none always follows the same other. A "
        "round trip wakes two "
        "processes (for the wasm tier also the sandbox's call thread): on a loaded machine each "
        "wake-up waits for a free core, which the ping and bare rows show.",
        "",
        f"Command: `python benchmarks/bench_mcp.py --tier {' '.join(opts.tier)} -n {opts.n}"
        + ("" if opts.instructions else " --no-instructions")
        + (" --stages`" if opts.stages else "`"),
    ]
    return write_section("mcp", "\n".join(lines))


if __name__ == "__main__":
    text = main()
    if text:
        print(text)
