"""`symbiont mcp`: the capability library as an MCP server; `symbiont lib export-tools`.

    symbiont mcp                                      # stdio, for desktop clients
    symbiont mcp --http 127.0.0.1:8765 --expose all   # streamable HTTP, capabilities as tools
    SYMBIONT_MCP_TOKEN=... symbiont mcp --http 0.0.0.0:8765
    symbiont lib export-tools --format anthropic

The store is found like every other command's: `--store`, else `$SYMBIONT_HOME/symbiont.db`,
else `./.symbiont/symbiont.db`. Over stdio nothing but the protocol goes to stdout (the SDK
points fd 1 at stderr while it serves), so notices and logs are on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "mcp",
        help="serve the capability library over MCP (stdio, or --http HOST:PORT)",
        description="An MCP server over the capability library: search, run and show "
        "capabilities (and create or derive them when a model is configured with "
        "SYMBIONT_MODEL / OPENAI_BASE_URL); each capability as a resource capability://ID; "
        "the library's system prompt as the prompt capability_library.",
    )
    p.add_argument(
        "--store",
        default=None,
        help="store file (default: $SYMBIONT_HOME/symbiont.db or ./.symbiont/symbiont.db)",
    )
    p.add_argument(
        "--data-root",
        default=None,
        help="where capability data folders live (default: $SYMBIONT_HOME/data or ./.symbiont/data)",
    )
    p.add_argument(
        "--tier",
        default=None,
        choices=("wasm", "process", "inprocess"),
        help="sandbox tier (default: $SYMBIONT_SANDBOX, else wasm)",
    )
    p.add_argument(
        "--http",
        default=None,
        metavar="HOST:PORT",
        help="serve streamable HTTP at http://HOST:PORT/mcp instead of stdio; a host that is "
        "not loopback needs a bearer token",
    )
    p.add_argument(
        "--token",
        default=None,
        help="bearer token HTTP clients must send (default: $SYMBIONT_MCP_TOKEN; prefer the "
        "variable: arguments are visible to other users)",
    )
    p.add_argument(
        "--expose",
        choices=("none", "top-k", "all"),
        default="none",
        help="also offer capabilities as tools of their own: the --top-k that recent searches "
        "found (else the most used), or all active ones (default: none)",
    )
    p.add_argument("--top-k", type=int, default=8, help="how many with --expose top-k (default 8)")
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds a capability may run in the sandbox (default: the sandbox's, 5)",
    )
    p.add_argument(
        "--poll",
        type=float,
        default=1.0,
        help="seconds between looks for changes by other processes (0: never; default 1)",
    )
    p.add_argument(
        "--no-hot-path",
        dest="hot_path",
        action="store_false",
        help="over stdio, hand every message to the MCP SDK's server, capability runs "
        "included (by default they are answered directly; for debugging and comparison)",
    )
    p.set_defaults(func=cmd_mcp)


def cmd_mcp(args: argparse.Namespace) -> int:
    import anyio

    from symbiont.mcp.server import (
        TOKEN_ENV,
        CapabilityServer,
        ServerOptions,
        check_bind,
        parse_address,
        serve_http,
    )

    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV) or None
    address = parse_address(args.http) if args.http else None
    if address is not None:
        check_bind(address[0], token)  # before opening anything
    options = ServerOptions(
        store=args.store,
        data_root=args.data_root,
        tier=args.tier,
        expose=args.expose,
        top_k=args.top_k,
        timeout_s=args.timeout,
        poll_s=args.poll,
        hot_path=args.hot_path,
    )
    # Every library call runs in a worker thread while the event loop keeps the protocol
    # going; at the default 5 ms switch interval a hand-off of the GIL between them can cost
    # up to 5 ms per call on a busy machine (measured by benchmarks/bench_mcp.py).
    sys.setswitchinterval(0.0005)
    server = CapabilityServer(options)
    try:
        if address is None:
            anyio.run(server.serve_stdio)
        else:
            anyio.run(lambda: serve_http(server, address[0], address[1], token=token))
    finally:
        server.close()
    return 0


def register_export_tools(cmds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`symbiont lib export-tools` (registered by `symbiont.cli.lib`)."""
    p = cmds.add_parser(
        "export-tools",
        help="print the active capabilities as tool definitions (openai, anthropic, mcp)",
        description="Print the tool definitions of the active capabilities as JSON, for the "
        "OpenAI or Anthropic SDK (route each call to Library.run, or "
        "symbiont.mcp.schemas.run_tool_call) or as MCP tools.",
    )
    p.add_argument("--format", choices=("openai", "anthropic", "mcp"), default="openai")
    p.add_argument("--store", default=None, help="store file (default: as for the other commands)")
    p.set_defaults(func=cmd_export_tools)


def cmd_export_tools(args: argparse.Namespace) -> int:
    from symbiont.library import Library

    with Library(args.store) as lib:
        tools: list[dict[str, Any]] = lib.as_tools(args.format)
    print(json.dumps(tools, indent=2, ensure_ascii=False))
    return 0
