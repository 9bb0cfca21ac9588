"""The 2026-07-28 protocol over stdio: a client that negotiates it (the SDK's `Client` in its
default `auto` mode) gets the change notifications on a `subscriptions/listen` stream.

The server is the real `symbiont mcp` subprocess; the capability `ratio` fails for b = 0 and
is deprecated after its second failure (the library's default), which changes both the tool
list (`--expose all`) and the resource list (its status).
"""

from __future__ import annotations

from pathlib import Path

import anyio
from mcp.client.subscriptions import ResourcesListChanged, ToolsListChanged
from mcp_helpers import STARTUP_S, SYMBIONT, server_env, text_of
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcp import Client, StdioServerParameters, stdio_client


def test_a_listen_stream_carries_the_list_changes(home: Path) -> None:
    params = StdioServerParameters(
        command=SYMBIONT, args=["mcp", "--expose", "all", "--poll", "0"], env=server_env(home)
    )

    async def main() -> None:
        with (
            (home / "server.err").open("a") as errlog,
            anyio.fail_after(STARTUP_S),  # a bound for a loaded machine, not a measurement
        ):
            async with Client(stdio_client(params, errlog=errlog)) as client:
                assert client.protocol_version in MODERN_PROTOCOL_VERSIONS
                tools = client.server_capabilities.tools
                assert tools is not None and tools.list_changed  # served: subscriptions/listen
                assert "ratio" in {t.name for t in (await client.list_tools()).tools}

                async with client.listen(
                    tools_list_changed=True, resources_list_changed=True
                ) as sub:
                    assert sub.honored.tools_list_changed and sub.honored.resources_list_changed
                    first = await client.call_tool("ratio", {"a": 1, "b": 0})
                    assert first.is_error and "deprecated" not in text_of(first)
                    second = await client.call_tool("ratio", {"a": 2, "b": 0})
                    assert second.is_error and "is deprecated" in text_of(second)
                    seen: set[type] = set()
                    with anyio.fail_after(30):
                        async for event in sub:
                            seen.add(type(event))
                            if seen == {ToolsListChanged, ResourcesListChanged}:
                                break
                # the client's cached tool list was dropped with the event: asked again
                assert "ratio" not in {t.name for t in (await client.list_tools()).tools}
                resources = {str(r.uri): r for r in (await client.list_resources()).resources}
                assert "[deprecated," in (resources["capability://ratio"].description or "")

    anyio.run(main)


def test_a_handshake_client_cannot_listen_and_still_gets_notifications(home: Path) -> None:
    """An older client (the initialize handshake) is told to use the connection's
    notifications, which it still gets; the listen stream is the newest protocol's only."""
    from mcp.client.subscriptions import ListenNotSupportedError

    params = StdioServerParameters(
        command=SYMBIONT, args=["mcp", "--expose", "all", "--poll", "0"], env=server_env(home)
    )
    received: list[str] = []

    async def note(message: object) -> None:
        received.append(str(getattr(message, "method", "")))

    async def main() -> None:
        with (home / "server.err").open("a") as errlog, anyio.fail_after(STARTUP_S):
            client = Client(
                stdio_client(params, errlog=errlog), mode="legacy", message_handler=note
            )
            async with client:
                assert client.protocol_version not in MODERN_PROTOCOL_VERSIONS
                try:
                    async with client.listen(tools_list_changed=True):
                        raise AssertionError("a handshake connection opened a listen stream")
                except ListenNotSupportedError:
                    pass
                for b in (0, 0):
                    await client.call_tool("ratio", {"a": 1, "b": b})
                with anyio.fail_after(30):
                    while "notifications/tools/list_changed" not in received:
                        await anyio.sleep(0.05)

    anyio.run(main)
