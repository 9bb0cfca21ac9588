"""A minimal LSP client for a long-lived `ty server`: the fastest way to type-check a candidate.

`ty check` pays its start-up (reading typeshed, resolving the environment, inferring every
imported module) on every run: 35-90 ms per candidate here. A `ty server` keeps all of that
in memory (salsa-incremental), so after the first check a candidate costs ~2-3 ms: we send
the module's text with the candidate in place as an in-memory edit of the module's real file
(`didChange`; nothing is written to disk) and pull the diagnostics (`textDocument/diagnostic`).
Using the real file's URI is what makes relative imports and sibling modules resolve.

One server runs per (executable, import root), started on first use and stopped at exit.
A forked child never uses its parent's server (the pid is checked). Any protocol failure or
timeout raises `TyServerError`; the caller then falls back to the `ty check` command.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import selectors
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class TyServerError(RuntimeError):
    """The ty server could not be started or did not answer in time."""


@dataclass(frozen=True, slots=True)
class RawDiagnostic:
    line: int  # 1-based
    col: int  # 1-based, in characters
    end_line: int
    end_col: int
    code: str
    message: str
    severity: int  # LSP: 1 error, 2 warning, 3 information, 4 hint


class TyServer:
    def __init__(
        self, executable: str, root: Path, env: dict[str, str], *, timeout: float = 20.0
    ) -> None:
        self.root = root
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self._next_id = 0
        self._buffer = b""
        self._versions: dict[str, int] = {}
        self._encoding = "utf-16"
        try:
            self.proc = subprocess.Popen(
                [executable, "server"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                cwd=str(root),
                env=env,
            )
        except OSError as exc:
            raise TyServerError(f"cannot start {executable} server: {exc}") from exc
        assert self.proc.stdout is not None and self.proc.stdin is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)
        uri = root.as_uri()
        result = self._request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": uri,
                "workspaceFolders": [{"uri": uri, "name": root.name or "root"}],
                "capabilities": {
                    "general": {"positionEncodings": ["utf-32", "utf-16"]},
                    "textDocument": {"diagnostic": {"dynamicRegistration": False}},
                },
            },
            timeout,
        )
        caps = (result or {}).get("capabilities", {})
        self._encoding = caps.get("positionEncoding", "utf-16")
        self._notify("initialized", {})

    # -- protocol --------------------------------------------------------------------------
    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise TyServerError(f"ty server closed its input: {exc}") from exc

    def _notify(self, method: str, params: dict[str, Any]) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def _read_message(self, deadline: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            head_end = self._buffer.find(b"\r\n\r\n")
            if head_end >= 0:
                length = None
                for line in self._buffer[:head_end].split(b"\r\n"):
                    key, _, value = line.partition(b":")
                    if key.strip().lower() == b"content-length":
                        length = int(value)
                if length is None:
                    raise TyServerError("ty server sent a message without Content-Length")
                start = head_end + 4
                if len(self._buffer) >= start + length:
                    body = self._buffer[start : start + length]
                    self._buffer = self._buffer[start + length :]
                    return json.loads(body)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TyServerError("ty server did not answer in time")
            if not self._selector.select(remaining):
                continue
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
            if not chunk:
                raise TyServerError("ty server exited")
            self._buffer += chunk

    def _request(self, method: str, params: dict[str, Any], timeout: float) -> Any:
        self._next_id += 1
        my_id = self._next_id
        self._send({"jsonrpc": "2.0", "id": my_id, "method": method, "params": params})
        deadline = time.monotonic() + timeout
        while True:
            msg = self._read_message(deadline)
            if "method" in msg and "id" in msg:  # a request from the server: answer it
                result: Any = None
                if msg["method"] == "workspace/configuration":
                    result = [None for _ in msg.get("params", {}).get("items", [])]
                self._send({"jsonrpc": "2.0", "id": msg["id"], "result": result})
            elif msg.get("id") == my_id:
                if "error" in msg:
                    raise TyServerError(f"ty server: {method} failed: {msg['error']}")
                return msg.get("result")

    # -- checking --------------------------------------------------------------------------
    def check(self, path: Path, text: str, timeout: float = 20.0) -> list[RawDiagnostic]:
        """Diagnostics of `text` as the content of `path` (an in-memory edit, not a write)."""
        uri = path.as_uri()
        with self.lock:
            version = self._versions.get(uri)
            if version is None:
                self._notify(
                    "textDocument/didOpen",
                    {
                        "textDocument": {
                            "uri": uri,
                            "languageId": "python",
                            "version": 1,
                            "text": text,
                        }
                    },
                )
                self._versions[uri] = 1
            else:
                self._versions[uri] = version + 1
                self._notify(
                    "textDocument/didChange",
                    {
                        "textDocument": {"uri": uri, "version": version + 1},
                        "contentChanges": [{"text": text}],
                    },
                )
            report = self._request(
                "textDocument/diagnostic", {"textDocument": {"uri": uri}}, timeout
            )
        lines = text.split("\n")
        out: list[RawDiagnostic] = []
        for item in (report or {}).get("items", []):
            start, end = item["range"]["start"], item["range"]["end"]
            out.append(
                RawDiagnostic(
                    start["line"] + 1,
                    self._char(lines, start["line"], start["character"]) + 1,
                    end["line"] + 1,
                    self._char(lines, end["line"], end["character"]) + 1,
                    str(item.get("code", "")),
                    str(item.get("message", "")),
                    int(item.get("severity", 1)),
                )
            )
        return out

    def _char(self, lines: list[str], line: int, unit: int) -> int:
        """Convert an LSP column in the negotiated encoding to a character index."""
        if self._encoding == "utf-32" or not 0 <= line < len(lines):
            return unit
        text = lines[line]
        if self._encoding == "utf-8":
            return len(text.encode("utf-8")[:unit].decode("utf-8", errors="replace"))
        units = 0
        for i, ch in enumerate(text):  # utf-16
            if units >= unit:
                return i
            units += 2 if ord(ch) > 0xFFFF else 1
        return len(text)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None and self.pid == os.getpid()

    def close(self) -> None:
        if self.pid != os.getpid():
            return
        try:
            with self.lock:
                self._request("shutdown", {}, 2.0)
                self._notify("exit", {})
            self.proc.wait(timeout=2.0)
        except (TyServerError, subprocess.TimeoutExpired, OSError, ValueError):
            self.proc.kill()
            self.proc.wait()
        finally:
            self._selector.close()
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream is not None:
                    stream.close()


_SERVERS: dict[tuple[str, Path], TyServer] = {}
_SERVERS_LOCK = threading.Lock()


def get_server(executable: str, root: Path, env: dict[str, str]) -> TyServer:
    """The running server for (executable, root), started if needed (never a parent's)."""
    key = (executable, root)
    with _SERVERS_LOCK:
        server = _SERVERS.get(key)
        if server is not None and server.alive:
            return server
        if server is not None and server.pid == os.getpid():
            server.close()
        server = TyServer(executable, root, env)
        _SERVERS[key] = server
        return server


def discard_server(server: TyServer) -> None:
    """Forget (and stop) a server that misbehaved, so the next check starts a fresh one."""
    with _SERVERS_LOCK:
        for key, value in list(_SERVERS.items()):
            if value is server:
                del _SERVERS[key]
    with contextlib.suppress(Exception):  # already broken: never mask the caller's error
        server.close()


@atexit.register
def close_all() -> None:
    """Stop every server this process started."""
    with _SERVERS_LOCK:
        servers = [s for s in _SERVERS.values() if s.pid == os.getpid()]
        _SERVERS.clear()
    for server in servers:
        with contextlib.suppress(Exception):  # best effort at exit
            server.close()
