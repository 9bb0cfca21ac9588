"""Capabilities as tool definitions, in the shapes the MCP, OpenAI and Anthropic APIs take.

    tools = library.as_tools("openai")            # Chat Completions `tools=`
    result = run_tool_call(library, call.function.name, call.function.arguments)

One function per shape over the same three parts of a capability: a tool name, a
description (its summary) and its input schema (plus, for MCP, its output schema and hints).

Tool names: the APIs accept `^[a-zA-Z0-9_-]{1,64}$` (OpenAI, Anthropic; MCP also allows
dots), capability ids are `[a-z0-9][a-z0-9_.-]{0,79}`. A tool is named after its capability
id. An id that is not a valid name (a dot, more than 64 characters) or that is reserved
(the MCP server's own tool names) is cut, its dots become `_`, and it gets an 8-character
hash of the id: `hr.salary` -> `hr_salary_1a2b3c4d`. So a name does not depend on what else
is in the library, and two ids never share one.
`tool_names` gives the mapping both ways; `run_tool_call` routes a call back to `Library.run`.

Imports nothing from the `mcp` SDK: `Library.as_tools` works without it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from symbiont.errors import CapabilityError

if TYPE_CHECKING:
    from symbiont.library import Capability, Library, RunResult

__all__ = [
    "TOOL_FORMATS",
    "capability_tools",
    "description",
    "input_schema",
    "mcp_tool",
    "output_schema",
    "resolve_tool_name",
    "run_tool_call",
    "tool_name",
    "tool_names",
]

TOOL_FORMATS = ("openai", "anthropic", "mcp")
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_DESCRIPTION_LIMIT = 1024  # OpenAI's limit for a function description


def tool_name(cap_id: str, taken: Iterable[str] = ()) -> str:
    """The tool name for `cap_id`: the id itself when it fits every API and is free."""
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", cap_id)
    if name != cap_id or not _TOOL_NAME.match(name) or name in set(taken):
        digest = hashlib.sha256(cap_id.encode()).hexdigest()[:8]
        name = f"{name[:55]}_{digest}"
    return name


def tool_names(cap_ids: Iterable[str], reserved: Iterable[str] = ()) -> dict[str, str]:
    """capability id -> tool name for every id, unique and distinct from `reserved`."""
    ids = sorted(set(cap_ids), key=lambda i: (tool_name(i) != i, i))
    taken = set(reserved)
    out: dict[str, str] = {}
    for cap_id in ids:
        name = tool_name(cap_id, taken)
        taken.add(name)
        out[cap_id] = name
    return out


def description(cap: Capability) -> str:
    """The capability's summary on one line, with what it may do beyond computing."""
    text = " ".join(cap.summary.split())
    notes = []
    if cap.permissions.writes:
        notes.append("it changes data")
    if cap.permissions.http_allow:
        notes.append("it reads from " + ", ".join(cap.permissions.http_allow))
    if notes:
        text += f" ({'; '.join(notes)})"
    if len(text) > _DESCRIPTION_LIMIT:
        text = text[: _DESCRIPTION_LIMIT - 3] + "..."
    return text


def input_schema(cap: Capability) -> dict[str, Any]:
    """The capability's input schema as a tool's parameters: always an object schema."""
    schema = copy.deepcopy(dict(cap.input_schema)) if cap.input_schema else {}
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    return schema


def output_schema(cap: Capability) -> dict[str, Any] | None:
    """An object schema for the tool's structured result, `{"result": OUTPUT}`.

    MCP (through 2025-11-25) wants an object at the root of an output schema, while a
    capability may return any JSON value, so the output goes under `result`; `$defs` move
    to the root so that `#/$defs/...` references still resolve."""
    if not cap.output_schema:
        return None
    inner = copy.deepcopy(dict(cap.output_schema))
    defs = inner.pop("$defs", None)
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"result": inner},
        "required": ["result"],
    }
    if defs:
        schema["$defs"] = defs
    return schema


def mcp_tool(cap: Capability, name: str) -> dict[str, Any]:
    """The MCP `Tool` (wire form) that runs `cap`."""
    p = cap.permissions
    tool: dict[str, Any] = {
        "name": name,
        "title": cap.name or cap.id,
        "description": description(cap),
        "inputSchema": input_schema(cap),
        "annotations": {
            "title": cap.name or cap.id,
            "readOnlyHint": not p.writes,
            "destructiveHint": p.writes,
            "idempotentHint": not p.writes,
            "openWorldHint": bool(p.http_allow),
        },
        "_meta": {"symbiont/capability": {"id": cap.id, "version": cap.version}},
    }
    out = output_schema(cap)
    if out is not None:
        tool["outputSchema"] = out
    return tool


def _openai_tool(cap: Capability, name: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description(cap),
            "parameters": input_schema(cap),
        },
    }


def _anthropic_tool(cap: Capability, name: str) -> dict[str, Any]:
    return {"name": name, "description": description(cap), "input_schema": input_schema(cap)}


_SHAPES = {"openai": _openai_tool, "anthropic": _anthropic_tool, "mcp": mcp_tool}


def capability_tools(
    caps: Sequence[Capability], format: str = "openai", *, reserved: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """Tool definitions for `caps` in `format` ("openai": Chat Completions `tools`,
    "anthropic": Messages `tools`, "mcp": `tools/list` entries), sorted by tool name."""
    shape = _SHAPES.get(format)
    if shape is None:
        raise CapabilityError(
            f"unknown tool format {format!r}; choose one of {', '.join(TOOL_FORMATS)}"
        )
    names = tool_names((c.id for c in caps), reserved)
    return [shape(c, names[c.id]) for c in sorted(caps, key=lambda c: names[c.id])]


def resolve_tool_name(library: Library, name: str) -> str:
    """The id of the capability a tool name (from `as_tools`) stands for."""
    if name in library:
        return name
    ids = [c.id for c in library.list()]
    for cap_id, tool in tool_names(ids).items():
        if tool == name:
            return cap_id
    from symbiont.library import CapabilityNotFound

    raise CapabilityNotFound(f"no capability has the tool name {name!r}")


def run_tool_call(
    library: Library, name: str, arguments: Mapping[str, Any] | str | None
) -> RunResult:
    """Route a model's tool call (name and arguments, a dict or JSON text) to `Library.run`."""
    args: Mapping[str, Any] | str = {} if arguments is None or arguments == "" else arguments
    return library.run(resolve_tool_name(library, name), args)


def tool_result_text(result: RunResult) -> str:
    """A run's outcome as the JSON text a tool result message carries back to a model."""
    if result.ok:
        return json.dumps({"ok": True, "output": result.output}, ensure_ascii=False)
    return json.dumps(
        {"ok": False, "error": {"kind": result.error_kind, "message": result.error}},
        ensure_ascii=False,
    )
