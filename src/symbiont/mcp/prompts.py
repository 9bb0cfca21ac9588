"""The library's system prompt, as the MCP server offers it (`prompts/get capability_library`).

It tells an outside agent what the task agent's system prompt tells symbiont's own agent,
in the names of the MCP tools; with a `task`, the capabilities that fit it follow.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from symbiont.library import SearchResult

PROMPT_NAME = "capability_library"
PROMPT_DESCRIPTION = (
    "How to use the symbiont capability library: find a tested capability for a task, run it "
    "in the sandbox, read its errors, and (when the server has a model) have a new one "
    "written. Give `task` to get the capabilities that fit it."
)

SYSTEM = """\
You have a library of capabilities: small, tested Python functions that run in a sandbox.
Each takes a JSON object of named arguments that fits its input schema and returns JSON.

How to work:
- Call search_capabilities(query, k) with the task in words; it returns the best-fitting
  capabilities with their ids, summaries and input schemas. Use only ids you were shown.
- Call run_capability(id, input) with an input object that fits the capability's input
  schema.{direct}
- get_capability(id) shows a capability's source, schemas, examples and statistics; the
  resource capability://ID holds the same.
- A failed call comes back as an error result with a message saying what to change: a field
  the schema rejects, an unknown id (with ids that are close), a deprecated capability (it
  failed too often: search for another), a timeout or a denied permission. Correct the call;
  do not repeat a call that failed the same way.
- Base your answer only on what the capabilities returned; quote figures exactly.{authoring}"""

_DIRECT = """ Some capabilities are also tools of their own (named after their id);
  calling one is the same as run_capability."""
_AUTHORING = """
- If no capability fits, create_capability(task) has a new one written, built and tested
  (it is stored only when its tests pass); mutate_capability(id, task) derives a new version
  from one that almost fits."""


def system_prompt(*, direct_tools: bool, authoring: bool) -> str:
    return SYSTEM.format(
        direct=_DIRECT if direct_tools else "", authoring=_AUTHORING if authoring else ""
    )


def candidates_text(task: str, hits: Sequence[SearchResult]) -> str:
    if not hits:
        return f"Task: {task}\n\nNo capability in the library matches this task yet."
    lines = [f"Task: {task}", "", "Capabilities that may fit, best match first:"]
    for hit in hits:
        cap = hit.capability
        lines.append(f"- id: {cap.id}")
        lines.append(f"  summary: {' '.join(cap.summary.split())}")
        lines.append(f"  input schema: {json.dumps(cap.input_schema, ensure_ascii=False)}")
    return "\n".join(lines)
