"""Tool calls a model wrote as text instead of making them.

Small models often reply with the call itself as plain text, sometimes in a ```json fence,
sometimes as broken JSON:

    {"name": "get_salary_details", "arguments": {"employee_id": "E042"}}
    ```json
    {'name': 'run_capability', 'arguments': {'capability_id': 'x', 'input': {}},}
    ```

Such a reply is not an answer. `find_text_calls` finds every tool-call-shaped object in a
reply (JSON that parses, after a few conservative repairs, into an object with a `name` and
its `arguments`, in the common spellings), and reports the ones that could not be read, so
the agent can run the call or send it back. An answer that merely quotes a JSON output (no
`name` with `arguments`) is not tool-call-shaped and stays an answer. A reply that is
nothing but a Python-style call of a known tool, `get_salary_details(employee_id="E042")`
(keyword arguments with literal values), counts as a call too; the same words inside prose
do not.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from symbiont import pyast

__all__ = ["TextCall", "find_text_calls"]

_MAX_CALLS = 4
_FENCE = re.compile(r"```[A-Za-z0-9_-]*\s*\n?(.*?)```", re.DOTALL)
_NAME_KEYS = ("name", "tool", "tool_name", "function_name")
_ARG_KEYS = ("arguments", "parameters", "args", "input", "tool_input")
# A name in text we could not parse as JSON: "name": "x" or 'name': 'x'
_LOOSE_NAME = re.compile(
    r"""["']?(?:name|tool|tool_name)["']?\s*:\s*["']([A-Za-z0-9_.\-]{1,80})["']"""
)
_LOOSE_ARGS = re.compile(r"""["']?(?:arguments|parameters|args)["']?\s*:""")


@dataclass(frozen=True, slots=True)
class TextCall:
    """One tool call found in a reply's text.

    `arguments` is JSON text of an object when the call could be read (`problem` is None);
    otherwise `problem` says what was wrong and `name` is what could be made out (or None).
    """

    name: str | None
    arguments: str
    raw: str
    problem: str | None = None

    @property
    def readable(self) -> bool:
        return self.problem is None and self.name is not None


def find_text_calls(text: str, known: Collection[str] = ()) -> list[TextCall]:
    """The tool-call-shaped objects in `text`, in order (at most a few); `known`: tool names
    a reply may call in Python syntax."""
    calls: list[TextCall] = []
    seen: set[str] = set()
    unreadable: list[str] = []
    for chunk in _json_chunks(text):
        value, _problem = _lenient_loads(chunk)
        if value is None:
            unreadable.append(chunk)
            continue
        for call in _calls_in(value, chunk):
            key = f"{call.name}\0{call.arguments}"
            if key not in seen:
                seen.add(key)
                calls.append(call)
        if len(calls) >= _MAX_CALLS:
            return calls[:_MAX_CALLS]
    if not calls and known:
        python_call = _python_call(text, known)
        if python_call is not None:
            return [python_call]
    if not calls:
        for chunk in unreadable:
            match = _LOOSE_NAME.search(chunk)
            if match and _LOOSE_ARGS.search(chunk):
                calls.append(
                    TextCall(
                        match.group(1),
                        "",
                        chunk,
                        "its JSON is broken (unbalanced brackets or quotes, or stray text)",
                    )
                )
                break
    return calls


_WRAPPERS = re.compile(r"^```[A-Za-z0-9_-]*\s*|\s*```$|</?tool_call>")


def _python_call(text: str, known: Collection[str]) -> TextCall | None:
    """A reply that is only `name(key=literal, ...)` for a known tool name."""
    body = _WRAPPERS.sub("", text.strip()).strip().rstrip(";")
    if not body.endswith(")") or "\n" in body.strip():
        return None
    try:
        node = pyast.parse(body, mode="eval").body
    except SyntaxError:
        return None
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        return None
    if node.func.id not in known or node.args:
        return None
    arguments: dict[str, Any] = {}
    for keyword in node.keywords:
        if keyword.arg is None:
            return None
        try:
            arguments[keyword.arg] = pyast.literal_eval(keyword.value)
        except ValueError:
            return None
    try:
        encoded = json.dumps(arguments, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return None
    return TextCall(node.func.id, encoded, text)


def _json_chunks(text: str) -> Iterator[str]:
    """Fenced blocks first, then every top-level `{...}` span (an unclosed one runs to the end)."""
    for match in _FENCE.finditer(text):
        body = match.group(1).strip()
        if body.startswith(("{", "[")):
            yield body
    rest = _FENCE.sub(" ", text)
    i = 0
    while True:
        start = rest.find("{", i)
        if start < 0:
            return
        end = _matching_brace(rest, start)
        if end is None:
            # unclosed: drop trailing prose or tags ("...}}</tool_call>") after the last bracket
            tail = rest[start:]
            last = max(tail.rfind("}"), tail.rfind("]"), tail.rfind('"'))
            yield (tail[: last + 1] if last > 0 else tail).strip()
            return
        yield rest[start : end + 1]
        i = end + 1


def _matching_brace(text: str, start: int) -> int | None:
    depth = 0
    quote: str | None = None
    escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if quote is not None:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
            continue
        if ch in "\"'":
            # an apostrophe inside words ("don't") is not a quote
            if ch == "'" and i > 0 and text[i - 1].isalnum():
                continue
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
    return None


def _lenient_loads(chunk: str) -> tuple[Any, str | None]:
    """JSON of `chunk`, trying a few repairs a small model needs; (None, why) when hopeless."""
    attempts = [chunk]
    repaired = re.sub(r",\s*([}\]])", r"\1", chunk)  # trailing commas
    repaired = re.sub(r"\bTrue\b", "true", repaired)
    repaired = re.sub(r"\bFalse\b", "false", repaired)
    repaired = re.sub(r"\bNone\b", "null", repaired)
    attempts.append(repaired)
    if '"' not in repaired and "'" in repaired:
        attempts.append(repaired.replace("'", '"'))
    closed = _close_brackets(repaired)
    if closed != repaired:
        attempts.append(closed)
    last_error = "not JSON"
    for attempt in attempts:
        try:
            return json.loads(attempt), None
        except ValueError as exc:
            last_error = str(exc)
    return None, last_error


def _close_brackets(text: str) -> str:
    """`text` with missing closing brackets appended (outside strings), if that is all it lacks."""
    stack: list[str] = []
    quote = False
    escaped = False
    for ch in text:
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quote = False
            continue
        if ch == '"':
            quote = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and (not stack or stack.pop() != ch):
            return text
    if quote:
        return text
    return text + "".join(reversed(stack))


def _calls_in(value: Any, raw: str) -> Iterator[TextCall]:
    if isinstance(value, list):
        for item in value[:_MAX_CALLS]:
            yield from _calls_in(item, raw)
        return
    if not isinstance(value, dict):
        return
    if isinstance(value.get("tool_calls"), list):
        yield from _calls_in(value["tool_calls"], raw)
        return
    if isinstance(value.get("function"), dict):
        yield from _calls_in(value["function"], raw)
        return
    name = next((value[k] for k in _NAME_KEYS if isinstance(value.get(k), str)), None)
    key = next((k for k in _ARG_KEYS if k in value), None)
    if name is None or key is None:
        return
    args = value[key]
    if isinstance(args, str):
        parsed, problem = _lenient_loads(args) if args.strip() else ({}, None)
        if problem is not None or not isinstance(parsed, dict):
            yield TextCall(name, args, raw, "its arguments are a string that is not a JSON object")
            return
        args = parsed
    if not isinstance(args, dict):
        yield TextCall(name, json.dumps(args), raw, "its arguments are not a JSON object")
        return
    yield TextCall(name, json.dumps(args, ensure_ascii=False), raw)
