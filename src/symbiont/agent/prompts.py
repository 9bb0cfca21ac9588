"""Every prompt the agents send, as named `str.format` templates.

They live in one dict, `TEMPLATES`, so that `symbiont prompts` shows users exactly what the
model is told (names there are prefixed with `agent.`). `render(name, **fields)` fills one
and fails loudly, naming the missing field, instead of sending a half-filled prompt.
"""

from __future__ import annotations

from typing import Any

from symbiont.errors import SymbiontError

TASK_SYSTEM = """\
You are a task agent. You solve the user's task by running capabilities: small, tested Python
functions kept in a library. Each capability takes a JSON object of named arguments that
fits its input schema and returns JSON.

How to work:
- Pick the capability that fits the task from the candidates listed with the task and call
  it: each candidate is also a tool of its own (its name is given as "tool"), whose
  arguments are the capability's input; run_capability(capability_id, input) does the same.
  Use only ids you were shown.
- Call tools through the tool-calling interface. A tool call written in your reply's text is
  not an answer. Never write a tool's result yourself: only a tool call produces one.
- If none fits, call search_capabilities(query) with other words before giving up.
- If still none fits, call create_capability(task_description) to have a new one written and
  tested, then run it. If one almost fits, call mutate_capability(parent_id,
  task_description) to derive a new version from it (set replace_parent to true only when the
  new version should retire the old one, for example because the old one is broken).
- A tool answers with JSON: {{"ok": true, ...}} or {{"ok": false, "error": {{"kind": ...,
  "message": ...}}}}. Read errors and correct your call; do not repeat a call that failed
  the same way.
- Capabilities that change data are offered only when the task asks for a change.
- When you have what the task asks for, answer in plain text, without calling a tool. Base
  the answer only on what the capabilities returned; quote the figures exactly. If a
  capability returned an error (for example an unknown id), say so."""

TASK_USER = """\
Task: {task}

{candidates}"""

TASK_CANDIDATES = """\
Capabilities that may fit, best match first:
{listing}"""

TASK_NO_CANDIDATES = """\
No capability in the library matches this task yet. Search with other words, or create one."""

TASK_CANDIDATE = """\
- id: {id}
  tool: {tool}
  summary: {summary}
  input schema: {input_schema}"""

TASK_EMPTY_REPLY = """\
Your reply had neither text nor a tool call. Call a tool, or answer the task in plain text."""

TASK_UNVERIFIED = """\
You answered without running a capability, so the answer is not based on any data. If the
task needs data, call one of the tools now ({tools}); do not write results yourself. If the
task really needs no capability, give the answer again."""

TASK_COMPOSE_SYSTEM = """\
You answer a question from data that a program has already looked up. Reply in plain
text, in one to three sentences: the answer, with the figures and names exactly as they
appear in the data. If the data is an error (for example an unknown id), say so. Do not
write JSON, code or tool calls; the data is complete, nothing more can be looked up."""

TASK_COMPOSE_USER = """\
Question: {task}

Data returned for it:
{results}

Answer the question from this data, in plain text."""

TASK_TEXT_CALL_UNKNOWN = """\
Your reply contains a tool call to '{called}' written as text. Nothing was run: there is no
tool '{called}'. The tools are: {tools}. Call one of them through the tool-calling interface."""

TASK_TEXT_CALL_BROKEN = """\
Your reply contains a call to {called} written as text, and it could not be read: {problem}.
Nothing was run. Call the tool through the tool-calling interface, with its arguments as one
JSON object. The tools are: {tools}."""

MUTATION_SYSTEM = """\
You are a capability author. You write one Python capability that does what the task asks,
then build it, test it, and complete it. A capability is a module with one public entry
function whose parameters and return value are typed with JSON-compatible types (str, int,
float, bool, None, list[...], dict[str, ...], TypedDict, dataclasses); its input schema is
derived from those type hints. The docstring of the entry function says what it does.

Rules for the code:
- It runs in a sandbox: no os, sys, subprocess, socket, open(), eval or exec. The only way
  out is `from symbiont.host import read_file, write_file, list_files, http_get, now_ms, log`.
- read_file(name) / write_file(name, text) work inside the capability's data folder only,
  with names relative to it (for example read_file("employee_database.json")); they need the
  read_files / write_files permissions, which you declare with write_source(...,
  permissions={{"data": FOLDER, "read_files": true, "write_files": false}}).
- Signal failure by raising an exception with a clear message (for example LookupError for
  an unknown id); the caller sees it.

Tools, in the order you normally use them:
- read_capability(id) and list_capabilities(query): look at existing capabilities and reuse
  their code and data layout.
- write_source(code, entry?, permissions?): set the current source (the whole module).
- build(): parse, signature and schema, policy and type check of the current source.
- test(input?, examples?): run the examples (and the given input) in the sandbox, on a copy of
  the data folder. An example is {{"input": {{...}}, "expect": VALUE}} or {{"input": {{...}},
  "check": {{"contains": ..., "keys": [...], "expr": "...", "error": "..."}}}}.
- complete(summary, examples): store the capability. Allowed only after build() and test()
  passed on the latest source. The summary is what search matches: say what it does, what it
  takes and what it returns, in words a user's task would use."""

MUTATION_USER = """\
Task for the new capability: {task}
{parent}
Data folders that exist: {data_folders}
{existing}"""

MUTATION_PARENT = """
Start from the existing capability `{id}` (version {version}, status {status}); the new one
is stored as a new capability with `{id}` as its parent{replace_note}.
Its summary: {summary}
Its permissions: {permissions}
Its examples (they are run by test() when they still fit the new input schema):
{examples}
Its source:
```python
{source}
```
"""

MUTATION_EXISTING = """\
Capabilities that already exist and may have code or data layout to reuse:
{listing}"""

MUTATION_NUDGE = """\
Use the tools: write_source, build, test, then complete. Reply with a tool call."""

MUTATION_REPEATED_ERROR = """\
Hint: this is the same error for the third time in a row:
{error}
Your last changes did not address it. Re-read the message, look at the line it points to, and
change your approach (for example read an existing capability with read_capability to see
how it reads its data) instead of making the same edit again."""

MUTATION_RESET = """\
Note: you submitted exactly the same code as before, which already failed with:
{error}
The conversation was restarted so you can take a fresh approach. Do not submit that code
again; write a different version that fixes the problem above."""

MUTATION_COMPLETE_REFUSED = """\
complete() refused: {reason}"""

TEMPLATES: dict[str, str] = {
    "task.system": TASK_SYSTEM,
    "task.user": TASK_USER,
    "task.candidates": TASK_CANDIDATES,
    "task.candidate": TASK_CANDIDATE,
    "task.no_candidates": TASK_NO_CANDIDATES,
    "task.empty_reply": TASK_EMPTY_REPLY,
    "task.unverified": TASK_UNVERIFIED,
    "task.compose_system": TASK_COMPOSE_SYSTEM,
    "task.compose_user": TASK_COMPOSE_USER,
    "task.text_call_unknown": TASK_TEXT_CALL_UNKNOWN,
    "task.text_call_broken": TASK_TEXT_CALL_BROKEN,
    "mutation.system": MUTATION_SYSTEM,
    "mutation.user": MUTATION_USER,
    "mutation.parent": MUTATION_PARENT,
    "mutation.existing": MUTATION_EXISTING,
    "mutation.nudge": MUTATION_NUDGE,
    "mutation.repeated_error": MUTATION_REPEATED_ERROR,
    "mutation.reset": MUTATION_RESET,
    "mutation.complete_refused": MUTATION_COMPLETE_REFUSED,
}


def render(name: str, **fields: Any) -> str:
    """Template `name` filled with `fields`; a missing field is a clear error, not a KeyError."""
    try:
        template = TEMPLATES[name]
    except KeyError:
        raise SymbiontError(
            f"no agent prompt template {name!r}; known: {', '.join(sorted(TEMPLATES))}"
        ) from None
    try:
        return template.format(**fields)
    except KeyError as exc:
        raise SymbiontError(f"prompt template {name!r} needs the field {exc.args[0]!r}") from None
