"""`symbiont ui`: serve the web UI over the store (loopback, read-only, by default)."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "ui",
        help="a web UI over the store: capabilities, lineages, runs, transcripts (live)",
        description="Serve the store's capabilities, function lineages, evolve runs, searches "
        "and agent transcripts as web pages that update live. Binds 127.0.0.1 and is "
        "read-only unless told otherwise.",
    )
    p.add_argument(
        "--store",
        default=None,
        help="store file or postgresql:// URL (default: $SYMBIONT_STORE, else "
        "$SYMBIONT_HOME/symbiont.db or ./.symbiont/symbiont.db)",
    )
    p.add_argument("--data-root", default=None, help="where capability data folders live")
    p.add_argument(
        "--tier",
        default=None,
        choices=("wasm", "process", "inprocess"),
        help="sandbox tier for running capabilities (default: $SYMBIONT_SANDBOX, else wasm)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default 8707; 0: any free port)")
    p.add_argument(
        "--token",
        default=None,
        help="token every request must carry (default: $SYMBIONT_UI_TOKEN); required for an "
        "address other than loopback",
    )
    p.add_argument(
        "--allow-actions",
        action="store_true",
        help="let the pages run capabilities, deprecate/restore them and activate revisions",
    )
    p.add_argument(
        "--poll",
        type=float,
        default=1.0,
        help="seconds between looks at the store for live pages (default 1)",
    )
    p.set_defaults(func=cmd_ui)


def cmd_ui(args: argparse.Namespace) -> int:
    from symbiont.store import store_location
    from symbiont.store.pg import redact
    from symbiont.ui import UIConfig, serve
    from symbiont.ui.server import DEFAULT_PORT, token_from_env

    config = UIConfig(
        store_path=store_location(args.store or None),  # type: ignore[arg-type]
        data_root=args.data_root,
        tier=args.tier,
        token=args.token or token_from_env(),
        actions=args.allow_actions,
        poll_s=max(args.poll, 0.05),
    )

    def announce(url: str) -> None:
        mode = "actions allowed" if config.actions else "read-only"
        print(
            f"symbiont ui: serving {redact(str(config.store_path))} at {url} ({mode}); "
            "Ctrl-C stops",
            flush=True,
        )

    port = DEFAULT_PORT if args.port is None else args.port
    serve(config, args.host, port, announce=announce)
    sys.stdout.flush()
    return 0
