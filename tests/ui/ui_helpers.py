"""Helpers for the UI tests: a store filled by the real runtime, `symbiont ui` as a subprocess,
and a small HTTP client (http.client, no redirects followed)."""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

HERE = Path(__file__).parent
REPO = HERE.parents[1]
PYTHON = sys.executable
SYMBIONT = str(Path(PYTHON).with_name("symbiont"))
TARGETS = HERE / "ui_targets.py"


def child_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["SYMBIONT_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def fill_store(home: Path) -> Path:
    """The HR library and the agent's transcripts (the scripted demo), then two evolves and a
    population search."""
    store = home / "symbiont.db"
    subprocess.run(
        [
            PYTHON,
            "-c",
            "import sys; from symbiont.agent.demo import run_demo; "
            "run_demo(store=sys.argv[1], show_model=False)",
            str(store),
        ],
        env=child_env(home),
        check=True,
        capture_output=True,
        timeout=600,
    )
    evolve(home, store, "approx", "greet", "peak")
    return store


def evolve(home: Path, store: Path, *names: str) -> None:
    subprocess.run(
        [PYTHON, str(TARGETS), str(store), *names],
        env=child_env(home),
        check=True,
        capture_output=True,
        timeout=300,
        cwd=HERE,
    )


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    text: str


@dataclass
class Server:
    url: str  # http://127.0.0.1:PORT
    process: subprocess.Popen[str]
    token: str | None = None

    @property
    def port(self) -> int:
        return int(urlsplit(self.url).port or 0)

    def request(
        self,
        method: str,
        path: str,
        *,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        body = urlencode(form) if form is not None else None
        hdrs = dict(headers or {})
        if body is not None:
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", "replace")
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, text)
        finally:
            conn.close()

    def get(self, path: str, **kw: dict[str, str]) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, form: dict[str, str], **kw: dict[str, str]) -> Response:
        return self.request("POST", path, form=form, **kw)

    def form_key(self, path: str) -> str:
        match = re.search(r'name="form_key" value="([^"]+)"', self.get(path).text)
        assert match, f"no action form on {path}"
        return match.group(1)


@contextmanager
def ui_server(home: Path, *args: str, store: Path | None = None) -> Iterator[Server]:
    """`symbiont ui --port 0 ...` in a subprocess; yields once it says where it listens."""
    cmd = [SYMBIONT, "ui", "--port", "0", "--poll", "0.2"]
    if store is not None:
        cmd += ["--store", str(store)]
    proc = subprocess.Popen(
        [*cmd, *args],
        env=child_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stderr: list[str] = []
    threading.Thread(target=lambda: stderr.extend(proc.stderr or ()), daemon=True).start()
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        match = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
        if not match:
            proc.wait(timeout=30)
            raise AssertionError(f"symbiont ui did not start: {line!r} {''.join(stderr)}")
        yield Server(match.group(1), proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        server_errors = "".join(stderr)
        assert "Traceback" not in server_errors, server_errors


@dataclass
class Program:
    """A program running `runtime.serve_ui()` in its own process (`ui_targets.py serve`)."""

    server: Server
    process: subprocess.Popen[str]

    def say(self, line: str) -> str:
        """Send one command line; return the program's one-line answer."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()


def copy_store(src: Path, dst: Path) -> None:
    """A consistent copy of a store another process may be using (SQLite's backup API)."""
    import sqlite3

    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)


@contextmanager
def serve_ui_program(home: Path, store: Path) -> Iterator[Program]:
    proc = subprocess.Popen(
        [PYTHON, str(TARGETS), str(store), "serve"],
        env=child_env(home),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=HERE,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"url (http://127\.0\.0\.1:\d+)/", line)
        assert match, line + (proc.stderr.read() if proc.stderr else "")
        yield Program(Server(match.group(1), proc), proc)  # type: ignore[arg-type]
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
