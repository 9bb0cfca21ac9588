"""`symbiont store migrate`: copy a whole store into another (a local file into a shared
PostgreSQL database, or back), losing nothing. See `symbiont.store.transfer`."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    store = sub.add_parser(
        "store",
        help="manage stores: copy one into another",
        description="Work on whole stores (SQLite files and PostgreSQL databases).",
    )
    cmds = store.add_subparsers(dest="store_command", metavar="COMMAND")
    p = cmds.add_parser(
        "migrate",
        help="copy every table of a store into an empty one (ids and numbers kept)",
        description="Copy functions, revisions, activations, runs, live failures, searches, "
        "capabilities (versions, examples, statistics, runs), agent transcripts and the "
        "retrieval index from one store into an empty one, in one transaction, keeping every "
        "id and revision number. A target that already holds data is refused (stores are "
        "not merged).",
    )
    p.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="SRC",
        help="the store to copy: sqlite:PATH (or a file path) or postgresql://...",
    )
    p.add_argument(
        "--to",
        dest="target",
        required=True,
        metavar="DST",
        help="an empty store: postgresql://user@host/db, or sqlite:PATH for a new file",
    )
    p.add_argument("--quiet", action="store_true", help="no progress, the summary only")
    p.set_defaults(func=cmd_migrate)
    store.set_defaults(func=lambda args: _usage(store))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def cmd_migrate(args: argparse.Namespace) -> int:
    from symbiont.store.transfer import migrate

    shown: dict[str, int] = {}
    tty = sys.stderr.isatty()

    def progress(what: str, done: int, total: int) -> None:
        if args.quiet:
            return
        if tty:
            print(f"\r  copying {what}: {done:,} of {total:,} rows\033[K", end="", file=sys.stderr)
        elif done - shown.get(what, 0) >= 10_000 or done == total:
            shown[what] = done
            print(f"  copying {what}: {done:,} of {total:,} rows", file=sys.stderr)

    try:
        report = migrate(args.source, args.target, progress=progress)
    finally:
        if tty and not args.quiet:
            print("\r\033[K", end="", file=sys.stderr)
    print(f"copied {report.source} -> {report.target} in {report.seconds:.1f} s:")
    for table, rows in report.rows.items():
        if rows:
            print(f"  {table:<20} {rows:>10,}")
    if report.index_documents or report.index_vectors:
        print(
            f"  {'retrieval index':<20} {report.index_documents:>10,} documents, "
            f"{report.index_vectors:,} vectors"
        )
    if not report.total:
        print("  (the source store is empty)")
    return 0
