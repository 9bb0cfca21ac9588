"""Start `symbiont mcp` as a subprocess and talk to it with the MCP SDK's own client."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types

from mcp import ClientSession, StdioServerParameters, stdio_client

REPO = Path(__file__).resolve().parents[2]
HR_EXAMPLES = REPO / "examples" / "hr"
HR_DATABASE = HR_EXAMPLES / "data" / "hr" / "employee_database.json"
TEST_CAPABILITIES = Path(__file__).resolve().parent / "capabilities"
SYMBIONT = str(Path(sys.executable).parent / "symbiont")  # the installed console script
STARTUP_S = 120.0  # a loaded 2-core machine imports slowly; only a bound, not a measurement


def server_env(home: Path, **extra: str) -> dict[str, str]:
    """The server's environment: the store through SYMBIONT_HOME, the process sandbox."""
    return {"SYMBIONT_HOME": str(home), "SYMBIONT_SANDBOX": "process", **extra}


class Notifications:
    """What the server sent unasked, with a way to wait for one kind."""

    def __init__(self) -> None:
        self.received: list[Any] = []
        self._changed = anyio.Event()

    async def __call__(self, message: Any) -> None:
        self.received.append(message)
        self._changed.set()

    def methods(self) -> list[str]:
        return [getattr(m, "method", type(m).__name__) for m in self.received]

    async def wait_for(self, method: str, timeout: float = 30.0) -> None:
        with anyio.fail_after(timeout):
            while method not in self.methods():
                self._changed = anyio.Event()
                await self._changed.wait()


@asynccontextmanager
async def stdio_session(
    home: Path,
    *args: str,
    env: dict[str, str] | None = None,
    command: str = SYMBIONT,
    argv: Sequence[str] | None = None,
) -> AsyncIterator[tuple[ClientSession, Notifications]]:
    """`symbiont mcp ARGS` over stdio, initialized; its stderr goes to HOME/server.err."""
    params = StdioServerParameters(
        command=command,
        args=list(argv) if argv is not None else ["mcp", *args],
        env=env if env is not None else server_env(home),
    )
    notes = Notifications()
    with (home / "server.err").open("a") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write, message_handler=notes) as session,
        ):
            with anyio.fail_after(STARTUP_S):
                await session.initialize()
            yield session, notes


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


def payload(result: types.CallToolResult) -> Any:
    """The JSON a successful core tool returned (its text content)."""
    assert not result.is_error, text_of(result)
    return json.loads(text_of(result))


def employee(employee_id: str) -> dict[str, Any]:
    """An employee record straight from the HR example data file."""
    return json.loads(HR_DATABASE.read_text())["employees"][employee_id]


@contextmanager
def http_server(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`symbiont mcp --http ...` as a subprocess; yields it and its URL once it listens."""
    full_env = {**os.environ, **(env if env is not None else server_env(home))}
    for name in ("OPENAI_BASE_URL", "SYMBIONT_MODEL", "SYMBIONT_MCP_TOKEN"):
        if env is None or name not in env:
            full_env.pop(name, None)
    proc = subprocess.Popen(
        [SYMBIONT, "mcp", *args],
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = _wait_for_url(proc)
        yield proc, url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_for_url(proc: subprocess.Popen[str]) -> str:
    """The URL the server announces on stderr; the rest of stderr is drained by a thread."""
    assert proc.stderr is not None
    stream = proc.stderr
    lines: queue.Queue[str | None] = queue.Queue()

    def drain() -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=drain, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            proc.wait()
            raise AssertionError(
                f"the server exited ({proc.returncode}) before listening:\n{''.join(seen)}"
            )
        seen.append(line)
        match = re.search(r"serving (http://\S+/mcp)", line)
        if match:
            return match.group(1)
    raise AssertionError(f"the server did not listen within {STARTUP_S} s:\n{''.join(seen)}")
