"""`symbiont search | searches | best | lineage`: run a population search, read the results.

    symbiont search examples/circle_packing.py:construct_packing --metric sum_of_radii \\
        --check check_packing --evaluations 200 --parallel 2
    symbiont searches                    # the stored searches, newest first
    symbiont best construct_packing      # the best revision any search found, with its source
    symbiont lineage construct_packing@17   # its ancestors, with their scores

`search` imports the script (its `__main__` block does not run), finds the function and the
metric (and check) by name in it, and shows live progress: evaluations per second, the best
score, each island's best, rejections by kind and the budget left. The model is the
environment's (`SYMBIONT_MODEL`, `OPENAI_BASE_URL`), else the offline mutation proposer.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from symbiont.cli.history import (
    console,
    fmt_score,
    open_existing,
    parse_ref,
    pick_lineage,
    revision_of,
    when,
)
from symbiont.errors import SymbiontError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument(
        "--store", default=None, metavar="PATH", help="store file or postgresql:// URL"
    )

    p = sub.add_parser(
        "search",
        parents=[store],
        help="population search over revisions of a function in a script",
        description="Import SCRIPT (FILE.py[:FUNC] or module[:FUNC]) and search for better "
        "revisions of FUNC (default: the script's only evolvable), scored by the script's "
        "function named by --metric.",
    )
    p.add_argument("script", metavar="SCRIPT[:FUNC]")
    p.add_argument("--metric", default="metric", help="name of the metric function in SCRIPT")
    p.add_argument("--check", default=None, help="name of a check function in SCRIPT")
    p.add_argument("--prompt", default="", help="the task, in words")
    p.add_argument("--minimize", action="store_true", help="lower scores are better")
    p.add_argument("--evaluations", type=int, default=100, help="evaluation budget")
    p.add_argument("--seconds", type=float, default=None, help="time budget")
    p.add_argument("--tokens", type=int, default=None, help="token budget")
    p.add_argument("--target", type=float, default=None, help="stop when the best reaches it")
    p.add_argument("--parallel", type=int, default=1, help="candidates in flight")
    p.add_argument("--islands", type=int, default=2)
    p.add_argument("--migration-interval", type=int, default=20)
    p.add_argument("--promote", choices=("best", "never"), default="best")
    p.add_argument("--resume", action="store_true", help="continue the newest stored search")
    p.add_argument("--quiet", action="store_true", help="no live display; the summary only")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("searches", parents=[store], help="the stored searches, newest first")
    p.add_argument("function", nargs="?", metavar="FUNC", help="only this function's")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=cmd_searches)

    p = sub.add_parser("best", parents=[store], help="a function's best-scoring revision")
    p.add_argument("function", metavar="FUNC")
    p.add_argument("--minimize", action="store_true", help="lower scores are better")
    p.set_defaults(func=cmd_best)

    p = sub.add_parser("lineage", parents=[store], help="a revision's ancestors with their scores")
    p.add_argument("revision", metavar="FUNC@N")
    p.set_defaults(func=cmd_lineage)


# -- search -------------------------------------------------------------------------------------


def _progress(report: Any, budget: Any, started: float) -> Table:
    table = Table.grid(padding=(0, 2))
    elapsed = time.monotonic() - started
    rate = report.evaluations / elapsed if elapsed > 0 else 0.0
    left = []
    if budget.evaluations is not None:
        left.append(f"{max(0, budget.evaluations - report.evaluations)} evaluations")
    if budget.seconds is not None:
        left.append(f"{max(0.0, budget.seconds - elapsed):.0f} s")
    if budget.tokens is not None:
        used = report.input_tokens + report.output_tokens
        left.append(f"{max(0, budget.tokens - used):,} tokens")
    table.add_row("evaluations", f"{report.evaluations} ({rate:.1f}/s)")
    table.add_row("best", fmt_score(report.best_score))
    table.add_row("island bests", ", ".join(fmt_score(b) for b in report.island_bests))
    rejected = ", ".join(f"{k} {n}" for k, n in report.rejections.most_common()) or "—"
    table.add_row("rejected", rejected)
    table.add_row("budget left", ", ".join(left) or "—")
    return table


def cmd_search(args: argparse.Namespace) -> int:
    import symbiont
    from symbiont.cli.misc import _import
    from symbiont.evolvable import registered
    from symbiont.search import Budget

    where, _, name = args.script.partition(":")
    module = _import(where)
    owned = [h for h in registered() if h.fn.__module__ == module.__name__]
    if name:
        fn = getattr(module, name, None)
        if fn is None or not hasattr(fn, "symbiont"):
            raise SymbiontError(f"{where} has no evolvable function {name!r}")
    elif len(owned) == 1:
        fn = owned[0].fn
    else:
        names = ", ".join(h.name for h in owned) or "none"
        raise SymbiontError(
            f"name the function to search as {where}:FUNC (its evolvables: {names})"
        )
    metric = getattr(module, args.metric, None)
    if not callable(metric):
        raise SymbiontError(f"{where} has no metric function {args.metric!r} (use --metric NAME)")
    check = None
    if args.check:
        check = getattr(module, args.check, None)
        if not callable(check):
            raise SymbiontError(f"{where} has no check function {args.check!r}")
    budget = Budget(evaluations=args.evaluations, seconds=args.seconds, tokens=args.tokens)
    out = console()
    started = time.monotonic()
    runtime = symbiont.Runtime(store=args.store)
    try:
        options: dict[str, Any] = {
            "metric": metric,
            "check": check,
            "prompt": args.prompt,
            "direction": "minimize" if args.minimize else "maximize",
            "budget": budget,
            "target": args.target,
            "parallel": args.parallel,
            "islands": args.islands,
            "migration_interval": args.migration_interval,
            "promote": args.promote,
            "resume": args.resume,
        }
        if args.quiet:
            report = runtime.search_sync(fn, None, **options)
        else:
            with Live(Text("starting…"), console=out, refresh_per_second=4) as live:

                def show(r: Any) -> None:
                    live.update(_progress(r, budget, started))

                report = runtime.search_sync(fn, None, on_progress=show, **options)
                live.update(_progress(report, budget, started))
    finally:
        runtime.close()
    out.print()
    out.print(report.summary())
    return 0


# -- reading the store --------------------------------------------------------------------------


def cmd_searches(args: argparse.Namespace) -> int:
    store = open_existing(args.store)
    try:
        key = store.resolve_key(args.function) if args.function else None
        repo = store.searches
        table = Table("id", "function", "status", "started", "evaluations", "best", "stopped")
        for s in repo.recent(args.limit, key):
            counts = repo.candidates(s.id)
            evaluated = sum(c.evaluated for c in counts)
            best = (
                f"r{s.best_number} {fmt_score(s.best_score)}" if s.best_number is not None else "—"
            )
            table.add_row(
                str(s.id), s.key, s.status, when(s.started_at), str(evaluated), best, s.stop_reason
            )
        console().print(table)
    finally:
        store.close()
    return 0


def cmd_best(args: argparse.Namespace) -> int:
    store = open_existing(args.store)
    try:
        fr = pick_lineage(store, args.function, None)
        scored = [
            r for r in store.revisions_of(fr.id) if r.status == "accepted" and r.score is not None
        ]
        if not scored:
            raise SymbiontError(f"{fr.key} has no scored revision in {store.path}")
        sign = -1.0 if args.minimize else 1.0
        best = max(scored, key=lambda r: (sign * (r.score or 0.0), -r.number))
        active = " (active)" if best.number == fr.active_number else ""
        out = console()
        out.print(f"{fr.key}@{best.number}{active}: score {fmt_score(best.score)}")
        out.print(Syntax(best.source, "python"))
    finally:
        store.close()
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    ref = parse_ref(args.revision)
    store = open_existing(args.store)
    try:
        fr = pick_lineage(store, ref.function, None)
        rev = revision_of(store, fr, ref.number)
        by_number = {r.number: r for r in store.revisions_of(fr.id)}
        table = Table("revision", "score", "origin", "model", "status")
        seen: set[int] = set()
        current: Any = rev
        while current is not None and current.number not in seen:
            seen.add(current.number)
            table.add_row(
                f"r{current.number}",
                fmt_score(current.score),
                current.origin,
                current.model or "—",
                current.status,
            )
            parent = current.parents[0] if current.parents else None
            current = by_number.get(parent) if parent is not None else None
        console().print(Group(Text(f"{fr.key}@{rev.number} and its ancestors"), table))
    finally:
        store.close()
    return 0
