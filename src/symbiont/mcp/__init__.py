"""The capability library for any agent: an MCP server and tool schemas for other APIs.

    symbiont mcp                              # stdio (Claude Desktop, Claude Code, Cursor)
    symbiont mcp --http 127.0.0.1:8765        # streamable HTTP
    symbiont lib export-tools --format openai # tool definitions for the OpenAI SDK

- `CapabilityServer`, `ServerOptions`, `serve_http` (`symbiont.mcp.server`) — the server,
  on the official `mcp` SDK;
- `capability_tools`, `run_tool_call` (`symbiont.mcp.schemas`) — capabilities as OpenAI,
  Anthropic or MCP tool definitions, and a model's tool call routed to `Library.run`;
  they need no MCP SDK.

Names are imported lazily, so `Library.as_tools` does not load the SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from symbiont.mcp.schemas import TOOL_FORMATS, capability_tools, run_tool_call
    from symbiont.mcp.server import CapabilityServer, ServerOptions, serve_http

_WHERE = {
    "TOOL_FORMATS": "symbiont.mcp.schemas",
    "capability_tools": "symbiont.mcp.schemas",
    "run_tool_call": "symbiont.mcp.schemas",
    "CapabilityServer": "symbiont.mcp.server",
    "ServerOptions": "symbiont.mcp.server",
    "serve_http": "symbiont.mcp.server",
}

__all__ = [
    "TOOL_FORMATS",
    "CapabilityServer",
    "ServerOptions",
    "capability_tools",
    "run_tool_call",
    "serve_http",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'symbiont.mcp' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
