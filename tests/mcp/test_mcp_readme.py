"""The README's MCP configuration snippets, launched exactly as they say (only the placeholder
home replaced by a test store), and driven with the SDK's client."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp_helpers import REPO, SYMBIONT, employee, payload, stdio_session

PLACEHOLDER = "/path/to/symbiont-home"


def _section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("## Any agent: the library over MCP")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", _section(), re.DOTALL)


def _json_servers() -> list[dict[str, Any]]:
    servers = []
    for block in _blocks("json"):
        config = json.loads(block)
        servers.extend(s for s in config["mcpServers"].values() if "command" in s)
    return servers


def _claude_mcp_add() -> dict[str, Any]:
    """`claude mcp add NAME --env K=V -- COMMAND ARGS...` as command, args and env."""
    line = next(
        line for block in _blocks("sh") for line in block.splitlines() if "claude mcp add" in line
    )
    words = shlex.split(line)
    split = words.index("--")
    env = dict(
        words[i + 1].split("=", 1) for i, w in enumerate(words[:split]) if w in ("--env", "-e")
    )
    return {"command": words[split + 1], "args": words[split + 2 :], "env": env}


SNIPPETS = [*_json_servers(), _claude_mcp_add()]


def test_the_section_has_the_snippets() -> None:
    assert len(_json_servers()) == 1
    assert all(s["command"] == "symbiont" and s["args"][0] == "mcp" for s in SNIPPETS)
    assert all(s["env"]["SYMBIONT_HOME"] == PLACEHOLDER for s in SNIPPETS)


@pytest.mark.parametrize("snippet", SNIPPETS, ids=["json", "claude-mcp-add"])
def test_a_snippet_launches_a_working_server(snippet: dict[str, Any], home: Path) -> None:
    env = {k: v.replace(PLACEHOLDER, str(home)) for k, v in snippet["env"].items()}
    # the client finds `symbiont` on PATH, as a desktop client would
    env["PATH"] = f"{Path(SYMBIONT).parent}{os.pathsep}{os.environ.get('PATH', '')}"

    async def main() -> None:
        async with stdio_session(
            home, command=snippet["command"], argv=snippet["args"], env=env
        ) as (session, _):
            tools = {t.name for t in (await session.list_tools()).tools}
            assert {"search_capabilities", "run_capability", "get_capability"} <= tools
            ran = await session.call_tool(
                "run_capability", {"id": "get_salary_details", "input": {"employee_id": "E007"}}
            )
            assert payload(ran)["output"]["base"] == employee("E007")["salary"]["base"]

    anyio.run(main)
