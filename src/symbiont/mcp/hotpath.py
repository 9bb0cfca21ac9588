"""Over stdio, answer the calls that run a capability without the SDK's server machinery.

Why: a `tools/call` that goes through the `mcp` SDK's server is parsed into its pydantic
message union, relayed through a task and a memory stream (the protocol-era replay), given
a task, a cancel scope and a per-request session and context by the dispatcher, validated
again as `CallToolRequestParams`, its result validated and re-dumped by the protocol
surface and wrapped in a response model before it is written. For a run, that is about
0.6 M instructions and a few task switches per call in the server, more than everything
symbiont does around `Library.run` (benchmarks/bench_mcp.py --instructions), and the
latency target (the MCP round trip within 2 ms of `Library.run`) has no room for it.

What it does: symbiont's own stdio reader (`server._WireRead`) shows each line to
`HotPath.take` first. A line is answered here only when all of this holds:

- it is a `tools/call` request, exactly `{"jsonrpc": "2.0", "id", "method", "params"}` with
  params exactly `{"name", "arguments"}` (a string and an object), an id that is a string or
  an integer in the int64 range, and no `_meta` — so no progress token, no 2026-07-28
  envelope, no trace context (it is parsed by pydantic-core's JSON parser, the one the
  SDK's message parsing uses, so both read a line alike; a line it refuses is the SDK's);
- the tool is `run_capability` or a capability's own tool (a name the server knows);
- the connection is a handshake-era one (2024-11-05 … 2025-11-25) whose `initialize` the
  SDK has accepted (read from the SDK's own connection object, captured by a pass-through
  middleware on the first message the SDK serves);
- the run can happen right now on the event loop's thread (`ServerOptions.runs_on_loop`,
  no library call queued or running), and no OpenTelemetry middleware is in place.

Then the call goes to the same handler the SDK path calls (`CapabilityServer._call`:
argument check, run, `isError` results, the list-changed notifications before the answer),
and the JSON-RPC response is written directly, in the bytes the SDK would write: the
result shaped as the protocol surface dumps a `CallToolResult` for these versions
(`content`, `isError`, `structuredContent`) and the envelope serialised by pydantic-core
like the SDK's response model (tests/mcp/test_mcp_hotpath.py compares the two paths byte
for byte). Anything else — a line that fails one check, initialize, lists, resources,
prompts, notifications, pings, the 2026-07-28 era, streamable HTTP — goes to the SDK as
before.

Cancellation: a hot-path call is answered before the next line is read, so a
`notifications/cancelled` for it is read after its response went out; the SDK's dispatcher
then finds no such request in flight and ignores it. The protocol allows exactly that
(a cancellation may arrive after the request finished, and the sender ignores the late
response). A run that has started is never interrupted on either path (see
`CapabilityServer._run_work`). A call that would have to wait for the worker thread,
where a cancellation could overtake it, is left to the SDK.

Switch: `ServerOptions.hot_path` (`symbiont mcp --no-hot-path`) turns it off, for
debugging and for the benchmark's comparison.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import pydantic_core
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR

if TYPE_CHECKING:
    from symbiont.mcp.server import CapabilityServer, ToolResult

log = logging.getLogger("symbiont.mcp")

RUN_TOOL_NAME = "run_capability"
_INT64 = 2**63
_MESSAGE_KEYS = frozenset({"jsonrpc", "id", "method", "params"})
_PARAMS_KEYS = frozenset({"name", "arguments"})


def wire_result(result: ToolResult) -> dict[str, Any]:
    """A tool result as the protocol surface dumps a `CallToolResult` for the handshake
    versions: the fields in its order, `resultType` (2026-07-28 only) left out."""
    wire: dict[str, Any] = {
        "content": [{"text": c["text"], "type": c["type"]} for c in result["content"]],
        "isError": result["isError"],
    }
    if result.get("structuredContent") is not None:
        wire["structuredContent"] = result["structuredContent"]
    return wire


def response_bytes(request_id: str | int, body: dict[str, Any], key: str = "result") -> bytes:
    """A JSON-RPC response line as the SDK's `JSONRPCResponse` / `JSONRPCError` models dump
    it (pydantic-core's JSON: compact, UTF-8, NaN and infinities as null)."""
    message = {"jsonrpc": "2.0", "id": request_id, key: body}
    return pydantic_core.to_json(message, inf_nan_mode="null") + b"\n"


class HotPath:
    """Takes the lines it can answer (see the module docstring) and answers them."""

    def __init__(self, server: CapabilityServer, write: Callable[[bytes], Awaitable[None]]):
        self._server = server
        self._write = write
        self.answered = 0  # calls answered here (tests, debugging)

    def take(self, line: bytes) -> tuple[str | int, str, dict[str, Any]] | None:
        """The (id, tool, arguments) of a call to answer here, or None: the SDK's."""
        if b'"tools/call"' not in line or not self._server.hot_path_ready():
            return None
        try:
            message = pydantic_core.from_json(line)
        except ValueError:  # not JSON, not UTF-8: the SDK answers it as it does
            return None
        if type(message) is not dict or message.keys() != _MESSAGE_KEYS:
            return None
        request_id, params = message["id"], message["params"]
        if message["jsonrpc"] != "2.0" or message["method"] != "tools/call":
            return None
        if not (
            type(request_id) is str or (type(request_id) is int and -_INT64 <= request_id < _INT64)
        ):
            return None
        if type(params) is not dict or params.keys() != _PARAMS_KEYS:
            return None
        name, args = params["name"], params["arguments"]
        if type(name) is not str or type(args) is not dict:
            return None
        if name != RUN_TOOL_NAME and name not in self._server.capability_tool_names():
            return None
        return request_id, name, args

    async def answer(self, call: tuple[str | int, str, dict[str, Any]]) -> None:
        """Run the call through the server's tool handler and write its response."""
        request_id, name, args = call
        self._server.remember_stdio_client()
        try:
            result = await self._server.call_tool(name, args)
            line = response_bytes(request_id, wire_result(result))
        except MCPError as exc:  # as the SDK's dispatcher answers a handler's MCPError
            error = exc.error.model_dump(by_alias=True, mode="json", exclude_unset=True)
            line = response_bytes(request_id, error, key="error")
        except Exception as exc:  # a fault here costs this answer, never the server
            log.exception("the hot path failed to answer tools/call %s", name)
            error = {"code": INTERNAL_ERROR, "message": f"{type(exc).__name__}: {exc}"}
            line = response_bytes(request_id, error, key="error")
        self.answered += 1
        try:
            await self._write(line)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            log.debug("dropped the result of %r: the client has gone", request_id)
