"""The `symbiont` command.

Each group of subcommands lives in its own module here and exposes
`register(subparsers)`; `main` wires them together and turns every `SymbiontError` into a
clear one-line message instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from symbiont.errors import SymbiontError

# Modules of this package that contribute subcommands, in help order.
COMMAND_MODULES = (
    "demo", "history", "lib", "agent", "misc", "doctor", "mcp", "search", "ui", "store",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="symbiont",
        description="Evolve typed Python functions with a model; keep working code as capabilities.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"symbiont.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"symbiont.cli.{name}":
                continue  # that group is not built yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except SymbiontError as exc:
        print(f"symbiont: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("symbiont: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
