"""Helpers for scripting the model side of agent conversations in tests.

A scripted "model" here is a function of the request (what the agent sent), so it reacts to
what actually happened — tool results, offered candidates — like a real model would,
instead of replaying a fixed list that would pass whatever the agent did.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

HR_EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "hr"
MUTATION_MARK = "You are a capability author"


def call(name: str, **arguments: Any) -> dict[str, Any]:
    """One tool call for `FakeOpenAIServer` replies."""
    return {"name": name, "arguments": arguments}


def raw_call(name: str, raw: str) -> dict[str, Any]:
    """A tool call with raw (possibly malformed) argument text."""
    return {"name": name, "arguments": raw}


def is_mutation(messages: Sequence[Mapping[str, Any]]) -> bool:
    return bool(messages) and str(messages[0].get("content", "")).startswith(MUTATION_MARK)


def user_prompt(messages: Sequence[Mapping[str, Any]]) -> str:
    return next(str(m["content"]) for m in messages if m["role"] == "user")


def tool_results(messages: Sequence[Mapping[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(tool name, parsed result) for every tool answer in the conversation, in order."""
    names: dict[str, str] = {}
    out: list[tuple[str, dict[str, Any]]] = []
    for m in messages:
        if m["role"] == "assistant":
            for c in m.get("tool_calls") or ():
                names[c["id"]] = c["function"]["name"]
        elif m["role"] == "tool":
            out.append((names.get(m["tool_call_id"], "?"), json.loads(m["content"])))
    return out


def last_result(messages: Sequence[Mapping[str, Any]]) -> tuple[str, dict[str, Any]] | None:
    results = tool_results(messages)
    return results[-1] if results else None


def salary_brain(request: dict[str, Any]) -> Any:
    """A model that searches for the salary capability, runs the best hit for E042 and
    answers from its output (as `FakeOpenAIServer.handler`)."""
    last = last_result(request["messages"])
    if last is None:
        return [call("search_capabilities", query="salary of an employee")]
    name, body = last
    if name == "search_capabilities":
        best = body["capabilities"][0]["id"]
        return [call("run_capability", capability_id=best, input={"employee_id": "E042"})]
    out = body["output"]
    return f"Employee {out['employee_id']} ({out['name']}) earns {out['base']} {out['currency']}."
