"""`symbiont history | show | diff | rollback | export | failures | runs`: read and steer the store.

Every command works on the store file only (not on a running program): `rollback` changes
the revision a program comes up with at its next start. Functions are named by their key
(`module.qualname`) or any unique dotted suffix of it (`step`, `counter.step`); revisions as
`FUNC@N` (or `FUNC@active`). Each command takes `--store PATH` or `--store postgresql://...`
(default: `$SYMBIONT_STORE`, else `$SYMBIONT_HOME/symbiont.db`, else
`./.symbiont/symbiont.db`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from symbiont.diagnostics import Diagnostic
from symbiont.errors import RevisionError, StoreError, SymbiontError
from symbiont.store import EvolvableStore, FunctionRecord, RevisionRecord, store_location
from symbiont.store import open_store as _open_store

FUNC_HELP = "function key (module.qualname) or a unique suffix of it, e.g. 'step'"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--store",
        default=None,
        metavar="PATH",
        help="store file or postgresql:// URL (default: $SYMBIONT_STORE, else "
        "$SYMBIONT_HOME/symbiont.db, else ./.symbiont/symbiont.db)",
    )
    lineage = argparse.ArgumentParser(add_help=False)
    lineage.add_argument(
        "--fingerprint",
        default=None,
        metavar="FP",
        help="use the lineage with this signature fingerprint (or prefix); default: the newest",
    )

    p = sub.add_parser(
        "history",
        parents=[common, lineage],
        help="lineage of a function's revisions as a tree",
        description="Show every revision of a function (accepted and rejected) as a tree by "
        "parent, with status, stage, score, origin, model and age; the active one is marked.",
    )
    p.add_argument("function", metavar="FUNC", help=FUNC_HELP)
    p.add_argument("--all", action="store_true", help="show every lineage (older signatures too)")
    p.add_argument("--accepted", action="store_true", help="hide rejected revisions")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser(
        "show",
        parents=[common, lineage],
        help="one revision: source, diagnostics and metadata",
        description="Show revision N of a function (FUNC@N; FUNC alone: the active revision).",
    )
    p.add_argument("revision", metavar="FUNC@N", help="e.g. counter.step@3 (or counter.step)")
    p.add_argument("--reply", action="store_true", help="also print the raw model reply")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser(
        "diff",
        parents=[common, lineage],
        help="unified diff between two revisions",
        description="Coloured unified diff of two revisions: FUNC@A FUNC@B, or FUNC@A @B.",
    )
    p.add_argument("a", metavar="FUNC@A")
    p.add_argument("b", metavar="FUNC@B", help="FUNC@B, or @B for the same function")
    p.add_argument("-U", "--context", type=int, default=3, help="lines of context (default 3)")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser(
        "rollback",
        parents=[common, lineage],
        help="make an earlier revision active at the program's next start",
        description="Set the active revision in the store: revision N, or by default the "
        "previously active accepted one. A running program is not changed; it comes up with "
        "this revision at its next start (live: runtime.activate / runtime.rollback).",
    )
    p.add_argument("function", metavar="FUNC", help=FUNC_HELP)
    p.add_argument("number", metavar="N", nargs="?", type=int, help="revision to activate")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser(
        "export",
        parents=[common, lineage],
        help="write the active revision as a plain Python file",
        description="Write a revision (default: the active one) as a plain Python file with a "
        "header comment saying where it came from.",
    )
    p.add_argument("function", metavar="FUNC", help=FUNC_HELP + " (or FUNC@N)")
    p.add_argument("--to", required=True, metavar="FILE", help="file to write ('-': stdout)")
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "failures",
        parents=[common, lineage],
        help="exceptions the live function raised in programs (newest last)",
        description="The live failures a program recorded for a function (see "
        "Runtime.capture_failures / capture_uncaught): the revision each hit, when, the "
        "exception, the call's arguments and, with --traceback, the traceback. The store keeps "
        "the newest few per function (Runtime(failure_ring=N)).",
    )
    p.add_argument("function", metavar="FUNC", help=FUNC_HELP)
    p.add_argument("--limit", type=int, default=10, help="how many, newest (default 10)")
    p.add_argument("--traceback", action="store_true", help="print each full traceback")
    p.set_defaults(func=cmd_failures)

    p = sub.add_parser(
        "runs",
        parents=[common],
        help="recent evolve runs: attempts, accepted, tokens, cost, time",
    )
    p.add_argument("--limit", type=int, default=20, help="how many runs (default 20)")
    p.add_argument("--function", default=None, metavar="FUNC", help="only runs of FUNC")
    p.set_defaults(func=cmd_runs)


# -- shared helpers --------------------------------------------------------------------------


def console() -> Console:
    return Console(highlight=False)


def open_existing(path_arg: str | None) -> EvolvableStore:
    """Open the store for a read/steer command; never create a SQLite file where there was
    none (a PostgreSQL URL names a database that exists already)."""
    path = store_location(path_arg or None)
    if isinstance(path, str):
        return _open_store(path)
    if not path.exists():
        how = "--store" if path_arg else "SYMBIONT_STORE, SYMBIONT_HOME or --store"
        raise StoreError(
            f"no store at {path} (set {how}; a store is created the first time a program "
            "runs an @evolvable function with symbiont)"
        )
    return _open_store(path)


@dataclass(frozen=True, slots=True)
class RevRef:
    function: str
    number: int | None  # None: the active revision


def parse_ref(text: str, *, default_function: str | None = None) -> RevRef:
    """`FUNC@N`, `FUNC@active`, `FUNC` (active), or `@N` / `N` when a function is implied."""
    text = text.strip()
    func, sep, rev = text.rpartition("@")
    if not sep:
        if default_function is not None and text.isdigit():
            return RevRef(default_function, int(text))
        return RevRef(text, None)
    func = func or (default_function or "")
    if not func:
        raise SymbiontError(f"{text!r} names no function; write FUNC@N, e.g. counter.step@3")
    if rev in ("", "active"):
        return RevRef(func, None)
    if not rev.lstrip("r").isdigit():
        raise SymbiontError(f"{text!r}: after '@' give a revision number (e.g. {func}@3)")
    return RevRef(func, int(rev.lstrip("r")))


def pick_lineage(store: EvolvableStore, pattern: str, fingerprint: str | None) -> FunctionRecord:
    key = store.resolve_key(pattern)
    lineages = store.lineages(key)
    if fingerprint is None:
        return lineages[0]
    chosen = [f for f in lineages if f.fingerprint.startswith(fingerprint)]
    if len(chosen) != 1:
        known = ", ".join(f.fingerprint for f in lineages)
        what = "no" if not chosen else "several"
        raise RevisionError(
            f"{key} has {what} lineage(s) with fingerprint {fingerprint!r}; its lineages: {known}"
        )
    return chosen[0]


def revision_of(store: EvolvableStore, fr: FunctionRecord, number: int | None) -> RevisionRecord:
    if number is None:
        if fr.active_number is None:
            raise RevisionError(f"{fr.key} has no active revision in {store.path}")
        number = fr.active_number
    return store.get_revision(fr.key, number, fr.fingerprint)


def age(ts: float | None, now: float | None = None) -> str:
    if ts is None:
        return "?"
    s = max(0.0, (now if now is not None else time.time()) - ts)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if s >= size:
            return f"{int(s // size)}{unit} ago"
    return f"{int(s)}s ago"


def when(ts: float | None) -> str:
    if ts is None:
        return "?"
    return dt.datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def fmt_score(score: float | None) -> str:
    return "—" if score is None else f"{score:.6g}"


def diagnostic_text(d: dict[str, object]) -> str:
    try:
        return Diagnostic.from_dict(d).render()
    except (KeyError, TypeError, ValueError):
        return json.dumps(d, sort_keys=True)


# -- history -----------------------------------------------------------------------------------


def cmd_history(args: argparse.Namespace) -> int:
    out = console()
    with open_existing(args.store) as store:
        if args.all:
            key = store.resolve_key(args.function)
            lineages = store.lineages(key)
        else:
            lineages = [pick_lineage(store, args.function, args.fingerprint)]
        now = time.time()
        for i, fr in enumerate(lineages):
            if i:
                out.print()
            out.print(lineage_tree(fr, store.revisions_of(fr.id), now, accepted_only=args.accepted))
        out.print(
            "[dim]A revision that continues a line is drawn under its parent at the same "
            "depth; the parent's other children are indented beneath it.[/]"
        )
        if not args.all:
            others = len(store.lineages(lineages[0].key)) - 1
            if others > 0:
                out.print(
                    f"[dim]{others} older lineage(s) with another signature; "
                    "show them with --all[/]"
                )
    return 0


def lineage_tree(
    fr: FunctionRecord, revs: list[RevisionRecord], now: float, *, accepted_only: bool = False
) -> Tree:
    """Revisions as a tree under their first parent; crossover's other parents are noted."""
    first_line = fr.signature_text.splitlines()[0] if fr.signature_text else ""
    accepted = sum(r.status == "accepted" for r in revs)
    root = Tree(
        f"[bold]{escape(fr.key)}[/]  [dim]{escape(first_line)}  (fingerprint {fr.fingerprint}; "
        f"{len(revs)} revisions, {accepted} accepted)[/]"
    )
    shown = [r for r in revs if r.status == "accepted" or not accepted_only]
    numbers = {r.number for r in shown}
    children: dict[int | None, list[RevisionRecord]] = {}
    for r in shown:
        parent = r.parents[0] if r.parents and r.parents[0] in numbers else None
        children.setdefault(parent, []).append(r)
    hidden: dict[int, int] = {}
    if accepted_only:
        for r in revs:
            if r.status != "accepted" and r.parents:
                hidden[r.parents[0]] = hidden.get(r.parents[0], 0) + 1

    def label(r: RevisionRecord) -> str:
        ok = r.status == "accepted"
        mark = "[green]✔[/]" if ok else "[red]✘[/]"
        parts = [f"{mark} [bold]r{r.number}[/]", r.status, f"[dim]at[/] {r.stage}"]
        if r.score is not None:
            parts.append(f"score [bold]{fmt_score(r.score)}[/]")
        origin = r.origin + (f" ({r.model})" if r.model else "")
        parts.append(f"[dim]{escape(origin)}[/]")
        parts.append(f"[dim]{age(r.created_at, now)}[/]")
        if len(r.parents) > 1:
            parts.append("[magenta]× " + ", ".join(f"r{p}" for p in r.parents[1:]) + "[/]")
        elif r.parents and r.parents[0] not in numbers:
            parts.append(f"[dim](parent r{r.parents[0]} not shown)[/]")
        if not ok and r.diagnostics:
            msg = str(r.diagnostics[0].get("message", "")).splitlines()
            if msg:
                parts.append(f"[dim]— {escape(msg[0][:60])}[/]")
        if hidden.get(r.number):
            parts.append(f"[dim](+{hidden[r.number]} rejected)[/]")
        if r.number == fr.active_number:
            parts.append("[bold cyan]◀ active[/]")
        return "  ".join(parts)

    # A line of descent is drawn flat: a revision's main child (the one towards the active
    # revision, else the one with the longest line below it) follows it at the same depth;
    # only the other children — tries that led nowhere, abandoned lines — nest under it. So
    # a chain of 100 improvements is 100 lines at one depth, not a staircase off the screen.
    # Iterative throughout, so a long chain cannot hit the recursion limit either.
    towards_active = _ancestors(fr.active_number, {r.number: r for r in shown})
    height = _heights(children)
    stack: list[tuple[Tree, RevisionRecord]] = [(root, r) for r in reversed(children.get(None, []))]
    while stack:
        parent_node, r = stack.pop()
        node = parent_node.add(label(r))
        kids = children.get(r.number, [])
        # Candidates to continue the line: children with children, and the active path.
        lines = [k for k in kids if children.get(k.number) or k.number in towards_active]
        main = max(
            lines,
            key=lambda k: (k.number in towards_active, height[k.number], k.number),
            default=None,
        )
        if main is not None:
            stack.append((parent_node, main))  # drawn after r's side branches, at r's depth
        stack.extend((node, k) for k in reversed(kids) if k is not main)
    if not revs:
        root.add("[dim](no revisions)[/]")
    return root


def _ancestors(number: int | None, by_number: dict[int, RevisionRecord]) -> set[int]:
    """`number` and its first-parent ancestors among the shown revisions."""
    out: set[int] = set()
    while number is not None and number in by_number and number not in out:
        out.add(number)
        parents = by_number[number].parents
        number = parents[0] if parents else None
    return out


def _heights(children: dict[int | None, list[RevisionRecord]]) -> dict[int, int]:
    """Length of the longest line of descent below each revision (0 for a leaf)."""
    height: dict[int, int] = {}
    order: list[int] = []
    stack = [r.number for r in children.get(None, [])]
    while stack:  # parents before children...
        n = stack.pop()
        order.append(n)
        stack.extend(c.number for c in children.get(n, []))
    for n in reversed(order):  # ...so children are done first here
        height[n] = max((height[c.number] + 1 for c in children.get(n, [])), default=0)
    return height


# -- show ----------------------------------------------------------------------------------------


def cmd_show(args: argparse.Namespace) -> int:
    ref = parse_ref(args.revision)
    out = console()
    with open_existing(args.store) as store:
        fr = pick_lineage(store, ref.function, args.fingerprint)
        rev = revision_of(store, fr, ref.number)
    meta = Table.grid(padding=(0, 2))
    meta.add_column(style="dim")
    meta.add_column()
    status = f"[green]{rev.status}[/]" if rev.status == "accepted" else f"[red]{rev.status}[/]"
    rows = [
        ("function", escape(fr.key)),
        ("revision", f"r{rev.number}" + ("  [bold cyan]◀ active[/]" if rev.number == fr.active_number else "")),
        ("status", f"{status} at the {rev.stage} stage"),
        ("origin", escape(rev.origin + (f" ({rev.model})" if rev.model else ""))),
        ("parents", ", ".join(f"r{p}" for p in rev.parents) or "—"),
        ("score", fmt_score(rev.score)),
        ("metrics", escape(", ".join(f"{k}={v:.6g}" if isinstance(v, int | float) else f"{k}={v}" for k, v in sorted(rev.metrics.items())) or "—")),
        ("created", f"{when(rev.created_at)} ({age(rev.created_at)})"),
        ("content hash", rev.content_hash or "—"),
        ("signature", f"fingerprint {fr.fingerprint}"),
    ]  # fmt: skip
    for k, v in rows:
        meta.add_row(k, v)
    out.print(Panel(meta, title=f"{escape(fr.key)}@{rev.number}", title_align="left"))
    if rev.source.strip():
        out.print(Syntax(rev.source, "python", line_numbers=True, word_wrap=True))
    else:
        out.print("[yellow]no code was extracted from the model's reply[/]")
    if rev.diagnostics:
        out.print(f"[bold]diagnostics ({len(rev.diagnostics)})[/]")
        for d in rev.diagnostics:
            out.print(Panel(Text(diagnostic_text(d)), border_style="red"))
    if args.reply or (not rev.source.strip() and rev.reply):
        out.print(Panel(Text(rev.reply or "(empty)"), title="model reply", title_align="left"))
    return 0


# -- diff ----------------------------------------------------------------------------------------


def cmd_diff(args: argparse.Namespace) -> int:
    a_ref = parse_ref(args.a)
    b_ref = parse_ref(args.b, default_function=a_ref.function)
    out = console()
    with open_existing(args.store) as store:
        fa = pick_lineage(store, a_ref.function, args.fingerprint)
        fb = pick_lineage(store, b_ref.function, args.fingerprint)
        ra = revision_of(store, fa, a_ref.number)
        rb = revision_of(store, fb, b_ref.number)
    name_a, name_b = f"{fa.key}@{ra.number}", f"{fb.key}@{rb.number}"
    lines = list(
        difflib.unified_diff(
            ra.source.splitlines(keepends=True),
            rb.source.splitlines(keepends=True),
            fromfile=name_a,
            tofile=name_b,
            n=max(0, args.context),
        )
    )
    if not lines:
        same = " (same content hash)" if ra.content_hash == rb.content_hash else ""
        out.print(f"no differences between {escape(name_a)} and {escape(name_b)}{same}")
        return 0
    for line in lines:
        text = line.rstrip("\n")
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("@@"):
            style = "cyan"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        else:
            style = ""
        out.print(Text(text, style=style), soft_wrap=True)
    return 0


# -- rollback ------------------------------------------------------------------------------------


def cmd_rollback(args: argparse.Namespace) -> int:
    out = console()
    with open_existing(args.store) as store:
        fr = pick_lineage(store, args.function, args.fingerprint)
        before = fr.active_number
        target = store.rollback(fr.id, args.number)
        rev = store.get_revision(fr.key, target, fr.fingerprint)
    was = f"r{before}" if before is not None else "none"
    if target == before:
        out.print(f"{escape(fr.key)}: r{target} is already the active revision")
        return 0
    out.print(
        f"{escape(fr.key)}: active revision is now [bold]r{target}[/] (was {was}; "
        f"score {fmt_score(rev.score)}, {escape(rev.origin)})."
    )
    out.print(
        "It takes effect the next time the program starts; a running program keeps its "
        "current body (switch it live with runtime.activate(fn, "
        f"{target}) or runtime.rollback(fn))."
    )
    return 0


# -- export --------------------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    ref = parse_ref(args.function)
    with open_existing(args.store) as store:
        fr = pick_lineage(store, ref.function, args.fingerprint)
        rev = revision_of(store, fr, ref.number)
        store_path = store.path
    if not rev.source.strip():
        raise RevisionError(f"{fr.key}@{rev.number} has no source to export")
    text = export_text(fr, rev, store_path)
    if args.to == "-":
        print(text, end="")
        return 0
    target = Path(args.to).expanduser()
    if target.exists() and not args.force:
        raise SymbiontError(f"{target} exists; pass --force to overwrite it")
    write_atomically(target, text)
    active = " (active)" if rev.number == fr.active_number else ""
    console().print(f"wrote {escape(fr.key)}@{rev.number}{active} to {escape(str(target))}")
    return 0


def export_text(fr: FunctionRecord, rev: RevisionRecord, store_path: Path | str) -> str:
    active = ", the active revision" if rev.number == fr.active_number else ""
    origin = rev.origin + (f" ({rev.model})" if rev.model else "")
    header = [
        f"# Exported by symbiont from {store_path}",
        f"# function: {fr.key}  revision: r{rev.number}{active}",
        f"# signature fingerprint: {fr.fingerprint}  content hash: {rev.content_hash or '-'}",
        f"# origin: {origin}  parents: {', '.join(f'r{p}' for p in rev.parents) or '-'}"
        f"  score: {fmt_score(rev.score)}",
        f"# created: {when(rev.created_at)}",
        "# The code is as stored; names it uses from its original module (imports, globals)",
        "# must be available wherever you put it.",
        "",
    ]
    body = rev.source if rev.source.endswith("\n") else rev.source + "\n"
    return "\n".join(header) + "\n" + body


def write_atomically(target: Path, text: str) -> None:
    """Write to a temporary file next to `target`, then rename: never a half-written file."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise SymbiontError(f"cannot write {target}: {exc.strerror or exc}") from exc


# -- failures ------------------------------------------------------------------------------------


def cmd_failures(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise SymbiontError("--limit must be at least 1")
    out = console()
    with open_existing(args.store) as store:
        fr = pick_lineage(store, args.function, args.fingerprint)
        failures = store.failures(fr.id, limit=args.limit)
    if not failures:
        out.print(f"{escape(fr.key)}: no live failures recorded")
        return 0
    now = time.time()
    out.print(f"[bold]{escape(fr.key)}[/]: {len(failures)} live failure(s), newest last")
    for f in failures:
        active = "  [bold cyan]◀ active[/]" if f.revision_number == fr.active_number else ""
        out.print(
            f"[red]✘[/] [bold]r{f.revision_number}[/]{active}  [dim]{age(f.at, now)}"
            f"{f'  pid {f.pid}' if f.pid else ''}[/]  {escape(f.message)}"
        )
        if f.args:
            out.print(Text("    arguments: " + f.args, style="dim"), soft_wrap=True)
        if args.traceback and f.traceback:
            out.print(Panel(Text(f.traceback.rstrip()), border_style="red"))
    return 0


# -- runs ----------------------------------------------------------------------------------------


def cmd_runs(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise SymbiontError("--limit must be at least 1")
    out = console()
    with open_existing(args.store) as store:
        key = store.resolve_key(args.function) if args.function else None
        runs = store.runs(limit=args.limit, key=key)
        path = store.path
    if not runs:
        out.print(f"no evolve runs recorded in {escape(str(path))}")
        return 0
    table = Table(title=f"evolve runs ({escape(str(path))})", title_justify="left")
    for name, justify in (
        ("run", "right"),
        ("function", "left"),
        ("started", "left"),
        ("attempts", "right"),
        ("accepted", "left"),
        ("outcome", "left"),
        ("tokens in/out", "right"),
        ("cost", "right"),
        ("time", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    now = time.time()
    for r in runs:
        accepted = f"r{r.accepted_number}" if r.accepted_number is not None else "—"
        outcome = r.outcome or "[yellow]running / interrupted[/]"
        table.add_row(
            str(r.id),
            escape(r.function_key),
            age(r.started_at, now),
            str(r.attempts),
            accepted,
            outcome,
            f"{r.input_tokens:,} / {r.output_tokens:,}",
            f"${r.cost_usd:.4f}" if r.cost_usd is not None else "—",
            f"{r.duration_s:.1f} s" if r.duration_s is not None else "—",
        )
    out.print(table)
    return 0
