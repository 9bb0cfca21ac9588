"""`symbiont agent`, `symbiont transcripts`, `symbiont transcript ID`.

symbiont agent --demo                       # the HR scenario with a scripted model
symbiont agent "What is employee E042's salary?"   # a real model (SYMBIONT_MODEL / OPENAI_BASE_URL)
symbiont transcripts                        # the runs, newest first
symbiont transcript 3 --messages            # one run, step by step
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from symbiont.errors import SymbiontError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--store",
            default=None,
            help="store file or postgresql:// URL (default: $SYMBIONT_STORE, else "
            "$SYMBIONT_HOME/symbiont.db or ./.symbiont/symbiont.db; the demo uses a fresh one in "
            "$SYMBIONT_HOME/agent-demo, else under the system temp folder)",
        )

    p = sub.add_parser(
        "agent",
        help="solve a task with the capability library (or --demo)",
        description="Retrieve the capabilities that fit a task, run one, or have a new one "
        "written, built and tested when none fits.",
    )
    p.add_argument("task", nargs="?", help="the task, in words")
    p.add_argument("--demo", action="store_true", help="run the HR scenario with a scripted model")
    common(p)
    p.add_argument("--data-root", default=None, help="where capability data folders live")
    p.add_argument(
        "--tier",
        default=None,
        choices=("wasm", "process", "inprocess"),
        help="sandbox tier (default: $SYMBIONT_SANDBOX, else wasm)",
    )
    p.add_argument("-k", type=int, default=5, help="capabilities offered per task (default 5)")
    p.add_argument("--max-steps", type=int, default=12, help="model calls per task (default 12)")
    p.add_argument(
        "--mutation-max-steps",
        type=int,
        default=16,
        help="model calls per new capability (default 16)",
    )
    p.add_argument(
        "--confirm-writes",
        action="store_true",
        help="ask before running a capability that changes data (needs an interactive terminal)",
    )
    p.add_argument("--examples", default=None, help="the demo's HR examples folder")
    p.add_argument("--quiet", action="store_true", help="do not print the model calls")
    p.set_defaults(func=cmd_agent)

    p = sub.add_parser("transcripts", help="list agent runs, newest first")
    common(p)
    p.add_argument("--limit", type=int, default=30, help="how many (default 30)")
    p.add_argument("--kind", choices=("task", "mutation"), default=None, help="only this kind")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_transcripts)

    p = sub.add_parser("transcript", help="show one agent run step by step")
    p.add_argument("id", type=int, help="transcript id (see `symbiont transcripts`)")
    common(p)
    p.add_argument("--messages", action="store_true", help="also print the final conversation")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_transcript)


# -- agent ----------------------------------------------------------------------------------


def cmd_agent(args: argparse.Namespace) -> int:
    console = Console()
    if args.demo:
        if args.task:
            raise SymbiontError("give either a task or --demo, not both")
        from symbiont.agent.demo import run_demo

        report = run_demo(
            store=args.store,
            data_root=args.data_root,
            tier=args.tier,
            examples=args.examples,
            console=console,
            show_model=not args.quiet,
        )
        return 0 if all(r.outcome == "answered" for r in report.results) else 1
    if not args.task:
        raise SymbiontError('give a task, e.g. symbiont agent "What is employee E042\'s salary?"')
    if not (
        os.environ.get("SYMBIONT_MODEL", "").strip()
        or os.environ.get("OPENAI_BASE_URL", "").strip()
    ) or os.environ.get("SYMBIONT_MODEL", "").startswith("mutation"):
        raise SymbiontError(
            "the agent needs a model that can call tools: set SYMBIONT_MODEL (and OPENAI_API_KEY) "
            "or OPENAI_BASE_URL for a local server; or watch `symbiont agent --demo`"
        )
    confirm = _confirm_on_terminal(console) if args.confirm_writes else None

    from symbiont.agent import Agent
    from symbiont.agent.demo import EventPrinter
    from symbiont.library import Library
    from symbiont.models.openai import OpenAIModel

    model = OpenAIModel()
    with (
        Library(args.store, data_root=args.data_root, tier=args.tier) as library,
        Agent(
            library,
            model,
            k=args.k,
            max_steps=args.max_steps,
            mutation_max_steps=args.mutation_max_steps,
            on_event=EventPrinter(console, show_model=not args.quiet),
            confirm_writes=confirm,
        ) as agent,
    ):
        result = agent.run(args.task)
    console.print(
        f"[dim]outcome {result.outcome}, {result.steps} model calls, "
        f"{result.input_tokens}+{result.output_tokens} tokens, transcript {result.transcript_id}[/]"
    )
    if result.outcome == "unverified":
        console.print(f"[yellow]{escape(result.error or 'unverified')}[/]")
        return 0
    if result.outcome != "answered":
        console.print(f"[red]{escape(result.error or result.outcome)}[/]")
        return 1
    return 0


def _confirm_on_terminal(console: Console) -> Any:
    """The `--confirm-writes` question, asked on the terminal; refused up front without one."""
    if not sys.stdin.isatty():
        raise SymbiontError(
            "--confirm-writes asks before each change, but stdin is not a terminal, so nobody "
            "could answer; run the command in a terminal, or leave out --confirm-writes (then "
            "only tasks that ask for a change may run capabilities that write)"
        )

    def confirm(cap: Any, value: dict[str, Any]) -> bool:
        console.print(
            f"[bold yellow]{escape(cap.id)}[/] changes data; input: "
            f"{escape(json.dumps(value, ensure_ascii=False))}"
        )
        try:
            answer = input("run it? [y/N] ")
        except EOFError:
            return False
        return answer.strip().lower() in ("y", "yes")

    return confirm


# -- transcripts ----------------------------------------------------------------------------


def _store_path(explicit: str | None, console: Console) -> Path | str | None:
    """The store to read: `--store` or `$SYMBIONT_STORE` (a file or a `postgresql://` URL);
    without either, the default file, else the last demo's (announced).

    Never creates a store file just to find it empty.
    """
    from symbiont.store import STORE_ENV, store_location

    if explicit or os.environ.get(STORE_ENV, "").strip():
        where = store_location(explicit or None)
        if isinstance(where, Path) and not where.exists():
            raise SymbiontError(f"no store at {where}")
        return where
    from symbiont.agent.demo import default_demo_home
    from symbiont.store import default_store_path

    default = default_store_path()
    if default.exists() and _has_transcripts(default):
        return default
    demo = default_demo_home() / "symbiont.db"
    if demo.exists() and _has_transcripts(demo):
        console.print(
            f"[dim]no agent runs in {default}; showing the last demo's store {demo} "
            "(use --store to choose)[/]"
        )
        return demo
    return default if default.exists() else None


def _has_transcripts(path: Path) -> bool:
    """Whether the store file holds any transcript (a file that is no store holds none)."""
    from symbiont.agent.transcripts import open_transcripts

    try:
        with open_transcripts(path) as transcripts:
            return transcripts.count() > 0
    except SymbiontError:
        return False


def _shown(where: Path | str) -> str:
    """A store's place for messages (a URL without its password)."""
    from symbiont.store.pg.connection import redact

    return redact(str(where))


def cmd_transcripts(args: argparse.Namespace) -> int:
    from symbiont.agent.transcripts import open_transcripts

    console = Console()
    path = _store_path(args.store, console)
    if path is None:
        console.print("no agent runs yet: try `symbiont agent --demo`")
        return 0
    with open_transcripts(path) as transcripts:
        rows = transcripts.list(args.limit, kind=args.kind)
    if args.json:
        print(json.dumps([_summary(t) for t in rows], indent=2))
        return 0
    if not rows:
        console.print(f"no agent runs in {_shown(path)}: try `symbiont agent --demo`")
        return 0
    console.print(f"agent runs in {_shown(path)}")
    console.print(
        f"[bold]{'id':<7} {'kind':<8} {'outcome':<10} {'steps':>5} {'tokens':>7}  task[/]"
    )
    room = max(20, console.width - 42)
    for t in rows:
        ident = str(t.id) if t.parent_id is None else f"{t.id}↳{t.parent_id}"
        task = _cut(t.task, room)
        if t.capability_id:
            task = _cut(f"{t.task}", max(10, room - len(t.capability_id) - 3))
            task += f" → {t.capability_id}"
        color = {
            "answered": "green",
            "completed": "green",
            "running": "yellow",
            "unverified": "yellow",
        }.get(t.outcome, "red")
        console.print(
            f"{ident:<7} {t.kind:<8} [{color}]{t.outcome:<10}[/] {t.steps:>5} "
            f"{t.input_tokens + t.output_tokens:>7}  {escape(task)}",
            highlight=False,
            soft_wrap=True,
        )
    return 0


def cmd_transcript(args: argparse.Namespace) -> int:
    from symbiont.agent.transcripts import open_transcripts

    console = Console()
    path = _store_path(args.store, console)
    if path is None:
        raise SymbiontError("no agent runs yet: try `symbiont agent --demo`")
    with open_transcripts(path) as transcripts:
        t = transcripts.get(args.id)
    if args.json:
        out = _summary(t)
        out["steps_detail"] = [
            {
                "position": s.position,
                "kind": s.kind,
                "name": s.name,
                "ok": s.ok,
                "input_tokens": s.input_tokens,
                "output_tokens": s.output_tokens,
                "duration_s": s.duration_s,
                "data": s.data,
            }
            for s in t.step_records
        ]
        if args.messages:
            out["messages"] = t.messages
        print(json.dumps(out, indent=2, ensure_ascii=False, default=str))
        return 0
    head = [
        f"[bold]{t.kind} run {t.id}[/]: {escape(t.task)}",
        f"outcome {_outcome(t.outcome)}, {t.steps} model calls, "
        f"{t.input_tokens}+{t.output_tokens} tokens, model {escape(t.model or '?')}"
        + (f", {t.duration_s:.2f}s" if t.duration_s is not None else ""),
    ]
    if t.parent_id is not None:
        head.append(f"started by task run {t.parent_id}")
    if t.children:
        head.append("mutation runs: " + ", ".join(map(str, t.children)))
    if t.capability_id:
        head.append(f"stored capability {t.capability_id}")
    if t.answer:
        head.append(f"answer: {escape(t.answer)}")
    if t.error:
        head.append(f"[red]{escape(t.error)}[/]")
    console.print(Panel("\n".join(head), expand=False))
    for s in t.step_records:
        console.print(_step_line(s))
    if args.messages and t.messages:
        console.print(Panel("conversation", expand=False))
        for m in t.messages:
            content = m.get("content") or ""
            calls = m.get("tool_calls") or []
            text = str(content)
            for c in calls:
                text += f"\n→ {c['function']['name']}({c['function']['arguments']})"
            console.print(f"[bold]{m.get('role')}[/]: {escape(text)}")
    return 0


def _step_line(s: Any) -> str:
    d = s.data
    if s.kind == "retrieve":
        ids = ", ".join(r["id"] for r in d.get("results", [])) or "(none)"
        return f"{s.position:>3}  [cyan]retrieve[/]  {escape(ids)}  [dim]{s.duration_s * 1000:.0f} ms[/]"
    if s.kind == "model":
        calls = ", ".join(c["name"] for c in d.get("tool_calls", []))
        what = calls or _cut(str(d.get("reply") or ""), 100)
        return (
            f"{s.position:>3}  [dim]model[/]     {escape(what)}  "
            f"[dim]{s.input_tokens}+{s.output_tokens} tok, {s.duration_s * 1000:.0f} ms[/]"
        )
    if s.kind == "tool":
        mark = "[green]✓[/]" if s.ok else "[red]✗[/]"
        result = str(d.get("result", ""))
        try:
            body = json.loads(result)
            if isinstance(body, dict) and body.get("ok") is False:
                result = str(body.get("error", {}).get("message", result))
        except ValueError:
            pass
        return (
            f"{s.position:>3}  [bold]{s.name:<9}[/] {mark} {escape(_cut(str(d.get('arguments', '')), 70))}"
            f" → {escape(_cut(result, 90))}  [dim]{s.duration_s * 1000:.0f} ms[/]"
        )
    return f"{s.position:>3}  [yellow]{s.kind}[/]      {escape(_cut(json.dumps(d), 120))}"


def _summary(t: Any) -> dict[str, Any]:
    return {
        "id": t.id,
        "kind": t.kind,
        "parent_id": t.parent_id,
        "task": t.task,
        "model": t.model,
        "outcome": t.outcome,
        "answer": t.answer,
        "error": t.error,
        "capability_id": t.capability_id,
        "steps": t.steps,
        "input_tokens": t.input_tokens,
        "output_tokens": t.output_tokens,
        "started_at": t.started_at,
        "finished_at": t.finished_at,
    }


def _outcome(outcome: str) -> str:
    color = {
        "answered": "green",
        "completed": "green",
        "running": "yellow",
        "unverified": "yellow",
    }.get(outcome, "red")
    return f"[{color}]{outcome}[/]"


def _when(ts: float) -> str:
    import time

    return time.strftime("%m-%d %H:%M", time.localtime(ts))


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
