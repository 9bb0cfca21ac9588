"""`symbiont agent --demo`: the whole loop on the HR library, with a scripted model.

Three tasks, so a user without any model server can watch every part of the loop:

1. "What is employee E042's salary?" — retrieve → run `get_salary_details` → answer;
2. "What is the average base salary in the Engineering department?" — no capability fits →
   create → the mutation agent writes code that fails the build (a type error), then code
   that builds but fails a test, then code that passes both → complete → stored → run;
3. the same task again — the new capability is retrieved and reused; no mutation agent.

The "model" is a `ScriptedModel` whose replies are functions of the conversation: it reads
the candidates it was offered and the tool results it got back, as a real model would. The
agents, the library, the pipeline, the sandbox and the transcripts are all the real ones.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.rule import Rule
from rich.table import Table

from symbiont.agent._recorder import AgentEvent
from symbiont.agent.prompts import render
from symbiont.agent.task import Agent, AgentResult
from symbiont.errors import SymbiontError
from symbiont.models.base import Message, ModelReply, ToolCall, Usage
from symbiont.models.scripted import ScriptedModel

__all__ = [
    "DEMO_TASKS",
    "DemoReport",
    "EventPrinter",
    "default_demo_home",
    "find_hr_examples",
    "run_demo",
    "scripted_demo_model",
]

SALARY_TASK = "What is employee E042's salary?"
AVERAGE_TASK = "What is the average base salary in the Engineering department?"
DEMO_TASKS: tuple[str, ...] = (SALARY_TASK, AVERAGE_TASK, AVERAGE_TASK)
NEW_ID = "department_average_salary"

_HEADER = '''\
import json
from typing import TypedDict

from symbiont.host import read_file


class DepartmentPay(TypedDict):
    department: str
    employees: int
    average_base: float
    currency: str


def department_average_salary(department: str) -> DepartmentPay:
    """Average base salary of the employees of one department."""
    db = json.loads(read_file("employee_database.json"))
'''

# First try: returns a string where the declared type says float — the type check says no.
_SOURCE_TYPE_ERROR = (
    _HEADER
    + """\
    people = [e for e in db["employees"].values() if e["department"] == department]
    total = sum(e["salary"]["base"] for e in people)
    return {
        "department": department,
        "employees": len(people),
        "average_base": f"{total / len(people):.2f}",
        "currency": "EUR",
    }
"""
)

# Second try: builds, but an unknown department divides by zero instead of saying so.
_SOURCE_NO_GUARD = (
    _HEADER
    + """\
    people = [e for e in db["employees"].values() if e["department"] == department]
    total = sum(float(e["salary"]["base"]) for e in people)
    return {
        "department": department,
        "employees": len(people),
        "average_base": round(total / len(people), 2),
        "currency": "EUR",
    }
"""
)

# Third try: right.
_SOURCE_RIGHT = (
    _HEADER
    + """\
    wanted = department.strip().lower()
    people = [e for e in db["employees"].values() if e["department"].lower() == wanted]
    if not people:
        raise LookupError(f"no employees in a department called {department!r}")
    total = sum(float(e["salary"]["base"]) for e in people)
    return {
        "department": people[0]["department"],
        "employees": len(people),
        "average_base": round(total / len(people), 2),
        "currency": people[0]["salary"]["currency"],
    }
"""
)

_SUMMARY = (
    "Average base salary of the employees in one department: takes a department name such as "
    "Engineering or Sales and returns the average annual base pay, the currency and how many "
    "employees were counted."
)
_EXAMPLES = [
    {
        "name": "Engineering",
        "input": {"department": "Engineering"},
        "check": {
            "keys": ["average_base", "employees", "currency"],
            "expr": "output['department'] == 'Engineering' and output['average_base'] > 0",
        },
    },
    {
        "name": "unknown department",
        "input": {"department": "Astrology"},
        "check": {"error": "no employees"},
    },
]
_MUTATION_PLAN: tuple[tuple[str, dict[str, Any]], ...] = (
    ("read_capability", {"id": "get_salary_details"}),
    (
        "write_source",
        {"code": _SOURCE_TYPE_ERROR, "permissions": {"data": "hr", "read_files": True}},
    ),
    ("build", {}),
    ("write_source", {"code": _SOURCE_NO_GUARD}),
    ("build", {}),
    ("test", {"examples": _EXAMPLES}),
    ("write_source", {"code": _SOURCE_RIGHT}),
    ("build", {}),
    ("test", {}),
    ("complete", {"summary": _SUMMARY, "examples": _EXAMPLES}),
)


# -- the scripted model ---------------------------------------------------------------------


def _tool_results(messages: Sequence[Message]) -> list[tuple[str, dict[str, Any]]]:
    names: dict[str, str] = {}
    out: list[tuple[str, dict[str, Any]]] = []
    for m in messages:
        if m.get("role") == "assistant":
            for c in m.get("tool_calls") or ():
                names[c["id"]] = c["function"]["name"]
        elif m.get("role") == "tool":
            try:
                body = json.loads(m.get("content") or "{}")
            except ValueError:
                body = {}
            out.append((names.get(m.get("tool_call_id", ""), "?"), body))
    return out


def _reply(
    messages: Sequence[Message], text: str = "", calls: Sequence[tuple[str, Any]] = ()
) -> ModelReply:
    n = sum(1 for m in messages if m.get("role") == "assistant")
    prompt = sum(len(str(m.get("content") or "")) for m in messages)
    tool_calls = tuple(
        ToolCall(f"call_{n}_{i}", name, json.dumps(args)) for i, (name, args) in enumerate(calls)
    )
    written = len(text) + sum(len(c.arguments) for c in tool_calls)
    return ModelReply(
        text=text,
        tool_calls=tool_calls,
        usage=Usage((prompt + 3) // 4, (written + 3) // 4),
        model="scripted-demo",
        finish_reason="tool_calls" if tool_calls else "stop",
    )


def _task_turn(messages: list[Message]) -> ModelReply:
    user = next(str(m["content"]) for m in messages if m.get("role") == "user")
    task = user.splitlines()[0]
    offered = re.findall(r"^- id: (\S+)", user, re.MULTILINE)
    results = _tool_results(messages)
    if not results:
        if "average" in task.lower():
            if NEW_ID in offered:
                return _reply(
                    messages,
                    calls=[
                        (
                            "run_capability",
                            {"capability_id": NEW_ID, "input": {"department": "Engineering"}},
                        )
                    ],
                )
            return _reply(messages, calls=[("create_capability", {"task_description": _SUMMARY})])
        employee = re.search(r"\bE\d{3}\b", task)
        if "get_salary_details" in offered and employee:
            return _reply(
                messages,
                calls=[
                    (
                        "run_capability",
                        {
                            "capability_id": "get_salary_details",
                            "input": {"employee_id": employee.group()},
                        },
                    )
                ],
            )
        return _reply(messages, "None of the offered capabilities fits this task.")
    name, body = results[-1]
    if not body.get("ok"):
        message = body.get("error", {}).get("message", "unknown error")
        return _reply(messages, f"I could not complete the task: {message}")
    if name == "create_capability":
        return _reply(
            messages,
            calls=[
                (
                    "run_capability",
                    {
                        "capability_id": body["capability_id"],
                        "input": {"department": "Engineering"},
                    },
                )
            ],
        )
    out = body.get("output", {})
    if "average_base" in out:
        return _reply(
            messages,
            f"The average base salary in {out['department']} is {out['average_base']:,} "
            f"{out['currency']} ({out['employees']} employees).",
        )
    return _reply(
        messages,
        f"{out['name']} ({out['employee_id']}) earns a base salary of {out['base']:,} "
        f"{out['currency']} a year, paid {out['pay_frequency']}, grade {out['pay_grade']}.",
    )


def _mutation_turn(messages: list[Message]) -> ModelReply:
    done = len(_tool_results(messages))
    if done >= len(_MUTATION_PLAN):
        return _reply(messages, "I have nothing more to try.")
    name, args = _MUTATION_PLAN[done]
    return _reply(messages, calls=[(name, args)])


def _turn(messages: list[Message]) -> ModelReply:
    system = str(messages[0].get("content", "")) if messages else ""
    if system == render("mutation.system"):
        return _mutation_turn(messages)
    return _task_turn(messages)


def scripted_demo_model(turns: int = 200) -> ScriptedModel:
    """The demo's model: a `ScriptedModel` whose every reply reads the conversation."""
    return ScriptedModel([_turn] * turns)


# -- printing -------------------------------------------------------------------------------

_LABELS = {
    "run_capability": "run",
    "search_capabilities": "search",
    "create_capability": "create",
    "mutate_capability": "mutate",
    "read_capability": "read",
    "list_capabilities": "list",
    "write_source": "write",
    "build": "build",
    "test": "test",
    "complete": "complete",
}


@dataclass
class EventPrinter:
    """Prints agent events as they happen: one line per step, mutation steps indented."""

    console: Console
    show_model: bool = True
    created: set[str] = field(default_factory=set)  # by an earlier task: running one is reuse
    _new: set[str] = field(default_factory=set)  # by the current task

    def __call__(self, event: AgentEvent) -> None:
        indent = "    " if event.agent == "mutation" else ""
        c = self.console
        if event.kind == "retrieve" and event.agent == "task":
            self.created |= self._new
            self._new = set()
        if event.kind == "retrieve":
            c.print(f"{indent}[bold cyan]retrieve[/]  {escape(event.summary.split(': ', 1)[-1])}")
        elif event.kind == "model":
            if self.show_model:
                tokens = (
                    f"{event.data.get('input_tokens', 0)}→{event.data.get('output_tokens', 0)} tok"
                )
                c.print(f"{indent}[dim]model     {escape(event.summary[8:])}  ({tokens})[/]")
        elif event.kind == "tool":
            self._tool(event, indent)
        elif event.kind == "start":
            label = "mutate" if event.data.get("parent") else "create"
            task = _cut(event.summary.split(": ", 1)[-1], 90)
            c.print(f"[bold]{label:<9}[/] [magenta]→ mutation agent:[/] {escape(task)}")
        elif event.kind == "end":
            c.print(f"{indent}[magenta]stored[/]    {escape(str(event.data.get('capability_id')))}")
        elif event.kind == "note":
            c.print(f"{indent}[yellow]note[/]      {escape(event.summary)}")
        elif event.kind == "retry":
            c.print(f"{indent}[yellow]retry[/]     {escape(event.summary)}")
        elif event.kind == "answer":
            c.print(f"[bold green]answer[/]    {escape(event.summary)}")
        elif event.kind in ("step_limit", "error"):
            c.print(f"{indent}[bold red]{event.kind}[/]  {escape(event.summary)}")

    def _tool(self, event: AgentEvent, indent: str) -> None:
        label = _LABELS.get(event.name, event.name)
        try:
            args = json.loads(str(event.data.get("arguments") or "{}"))
            body = json.loads(str(event.data.get("result") or "{}"))
        except ValueError:
            args, body = {}, {}
        if not isinstance(args, dict):
            args = {}
        if event.name == "run_capability" and args.get("capability_id") in self.created:
            label = "reuse"
        mark = "[green]✓[/]" if event.ok else "[red]✗[/]"
        detail = ""
        if not event.ok and isinstance(body, dict):
            message = str(body.get("error", {}).get("message", ""))
            detail = message.strip().splitlines()[0] if message.strip() else ""
            diagnostics = body.get("diagnostics")
            if isinstance(diagnostics, list) and diagnostics:
                d = diagnostics[0]
                where = f" (line {d.get('line')})" if d.get("line") else ""
                detail = f"{d.get('stage')}{where}: {d.get('message')}"
            cases = body.get("cases")
            if isinstance(cases, list):
                bad = next((x for x in cases if not x.get("ok")), None)
                if bad:
                    detail = f"{bad.get('case')}: {bad.get('why') or bad.get('error')}"
        elif event.name == "run_capability":
            detail = f"{args.get('capability_id')} {json.dumps(args.get('input'))}"
        elif event.name == "build" and isinstance(body, dict):
            detail = "parse, signature, policy, type check passed"
        elif event.name == "test" and isinstance(body, dict):
            detail = f"{body.get('passed')} case(s) passed in the sandbox, on a copy of the data"
        elif event.name in ("create_capability", "mutate_capability", "complete"):
            new_id = body.get("capability_id") if isinstance(body, dict) else None
            if new_id:
                self._new.add(str(new_id))
                detail = str(new_id)
        elif event.name == "write_source" and isinstance(body, dict):
            detail = f"{body.get('lines')} lines"
        elif event.name in ("read_capability", "search_capabilities", "list_capabilities"):
            detail = str(args.get("id") or args.get("query") or "")
        line = f"{indent}[bold]{label:<9}[/] {mark} {escape(_cut(detail, 110))}"
        self.console.print(line)


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- running it -----------------------------------------------------------------------------


@dataclass
class DemoReport:
    store: Path
    results: list[AgentResult]


def default_demo_home() -> Path:
    """Where the demo keeps its store when `--store` is not given (fresh for each demo):
    `$SYMBIONT_HOME/agent-demo` when SYMBIONT_HOME is set, else under the system temp folder.
    (A folder of its own: the demo empties it first, never SYMBIONT_HOME itself.)"""
    home = os.environ.get("SYMBIONT_HOME", "").strip()
    if home:
        return Path(home).expanduser() / "agent-demo"
    return Path(tempfile.gettempdir()) / "symbiont-agent-demo"


def find_hr_examples(explicit: str | Path | None = None) -> Path:
    """The `examples/hr` folder: given, else in the source checkout, else under the cwd."""
    candidates = (
        [Path(explicit).expanduser()]
        if explicit
        else [
            Path(__file__).resolve().parents[3] / "examples" / "hr",
            Path.cwd() / "examples" / "hr",
        ]
    )
    for path in candidates:
        if (path / "get_salary_details").is_dir():
            return path
    raise SymbiontError(
        "cannot find the HR example capabilities (examples/hr); run from the repository or "
        "pass --examples DIR"
    )


def run_demo(
    *,
    store: str | Path | None = None,
    data_root: str | Path | None = None,
    tier: str | None = None,
    examples: str | Path | None = None,
    console: Console | None = None,
    show_model: bool = True,
    make_model: Callable[[], Any] = scripted_demo_model,
) -> DemoReport:
    """Import the HR capabilities into a store and run the three demo tasks, printing each step."""
    from symbiont.library import Library

    console = console or Console()
    hr = find_hr_examples(examples)
    if store is None:
        home = default_demo_home()
        if home.exists():
            shutil.rmtree(home)  # the demo's own folder: every demo starts from scratch
        home.mkdir(parents=True)
        store_path = home / "symbiont.db"
    else:
        store_path = Path(store).expanduser()
        store_path.parent.mkdir(parents=True, exist_ok=True)
    data = Path(data_root).expanduser() if data_root else store_path.parent / "data"

    console.print(Rule("[bold]symbiont agent demo[/]"))
    console.print(f"store: {store_path}\ndata:  {data}")
    from symbiont.embed import default_embedder

    embedder = default_embedder()
    # The example capabilities are trusted and checked by their own tests: skip the type
    # check on import; the capability the agent writes is type-checked by build().
    status = console.status("importing the HR capabilities (each verified in the sandbox)...")
    seed = Library(store_path, data_root=data, tier=tier, typecheck=False, embedder=embedder)
    with status, seed:
        report = seed.import_dir(hr)
    if report.failed:
        folder, message = report.failed[0]
        raise SymbiontError(f"importing {folder} failed: {message}")
    imported = len(report.added) + len(report.updated) + len(report.unchanged)
    console.print(f"library: {imported} HR capabilities over employee_database.json\n")

    results: list[AgentResult] = []
    printer = EventPrinter(console, show_model=show_model)
    with Library(store_path, data_root=data, tier=tier, embedder=embedder) as library:
        model = make_model()
        with Agent(library, model, on_event=printer) as agent:
            for i, task in enumerate(DEMO_TASKS, 1):
                console.print(Rule(f"task {i}: {task}", align="left"))
                result = agent.run(task)
                results.append(result)
                console.print(
                    f"[dim]outcome {result.outcome}, {result.steps} model calls, transcript "
                    f"{result.transcript_id}[/]\n"
                )
        table = Table(title="what happened", title_justify="left")
        table.add_column("task", overflow="ellipsis", max_width=40)
        for col in ("outcome", "ran", "created", "transcript"):
            table.add_column(col)
        for r in results:
            table.add_row(
                r.task,
                r.outcome,
                ", ".join(r.ran) or "-",
                ", ".join(r.created) or "-",
                str(r.transcript_id),
            )
        console.print(table)
    store_arg = "" if store is None else f" --store {store_path}"
    console.print(
        f"\nsee the runs: [bold]symbiont transcripts{store_arg}[/]   one run: "
        f"[bold]symbiont transcript {results[-1].transcript_id}{store_arg}[/]"
    )
    return DemoReport(store_path, results)
