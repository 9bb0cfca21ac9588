"""Tools as the model sees them (OpenAI tool-calling format) and the plumbing around them.

A model's tool call can be wrong in every way: arguments that are not JSON, not an object,
missing a field, of the wrong type, naming a tool that does not exist. None of that may crash
an agent. `parse_arguments` turns each into a `ToolError`, and `error_result` renders it as
the tool's answer, so the model reads what was wrong and corrects its next call.

Every tool answer is JSON: `{"ok": true, ...}` or
`{"ok": false, "error": {"kind": ..., "message": ...}}`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from symbiont.library.jsonschema import validate
from symbiont.models.base import Message, ModelReply

__all__ = [
    "MUTATION_TOOLS",
    "TASK_TOOLS",
    "Tool",
    "ToolError",
    "assistant_message",
    "error_result",
    "ok_result",
    "parse_arguments",
    "tool_message",
    "tool_specs",
]

# Tool answers longer than this are cut (with a note) so one huge output cannot fill the
# model's context window.
MAX_RESULT_CHARS = 12_000


@dataclass(frozen=True, slots=True)
class Tool:
    """One tool: its name, what it is for, and the JSON Schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]

    def spec(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


class ToolError(Exception):
    """A tool call that cannot be carried out; its message goes back to the model."""

    def __init__(self, kind: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.extra: dict[str, Any] = extra


def _obj(properties: dict[str, Any], required: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


_EXAMPLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        'One test: {"input": {...}, "expect": VALUE} or {"input": {...}, "check": '
        '{"contains": ..., "keys": [...], "expr": "...", "error": "..."}}'
    ),
    "properties": {
        "input": {"type": "object"},
        "expect": {},
        "check": {"type": "object"},
        "name": {"type": "string"},
    },
    "required": ["input"],
}

TASK_TOOLS: tuple[Tool, ...] = (
    Tool(
        "search_capabilities",
        "Search the capability library for more candidates (best match first).",
        _obj(
            {
                "query": {"type": "string", "description": "what the capability should do"},
                "k": {"type": "integer", "minimum": 1, "maximum": 20},
            },
            ["query"],
        ),
    ),
    Tool(
        "run_capability",
        "Run a capability on a JSON object of named arguments fitting its input schema; "
        "returns its output or an error.",
        _obj(
            {
                "capability_id": {"type": "string"},
                "input": {"type": "object", "description": "the named arguments"},
            },
            ["capability_id", "input"],
        ),
    ),
    Tool(
        "create_capability",
        "Have a new capability written, built and tested for a task no capability fits; "
        "returns the new capability's id and input schema.",
        _obj(
            {
                "task_description": {
                    "type": "string",
                    "description": "what the new capability must do, its inputs and outputs",
                }
            },
            ["task_description"],
        ),
    ),
    Tool(
        "mutate_capability",
        "Have a new version of an existing capability written (it keeps the old one as its "
        "parent); returns the new capability's id.",
        _obj(
            {
                "parent_id": {"type": "string"},
                "task_description": {"type": "string"},
                "replace_parent": {
                    "type": "boolean",
                    "description": "retire the parent (it becomes legacy) once the new one is stored",
                },
            },
            ["parent_id", "task_description"],
        ),
    ),
)

MUTATION_TOOLS: tuple[Tool, ...] = (
    Tool(
        "read_capability",
        "Read an existing capability: source, summary, schemas, examples, permissions.",
        _obj({"id": {"type": "string"}}, ["id"]),
    ),
    Tool(
        "list_capabilities",
        "List existing capabilities that match a query (id and summary).",
        _obj({"query": {"type": "string"}}, ["query"]),
    ),
    Tool(
        "write_source",
        "Set the current source: the whole Python module of the capability.",
        _obj(
            {
                "code": {"type": "string"},
                "entry": {
                    "type": "string",
                    "description": "the entry function (default: the only public function)",
                },
                "permissions": {
                    "type": "object",
                    "properties": {
                        "data": {"type": "string", "description": "data folder name"},
                        "read_files": {"type": "boolean"},
                        "write_files": {"type": "boolean"},
                    },
                    "additionalProperties": False,
                },
            },
            ["code"],
        ),
    ),
    Tool(
        "build",
        "Check the current source: parse, signature and schema, policy, type check.",
        _obj({}),
    ),
    Tool(
        "test",
        "Run the examples (and an optional input) in the sandbox on a copy of the data folder.",
        _obj(
            {
                "input": {"type": "object", "description": "one extra input to try"},
                "examples": {
                    "type": "array",
                    "items": _EXAMPLE_SCHEMA,
                    "description": "the examples to test (they replace the previous set)",
                },
            }
        ),
    ),
    Tool(
        "complete",
        "Store the capability; allowed after build and test passed on the latest source.",
        _obj(
            {
                "summary": {
                    "type": "string",
                    "description": "what it does, what it takes, what it returns",
                },
                "examples": {"type": "array", "items": _EXAMPLE_SCHEMA},
            },
            ["summary"],
        ),
    ),
)


def tool_specs(tools: Sequence[Tool]) -> list[dict[str, Any]]:
    return [t.spec() for t in tools]


def parse_arguments(tool: Tool, raw: str) -> dict[str, Any]:
    """The call's arguments as a dict that fits the tool's schema, or a `ToolError` saying why not.

    An empty string counts as `{}` (some servers send that for argument-less calls).
    """
    text = raw.strip()
    if not text:
        value: Any = {}
    else:
        try:
            value = _strict_json(text)
        except ValueError as exc:
            raise ToolError(
                "invalid_json",
                f"the arguments of {tool.name} are not valid JSON ({exc}); send one JSON "
                f"object, for example {_example_call(tool)}",
                received=_cut(raw, 300),
            ) from None
    if not isinstance(value, dict):
        raise ToolError(
            "invalid_arguments",
            f"the arguments of {tool.name} must be a JSON object, not {type(value).__name__}; "
            f"for example {_example_call(tool)}",
        )
    problems = validate(value, tool.parameters, what="argument")
    if problems:
        raise ToolError(
            "invalid_arguments",
            f"invalid arguments for {tool.name}: " + "; ".join(problems[:4]),
            expected=tool.parameters,
        )
    return value


def _strict_json(text: str) -> Any:
    """JSON read as strictly as capability inputs are (NaN, Infinity, overflowing numbers and
    duplicate keys refused: `symbiont.sandbox.base.parse_input`); ValueError says why, with
    the line and column of a syntax error."""
    from symbiont.errors import CapabilityError
    from symbiont.sandbox.base import parse_input

    try:
        return parse_input(text)
    except CapabilityError as exc:
        try:
            json.loads(text)
        except json.JSONDecodeError as syntax:
            raise ValueError(
                f"{syntax.msg} at line {syntax.lineno}, column {syntax.colno}"
            ) from None
        except (ValueError, RecursionError):
            pass
        raise ValueError(str(exc).removeprefix("the input is not valid JSON: ")) from None


def _example_call(tool: Tool) -> str:
    props = tool.parameters.get("properties", {})
    sample: dict[str, Any] = {}
    for name in tool.parameters.get("required", []):
        kind = props.get(name, {}).get("type")
        sample[name] = {"string": "...", "object": {}, "array": [], "boolean": False}.get(
            str(kind), "..."
        )
    return json.dumps(sample)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _dumps(payload: Mapping[str, Any]) -> str:
    text = json.dumps(payload, ensure_ascii=False, default=str)
    if len(text) <= MAX_RESULT_CHARS:
        return text
    # Too long: keep the head, valid JSON either way.
    return json.dumps(
        {
            "ok": payload.get("ok", False),
            "truncated": True,
            "note": f"the result was {len(text)} characters; showing the first {MAX_RESULT_CHARS}",
            "head": text[:MAX_RESULT_CHARS],
        },
        ensure_ascii=False,
    )


def ok_result(**payload: Any) -> str:
    return _dumps({"ok": True, **payload})


def error_result(error: ToolError) -> str:
    body: dict[str, Any] = {"kind": error.kind, "message": error.message}
    return _dumps({"ok": False, "error": body, **error.extra})


@dataclass(slots=True)
class ToolOutcome:
    """What running one tool produced: the text for the model and facts for the transcript."""

    content: str
    ok: bool
    duration_s: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)


def assistant_message(reply: ModelReply) -> Message:
    """The model's reply as the OpenAI `assistant` message that goes back into the history."""
    message: Message = {"role": "assistant", "content": reply.text or None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in reply.tool_calls
        ]
    elif message["content"] is None:
        message["content"] = ""
    return message


def tool_message(call_id: str, content: str) -> Message:
    return {"role": "tool", "tool_call_id": call_id, "content": content}
