"""`symbiont lib ...`: the capability library from the command line.

    symbiont lib import examples/hr
    symbiont lib search "how much is employee E007 paid"
    symbiont lib run get_salary_details '{"employee_id": "E007"}'

Every user error is a `SymbiontError` (one clear line from `symbiont.cli.main`, no
traceback). `run` prints the output as JSON on stdout, so it can be piped; `--json` makes
`list`, `show` and `search` machine-readable too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from symbiont.errors import CapabilityError
from symbiont.library.capability import STATUSES, Capability
from symbiont.library.library import (
    SEARCH_MODES,
    CapabilityDeprecated,
    CapabilityExists,
    InvalidInput,
    Library,
    parse_input,
)

# Below this many columns, tables become one block per row (a table would cut its text).
_TABLE_MIN_WIDTH = 100


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lib = sub.add_parser(
        "lib",
        help="the capability library: add, search, run, deprecate, import/export",
        description="Verified, typed capabilities: found by meaning, run in a sandbox.",
    )
    lib.set_defaults(func=lambda args: _help(lib))
    cmds = lib.add_subparsers(dest="lib_command", metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--store",
            default=None,
            help="store file (default: $SYMBIONT_HOME/symbiont.db or ./.symbiont/symbiont.db)",
        )
        p.add_argument(
            "--data-root",
            default=None,
            help="where capability data folders live (default: $SYMBIONT_HOME/data or "
            "./.symbiont/data)",
        )
        p.add_argument(
            "--tier",
            default=None,
            choices=("wasm", "process", "inprocess"),
            help="sandbox tier (default: $SYMBIONT_SANDBOX, else wasm)",
        )

    p = cmds.add_parser("add", help="verify a capability folder and store it")
    p.add_argument("path", help="a folder with capability.py and capability.toml")
    p.add_argument("--replace", action="store_true", help="store as a new version if the id exists")
    common(p)
    p.set_defaults(func=cmd_add)

    p = cmds.add_parser("list", help="list capabilities")
    p.add_argument("--status", choices=STATUSES, default=None, help="only this status")
    p.add_argument("--json", action="store_true", help="print JSON")
    common(p)
    p.set_defaults(func=cmd_list)

    p = cmds.add_parser("show", help="show one capability: summary, schemas, examples, stats")
    p.add_argument("id")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--no-source", action="store_true", help="leave the source out")
    common(p)
    p.set_defaults(func=cmd_show)

    p = cmds.add_parser("search", help="find the capabilities that fit a task")
    p.add_argument("task", help="the task, in words")
    p.add_argument("-k", type=int, default=5, help="how many results (default 5)")
    p.add_argument("--mode", choices=SEARCH_MODES, default="hybrid", help="default: hybrid")
    p.add_argument("--legacy", action="store_true", help="include legacy capabilities")
    p.add_argument("--json", action="store_true", help="print JSON")
    common(p)
    p.set_defaults(func=cmd_search)

    p = cmds.add_parser("run", help="run a capability on a JSON input")
    p.add_argument("id")
    p.add_argument("input", nargs="?", default="{}", help="JSON object, or @file.json")
    p.add_argument("--force", action="store_true", help="run even if deprecated")
    common(p)
    p.set_defaults(func=cmd_run)

    p = cmds.add_parser("deprecate", help="retire a capability (search leaves it out)")
    p.add_argument("id")
    p.add_argument("--reason", required=True, help="why (shown in lib show)")
    common(p)
    p.set_defaults(func=cmd_deprecate)

    p = cmds.add_parser("restore", help="make a deprecated or legacy capability active again")
    p.add_argument("id")
    common(p)
    p.set_defaults(func=cmd_restore)

    p = cmds.add_parser(
        "doctor",
        help="re-run the examples of deprecated capabilities; restore those that pass again",
        description="Re-run the examples of deprecated capabilities (or of the given ids) in "
        "the sandbox, on a copy of their data. One deprecated for failing whose examples "
        "pass again is restored; one deprecated by hand is only reported.",
    )
    p.add_argument("ids", nargs="*", metavar="ID", help="only these capabilities")
    p.add_argument("--dry-run", action="store_true", help="report only, restore nothing")
    p.add_argument("--json", action="store_true", help="print JSON")
    common(p)
    p.set_defaults(func=cmd_doctor)

    p = cmds.add_parser("import", help="import capability folders (and seed data) from DIR")
    p.add_argument("dir")
    common(p)
    p.set_defaults(func=cmd_import)

    p = cmds.add_parser("export", help="write capabilities as folders into DIR")
    p.add_argument("dir")
    p.add_argument("--id", action="append", dest="ids", help="only this id (repeatable)")
    p.add_argument("--with-data", action="store_true", help="also copy their data folders")
    common(p)
    p.set_defaults(func=cmd_export)

    from symbiont.cli.mcp import register_export_tools  # tool definitions: symbiont.mcp

    register_export_tools(cmds)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _open(args: argparse.Namespace) -> Library:
    return Library(args.store, tier=args.tier, data_root=args.data_root)


def _console() -> Console:
    return Console(file=sys.stdout, highlight=False, soft_wrap=False)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def _status(cap: Capability) -> Text:
    style = {"active": "green", "legacy": "yellow", "deprecated": "red"}[cap.status]
    return Text(cap.status, style=style)


def _cap_json(cap: Capability, *, source: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": cap.id,
        "name": cap.name,
        "summary": cap.summary,
        "entry": cap.entry,
        "version": cap.version,
        "status": cap.status,
        "status_reason": cap.status_reason,
        "replaced_by": cap.replaced_by,
        "parents": list(cap.parents),
        "permissions": cap.permissions.to_dict(),
        "input_schema": cap.input_schema,
        "output_schema": cap.output_schema,
        "examples": [e.to_dict() for e in cap.examples],
        "stats": {
            "runs": cap.stats.runs,
            "failures": cap.stats.failures,
            "consecutive_failures": cap.stats.consecutive_failures,
            "p50_latency_s": cap.stats.p50_latency_s,
            "last_error": cap.stats.last_error,
        },
        "created_at": cap.created_at,
        "updated_at": cap.updated_at,
    }
    if source:
        out["source"] = cap.source
    return out


def _capability_folder(path: Path) -> Path:
    if path.is_file() and path.name in ("capability.py", "capability.toml"):
        return path.parent
    if path.is_dir():
        return path
    raise CapabilityError(
        f"{path} is not a capability folder; give a folder holding capability.py and "
        "capability.toml"
    )


# -- commands ------------------------------------------------------------------------------
def cmd_add(args: argparse.Namespace) -> int:
    from symbiont.library.folders import read_capability_dir

    cap = read_capability_dir(_capability_folder(Path(args.path)))
    with _open(args) as lib:
        try:
            stored = lib.replace(cap.id, cap) if args.replace and cap.id in lib else lib.add(cap)
        except CapabilityExists as exc:
            raise CapabilityError(exc.cli_message) from None
    _console().print(
        f"[green]stored[/green] {stored.id} (version {stored.version}): "
        f"{len(stored.examples)} example(s) passed"
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with _open(args) as lib:
        caps = lib.list(status=args.status)
    if args.json:
        print(json.dumps([_cap_json(c, source=False) for c in caps], indent=2))
        return 0
    console = _console()
    if not caps:
        console.print("no capabilities" + (f" with status {args.status}" if args.status else ""))
        return 0
    if console.width < _TABLE_MIN_WIDTH:
        for c in caps:
            console.print(Text(c.id, style="bold", overflow="fold"))
            console.print(
                Text.assemble(
                    "  ",
                    _status(c),
                    f" · v{c.version} · runs {c.stats.runs} · fail {c.stats.failures} · "
                    f"p50 {_ms(c.stats.p50_latency_s)}",
                    overflow="fold",
                )
            )
            _print_wrapped(console, c.summary)
        return 0
    table = Table(show_lines=False)
    table.add_column("id", style="bold", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("v", justify="right", no_wrap=True)
    table.add_column("runs", justify="right", no_wrap=True)
    table.add_column("fail", justify="right", no_wrap=True)
    table.add_column("p50", justify="right", no_wrap=True)
    table.add_column("summary", overflow="fold", ratio=1)
    for c in caps:
        table.add_row(
            c.id,
            _status(c),
            str(c.version),
            str(c.stats.runs),
            str(c.stats.failures),
            _ms(c.stats.p50_latency_s),
            " ".join(c.summary.split()),
        )
    console.print(table)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with _open(args) as lib:
        cap = lib.get(args.id)
        data_dir = lib.data_dir_for(cap)
    if args.json:
        print(json.dumps(_cap_json(cap, source=not args.no_source), indent=2))
        return 0
    console = _console()
    lines = [
        f"[bold]{cap.name}[/bold]  ({cap.id}, version {cap.version}, entry {cap.entry}())",
        f"status: {cap.status}"
        + (f" — {cap.status_reason}" if cap.status_reason else "")
        + (f" (replaced by {cap.replaced_by})" if cap.replaced_by else ""),
        "",
        cap.summary,
        "",
        f"runs {cap.stats.runs}, failures {cap.stats.failures} "
        f"({cap.stats.consecutive_failures} in a row), p50 {_ms(cap.stats.p50_latency_s)}",
    ]
    if cap.stats.last_error:
        lines.append(f"last error: {cap.stats.last_error}")
    p = cap.permissions
    lines.append(
        f"permissions: read {p.read_files}, write {p.write_files}, "
        f"http {', '.join(p.http_allow) or 'none'}; data folder {data_dir}"
    )
    if cap.parents:
        lines.append(f"parents: {', '.join(cap.parents)}")
    console.print(Panel("\n".join(lines), title=cap.id, title_align="left"))
    console.print(
        Panel(json.dumps(cap.input_schema, indent=2), title="input schema", title_align="left")
    )
    console.print(
        Panel(json.dumps(cap.output_schema, indent=2), title="output schema", title_align="left")
    )
    for i, ex in enumerate(cap.examples):
        console.print(
            f"[bold]{ex.label(i)}[/bold]: {json.dumps(ex.input)} → "
            + (json.dumps(ex.expect) if ex.check is None else f"check {ex.check.describe()}"),
            markup=True,
            soft_wrap=True,
        )
    if not args.no_source:
        console.print(Syntax(cap.source, "python", line_numbers=True, word_wrap=True))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    with _open(args) as lib:
        results = lib.search(args.task, args.k, mode=args.mode, include_legacy=args.legacy)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "id": r.capability.id,
                        "score": r.score,
                        "why": r.why,
                        "summary": r.capability.summary,
                    }
                    for r in results
                ],
                indent=2,
            )
        )
        return 0
    console = _console()
    if not results:
        console.print("no matching capabilities")
        return 0
    if console.width < _TABLE_MIN_WIDTH:
        console.print(Text(f"{args.mode} search: {args.task}", overflow="fold"))
        for i, r in enumerate(results, 1):
            console.print(
                Text.assemble(
                    f"{i}. ", (r.capability.id, "bold"), f"  {r.score:.4f}", overflow="fold"
                )
            )
            _print_wrapped(console, r.why or r.capability.summary)
        return 0
    table = Table(title=f"{args.mode} search: {args.task}", title_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("id", style="bold", overflow="fold")
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("why", overflow="fold", ratio=1)
    for i, r in enumerate(results, 1):
        table.add_row(
            str(i),
            r.capability.id,
            f"{r.score:.4f}",
            " ".join((r.why or r.capability.summary).split()),
        )
    console.print(table)
    return 0


def _print_wrapped(console: Console, text: str, indent: str = "    ") -> None:
    """`text` wrapped at words to the console width, indented, never cut."""
    import textwrap

    width = max(10, console.width - len(indent))
    for line in textwrap.wrap(" ".join(text.split()), width, break_long_words=True) or [""]:
        console.print(Text(indent + line))


def _read_input(text: str) -> dict[str, Any]:
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(
                f"cannot read the input file {path}: {exc.strerror or exc}"
            ) from None
    return parse_input(text)


def cmd_run(args: argparse.Namespace) -> int:
    value = _read_input(args.input)
    with _open(args) as lib:
        try:
            result = lib.run(args.id, value, force=args.force)
        except CapabilityDeprecated as exc:
            raise CapabilityError(exc.cli_message) from None
    if result.ok:
        print(json.dumps(result.output, indent=2, ensure_ascii=False))
        return 0
    err = Console(file=sys.stderr, highlight=False)
    err.print(f"[red]{args.id} failed[/red] ({result.error_kind}): {result.error}", markup=True)
    if result.traceback:
        err.print(Text(result.traceback.rstrip()))
    if result.output is not None:
        print(json.dumps(result.output, indent=2, ensure_ascii=False))
    if result.deprecated_now:
        err.print(
            f"[yellow]{args.id} is now deprecated[/yellow]: it failed "
            "too many times in a row; search leaves it out and it runs only with --force"
        )
    return 1


def cmd_deprecate(args: argparse.Namespace) -> int:
    with _open(args) as lib:
        cap = lib.deprecate(args.id, args.reason)
    _console().print(f"deprecated {cap.id}: {cap.status_reason}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    with _open(args) as lib:
        cap = lib.restore(args.id)
    _console().print(f"restored {cap.id} (active)")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    with _open(args) as lib:
        entries = lib.doctor(args.ids or None, restore=not args.dry_run)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "id": e.capability_id,
                        "status": e.status,
                        "passed": e.passed,
                        "restored": e.restored,
                        "note": e.note,
                        "failures": [f.render() for f in e.failures],
                    }
                    for e in entries
                ],
                indent=2,
            )
        )
        return 0
    console = _console()
    if not entries:
        console.print("no deprecated capabilities: nothing to check")
        return 0
    for e in entries:
        mark = "[green]ok[/green]" if e.passed else "[red]failing[/red]"
        console.print(f"{mark} {e.capability_id} ({e.status}): {e.note}", soft_wrap=True)
        for f in e.failures:
            console.print(Text(f.render(), overflow="fold"))
    restored = sum(e.restored for e in entries)
    console.print(
        f"checked {len(entries)}, restored {restored}"
        + (" (dry run: nothing restored)" if args.dry_run else "")
    )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    console = _console()
    with _open(args) as lib:
        report = lib.import_dir(args.dir)
        data_root = lib.data_root
    for f in report.seeded:
        console.print(f"seeded data {data_root / f}")
    for what, ids in (
        ("added", report.added),
        ("updated", report.updated),
        ("unchanged", report.unchanged),
    ):
        if ids:
            console.print(f"{what} {len(ids)}: {', '.join(ids)}")
    if report.failed:
        err = Console(file=sys.stderr, highlight=False)
        for folder, message in report.failed:
            err.print(
                Panel(Text(message), title=f"refused: {folder}", title_align="left", style="red")
            )
        return 1
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    with _open(args) as lib:
        written = lib.export_dir(args.dir, args.ids, include_data=args.with_data)
    _console().print(f"exported {len(written)} capabilities to {args.dir}")
    return 0
