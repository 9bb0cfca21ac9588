"""A bare MCP server on the official SDK, for benchmarks/bench_mcp.py: the SDK's low-level
`Server` with one tool that does nothing, over stdio. What a `tools/call` costs here is the
SDK's floor (JSON-RPC parsing, pydantic models, dispatch, the transport), which every server
built on the SDK pays before doing any work of its own.

    python benchmarks/_mcp_bare_server.py sdk    # the SDK's stdio_server() (a thread per line)
    python benchmarks/_mcp_bare_server.py loop   # served as symbiont serves: its stdio
                                                 # transport (the pipes read and written on
                                                 # the event loop, messages handed to the SDK
                                                 # directly), no idle OpenTelemetry middleware

And, no MCP at all, `direct TIER`: for each line on stdin, one `Library.run` of the benchmark's
capability (store from $SYMBIONT_HOME), its duration in ms printed back: a `Library.run`
timed inside a process that sleeps between calls, as the server does (on a loaded machine
the scheduler treats it differently from the busy benchmark process).
"""

from __future__ import annotations

import sys
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel.server import Server
from mcp.server.stdio import stdio_server

TOOL = "noop"


async def _list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
    return types.ListToolsResult(tools=[types.Tool(name=TOOL, input_schema={"type": "object"})])


async def _call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text="{}")])


async def _serve(transport: str) -> None:
    server: Server[Any] = Server("bare", on_list_tools=_list_tools, on_call_tool=_call_tool)
    options = server.create_initialization_options()
    if transport == "loop":
        from symbiont.mcp.server import _drop_idle_tracing, _loop_pipes

        _drop_idle_tracing(server)
        wire = _loop_pipes()
        if wire is None:
            raise SystemExit("stdin and stdout must be pipes")
        async with wire as (read, write):
            await server.run(read, write, options)
        return
    async with stdio_server() as (read, write):
        await server.run(read, write, options)


def _direct(tier: str) -> None:
    import os
    import time
    from pathlib import Path

    from symbiont.library import Library

    home = Path(os.environ["SYMBIONT_HOME"])
    capability, value = sys.argv[3], sys.argv[4]
    with Library(home / "symbiont.db", data_root=home / "data", tier=tier) as lib:
        for _ in sys.stdin:
            started = time.perf_counter()
            run = lib.run(capability, value)
            elapsed = (time.perf_counter() - started) * 1000
            print(f"{elapsed:.4f}" if run.ok else f"error {run.error}", flush=True)


if __name__ == "__main__":
    sys.setswitchinterval(0.0005)  # as `symbiont mcp` sets it
    mode = sys.argv[1] if len(sys.argv) > 1 else "sdk"
    if mode == "direct":
        _direct(sys.argv[2])
    else:
        anyio.run(_serve, mode)
