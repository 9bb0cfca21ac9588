"""The stdio hot path (symbiont.mcp.hotpath) answers capability runs as the SDK path does.

Two real `symbiont mcp` subprocesses on identical copies of the store, one as it starts by
default and one with `--no-hot-path` (every message through the SDK's server), are fed the
same lines; what each writes back must be the same bytes (the run time, `duration_s`, is the
one field that may differ and is blanked). The hot one must say on stderr that it answered
the calls itself, and the other none, so a hot path that silently never engages fails too.
Then the SDK's own `ClientSession` drives a hot server through the error kinds and the
deprecation with its list-changed notification, and bad lines aimed at the hot path must get
the SDK path's answers (JSON-RPC's errors for what is not a message) and leave the server
serving.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp_helpers import STARTUP_S, SYMBIONT, employee, payload, server_env, stdio_session, text_of

HOT_LINE = re.compile(r"symbiont mcp: (\d+) tool calls answered by the hot path")
DURATION = re.compile(rb'(duration_s\\?"\s*:\s*)[-+0-9.eE]+')
INIT = {
    "protocolVersion": "2025-11-25",
    "capabilities": {},
    "clientInfo": {"name": "raw", "version": "0"},
}
SALARY = {"id": "get_salary_details", "input": {"employee_id": "E007"}}


class RawServer:
    """`symbiont mcp ARGS` on stdin/stdout pipes, written and read line by line."""

    def __init__(self, home: Path, *args: str) -> None:
        env = {**os.environ, **server_env(home)}
        for name in ("OPENAI_BASE_URL", "SYMBIONT_MODEL"):
            env.pop(name, None)
        self.err = home / "server.err"
        self.proc = subprocess.Popen(
            [SYMBIONT, "mcp", "--poll", "0", *args],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.err.open("w"),
        )
        self.lines: queue.Queue[bytes] = queue.Queue()
        self._pings = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def exchange(self, line: bytes | str, answer_id: Any = None) -> list[bytes]:
        """Send one line, then a ping; every line written back until the ping's answer and
        (given `answer_id`) the answer to that id are in; the ping's answer left out. (The
        SDK path may answer the ping first: a deprecation's announcement waits for the
        library's worker thread.)"""
        self._pings += 1
        ping = f"ping-{self._pings}"
        raw = line.encode() if isinstance(line, str) else line
        ping_line = json.dumps({"jsonrpc": "2.0", "id": ping, "method": "ping"}).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(raw + b"\n" + ping_line + b"\n")
        self.proc.stdin.flush()
        got: list[bytes] = []
        pinged, answered = False, answer_id is None
        while not (pinged and answered):
            out = self.lines.get(timeout=STARTUP_S)
            message = json.loads(out)
            if message.get("id") == ping:
                pinged = True
                continue
            answered = answered or ("method" not in message and message.get("id") == answer_id)
            got.append(DURATION.sub(rb"\g<1>0", out))
        return got

    def start(self) -> None:
        init = self.exchange(request(0, "initialize", INIT))
        assert json.loads(init[0])["result"]["serverInfo"]["name"] == "symbiont"
        assert (
            self.exchange(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            == []
        )

    def close(self) -> tuple[int, int | None]:
        """Exit code (stdin closed), and how many calls the hot path answered (None: off)."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        code = self.proc.wait(timeout=60)
        found = HOT_LINE.findall(self.err.read_text())
        return code, int(found[-1]) if found else None


def request(id_: Any, method: str, params: Any = None) -> str:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        message["params"] = params
    return json.dumps(message, ensure_ascii=False)


def call(id_: Any, name: str, arguments: Any) -> str:
    return request(id_, "tools/call", {"name": name, "arguments": arguments})


def twin_homes(home: Path, tmp_path: Path) -> tuple[Path, Path]:
    twin = tmp_path / "twin"
    shutil.copytree(home, twin)
    return home, twin


def run_both(
    home: Path, tmp_path: Path, lines: list[str] | list[bytes], *args: str, answered: bool
) -> tuple[dict[str, list[list[bytes]]], dict[str, tuple[int, int | None]]]:
    """The answers of a default server and of a `--no-hot-path` one to the same lines
    (`answered`: each line is a request that gets an answer under its id)."""
    hot_home, sdk_home = twin_homes(home, tmp_path)
    answers: dict[str, list[list[bytes]]] = {}
    counts: dict[str, tuple[int, int | None]] = {}
    for name, where, extra in (("hot", hot_home, ()), ("sdk", sdk_home, ("--no-hot-path",))):
        server = RawServer(where, *args, *extra)
        try:
            server.start()
            answers[name] = [
                server.exchange(line, json.loads(line)["id"] if answered else None)
                for line in lines
            ]
        finally:
            counts[name] = server.close()
    return answers, counts


# the calls the hot path takes: each a tools/call for a capability run
RUNS = [
    call(1, "run_capability", SALARY),
    call("two", "get_salary_details", {"employee_id": "E007"}),  # its own tool, a string id
    call(3, "run_capability", {"id": "get_salary_details", "input": {"employee": 7}}),  # schema
    call(4, "run_capability", {"id": 123, "input": {}}),  # arguments of the wrong type
    call(5, "run_capability", {"id": "get_salary_details", "input": "E007"}),
    call(6, "run_capability", {"id": "get_salary_detail", "input": {"employee_id": "E007"}}),
    call(7, "run_capability", {"id": "ratio", "input": {"a": 6, "b": 3}}),
    call(8, "ratio", {"a": 1, "b": 0}),  # fails
    call(9, "run_capability", {"id": "ratio", "input": {"a": 2, "b": 0}}),  # deprecated now
    call(10, "ratio", {"a": 6, "b": 3}),  # deprecated
    call(11, "run_capability", {"id": "count_up", "input": {"n": -1}}),  # sandbox timeout
    call(12, "run_capability", {"id": "fetch_page", "input": {"url": "https://example.com/"}}),
    call(13, "run_capability", {"id": "get_salary_details", "input": {"employee_id": "É007 ✓"}}),
    call(2**63 - 1, "run_capability", SALARY),  # the largest id the hot path takes
]


def test_the_hot_path_writes_what_the_sdk_path_writes(home: Path, tmp_path: Path) -> None:
    answers, counts = run_both(
        home, tmp_path, RUNS, "--expose", "all", "--timeout", "1", answered=True
    )
    assert counts["hot"] == (0, len(RUNS))  # every one of them answered around the SDK
    assert counts["sdk"] == (0, None)
    for line, hot, sdk in zip(RUNS, answers["hot"], answers["sdk"], strict=True):
        assert hot == sdk, line
    # and they are the answers they should be (the SDK path's, checked on their own)
    by_id = {
        str(json.loads(line)["id"]): lines for line, lines in zip(RUNS, answers["hot"], strict=True)
    }
    first = json.loads(by_id["1"][0])["result"]
    assert first["isError"] is False
    assert first["structuredContent"]["output"]["base"] == employee("E007")["salary"]["base"]
    for id_, kind in [("3", "invalid_input"), ("4", "invalid_arguments"), ("6", "unknown")]:
        result = json.loads(by_id[id_][-1])["result"]
        assert result["isError"] is True and kind in result["content"][0]["text"], id_
    # the deprecation is announced before the call that caused it answers
    methods = [json.loads(m).get("method") for m in by_id["9"]]
    assert methods[:2] == [
        "notifications/tools/list_changed",
        "notifications/resources/list_changed",
    ]
    assert json.loads(by_id["9"][-1])["result"]["isError"] is True
    assert "deprecated" in json.loads(by_id["10"][0])["result"]["content"][0]["text"]
    assert "timeout" in json.loads(by_id["11"][0])["result"]["content"][0]["text"]
    assert "denied" in json.loads(by_id["12"][0])["result"]["content"][0]["text"]


# lines that name tools/call but that the hot path must leave to the SDK, or that are wrong
BAD = [
    b'{"jsonrpc": "2.0", "id": 20, "method": "tools/call", "params": {"name": "run_capab',
    b'{"jsonrpc": "2.0", "id": 21, "method": "tools/call", "params": {"name": "run_capability", '
    b'"arguments": {"id": "ratio", "input": {"a": NaN, "b": 1}}}}',
    b'{"jsonrpc": "2.0", "id": 22, "method": "tools/call", "params": {"name": "run_capability", '
    b'"arguments": {"id": "get_salary_details", "input": {"employee_id": "\\ud800"}}}}',
    b'{"jsonrpc": "2.0", "id": 23, "method": "tools/call", "params": {"name": "run_capability", '
    b'"arguments": {"id": "get_salary_details", "input": {"employee_id": "\xff\xfe"}}}}',
    call(10**30, "run_capability", SALARY).encode(),  # a huge id
    call(-(10**30), "run_capability", SALARY).encode(),
    call(True, "run_capability", SALARY).encode(),
    call(2.5, "run_capability", SALARY).encode(),
    call(None, "run_capability", SALARY).encode(),
    call(24, "run_capability", [1, 2]).encode(),  # arguments not an object
    call(25, 7, SALARY).encode(),  # a name that is not a string
    request(26, "tools/call", {"name": "run_capability"}).encode(),  # no arguments
    request(27, "tools/call", [1]).encode(),
    request(28, "tools/call").encode(),
    request(
        29,
        "tools/call",
        {"name": "run_capability", "arguments": SALARY, "_meta": {"progressToken": 5}},
    ).encode(),
    request(30, "tools/call", {"name": "run_capability", "arguments": SALARY, "x": 1}).encode(),
    json.dumps({"jsonrpc": "1.0", "id": 31, "method": "tools/call", "params": {}}).encode(),
    json.dumps({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "x"}}).encode(),
    b'[{"jsonrpc": "2.0", "id": 32, "method": "tools/call"}]',
    call(33, "no_such_tool", {}).encode(),
    call("x" * 100_000, "run_capability", SALARY).encode(),  # a huge string id: fine
    call(34, "run_capability", SALARY).encode(),  # and the server still serves
]


def test_bad_lines_get_the_sdks_answers_and_never_stop_the_server(
    home: Path, tmp_path: Path
) -> None:
    answers, counts = run_both(home, tmp_path, BAD, answered=False)
    # the NaN input (both parsers read it; the capability's schema check refuses it), the huge
    # string id and the last call; the rest are the SDK's
    assert counts["hot"] == (0, 3)
    assert counts["sdk"] == (0, None)
    for line, hot, sdk in zip(BAD, answers["hot"], answers["sdk"], strict=True):
        assert hot == sdk, line[:200]

    # what is not a JSON-RPC message gets JSON-RPC's error, under its id when it has one
    def error_of(line: bytes) -> tuple[Any, int]:
        (answer,) = answers["hot"][BAD.index(line)]
        message = json.loads(answer)
        return message["id"], message["error"]["code"]

    assert error_of(BAD[0]) == (None, -32700)  # cut off: a parse error
    assert error_of(BAD[3]) == (None, -32700)  # not UTF-8
    assert error_of(request(27, "tools/call", [1]).encode()) == (27, -32600)
    assert error_of(BAD[BAD.index(b'[{"jsonrpc": "2.0", "id": 32, "method": "tools/call"}]')]) == (
        None,
        -32600,
    )
    last = json.loads(answers["hot"][-1][0])
    assert last["id"] == 34 and last["result"]["isError"] is False
    huge = json.loads(answers["hot"][BAD.index(call(10**30, "run_capability", SALARY).encode())][0])
    assert huge["id"] == 10**30  # answered, by the SDK, under its own id


def test_the_sdk_client_sees_the_hot_path_as_it_sees_the_sdk_path(
    home: Path, tmp_path: Path
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = [
        ("run_capability", SALARY),
        ("get_salary_details", {"employee_id": "E007"}),
        ("run_capability", {"id": "get_salary_details", "input": {"employee_id": 7}}),
        ("run_capability", {"id": "nothing-like-it", "input": {}}),
        ("ratio", {"a": 1, "b": 0}),
        ("ratio", {"a": 1, "b": 0}),  # deprecated now
        ("run_capability", {"id": "ratio", "input": {"a": 6, "b": 3}}),
        ("run_capability", {"id": "count_up", "input": {"n": -1}}),
        ("run_capability", {"id": "fetch_page", "input": {"url": "https://example.com/"}}),
    ]

    async def session_results(where: Path, *extra: str) -> tuple[list[Any], list[str]]:
        args = ("--expose", "all", "--timeout", "1", "--poll", "0", *extra)
        async with stdio_session(where, *args) as (session, notes):
            results = []
            for name, arguments in calls:
                result = await session.call_tool(name, arguments)
                dumped = result.model_dump(by_alias=True, exclude_none=True)
                structured = dumped.get("structuredContent") or {}
                if "duration_s" in structured:
                    structured["duration_s"] = 0
                    dumped["content"] = []  # the same JSON as text, with the time in it
                results.append(dumped)
            await notes.wait_for("notifications/tools/list_changed")
            assert payload(await session.call_tool("run_capability", SALARY))["output"]
            return results, notes.methods()

    hot_home, sdk_home = twin_homes(home, tmp_path)
    hot, hot_notes = anyio.run(session_results, hot_home)
    sdk, sdk_notes = anyio.run(session_results, sdk_home, "--no-hot-path")
    assert hot == sdk
    assert hot_notes == sdk_notes
    assert "notifications/tools/list_changed" in hot_notes
    kinds = [r["isError"] for r in hot]
    assert kinds == [False, False, True, True, True, True, True, True, True]
    assert HOT_LINE.findall((hot_home / "server.err").read_text()) == [str(len(calls) + 1)]
    assert HOT_LINE.findall((sdk_home / "server.err").read_text()) == []


def test_requests_with_a_progress_token_go_through_the_sdk(home: Path) -> None:
    """A call that asks for progress is the SDK's (it may send progress for it)."""

    async def main() -> None:
        async with stdio_session(home, "--poll", "0") as (session, _):
            seen: list[float] = []

            async def progress(done: float, total: float | None, message: str | None) -> None:
                seen.append(done)

            result = await session.call_tool("run_capability", SALARY, progress_callback=progress)
            assert "E007" in text_of(result)
            assert payload(await session.call_tool("run_capability", SALARY))["output"]

    anyio.run(main)
    assert HOT_LINE.findall((home / "server.err").read_text()) == ["1"]


@pytest.mark.parametrize("version", ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"])
def test_the_result_shape_is_the_protocol_surfaces_for_every_handshake_version(
    version: str,
) -> None:
    """The hot path's own result shaping against the SDK's surface serialiser, in process."""
    from mcp_types import methods

    from symbiont.mcp.hotpath import wire_result
    from symbiont.mcp.server import ToolFailure, error_result, ok_result

    for result in (
        ok_result({"output": {"x": None, "y": [1.5, "é"]}, "duration_s": 0.25}),
        ok_result(3, structured={"result": 3}),
        error_result(ToolFailure("invalid_input", "no", problems=["a", "b"])),
    ):
        surface = methods.serialize_server_result("tools/call", version, result)
        assert json.dumps(wire_result(result)) == json.dumps(surface)


def test_a_cancellation_of_a_hot_path_call_finds_it_answered(home: Path) -> None:
    """A hot-path call is answered before the next line is read: a `notifications/cancelled`
    sent right behind it arrives after the answer, and is ignored (the protocol's "the
    request already finished" case); the server goes on serving."""
    server = RawServer(home, "--timeout", "1")
    try:
        server.start()
        spin = call(40, "run_capability", {"id": "count_up", "input": {"n": -1}})
        cancel = json.dumps(
            {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 40}}
        )
        got = server.exchange(spin + "\n" + cancel, answer_id=40)
        assert len(got) == 1  # the answer, nothing else
        assert "timeout" in json.loads(got[0])["result"]["content"][0]["text"]
        ran = server.exchange(call(41, "run_capability", SALARY), answer_id=41)
        assert json.loads(ran[0])["result"]["isError"] is False
    finally:
        assert server.close() == (0, 2)


@pytest.mark.parametrize(
    ("arguments", "plain"),
    [
        ({"id": "ratio"}, True),
        ({"id": "ratio", "input": {}}, True),
        ({"id": "ratio", "input": {"a": float("nan"), "b": [1, {"c": None}]}}, True),
        ({"id": 1, "input": {}}, False),
        ({"id": "ratio", "input": []}, False),
        ({"id": "ratio", "input": None}, False),
        ({"id": "ratio", "input": {}, "extra": 1}, False),
        ({"input": {}}, False),
    ],
)
def test_run_arguments_skip_the_schema_check_only_when_it_would_pass(
    arguments: dict[str, Any], plain: bool
) -> None:
    from symbiont.library import validate
    from symbiont.mcp.server import RUN_TOOL, _plain_run_arguments

    assert _plain_run_arguments(arguments) is plain
    problems = validate(arguments, dict(RUN_TOOL["inputSchema"]), what="arguments")
    if plain:  # the check it skips finds nothing; (the others get checked, and fail)
        assert problems == []
    else:
        assert problems


def test_a_traced_server_sends_every_call_through_the_sdk(home: Path) -> None:
    """With a tracer provider configured, every message is traced: no hot path."""
    env = server_env(home, OTEL_PYTHON_TRACER_PROVIDER="default_tracer_provider")

    async def main() -> None:
        async with stdio_session(home, "--poll", "0", env=env) as (session, _):
            for _ in range(2):
                assert payload(await session.call_tool("run_capability", SALARY))["output"]

    anyio.run(main)
    assert HOT_LINE.findall((home / "server.err").read_text()) == []
