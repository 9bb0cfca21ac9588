"""Bad input on the wire itself: `symbiont mcp` over stdio fed broken JSON, unknown methods and
ill-typed arguments, one line at a time, without an SDK client to smooth anything over. Every
request still gets an answer and the server keeps serving."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from pathlib import Path
from typing import Any

from mcp_helpers import STARTUP_S, SYMBIONT, employee, server_env


class RawServer:
    def __init__(self, home: Path) -> None:
        env = {**os.environ, **server_env(home)}
        for name in ("OPENAI_BASE_URL", "SYMBIONT_MODEL"):
            env.pop(name, None)
        self.proc = subprocess.Popen(
            [SYMBIONT, "mcp"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=(home / "server.err").open("w"),
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def request(self, id_: int, method: str, params: Any = None) -> dict[str, Any]:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
        if params is not None:
            message["params"] = params
        self.send(json.dumps(message))
        return self.answer(id_)

    def answer(self, id_: int) -> dict[str, Any]:
        while True:  # every line on stdout must be JSON-RPC: nothing else may leak there
            message = json.loads(self.lines.get(timeout=STARTUP_S))
            assert message["jsonrpc"] == "2.0"
            if message.get("id") == id_:
                return message

    def close(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(timeout=30)


def test_broken_messages_never_take_the_server_down(home: Path) -> None:
    server = RawServer(home)
    try:
        server.send("this is not json")
        server.send('{"jsonrpc": "2.0", "id": 99, "method": ')  # cut off
        init = server.request(
            1,
            "initialize",
            {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"},
            },
        )
        assert init["result"]["serverInfo"]["name"] == "symbiont"
        server.send('{"jsonrpc": "2.0", "method": "notifications/initialized"}')

        unknown = server.request(2, "tools/destroy", {})
        assert unknown["error"]["code"] == -32601  # method not found

        bad_params = server.request(3, "tools/call", {"name": "run_capability", "arguments": [1]})
        assert "error" in bad_params

        ill_typed = server.request(
            4, "tools/call", {"name": "run_capability", "arguments": {"id": 123, "input": {}}}
        )
        assert ill_typed["result"]["isError"] is True
        assert "'id'" in ill_typed["result"]["content"][0]["text"]

        huge = server.request(
            5,
            "tools/call",
            {"name": "get_capability", "arguments": {"id": "x" * 100_000}},
        )
        assert huge["result"]["isError"] is True

        ran = server.request(
            6,
            "tools/call",
            {
                "name": "run_capability",
                "arguments": {"id": "get_salary_details", "input": {"employee_id": "E007"}},
            },
        )
        assert ran["result"]["isError"] is False
        output = ran["result"]["structuredContent"]["output"]
        assert output["base"] == employee("E007")["salary"]["base"]
    finally:
        code = server.close()
    assert code == 0  # stdin closed: a clean exit, not a crash
