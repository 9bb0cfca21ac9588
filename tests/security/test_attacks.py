"""Attack suite: hostile capabilities against the `wasm` and `process` tiers.

Every attack must end with the error kind listed for the tier in `security_attacks.py`, must not leak
a planted secret into the result, and must leave the host healthy: this process alive, the
sandbox still running a trivial capability, no file created outside the data folder.
"""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from security_attacks import ATTACKS, Attack

from symbiont.sandbox.base import Limits, Permissions, Sandbox, SandboxResult

TIERS = ["wasm", "process"]
TEST_SECRET = "sk-test-7f3a9c1e-do-not-leak"
OTHER_SECRET = "other-capability-secret-41d2"
OUTSIDE_SECRET = "outside-secret-8be0"
PWNED_MARKERS = [Path("/tmp/symbiont_pwned")]


# ---------------------------------------------------------------------------------------
# a real HTTP server on loopback (the "allowed" end of the redirect attacks)
# ---------------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []  # noqa: RUF012 - shared on purpose, read by the tests

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        if self.path == "/ok":
            body = b"fine"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        target = {
            "/redirect-metadata": "http://169.254.169.254/latest/meta-data/",
            "/redirect-file": "file:///etc/passwd",
        }.get(self.path)
        if target is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(302)
        self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass


@pytest.fixture(scope="module")
def http_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------------------------------
# sandboxes, one per tier for the whole module
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _secret_in_environment() -> Iterator[None]:
    """The host has an API key in its environment; no capability may see it."""
    old = os.environ.get("SYMBIONT_TEST_SECRET")
    os.environ["SYMBIONT_TEST_SECRET"] = TEST_SECRET
    yield
    if old is None:
        os.environ.pop("SYMBIONT_TEST_SECRET", None)
    else:
        os.environ["SYMBIONT_TEST_SECRET"] = old


def _make_sandbox(tier: str) -> Sandbox:
    if tier == "wasm":
        try:
            from symbiont.sandbox.wasm import WasmSandbox
        except ImportError as exc:
            pytest.skip(f"symbiont.sandbox.wasm does not import yet (built in parallel): {exc}")
        return WasmSandbox()
    from symbiont.sandbox.process import ProcessSandbox

    return ProcessSandbox()


@pytest.fixture(scope="module", params=TIERS)
def sandbox(request: pytest.FixtureRequest, _secret_in_environment: None) -> Iterator[Sandbox]:
    sb = _make_sandbox(request.param)
    # Warm up (the wasm tier may build its runner on first use) with generous limits.
    warm = sb.run("def main():\n    return 1\n", "main", "{}", Permissions(), Limits(timeout_s=600))
    assert warm.ok, warm.error
    yield sb
    sb.close()


# ---------------------------------------------------------------------------------------
# the environment of one attack
# ---------------------------------------------------------------------------------------


@dataclass
class Env:
    root: Path
    data: Path
    other: Path
    outside: Path
    port: int

    def inputs(self) -> dict[str, Any]:
        return {"outside": str(self.outside), "other": str(self.other), "port": self.port}

    def permissions(self, kind: str) -> Permissions:
        if kind == "none":
            return Permissions()
        if kind == "http":
            return Permissions(
                http_allow=("127.0.0.1", "169.254.169.254", "localhost", "api.example.org")
            )
        if kind == "http_private":
            return Permissions(http_allow=("127.0.0.1",), allow_private_network=True)
        return Permissions(data_dir=self.data, read_files=True, write_files=True)

    def snapshot(self) -> set[str]:
        """Every path under the test root except inside the capability's own data folder."""
        found: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            if Path(dirpath) == self.data or self.data in Path(dirpath).parents:
                continue
            for name in dirnames + filenames:
                found.add(os.path.join(dirpath, name))
        return found


@pytest.fixture
def env(tmp_path: Path, http_port: int) -> Env:
    data = tmp_path / "data"
    other = tmp_path / "other_capability"
    outside = tmp_path / "outside"
    for d in (data, other, outside):
        d.mkdir()
    (data / "notes.txt").write_text("my own notes")
    (other / "secret.txt").write_text(OTHER_SECRET)
    (outside / "secret.txt").write_text(OUTSIDE_SECRET)
    (data / "escape").symlink_to(outside / "secret.txt")
    (data / "escape_dir").symlink_to(outside)
    return Env(tmp_path, data, other, outside, http_port)


def _leaks(result: SandboxResult) -> list[str]:
    passwd_line = Path("/etc/passwd").read_text().splitlines()[0]
    text = repr(result.output) + "\n".join(result.logs)
    if result.error is not None:
        text += result.error.message + (result.error.traceback or "")
    return [s for s in (TEST_SECRET, OTHER_SECRET, OUTSIDE_SECRET, passwd_line) if s in text]


def _assert_host_healthy(sandbox: Sandbox, env: Env, before: set[str], pid: int) -> None:
    assert os.getpid() == pid  # we are still the same, living process
    os.kill(pid, 0)
    after = env.snapshot()
    assert after == before, f"files appeared outside the data folder: {sorted(after - before)}"
    for marker in PWNED_MARKERS:
        assert not marker.exists(), f"{marker} was created"
    assert (env.outside / "secret.txt").read_text() == OUTSIDE_SECRET
    trivial = sandbox.run("def main(a, b):\n    return a + b\n", "main", '{"a": 40, "b": 2}')
    assert trivial.ok and trivial.output == 42, trivial.error


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_attack_is_contained(sandbox: Sandbox, env: Env, attack: Attack) -> None:
    import json

    tier = "wasm" if "wasm" in type(sandbox).__name__.lower() else "process"
    before = env.snapshot()
    pid = os.getpid()
    _Handler.hits.clear()
    inputs = {k: env.inputs()[k] for k in attack.input_keys}
    result = sandbox.run(
        attack.source, "main", json.dumps(inputs), env.permissions(attack.perms), attack.limits
    )
    expected = attack.expect[tier]
    assert result.error is not None, f"{attack.name} was not contained: output {result.output!r}"
    assert result.error.kind == expected, (
        f"{attack.name} on {tier}: expected {expected!r}, got {result.error.kind!r}: "
        f"{result.error.message}"
    )
    assert not _leaks(result), f"{attack.name} leaked {_leaks(result)}"
    if attack.name.startswith("http_redirect"):
        # The allowed first hop really happened; the refused second one never left the host.
        assert len(_Handler.hits) == 1 and _Handler.hits[0].startswith("/redirect")
    if attack.name in ("http_loopback", "http_name_to_loopback"):
        assert _Handler.hits == []
    if attack.name in ("dotdot_write", "symlink_dir_escape_write", "write_outside_host"):
        assert any(not c.allowed for c in result.host_calls)
    if attack.name == "monkeypatch_host":  # the host itself refused, whatever was patched
        assert [c.allowed for c in result.host_calls if c.name == "read_file"] == [False]
    if attack.name == "file_too_large_host":
        assert not (env.data / "big.txt").exists()
        assert "limit" in result.error.message
    _assert_host_healthy(sandbox, env, before, pid)


def test_suite_has_at_least_30_attacks() -> None:
    assert len(ATTACKS) >= 30
    assert len({a.name for a in ATTACKS}) == len(ATTACKS)
    for attack in ATTACKS:
        assert set(attack.expect) == set(TIERS), attack.name
