"""`symbiont mcp --http HOST:PORT`: streamable HTTP driven by the SDK's own client, and the
bearer-token rule (required off loopback, refused clearly without one)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp_helpers import (
    STARTUP_S,
    SYMBIONT,
    Notifications,
    employee,
    http_server,
    payload,
    server_env,
    text_of,
)

from mcp import ClientSession

TOKEN = "s3cret-token-for-the-test-0123456789"


@asynccontextmanager
async def http_session(
    url: str, token: str | None = None
) -> AsyncIterator[tuple[ClientSession, Notifications]]:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    notes = Notifications()
    async with (
        create_mcp_http_client(headers=headers) as client,
        streamable_http_client(url, http_client=client) as (read, write),
        ClientSession(read, write, message_handler=notes) as session,
    ):
        with anyio.fail_after(STARTUP_S):
            await session.initialize()
        yield session, notes


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for e in error.exceptions for leaf in _leaves(e)]
    return [error]


def test_streamable_http_on_loopback(home: Path) -> None:
    with http_server(home, "--http", "127.0.0.1:0", "--expose", "all", "--poll", "0.2") as (
        _,
        url,
    ):
        assert url.startswith("http://127.0.0.1:")

        async def main() -> None:
            async with http_session(url) as (session, notes):
                tools = {t.name for t in (await session.list_tools()).tools}
                assert {"search_capabilities", "run_capability", "get_capability"} <= tools
                assert "get_leave_balance" in tools
                found = payload(
                    await session.call_tool(
                        "search_capabilities", {"query": "how many vacation days are left"}
                    )
                )
                assert found["results"][0]["id"] == "get_leave_balance"
                leave = await session.call_tool("get_leave_balance", {"employee_id": "E003"})
                assert not leave.is_error, text_of(leave)
                leave_data = employee("E003")["leave"]
                result = leave.structured_content["result"]  # checked against its outputSchema
                assert result["employee_id"] == "E003"
                assert result["annual_used_days"] == leave_data["annual_used_days"]
                assert result["remaining_days"] == (
                    leave_data["annual_allowance_days"]
                    + leave_data["carried_over_days"]
                    - leave_data["annual_used_days"]
                )

                bad = await session.call_tool("run_capability", {"id": "get_leave_balance"})
                assert bad.is_error and "employee_id" in text_of(bad)

                # deprecation over HTTP reaches this client as a notification
                for b in (0, 0):
                    await session.call_tool("ratio", {"a": 1, "b": b})
                await notes.wait_for("notifications/tools/list_changed")
                assert "ratio" not in {t.name for t in (await session.list_tools()).tools}

        anyio.run(main)


def test_a_non_loopback_bind_without_a_token_is_refused(home: Path) -> None:
    full = {**os.environ, **server_env(home)}
    full.pop("SYMBIONT_MCP_TOKEN", None)
    done = subprocess.run(
        [SYMBIONT, "mcp", "--http", "0.0.0.0:0"],
        env=full,
        capture_output=True,
        text=True,
        timeout=STARTUP_S,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode != 0
    assert "refusing to serve" in done.stderr and "not a loopback address" in done.stderr
    assert "SYMBIONT_MCP_TOKEN" in done.stderr
    assert "serving" not in done.stderr
    assert "Traceback" not in done.stderr


def test_a_non_loopback_bind_needs_the_bearer_token(home: Path) -> None:
    env = server_env(home, SYMBIONT_MCP_TOKEN=TOKEN)
    with http_server(home, "--http", "0.0.0.0:0", env=env) as (_, url):
        local = url.replace("0.0.0.0", "127.0.0.1")

        # the plain HTTP answer names the problem
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            response = httpx2.post(
                local,
                json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                headers={"Accept": "application/json, text/event-stream", **headers},
            )
            assert response.status_code == 401
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert "SYMBIONT_MCP_TOKEN" in response.json()["error_description"]

        async def refused(token: str | None) -> None:
            """The SDK client cannot even initialize: the server answers 401."""
            with pytest.raises(BaseException) as caught:
                async with http_session(local, token):
                    pass
            errors = _leaves(caught.value)
            assert errors and all(isinstance(e, MCPError) for e in errors), errors

        async def main() -> None:
            await refused(None)
            await refused("wrong-token")
            async with http_session(local, TOKEN) as (session, _):
                ran = await session.call_tool(
                    "run_capability",
                    {"id": "get_salary_details", "input": {"employee_id": "E007"}},
                )
                assert payload(ran)["output"]["base"] == employee("E007")["salary"]["base"]

        anyio.run(main)
