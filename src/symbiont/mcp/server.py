"""The capability library as an MCP server (the official `mcp` SDK's low-level `Server`).

    symbiont mcp                                   # stdio, for desktop clients
    symbiont mcp --http 127.0.0.1:8765            # streamable HTTP on loopback
    SYMBIONT_MCP_TOKEN=... symbiont mcp --http 0.0.0.0:8765   # elsewhere: a bearer token

What a client gets:

- tools `search_capabilities`, `run_capability`, `get_capability`, and with a model
  configured `create_capability` / `mutate_capability` (the mutation agent: nothing is
  stored unless build and tests passed); with `--expose top-k|all`, capabilities as tools of
  their own (input and output schema from the capability) and `notifications/tools/
  list_changed` when that list changes (added, replaced, deprecated — by this server or by
  another process on the same store, seen by a poll);
- resources `capability://ID` (metadata as JSON, source as Python), and
  `notifications/resources/list_changed`;
- the prompt `capability_library`, the library's system prompt.

Library calls run in one worker thread of the server's own, one at a time (`_work`): the
library and its sandbox are used from one thread at a time and the event loop does not block
on a search or a lookup. Over stdio (one client), a capability run made while the library is
free runs on the event loop's thread itself (`_run_work`: no thread hand-off). The
mutation agent works on a library of its own (same store, own connection and sandbox) in
another thread, so a creation that takes minutes does not hold up the other tools. A failed
call is a tool result with `isError` and a message a model can act on; the handler catches
everything, so no input can take the server down.

Clients of the 2026-07-28 protocol get the change notifications on `subscriptions/listen`
streams (the SDK's `ListenHandler` over an in-memory bus); older ones on the connection, as
before.

What a `tools/call` costs the server beyond the SDK (benchmarks/bench_mcp.py measures it next
to a bare SDK server): over stdio no thread hand-off for a run (else a queue put and
`call_soon_threadsafe` back, a third of `anyio.to_thread`'s cost), compact JSON for the text
content (the C encoder), the result handed to the SDK in its wire form (the SDK validates
what goes on the wire either way), no OpenTelemetry middleware when no tracer provider is
configured, and over stdio the messages read and written on the event loop and handed to the
SDK directly (`_WireRead`, `_WireWrite`). Over stdio, a call that runs a capability does not
go through the SDK's server at all when that is safe: `symbiont.mcp.hotpath` answers it from
the reader, in the bytes the SDK would write (0.26 M instructions beyond `Library.run` against
0.93 M through the SDK; `--no-hot-path` turns it off).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import logging
import os
import queue
import sys
import threading
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import anyio
import anyio.from_thread
import anyio.to_thread
import mcp_types as types
import pydantic_core
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    ResourcesListChanged,
    ToolsListChanged,
)
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

from symbiont.errors import CapabilityError, SandboxError, SymbiontError
from symbiont.library import (
    Capability,
    CapabilityDeprecated,
    CapabilityNotFound,
    InvalidInput,
    Library,
    validate,
)
from symbiont.mcp import prompts
from symbiont.mcp.hotpath import HotPath, response_bytes
from symbiont.mcp.schemas import mcp_tool, tool_names

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext
    from mcp.server.session import ServerSession

    from symbiont.agent import AgentEvent, MutationResult
    from symbiont.models import Model

log = logging.getLogger("symbiont.mcp")

T = TypeVar("T")

EXPOSE_MODES = ("none", "top-k", "all")
RESOURCE_SCHEME = "capability://"
RESOURCE_NOT_FOUND = -32002  # the code the MCP specification gives an unknown resource
_NOTIFY = NotificationOptions(tools_changed=True, resources_changed=True)


def model_configured(environ: Mapping[str, str] | None = None) -> bool:
    """A model that can drive the mutation agent is configured (`SYMBIONT_MODEL` naming a
    model, or `OPENAI_BASE_URL`); the offline mutation proposer cannot write capabilities."""
    env = os.environ if environ is None else environ
    name = env.get("SYMBIONT_MODEL", "").strip()
    if name == "mutation" or name.startswith("mutation:"):
        return False
    return bool(name or env.get("OPENAI_BASE_URL", "").strip())


@dataclass(slots=True)
class ServerOptions:
    """How `symbiont mcp` opens the library and what it offers."""

    store: str | None = None  # store file; None: $SYMBIONT_HOME/symbiont.db or ./.symbiont/
    data_root: str | None = None
    tier: str | None = None  # sandbox tier; None: $SYMBIONT_SANDBOX, else wasm
    expose: str = "none"  # capabilities as tools of their own: none, top-k, all
    top_k: int = 8  # how many with expose="top-k"
    timeout_s: float | None = None  # per sandbox run; None: the sandbox default
    poll_s: float = 1.0  # how often to look for changes made by other processes (0: never)
    # Over stdio, run a capability on the event loop's own thread when the library is free
    # (no hand-off to the worker thread and back); see CapabilityServer._run_work.
    runs_on_loop: bool = True
    # Over stdio, answer the calls that run a capability without the SDK's server machinery
    # (symbiont.mcp.hotpath says when); False: every message goes through the SDK.
    hot_path: bool = True
    mutation_max_steps: int = 16


class ToolFailure(Exception):
    """A tool call that cannot give a result: becomes a tool result with `isError`."""

    def __init__(self, kind: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.details = details


# -- the server's own tools ------------------------------------------------------------------
def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


_ID = {"type": "string", "description": "a capability id, as search_capabilities shows it"}
SEARCH_TOOL: dict[str, Any] = {
    "name": "search_capabilities",
    "title": "Search capabilities",
    "description": "Find the capabilities that fit a task, best first (hybrid semantic and "
    "keyword retrieval; deprecated ones are left out). Returns each one's id, summary, "
    "score and input schema.",
    "inputSchema": _object(
        {
            "query": {"type": "string", "description": "the task, in words"},
            "k": {
                "type": "integer",
                "minimum": 1,
                "maximum": 50,
                "description": "how many results (default 5)",
            },
        },
        ["query"],
    ),
    "annotations": {"readOnlyHint": True, "openWorldHint": False},
}
RUN_TOOL: dict[str, Any] = {
    "name": "run_capability",
    "title": "Run a capability",
    "description": "Run a capability in the sandbox on an input object that fits its input "
    "schema; returns its output. The outcome is recorded: a capability that keeps failing "
    "is deprecated.",
    "inputSchema": _object(
        {
            "id": _ID,
            "input": {
                "type": "object",
                "description": "the capability's named arguments, fitting its input schema",
            },
        },
        ["id"],
    ),
    "annotations": {"readOnlyHint": False, "destructiveHint": True, "openWorldHint": True},
}
GET_TOOL: dict[str, Any] = {
    "name": "get_capability",
    "title": "Show a capability",
    "description": "A capability's source, input and output schema, summary, examples, "
    "permissions, statistics and lineage.",
    "inputSchema": _object({"id": _ID}, ["id"]),
    "annotations": {"readOnlyHint": True, "openWorldHint": False},
}
CREATE_TOOL: dict[str, Any] = {
    "name": "create_capability",
    "title": "Create a capability",
    "description": "Have a new capability written for a task by the mutation agent: it "
    "writes, builds (parse, schema, policy, type check) and tests it in the sandbox, and "
    "stores it only when all of that passed. Returns the stored capability.",
    "inputSchema": _object(
        {"task": {"type": "string", "description": "what the capability should do"}}, ["task"]
    ),
    "annotations": {"readOnlyHint": False, "destructiveHint": False, "openWorldHint": True},
}
MUTATE_TOOL: dict[str, Any] = {
    "name": "mutate_capability",
    "title": "Derive a capability",
    "description": "Have a new version of a capability written for a task, starting from "
    "it (its parent): built and tested like create_capability, stored only when that "
    "passed. With replace_parent, the new one retires the parent (it becomes legacy).",
    "inputSchema": _object(
        {
            "id": _ID,
            "task": {"type": "string", "description": "what the new version should do"},
            "replace_parent": {
                "type": "boolean",
                "description": "retire the parent once the new one is stored (default false)",
            },
        },
        ["id", "task"],
    ),
    "annotations": {"readOnlyHint": False, "destructiveHint": True, "openWorldHint": True},
}
READ_TOOLS = (SEARCH_TOOL, RUN_TOOL, GET_TOOL)
AUTHOR_TOOLS = (CREATE_TOOL, MUTATE_TOOL)
CORE_TOOL_NAMES = frozenset(str(t["name"]) for t in (*READ_TOOLS, *AUTHOR_TOOLS))
# A tool result in its wire form (camelCase keys): the SDK validates a handler's dict
# against the protocol as it does a model, without the model's construction and dump.
ToolResult = dict[str, Any]
_ToolHandler = Callable[[dict[str, Any], Any], Awaitable[ToolResult]]
_INPUT_SCHEMAS: dict[str, dict[str, Any]] = {
    str(t["name"]): dict(t["inputSchema"]) for t in (*READ_TOOLS, *AUTHOR_TOOLS)
}
_RUN_ARGUMENT_NAMES = frozenset(RUN_TOOL["inputSchema"]["properties"])


# One encoder for every result text: `json.dumps` with options builds a new one per call,
# a quarter of what encoding a run's result costs.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


def _text(value: Any, indent: int | None = None) -> str:
    """JSON text; compact unless `indent` (without an indent `json` uses its C encoder, about
    eight times faster, and a model reads compact JSON as well and for fewer tokens)."""
    if indent is None:
        return _ENCODER.encode(value)
    return json.dumps(value, ensure_ascii=False, indent=indent, default=str)


def _plain_run_arguments(args: dict[str, Any]) -> bool:
    """`run_capability` arguments that evidently fit its input schema (an `id` string, an
    `input` object or none, nothing else): the schema check would find nothing, and skipping
    it saves ≈ 50 k instructions per run. Anything else gets the check and its messages."""
    return (
        type(args.get("id")) is str
        and type(args.get("input", {})) is dict
        and args.keys() <= _RUN_ARGUMENT_NAMES
    )


def _tool_result(text: str, structured: Any, is_error: bool) -> ToolResult:
    """A tool result as the wire has it (the SDK validates it against the protocol before it
    goes out, as it would a `CallToolResult` it had dumped first)."""
    result: ToolResult = {
        "content": [{"type": "text", "text": text}],
        "isError": is_error,
        "resultType": "complete",  # required from 2026-07-28 on; older versions' sieve drops it
    }
    if structured is not None:
        result["structuredContent"] = structured
    return result


def ok_result(payload: Any, *, structured: Any = None) -> ToolResult:
    """A successful tool result: the payload as JSON text, and as structured content."""
    return _tool_result(_text(payload), payload if structured is None else structured, False)


def error_result(failure: ToolFailure) -> ToolResult:
    """A failed tool call, the protocol's way: `isError` and a message a model can act on."""
    text = f"{failure.kind}: {failure.message}"
    extra = {k: v for k, v in failure.details.items() if k != "traceback" and v is not None}
    if extra:
        text += "\n" + _text(extra)
    if failure.details.get("traceback"):
        text += "\n" + str(failure.details["traceback"])
    error = {"kind": failure.kind, "message": failure.message, **extra}
    return _tool_result(text, {"error": error}, True)


class _Worker:
    """One thread that runs the library calls, one at a time, in the order they were asked.

    A hand-off is a queue put, and `call_soon_threadsafe` back to the event loop: a third of
    what `anyio.to_thread.run_sync` costs (its capacity limiter, cancel scope and thread pool
    bookkeeping), which on a busy machine is a fraction of a millisecond per tool call. A call
    that has started always finishes (the library is never left mid-run); a caller cancelled
    meanwhile sees its cancellation once the call is done. asyncio only: the CLI and uvicorn
    both run on it."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._in_flight = 0  # calls handed over and not yet answered (event loop only)

    @property
    def idle(self) -> bool:
        """No call is queued or running: the library is free (ask on the event loop)."""
        return self._in_flight == 0

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()
        self._ensure_started()
        self._in_flight += 1
        try:
            self._jobs.put((loop, done, contextvars.copy_context(), fn, args))
            with anyio.CancelScope(shield=True):
                result = await done
        finally:
            self._in_flight -= 1
        return result

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="symbiont-mcp-library", daemon=True
                )
                self._thread.start()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, done, context, fn, args = job
            try:
                settle: Any = (done.set_result, context.run(fn, *args))
            except BaseException as exc:  # handed to the caller, whatever it is
                settle = (done.set_exception, exc)
            with contextlib.suppress(RuntimeError):  # a closed event loop: nobody waits
                loop.call_soon_threadsafe(_settle, done, *settle)

    def stop(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread = None


def _settle(done: asyncio.Future[Any], setter: Callable[[Any], None], value: Any) -> None:
    if not done.done():
        setter(value)


class _Server(Server[dict[str, Any]]):
    """The SDK's server, announcing the list-changed notifications on every transport (the
    streamable-HTTP manager asks for the initialization options without arguments)."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or _NOTIFY, experimental_capabilities, extensions
        )


class CapabilityServer:
    """The MCP server over one library. `library` and `model` default to what `options`
    and the environment say (the model only when `model_configured()`)."""

    def __init__(
        self,
        options: ServerOptions | None = None,
        *,
        library: Library | None = None,
        model: Model | None = None,
    ) -> None:
        self.options = options or ServerOptions()
        if self.options.expose not in EXPOSE_MODES:
            raise SymbiontError(
                f"unknown --expose {self.options.expose!r}; choose one of {', '.join(EXPOSE_MODES)}"
            )
        if self.options.top_k < 1:
            raise SymbiontError(f"--top-k must be at least 1, not {self.options.top_k}")
        self._owns_library = library is None
        self.library = library if library is not None else self._open_library()
        self._model = model
        self.authoring = model is not None or model_configured()
        self._worker = _Worker()
        self._runs_on_loop = False  # set by serve_stdio (options.runs_on_loop)
        self._hot_path_on = False  # set by serve_stdio (options.hot_path, no tracing)
        self._stdio_session: ServerSession | None = None  # the stdio client's, once seen
        self._author_limiter = anyio.CapacityLimiter(1)
        self._clients: dict[int, ServerSession] = {}  # one per connected client
        self._focus: list[str] = []  # expose="top-k": capabilities found by recent searches
        self._signatures: tuple[Any, Any] | None = None
        self._tool_ids: dict[str, str] = {}  # tool name -> capability id, every stored one
        self._dirty = False  # a call changed the library: announce before answering
        self._change_lock = anyio.Lock()
        self._bus = InMemorySubscriptionBus()  # subscriptions/listen (2026-07-28 clients)
        self._listen = ListenHandler(self._bus)
        self._tool_handlers: dict[str, _ToolHandler] = {
            "search_capabilities": self._search,
            "run_capability": self._run,
            "get_capability": self._get,
        }
        if self.authoring:
            self._tool_handlers["create_capability"] = self._create
            self._tool_handlers["mutate_capability"] = self._mutate
        self.server = _Server(
            "symbiont",
            version=_version(),
            title="symbiont capability library",
            instructions=prompts.system_prompt(
                direct_tools=self.options.expose != "none", authoring=self.authoring
            ),
            lifespan=self._lifespan,
            on_list_tools=self._list_tools,
            # typed as returning a CallToolResult; the SDK takes the wire-form dict as well
            # (mcp.server.runner._dump_result), which spares a model's construction and dump
            on_call_tool=cast(Any, self._call_tool),
            on_list_resources=self._list_resources,
            on_list_resource_templates=self._list_resource_templates,
            on_read_resource=self._read_resource,
            on_list_prompts=self._list_prompts,
            on_get_prompt=self._get_prompt,
            on_subscriptions_listen=self._listen,
        )

    def _open_library(self) -> Library:
        limits = None
        if self.options.timeout_s is not None:
            from symbiont.sandbox import Limits

            limits = Limits(timeout_s=self.options.timeout_s)
        return Library(
            self.options.store,
            tier=self.options.tier,
            data_root=self.options.data_root,
            limits=limits,
        )

    def close(self) -> None:
        self._worker.stop()
        if self._owns_library:
            self.library.close()

    # -- plumbing ------------------------------------------------------------------------------
    async def _work(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a library call in the worker thread (one at a time)."""
        return await self._worker.run(fn, *args)

    async def _run_work(self, fn: Callable[..., T], *args: Any) -> T:
        """A capability run: over stdio, on the event loop's thread itself when no library
        call is queued or running; else in the worker thread like every library call.

        Why: the hand-off to the worker and back wakes a thread twice and hands the GIL over
        twice, ≈ 0.5 ms of a round trip on a busy machine (benchmarks/bench_mcp.py). The
        price: while a capability runs (at most its sandbox time limit), the server reads
        no other message of its one stdio client (a ping, a cancellation waits; a running
        call cannot be stopped either way). The library is still used from one thread at a
        time: nothing can be handed to the worker while the event loop is busy here. Over
        HTTP (several clients) runs stay in the worker thread."""
        if self._runs_on_loop and self._worker.idle:
            return fn(*args)
        return await self._worker.run(fn, *args)

    @asynccontextmanager
    async def _lifespan(self, _server: Server[Any]) -> AsyncIterator[dict[str, Any]]:
        self._signatures = await self._work(self._current_signatures)
        async with anyio.create_task_group() as tg:
            if self.options.poll_s > 0:
                tg.start_soon(self._poll)
            try:
                yield {}
            finally:
                self._listen.close()
                tg.cancel_scope.cancel()

    async def _poll(self) -> None:
        """Changes made by other processes (a `symbiont lib` command, another agent)."""
        while True:
            await anyio.sleep(self.options.poll_s)
            try:
                await self._announce_changes()
            except Exception:  # a busy or briefly locked store: try again next time
                log.debug("change poll failed", exc_info=True)

    def _remember(self, ctx: ServerRequestContext[Any, Any]) -> None:
        """Keep a way to reach this client outside of its requests (for the notifications).

        `ctx.session` is made per request; what lasts is its connection, which the SDK (2.3)
        reaches only through a private attribute, hence the fallback to the session itself.
        A 2026-07-28 client is not kept: it gets the notifications it asked for on its
        `subscriptions/listen` stream, never on the connection."""
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return
        self._remember_session(ctx.session)

    def _remember_session(self, session: ServerSession) -> None:
        connection = getattr(session, "_connection", None)
        key = id(connection if connection is not None else session)
        if key in self._clients:
            return
        self._clients[key] = session
        stack = getattr(connection, "exit_stack", None)
        if stack is not None:  # forget the client when its connection closes
            stack.callback(self._clients.pop, key, None)

    def _names(self, caps: list[Capability]) -> dict[str, str]:
        """capability id -> tool name, over every stored capability (stable whatever the
        statuses), never one of the server's own tool names."""
        return tool_names((c.id for c in caps), CORE_TOOL_NAMES)

    def _exposed(self, caps: list[Capability]) -> list[Capability]:
        active = [c for c in caps if c.status == "active"]
        if self.options.expose == "all":
            return active
        if self.options.expose == "none":
            return []
        by_id = {c.id: c for c in active}
        chosen = [by_id[i] for i in self._focus if i in by_id]
        # fill with the most used ones
        for cap in sorted(active, key=lambda c: (-c.stats.runs, c.id)):
            if len(chosen) >= self.options.top_k:
                break
            if all(c.id != cap.id for c in chosen):
                chosen.append(cap)
        return chosen[: self.options.top_k]

    def _current_signatures(self) -> tuple[Any, Any]:
        caps = self.library.list()
        names = self._names(caps)
        self._tool_ids = {tool: cap_id for cap_id, tool in names.items()}
        tools = tuple(sorted((names[c.id], c.version) for c in self._exposed(caps)))
        resources = tuple((c.id, c.version, c.status) for c in caps)
        return tools, resources

    async def _announce_changes(self) -> None:
        """Tell every connected client when the tool or resource list changed."""
        async with self._change_lock:
            new = await self._work(self._current_signatures)
            old = self._signatures
            self._signatures = new
            if old is None:
                return
            tools_changed, resources_changed = new[0] != old[0], new[1] != old[1]
            if not (tools_changed or resources_changed):
                return
            if tools_changed:
                await self._bus.publish(ToolsListChanged())
            if resources_changed:
                await self._bus.publish(ResourcesListChanged())
            for key, session in list(self._clients.items()):
                try:
                    if tools_changed:
                        await session.send_tool_list_changed()
                    if resources_changed:
                        await session.send_resource_list_changed()
                except Exception:  # that client has gone
                    self._clients.pop(key, None)

    # -- tools ---------------------------------------------------------------------------------
    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        self._remember(ctx)
        tools: list[dict[str, Any]] = [dict(t) for t in READ_TOOLS]
        if self.authoring:
            tools.extend(dict(t) for t in AUTHOR_TOOLS)
        if self.options.expose != "none":
            caps = await self._work(self.library.list)
            names = self._names(caps)
            tools.extend(mcp_tool(c, names[c.id]) for c in self._exposed(caps))
        return types.ListToolsResult.model_validate({"tools": tools})

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> ToolResult:
        self._remember(ctx)
        return await self.call_tool(params.name, dict(params.arguments or {}), ctx)

    async def call_tool(self, name: str, args: dict[str, Any], ctx: Any = None) -> ToolResult:
        """A tool call, whichever path brought it (the SDK's handler with its request
        context, the stdio hot path without one): its result, with `isError` for a failure;
        the list-changed notifications it caused are sent before it returns. Raises
        `MCPError` only for an unknown tool."""
        try:
            handler = self._tool_handlers.get(name)
            if handler is not None:
                if not (name == "run_capability" and _plain_run_arguments(args)):
                    _check_arguments(name, args, _INPUT_SCHEMAS[name])
                result = await handler(args, ctx)
            else:
                output = await self._run_work(self._run_tool_sync, name, args)
                result = ok_result(output, structured={"result": output})
        except ToolFailure as failure:
            result = error_result(failure)
        except MCPError:
            raise
        except Exception as exc:  # never let one call take the server down
            log.error("tool %s failed inside the server:\n%s", name, traceback.format_exc())
            result = error_result(
                ToolFailure("internal_error", f"{type(exc).__name__}: {exc}".rstrip(": "))
            )
        if self._dirty:
            self._dirty = False
            await self._announce_changes()
        return result

    # -- the stdio hot path (symbiont.mcp.hotpath) ----------------------------------------------
    async def _see_stdio_client(self, ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        """Middleware over stdio: keep the session of the first handshake-era message the SDK
        serves; its connection says whether `initialize` was accepted, and at which version."""
        if self._stdio_session is None and ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            self._stdio_session = ctx.session
        return await call_next(ctx)

    def hot_path_ready(self) -> bool:
        """The hot path may answer a run now: on, the stdio client's handshake accepted at a
        handshake-era version (read from the SDK's connection), and the library free so that
        the run happens on the event loop's thread at once."""
        connection = getattr(self._stdio_session, "_connection", None)
        return (
            self._hot_path_on
            and self._runs_on_loop
            and self._worker.idle
            and connection is not None
            and connection.initialize_accepted
            and connection.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS
        )

    def capability_tool_names(self) -> Collection[str]:
        """The tool names of the stored capabilities, as last read."""
        return self._tool_ids.keys()

    def remember_stdio_client(self) -> None:
        """What `_call_tool` does with its context: the client gets the notifications."""
        if self._stdio_session is not None:
            self._remember_session(self._stdio_session)

    def _run_tool_sync(self, name: str, args: dict[str, Any]) -> Any:
        """A capability called as a tool of its own: its output (one hand-off for the
        lookup and the run)."""
        if name not in self._tool_ids:  # stored since the last look
            names = self._names(self.library.list())
            self._tool_ids = {tool: cap_id for cap_id, tool in names.items()}
        cap_id = self._tool_ids.get(name)
        if cap_id is None:
            raise MCPError(types.INVALID_PARAMS, _unknown_tool(name, self.authoring))
        return self._run_sync(cap_id, args)["output"]

    async def _search(self, args: dict[str, Any], ctx: Any = None) -> ToolResult:
        query, k = str(args["query"]), min(int(args.get("k", 5)), 50)
        hits = await self._work(self._search_sync, query, k)
        return ok_result({"query": query, "results": hits})

    def _search_sync(self, query: str, k: int) -> list[dict[str, Any]]:
        try:
            hits = self.library.search(query, k)
        except CapabilityError as exc:
            raise ToolFailure("invalid_query", str(exc)) from None
        caps = self.library.list()
        names = self._names(caps)
        if self.options.expose == "top-k":
            found = [h.capability.id for h in hits]
            focus = (found + [i for i in self._focus if i not in found])[: self.options.top_k]
            self._dirty = focus != self._focus
            self._focus = focus
        exposed = {c.id for c in self._exposed(caps)}
        out = []
        for hit in hits:
            cap = hit.capability
            entry: dict[str, Any] = {
                "id": cap.id,
                "name": cap.name,
                "summary": " ".join(cap.summary.split()),
                "score": round(hit.score, 4),
                "input_schema": cap.input_schema,
                "changes_data": cap.permissions.writes,
            }
            if cap.id in exposed:
                entry["tool"] = names[cap.id]
            out.append(entry)
        return out

    async def _run(self, args: dict[str, Any], ctx: Any = None) -> ToolResult:
        value = args.get("input", {})
        return ok_result(await self._run_work(self._run_sync, str(args["id"]), value))

    def _run_sync(self, cap_id: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping | str):
            raise ToolFailure(
                "invalid_input",
                f"input must be a JSON object of the capability's named arguments, like "
                f'{{"employee_id": "E007"}}; got {type(value).__name__}',
            )
        try:
            run = self.library.run(cap_id, value)
        except CapabilityNotFound as exc:
            raise ToolFailure(
                "unknown_capability",
                f"{_plain(exc)}; search_capabilities(query) lists the capabilities that exist",
            ) from None
        except CapabilityDeprecated as exc:
            raise ToolFailure(
                "deprecated",
                f"capability {cap_id!r} is deprecated ({exc.reason}) and no longer runs; use "
                "search_capabilities to find another"
                + (", or mutate_capability to write a fixed version" if self.authoring else ""),
            ) from None
        except InvalidInput as exc:
            schema = self.library.get(cap_id).input_schema
            raise ToolFailure(
                "invalid_input",
                f"{exc}; nothing was run. Send an input that fits the input schema",
                problems=list(exc.errors) or None,
                input_schema=schema,
            ) from None
        except SandboxError as exc:
            raise ToolFailure("sandbox_unavailable", str(exc)) from None
        if not run.ok:
            message = f"{cap_id} failed ({run.error_kind}): {run.error}"
            if run.blame == "declared":
                message = f"{cap_id} answered with an error it declares for this input: {run.error}"
            elif run.blame == "host":
                message = (
                    f"{cap_id} could not reach what it needs (a passing host failure, not "
                    f"counted against it): {run.error}"
                )
            if run.deprecated_now:
                self._dirty = True
                message += (
                    f". It has now failed {self.library.deprecate_after} times in a row and is "
                    "deprecated: it will not be offered again"
                )
            raise ToolFailure(
                run.error_kind or "failed",
                message,
                capability_id=cap_id,
                blame=run.blame,
                deprecated_now=run.deprecated_now or None,
                output=run.output,
                traceback=run.traceback[-1500:] if run.traceback else None,
            )
        return {
            "capability_id": run.capability_id,
            "version": run.version,
            "output": run.output,
            "duration_s": round(run.duration_s, 6),
            "tier": run.tier,
        }

    async def _get(self, args: dict[str, Any], ctx: Any = None) -> ToolResult:
        return ok_result(await self._work(self._describe_id, str(args["id"])))

    def _describe_id(self, cap_id: str) -> dict[str, Any]:
        try:
            cap = self.library.get(cap_id)
        except CapabilityNotFound as exc:
            raise ToolFailure(
                "unknown_capability",
                f"{_plain(exc)}; search_capabilities(query) lists the capabilities that exist",
            ) from None
        return self._describe(cap)

    def _describe(self, cap: Capability) -> dict[str, Any]:
        caps = self.library.list()
        names = self._names(caps)
        return {
            "id": cap.id,
            "name": cap.name,
            "summary": cap.summary,
            "status": cap.status,
            "status_reason": cap.status_reason,
            "version": cap.version,
            "entry": cap.entry,
            "tool": names[cap.id] if cap.id in {c.id for c in self._exposed(caps)} else None,
            "resource": RESOURCE_SCHEME + cap.id,
            "input_schema": cap.input_schema,
            "output_schema": cap.output_schema,
            "permissions": cap.permissions.to_dict(),
            "examples": [e.to_dict() for e in cap.examples],
            "stats": {
                "runs": cap.stats.runs,
                "failures": cap.stats.failures,
                "consecutive_failures": cap.stats.consecutive_failures,
                "p50_latency_s": cap.stats.p50_latency_s,
                "last_error": cap.stats.last_error,
            },
            "lineage": {
                "parents": list(cap.parents),
                "children": sorted(c.id for c in caps if cap.id in c.parents),
                "replaced_by": cap.replaced_by,
                "versions": [
                    {"version": v["version"], "created_at": v["created_at"]}
                    for v in self.library.versions(cap.id)
                ],
            },
            "source": cap.source,
        }

    async def _create(self, args: dict[str, Any], ctx: Any = None) -> ToolResult:
        return ok_result(await self._author(str(args["task"]), None, False, ctx))

    async def _mutate(self, args: dict[str, Any], ctx: Any = None) -> ToolResult:
        replace = bool(args.get("replace_parent", False))
        return ok_result(await self._author(str(args["task"]), str(args["id"]), replace, ctx))

    async def _author(
        self, task: str, parent_id: str | None, replace_parent: bool, ctx: Any
    ) -> dict[str, Any]:
        """The mutation agent, on a library of its own (its own connection and sandbox) in a
        thread of its own: a creation takes many model calls, and the other tools keep
        answering meanwhile. One creation at a time."""
        if not task.strip():
            raise ToolFailure(
                "invalid_task", "the task is empty; say what the capability should do"
            )
        if parent_id is not None:
            await self._work(self._describe_id, parent_id)  # an unknown id fails with its hints
        run = functools.partial(
            self._author_sync, task, parent_id, replace_parent, _progress_reporter(ctx)
        )
        try:
            result = await anyio.to_thread.run_sync(run, limiter=self._author_limiter)
        finally:
            self._dirty = True  # a parent may have been replaced even if nothing else was stored
        if not result.ok or result.capability is None:
            raise ToolFailure(
                "not_created",
                f"nothing was stored: the mutation agent ended with {result.outcome}"
                + (f" ({result.error})" if result.error else ""),
                steps=result.steps,
                transcript_id=result.transcript_id,
            )
        return {
            "capability": await self._work(self._describe_id, result.capability.id),
            "steps": result.steps,
            "transcript_id": result.transcript_id,
        }

    def _author_sync(
        self,
        task: str,
        parent_id: str | None,
        replace_parent: bool,
        progress: Callable[[AgentEvent], None] | None,
    ) -> MutationResult:
        from symbiont.agent import MutationAgent

        if self._model is None:
            from symbiont.models import default_model

            self._model = default_model(announce=None)
        with self._author_library() as own:
            agent = MutationAgent(
                own, self._model, max_steps=self.options.mutation_max_steps, on_event=progress
            )
            try:
                return agent.run(task, parent_id, replace_parent=replace_parent)
            finally:
                agent.close()

    def _author_library(self) -> Library:
        """A library of the mutation agent's own: the same store reopened (its own connection)
        with the server library's settings. A PostgreSQL store is reopened from its full URL:
        `Library.path` is the URL without its password, for messages."""
        lib = self.library
        return Library(
            getattr(lib.store, "url", None) or lib.store.path,
            tier=lib.tier,
            data_root=lib.data_root,
            deprecate_after=lib.deprecate_after,
            typecheck=lib.typecheck,
            policy=lib.policy,
            limits=lib.limits,
        )

    # -- resources and prompts -------------------------------------------------------------------
    async def _list_resources(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        self._remember(ctx)
        caps = await self._work(self.library.list)
        listing = {
            "resources": [
                {
                    "uri": RESOURCE_SCHEME + c.id,
                    "name": c.id,
                    "title": c.name or c.id,
                    "description": f"[{c.status}, version {c.version}] "
                    + " ".join(c.summary.split()),
                    "mimeType": "application/json",
                }
                for c in caps
            ]
        }
        return types.ListResourcesResult.model_validate(listing)

    async def _list_resource_templates(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        template = {
            "resourceTemplates": [
                {
                    "uriTemplate": RESOURCE_SCHEME + "{id}",
                    "name": "capability",
                    "title": "A capability by id",
                    "description": "A capability's metadata (JSON) and source (Python).",
                    "mimeType": "application/json",
                }
            ]
        }
        return types.ListResourceTemplatesResult.model_validate(template)

    async def _read_resource(
        self, ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        uri = str(params.uri)
        if not uri.startswith(RESOURCE_SCHEME):
            raise MCPError(
                RESOURCE_NOT_FOUND, f"no resource {uri!r}: resources are {RESOURCE_SCHEME}ID"
            )
        cap_id = uri[len(RESOURCE_SCHEME) :].strip("/")
        try:
            meta = await self._work(self._describe_id, cap_id)
        except ToolFailure as failure:
            raise MCPError(RESOURCE_NOT_FOUND, failure.message, {"uri": uri}) from None
        source = meta.pop("source")
        contents = [
            {"uri": uri, "mimeType": "application/json", "text": _text(meta, indent=2)},
            {"uri": uri, "mimeType": "text/x-python", "text": source},
        ]
        return types.ReadResourceResult.model_validate({"contents": contents})

    async def _list_prompts(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        listing = {
            "prompts": [
                {
                    "name": prompts.PROMPT_NAME,
                    "title": "Use the capability library",
                    "description": prompts.PROMPT_DESCRIPTION,
                    "arguments": [
                        {
                            "name": "task",
                            "description": "the task at hand: the capabilities that fit it "
                            "are listed after the instructions",
                            "required": False,
                        }
                    ],
                }
            ]
        }
        return types.ListPromptsResult.model_validate(listing)

    async def _get_prompt(
        self, ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        if params.name != prompts.PROMPT_NAME:
            raise MCPError(
                types.INVALID_PARAMS,
                f"no prompt {params.name!r}; the prompt is {prompts.PROMPT_NAME!r}",
            )
        text = prompts.system_prompt(
            direct_tools=self.options.expose != "none", authoring=self.authoring
        )
        messages = [{"role": "user", "content": {"type": "text", "text": text}}]
        task = str((params.arguments or {}).get("task") or "").strip()
        if task:
            try:
                hits = await self._work(self.library.search, task, 5)
            except CapabilityError:
                hits = []
            messages.append(
                {
                    "role": "user",
                    "content": {"type": "text", "text": prompts.candidates_text(task, hits)},
                }
            )
        return types.GetPromptResult.model_validate(
            {"description": prompts.PROMPT_DESCRIPTION, "messages": messages}
        )

    # -- transports ----------------------------------------------------------------------------
    async def serve_stdio(self) -> None:
        """Serve the process's stdin/stdout until the client closes stdin."""
        from mcp.server.stdio import stdio_server

        self._runs_on_loop = self.options.runs_on_loop
        traced = _drop_idle_tracing(self.server)
        # a traced server traces every message: none may go around the SDK
        self._hot_path_on = self.options.hot_path and not traced
        if self._hot_path_on:
            self.server.middleware.append(self._see_stdio_client)
        wire = _loop_pipes(self if self._hot_path_on else None)
        if wire is None:  # not pipes (a file, a terminal): the SDK's own thread-based streams
            async with stdio_server() as (read, write):
                await self.server.run(read, write, self.server.create_initialization_options())
            return
        async with wire as (read, write):
            await self.server.run(read, write, self.server.create_initialization_options())
        if read.hot is not None:  # how many calls went around the SDK (tests, debugging)
            print_err(f"symbiont mcp: {read.hot.answered} tool calls answered by the hot path")


def _drop_idle_tracing(server: Server[Any]) -> bool:
    """Take the SDK's OpenTelemetry middleware off when no tracer provider is configured
    (none set when serving starts, none named by OTEL_PYTHON_TRACER_PROVIDER): it would make
    a span that records nothing for every message, ≈ 85 k instructions per tools/call, a
    twelfth of what the SDK does for one. With a provider (opentelemetry-instrument, or one
    set before serving) it stays, and every message is traced as the SDK does it. Returns
    whether tracing stays."""
    try:
        from opentelemetry import trace
    except ImportError:
        return False
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        server.middleware[:] = [
            m for m in server.middleware if type(m).__name__ != "OpenTelemetryMiddleware"
        ]
    return any(type(m).__name__ == "OpenTelemetryMiddleware" for m in server.middleware)


class _WireRead:
    """The SDK's read stream (`ReadStream[SessionMessage | Exception]`) straight off the stdin
    pipe, read on the event loop: each line parsed as the SDK's `stdio_server()` parses it,
    without its reader thread (two thread hops per message, milliseconds on a busy
    machine) or its task and memory stream in between (≈ 0.26 M instructions per call for
    both directions, with `_WireWrite`; benchmarks/bench_mcp.py --instructions). With a
    `HotPath`, the lines it takes are answered there and never reach the SDK.

    A line that is not a JSON-RPC message is answered here with the error JSON-RPC gives it
    (`_refusal`: a parse error, or an invalid request under its id when it has one); the SDK
    would only log it, and a client waiting on that request would wait for ever."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        hot: HotPath | None = None,
        refuse: Callable[[bytes], Awaitable[None]] | None = None,
    ) -> None:
        self._reader = reader
        self.hot = hot
        self._refuse = refuse

    async def receive(self) -> SessionMessage | Exception:
        while True:
            line = await self._line()
            if self.hot is not None and (call := self.hot.take(line)) is not None:
                await self.hot.answer(call)
                continue
            try:
                return SessionMessage(
                    types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                )
            except Exception as exc:
                answer = _refusal(line) if self._refuse is not None else None
                if answer is None:
                    return exc  # the SDK logs it, and reads on
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await self._refuse(answer)

    async def _line(self) -> bytes:
        try:
            line = await self._reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            line = exc.partial
        except asyncio.LimitOverrunError:
            raise ValueError("an MCP message line is longer than 64 MiB") from None
        if not line:
            raise anyio.EndOfStream
        return line

    def __aiter__(self) -> _WireRead:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> _WireRead:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def _refusal(line: bytes) -> bytes | None:
    """JSON-RPC's answer to a line that is not a valid message: a parse error (-32700) for
    one that is not JSON, else an invalid request (-32600) under the message's id when it
    has a usable one (null otherwise); None for a blank line or a malformed response (a
    response is never answered)."""
    if not line.strip():
        return None
    try:
        message = pydantic_core.from_json(line)
    except ValueError as exc:
        error = {"code": types.PARSE_ERROR, "message": f"Parse error: {exc}"[:300]}
        return response_bytes(None, error, key="error")
    is_dict = isinstance(message, dict)
    if is_dict and "method" not in message and ("result" in message or "error" in message):
        return None
    request_id = message.get("id") if is_dict else None
    if not (type(request_id) is str or type(request_id) is int):
        request_id = None
    error = {"code": types.INVALID_REQUEST, "message": _INVALID_REQUEST}
    return response_bytes(request_id, error, key="error")


_INVALID_REQUEST = (
    'Invalid Request: not a JSON-RPC 2.0 message (one object with "jsonrpc": "2.0", a '
    '"method" string, an "id" that is a string or an integer for a request, "params" an '
    "object; no batches)"
)


class _WireWrite:
    """The SDK's write stream (`WriteStream[SessionMessage]`) straight onto the stdout pipe:
    each message dumped as `stdio_server()` dumps it and written at once, on the event loop
    (no writer task, no thread)."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._closed = False

    async def send(self, item: SessionMessage, /) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        text = item.message.model_dump_json(by_alias=True, exclude_unset=True)
        await self.send_line(text.encode("utf-8") + b"\n")

    async def send_line(self, line: bytes) -> None:
        """Write one message line (ending in a newline) as it is."""
        if self._closed:
            raise anyio.ClosedResourceError
        try:
            self._writer.write(line)
            await self._writer.drain()
        except (OSError, RuntimeError) as exc:  # the client has gone (a broken pipe)
            raise anyio.BrokenResourceError from exc

    async def aclose(self) -> None:
        self._closed = True

    async def __aenter__(self) -> _WireWrite:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@asynccontextmanager
async def _pipe_streams(
    wire_in: int, wire_out: int, server: CapabilityServer | None
) -> AsyncIterator[tuple[_WireRead, _WireWrite]]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024, loop=loop)
    in_file = os.fdopen(wire_in, "rb", buffering=0)
    out_file = os.fdopen(wire_out, "wb", buffering=0)
    read_transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), in_file
    )
    write_transport, protocol = await loop.connect_write_pipe(
        lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader(loop=loop), loop=loop), out_file
    )
    writer = asyncio.StreamWriter(write_transport, protocol, None, loop)
    write = _WireWrite(writer)
    hot = HotPath(server, write.send_line) if server is not None else None
    try:
        yield _WireRead(reader, hot, write.send_line), write
    finally:
        read_transport.close()
        write_transport.close()


def _loop_pipes(hot_path_for: CapabilityServer | None = None) -> Any:
    """Streams over stdin/stdout read and written on the event loop, with fd 0 pointed at
    the null device and fd 1 at stderr while serving (so nothing a library call or a child
    prints can reach the protocol stream); None when stdin/stdout are not both pipes or
    sockets, or the event loop is not asyncio's. With `hot_path_for`, that server's
    capability runs are answered by `symbiont.mcp.hotpath` when they can be."""
    import stat

    try:
        asyncio.get_running_loop()
        if not all(
            stat.S_ISFIFO(m) or stat.S_ISSOCK(m) for m in (os.fstat(0).st_mode, os.fstat(1).st_mode)
        ):
            return None
    except (RuntimeError, OSError):
        return None
    sys.stdout.flush()
    wire_in, wire_out = os.dup(0), os.dup(1)  # not inherited by children (O_CLOEXEC)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    return _pipe_streams(wire_in, wire_out, hot_path_for)


def _progress_reporter(ctx: Any) -> Callable[[AgentEvent], None] | None:
    """Each step of the mutation agent as `notifications/progress` for the calling request
    (when the client asked for progress), so a long creation shows it is alive. Called from
    the worker thread."""
    session = getattr(ctx, "session", None)
    if session is None or not hasattr(session, "report_progress"):
        return None  # (report_progress itself does nothing when no progress was asked for)
    count = 0

    def report(event: AgentEvent) -> None:
        nonlocal count
        count += 1
        message = f"{event.kind} {event.name}".strip() + (
            f": {event.summary}" if event.summary else ""
        )
        try:
            anyio.from_thread.run(session.report_progress, count, None, message[:300])
        except Exception:  # progress is a courtesy: never let it fail the creation
            log.debug("progress notification failed", exc_info=True)

    return report


def _check_arguments(tool: str, args: dict[str, Any], schema: Mapping[str, Any]) -> None:
    problems = validate(args, dict(schema), what="arguments")
    if problems:
        raise ToolFailure(
            "invalid_arguments",
            f"the arguments of {tool} do not fit its input schema: " + "; ".join(problems[:3]),
            input_schema=dict(schema),
        )


def _plain(exc: BaseException) -> str:
    """An exception's message without the quotes `KeyError`-style classes add."""
    text = str(exc)
    return text[1:-1] if len(text) > 1 and text[0] == text[-1] == '"' else text


def _unknown_tool(name: str, authoring: bool) -> str:
    tools = ["search_capabilities", "run_capability", "get_capability"]
    if authoring:
        tools += ["create_capability", "mutate_capability"]
    return (
        f"no tool {name!r}: the tools are {', '.join(tools)} and the capability tools that "
        "tools/list shows"
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("symbiont")
    except PackageNotFoundError:
        return "0"


def print_err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- streamable HTTP ---------------------------------------------------------------------------
LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")
TOKEN_ENV = "SYMBIONT_MCP_TOKEN"


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` (`[::1]:8765` for IPv6) as (host, port); port 0 picks a free one."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise SymbiontError(
            f"--http wants HOST:PORT, such as 127.0.0.1:8765 or [::1]:8765; got {text!r}"
        )
    port = int(port_text)
    if port > 65535:
        raise SymbiontError(f"--http: port {port} is out of range (0-65535)")
    return host.strip("[]"), port


def is_loopback(host: str) -> bool:
    import ipaddress

    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve a non-loopback address without a bearer token."""
    if token is not None and not token.strip():
        raise SymbiontError(f"the bearer token is empty; set {TOKEN_ENV} to a long random string")
    if token is None and not is_loopback(host):
        raise SymbiontError(
            f"refusing to serve the capability library on {host}, which is not a loopback "
            f"address, without a bearer token: anyone who reaches it could run and write "
            f"capabilities. Set {TOKEN_ENV} (or pass --token) to a long random string, and have "
            "clients send 'Authorization: Bearer <token>'; or bind 127.0.0.1"
        )


class BearerTokenMiddleware:
    """ASGI middleware: every HTTP request needs `Authorization: Bearer <token>` (401 else)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        import hmac

        header = dict(scope.get("headers") or ()).get(b"authorization", b"")
        scheme, _, given = header.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self._token):
            await self.app(scope, receive, send)
            return
        why = "missing" if not header else "wrong"
        body = json.dumps(
            {
                "error": "invalid_token",
                "error_description": f"the bearer token is {why}: send 'Authorization: Bearer "
                f"<token>' with the token the server was started with ({TOKEN_ENV})",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer error="invalid_token"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def serve_http(
    cap_server: CapabilityServer,
    host: str,
    port: int,
    *,
    token: str | None = None,
    on_ready: Callable[[str], None] = print_err,
) -> None:
    """Serve streamable HTTP at `http://HOST:PORT/mcp` until cancelled or interrupted."""
    import uvicorn

    check_bind(host, token)
    _drop_idle_tracing(cap_server.server)
    app: Any = cap_server.server.streamable_http_app(host=host)
    if token is not None:
        app = BearerTokenMiddleware(app, token.strip())
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)

    async def announce() -> None:
        while not server.started:
            await anyio.sleep(0.02)
        bound = server.servers[0].sockets[0].getsockname() if server.servers else (host, port)
        shown = f"[{bound[0]}]" if ":" in str(bound[0]) else str(bound[0])
        on_ready(
            f"symbiont mcp: serving http://{shown}:{bound[1]}/mcp"
            + (" (bearer token required)" if token else "")
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(announce)
        await server.serve()
        tg.cancel_scope.cancel()
