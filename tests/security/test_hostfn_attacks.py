"""Attack suite: hostile capabilities against the host functions, on the wasm and process tiers.

Each attack tries to get past a host function's guard (time, codecs, paths, URL prefixes,
quotas, hard links, address classes, the call record, the input parser) and must end with
the expected outcome; afterwards the host must be healthy: this process alive, a trivial
call answering, no threads left behind, nothing outside the data folder changed.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from symbiont.errors import CapabilityError
from symbiont.sandbox.base import Limits, Permissions, Sandbox, SandboxResult

TIERS = ["wasm", "process"]
OUTSIDE_SECRET = "outside-secret-hostfn-5a1c"

# ---------------------------------------------------------------------------------------
# a hostile HTTP server on loopback
# ---------------------------------------------------------------------------------------


class _Hostile(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []  # noqa: RUF012 - shared on purpose, read by the tests
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, TimeoutError):
            self._serve()

    def _serve(self) -> None:
        path = self.path
        if path == "/drip-headers":  # the status line and headers, one byte at a time
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.05)
            return
        if path == "/drip-body":  # quick headers, then a body one byte at a time
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            for _ in range(100_000):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.05)
            return
        if path == "/stall":  # accepts, then says nothing for a long time
            time.sleep(2.5)
            self._send(200, b"late")
            return
        if path == "/punycode":
            self._send(200, "é".join("a" * 50 for _ in range(8_000)).encode(), "punycode")
            return
        if path == "/rot13":
            self._send(200, b"uryyb", "rot13")
            return
        if path == "/latin1":
            self._send(200, "café".encode("latin-1"), "iso-8859-1")
            return
        if path == "/admin" or path.startswith("/admin"):
            self._send(200, b"ADMIN-PAGE")
            return
        if path.startswith("/public/"):
            self._send(200, f"public:{path}".encode())
            return
        self._send(404, b"")

    def _send(self, status: int, body: bytes, charset: str | None = None) -> None:
        self.send_response(status)
        ctype = "text/plain" + (f"; charset={charset}" if charset else "")
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _make_sandbox(tier: str, pool_size: int = 2) -> Sandbox:
    if tier == "wasm":
        from symbiont.sandbox.wasm import WasmSandbox

        return WasmSandbox(pool_size=pool_size)
    from symbiont.sandbox.process import ProcessSandbox

    return ProcessSandbox(pool_size=pool_size)


@pytest.fixture(scope="module", params=TIERS)
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    sb = _make_sandbox(request.param)
    warm = sb.run("def main():\n    return 1\n", "main", "{}", Permissions(), Limits(timeout_s=600))
    assert warm.ok, warm.error
    yield sb
    sb.close()


# ---------------------------------------------------------------------------------------
# host health
# ---------------------------------------------------------------------------------------


def _threads() -> int:
    """Threads of this process, from /proc (the OS view, not just Python's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads: line in /proc/self/status")


def _tree(root: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            found[str(path)] = f"{st.st_mode:o}:{st.st_size}:{st.st_mtime_ns}"
    return found


class Host:
    """Snapshot of the host before an attack; `check` asserts it is still healthy after."""

    def __init__(self, sandbox: Sandbox, outside: Path) -> None:
        self.sandbox = sandbox
        self.outside = outside
        self.pid = os.getpid()
        self.before = _tree(outside)
        self.threads = _threads()

    def check(self) -> None:
        assert os.getpid() == self.pid
        assert _tree(self.outside) == self.before, "something outside the data folder changed"
        assert (self.outside / "secret.txt").read_text() == OUTSIDE_SECRET
        started = time.monotonic()
        trivial = self.sandbox.run(
            "def main(a, b):\n    return a + b\n", "main", '{"a": 40, "b": 2}'
        )
        assert trivial.ok and trivial.output == 42, trivial.error
        assert time.monotonic() - started < 2.0, "a benign call after the attack was slow"
        deadline = time.monotonic() + 5.0  # threads that served the attack wind down
        while _threads() > self.threads + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _threads() <= self.threads + 1, f"threads: {self.threads} -> {_threads()}"


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    data, outside = tmp_path / "data", tmp_path / "outside"
    data.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text(OUTSIDE_SECRET)
    return data, outside


def _kind(result: SandboxResult) -> str | None:
    return result.error.kind if result.error is not None else None


def _run(
    sandbox: Sandbox,
    source: str,
    inputs: dict[str, Any] | None = None,
    permissions: Permissions | None = None,
    **limits: Any,
) -> SandboxResult:
    return sandbox.run(
        source, "main", json.dumps(inputs or {}), permissions or Permissions(), Limits(**limits)
    )


HTTP_LOCAL = Permissions(http_allow=("127.0.0.1",), allow_private_network=True)

# ---------------------------------------------------------------------------------------
# time: every host function ends at the call's deadline
# ---------------------------------------------------------------------------------------

SLOW_HTTP = {
    "drip-headers": "from symbiont.host import http_get\n\ndef main(port):\n"
    "    return http_get(f'http://127.0.0.1:{port}/drip-headers')\n",
    "drip-body": "from symbiont.host import http_get\n\ndef main(port):\n"
    "    return len(http_get(f'http://127.0.0.1:{port}/drip-body'))\n",
    "stall-retry-forever": "from symbiont.host import http_get, HostError\n\ndef main(port):\n"
    "    while True:\n        try:\n"
    "            http_get(f'http://127.0.0.1:{port}/stall')\n"
    "        except HostError:\n            pass\n",
    "drip-caught": "from symbiont.host import http_get, HostError\n\ndef main(port):\n"
    "    try:\n        http_get(f'http://127.0.0.1:{port}/drip-body')\n"
    "    except HostError as exc:\n        return exc.kind\n",
}


@pytest.mark.parametrize("name", sorted(SLOW_HTTP))
def test_slow_http_server_cannot_stretch_the_call(
    sandbox: Sandbox, folders: tuple[Path, Path], port: int, name: str
) -> None:
    host = Host(sandbox, folders[1])
    started = time.monotonic()
    result = _run(
        sandbox, SLOW_HTTP[name], {"port": port}, HTTP_LOCAL, timeout_s=1.5, http_timeout_s=60
    )
    elapsed = time.monotonic() - started
    assert elapsed < 3.0, f"a 1.5 s call ran {elapsed:.1f} s ({result.error})"
    if name == "drip-caught" and result.ok:
        assert result.output == "timeout"  # the host function's own deadline came first
    else:
        assert _kind(result) in ("timeout", "exception"), result.error
        assert _kind(result) == "timeout" or "time limit" in (result.error.message or "")
    host.check()


@pytest.mark.parametrize(
    ("path", "expect"),
    [("/punycode", "charset"), ("/rot13", "charset"), ("/latin1", None)],
)
def test_only_text_codecs_decode_a_response(
    sandbox: Sandbox, folders: tuple[Path, Path], port: int, path: str, expect: str | None
) -> None:
    host = Host(sandbox, folders[1])
    source = "from symbiont.host import http_get\n\ndef main(url):\n    return http_get(url)\n"
    started = time.monotonic()
    result = _run(sandbox, source, {"url": f"http://127.0.0.1:{port}{path}"}, HTTP_LOCAL)
    assert time.monotonic() - started < 2.0
    if expect is None:
        assert result.output == "café"
    else:
        assert not result.ok and expect in result.error.message, result.error
        assert "denied" not in result.error.message
    host.check()


LONG_PATHS = {
    "read-300k-components": "from symbiont.host import read_file\n\ndef main():\n"
    "    return read_file('a/' * 300000)\n",
    "read-20k-components": "from symbiont.host import read_file\n\ndef main():\n"
    "    return read_file('a/' * 20000 + 'x')\n",
    "list-deep": "from symbiont.host import list_files\n\ndef main():\n"
    "    return list_files('/'.join(['d'] * 5000))\n",
    "write-deep": "from symbiont.host import write_file\n\ndef main():\n"
    "    write_file('/'.join(['d'] * 40) + '/x.txt', 'deep')\n",
    "write-long-name": "from symbiont.host import write_file\n\ndef main():\n"
    "    write_file('n' * 300, 'long')\n",
}


@pytest.mark.parametrize("name", sorted(LONG_PATHS))
def test_path_caps_come_before_the_filesystem(
    sandbox: Sandbox, folders: tuple[Path, Path], name: str
) -> None:
    data, outside = folders
    host = Host(sandbox, outside)
    perms = Permissions(data_dir=data, read_files=True, write_files=True)
    started = time.monotonic()
    result = _run(sandbox, LONG_PATHS[name], permissions=perms, timeout_s=2.0)
    assert time.monotonic() - started < 1.5
    assert _kind(result) == "exception", result.error
    assert any(w in result.error.message for w in ("limit", "deep", "longer")), result.error
    assert list(data.iterdir()) == []
    host.check()


@pytest.mark.parametrize("tier", TIERS)
def test_a_host_function_blocked_on_a_slow_server_does_not_delay_another_call(
    port: int, tier: str
) -> None:
    """Must show (issue 10): while one call's `http_get` is blocked on a slow server, a
    concurrent call of another capability is not delayed by more than 100 ms beyond its
    own time (pool of 2)."""
    sandbox = _make_sandbox(tier, pool_size=2)
    try:
        benign = "def main(a, b):\n    return a + b\n"
        for _ in range(3):  # warm (the process tier forks its pool on first use)
            assert _run(sandbox, benign, {"a": 1, "b": 2}, timeout_s=60).output == 3

        def timed_benign() -> float:
            started = time.monotonic()
            result = _run(sandbox, benign, {"a": 1, "b": 2})
            assert result.output == 3, result.error
            return time.monotonic() - started

        alone = [timed_benign() for _ in range(5)]
        blocked: list[SandboxResult] = []

        def blocker_call() -> None:
            slow = SLOW_HTTP["drip-headers"]
            blocked.append(_run(sandbox, slow, {"port": port}, HTTP_LOCAL, timeout_s=3))

        blocker = threading.Thread(target=blocker_call)
        blocker.start()
        time.sleep(0.5)  # the blocker is inside http_get now
        during = [timed_benign() for _ in range(5)]
        blocker.join(10)
        assert not blocker.is_alive()
        assert statistics.median(during) <= statistics.median(alone) + 0.1, (alone, during)
        assert blocked and not blocked[0].ok
    finally:
        sandbox.close()


# ---------------------------------------------------------------------------------------
# URLs: prefixes match the normalised path, which is what is requested
# ---------------------------------------------------------------------------------------

TRAVERSALS = [
    "/public/../admin",
    "/public/%2e%2e/admin",
    "/public/%2E%2E/admin",
    "/public/.%2e/admin",
    "/public/%2e%2e%2fadmin",
    "/public/..%2Fadmin",
    "/public/..;/admin",
    "/public/./../admin",
    "/public/x/../../admin",
    "/public/..\\admin",
]


def test_url_prefix_allowlist_cannot_be_escaped(
    sandbox: Sandbox, folders: tuple[Path, Path], port: int
) -> None:
    host = Host(sandbox, folders[1])
    perms = Permissions(
        http_allow=(f"http://127.0.0.1:{port}/public/",), allow_private_network=True
    )
    source = (
        "from symbiont.host import http_get, HostError\n\ndef main(base, paths):\n"
        "    out = []\n    for p in paths:\n        try:\n"
        "            out.append(http_get(base + p))\n"
        "        except HostError as exc:\n            out.append(exc.kind)\n    return out\n"
    )
    _Hostile.hits.clear()
    result = _run(sandbox, source, {"base": f"http://127.0.0.1:{port}", "paths": TRAVERSALS}, perms)
    assert result.ok, result.error
    assert result.output == ["denied"] * len(TRAVERSALS)
    assert not any(hit.startswith("/admin") for hit in _Hostile.hits), _Hostile.hits
    # A path that stays inside the prefix is allowed, and the server sees it normalised.
    _Hostile.hits.clear()
    inside = _run(
        sandbox,
        source,
        {"base": f"http://127.0.0.1:{port}", "paths": ["/public/a/./b/../c"]},
        perms,
    )
    assert inside.output == ["public:/public/a/c"]
    assert _Hostile.hits == ["/public/a/c"]
    host.check()


MAPPED_LOOPBACK = [
    "http://[2002:7f00:1::1]:{port}/x",  # 6to4 of 127.0.0.1
    "http://[64:ff9b::7f00:1]:{port}/x",  # NAT64 of 127.0.0.1
    "http://[64:ff9b::a00:1]:{port}/x",  # NAT64 of 10.0.0.1
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]:{port}/x",  # Teredo, client 127.0.0.1
    "http://[::127.0.0.1]:{port}/x",  # IPv4-compatible
    "http://[::ffff:169.254.169.254]:{port}/x",  # mapped link-local (metadata)
    "http://[2002:a9fe:a9fe::1]:{port}/x",  # 6to4 of 169.254.169.254
]


def test_ipv6_forms_of_private_addresses_are_refused(
    sandbox: Sandbox, folders: tuple[Path, Path], port: int
) -> None:
    host = Host(sandbox, folders[1])
    urls = [u.format(port=port) for u in MAPPED_LOOPBACK]
    hosts = tuple(u.split("//", 1)[1].rsplit(":", 1)[0] for u in urls)
    perms = Permissions(http_allow=hosts)
    source = (
        "from symbiont.host import http_get, HostError\n\ndef main(urls):\n"
        "    out = []\n    for u in urls:\n        try:\n            out.append(http_get(u))\n"
        "        except HostError as exc:\n            out.append([exc.kind, str(exc)])\n"
        "    return out\n"
    )
    result = _run(sandbox, source, {"urls": urls}, perms)
    assert result.ok, result.error
    for url, (kind, message) in zip(urls, result.output, strict=True):
        assert kind == "denied" and "private" in message, (url, kind, message)
    host.check()


# ---------------------------------------------------------------------------------------
# files: quotas, depth, hard links
# ---------------------------------------------------------------------------------------

FILL = {
    "bytes": "from symbiont.host import write_file, HostError\n\ndef main():\n"
    "    n = 0\n    while True:\n        try:\n"
    "            write_file(f'f{n}.txt', 'x' * 100_000)\n"
    "        except HostError as exc:\n            return [n, exc.kind, str(exc)]\n        n += 1\n",
    "entries": "from symbiont.host import write_file, HostError\n\ndef main():\n"
    "    n = 0\n    while True:\n        try:\n"
    "            write_file(f'd{n}/f.txt', 'x')\n"
    "        except HostError as exc:\n            return [n, exc.kind, str(exc)]\n        n += 1\n",
    "grow-one-file": "from symbiont.host import write_file, HostError\n\ndef main():\n"
    "    n = 1\n    while True:\n        try:\n"
    "            write_file('one.txt', 'x' * (n * 200_000))\n"
    "        except HostError as exc:\n            return [n, exc.kind, str(exc)]\n        n += 1\n",
    "deep-tree": "from symbiont.host import write_file, HostError\n\ndef main():\n"
    "    path = ''\n    n = 0\n    while True:\n        path += 'd/'\n        try:\n"
    "            write_file(path + 'x', 'x')\n"
    "        except HostError as exc:\n            return [n, exc.kind, str(exc)]\n        n += 1\n",
}


@pytest.mark.parametrize("name", sorted(FILL))
def test_write_quotas_and_depth_cap(
    sandbox: Sandbox, folders: tuple[Path, Path], name: str
) -> None:
    data, outside = folders
    host = Host(sandbox, outside)
    (data / "existing.bin").write_bytes(b"e" * 300_000)  # what is there already counts
    perms = Permissions(
        data_dir=data,
        read_files=True,
        write_files=True,
        max_data_bytes=1_000_000,
        max_data_entries=20,
    )
    result = _run(sandbox, FILL[name], permissions=perms, timeout_s=10)
    assert result.ok, result.error
    _count, kind, message = result.output
    assert kind in ("too_large", "invalid"), message
    total = entries = depth = 0
    for dirpath, dirnames, filenames in os.walk(data):
        depth = max(depth, len(Path(dirpath).relative_to(data).parts))
        entries += len(dirnames) + len(filenames)
        total += sum((Path(dirpath) / f).stat().st_size for f in filenames)
    assert total <= 1_000_000 and entries <= 20 and depth <= 32, (total, entries, depth)
    host.check()


def test_hard_links_are_refused_like_symlinks(sandbox: Sandbox, folders: tuple[Path, Path]) -> None:
    data, outside = folders
    os.link(outside / "secret.txt", data / "linked.txt")
    host = Host(sandbox, outside)
    perms = Permissions(data_dir=data, read_files=True, write_files=True)
    source = (
        "from symbiont.host import read_file, write_file, HostError\n\ndef main():\n"
        "    out = []\n"
        "    for op in (lambda: read_file('linked.txt'), lambda: write_file('linked.txt', 'pwned')):\n"
        "        try:\n            out.append(op())\n"
        "        except HostError as exc:\n            out.append([exc.kind, str(exc)])\n"
        "    return out\n"
    )
    result = _run(sandbox, source, permissions=perms)
    assert result.ok, result.error
    assert [r[0] for r in result.output] == ["denied", "denied"], result.output
    assert OUTSIDE_SECRET not in json.dumps(result.output)
    assert "hard link" in result.output[0][1]
    host.check()


# ---------------------------------------------------------------------------------------
# the call record, the input
# ---------------------------------------------------------------------------------------


def test_exfiltration_after_many_calls_is_still_recorded(
    sandbox: Sandbox, folders: tuple[Path, Path], port: int
) -> None:
    data, outside = folders
    host = Host(sandbox, outside)
    perms = Permissions(
        http_allow=("127.0.0.1",),
        allow_private_network=True,
        data_dir=data,
        write_files=True,
    )
    source = (
        "from symbiont.host import now_ms, http_get, write_file, HostError\n\n"
        "def main(port):\n    for _ in range(10_050):\n        now_ms()\n"
        "    try:\n        http_get(f'http://127.0.0.1:{port}/public/exfil?d=secret')\n"
        "    except HostError:\n        pass\n"
        "    write_file('stolen.txt', 'data')\n    return 'done'\n"
    )
    result = _run(sandbox, source, {"port": port}, perms, timeout_s=60)
    assert result.output == "done", result.error
    names = [c.name for c in result.host_calls]
    assert "http_get" in names and "write_file" in names
    http_call = next(c for c in result.host_calls if c.name == "http_get")
    assert "exfil" in http_call.args
    folded = result.host_calls[-1]
    assert folded.name == "folded" and folded.args == "calls=50", folded
    host.check()


DEEP_INPUTS = {
    "nested-100k": "[" * 100_000 + "]" * 100_000,
    "objects-100k": '{"a":' * 100_000 + "1" + "}" * 100_000,
    "nan": '{"x": NaN}',
    "infinity": '{"x": -Infinity}',
    "overflow": '{"x": 1e999}',
    "duplicate-keys": '{"x": 1, "x": 2}',
}


@pytest.mark.parametrize("name", sorted(DEEP_INPUTS))
def test_hostile_input_json_is_an_input_error(
    sandbox: Sandbox, folders: tuple[Path, Path], name: str
) -> None:
    host = Host(sandbox, folders[1])
    with pytest.raises(CapabilityError, match="not valid JSON"):
        sandbox.run("def main(**kw):\n    return 1\n", "main", DEEP_INPUTS[name])
    host.check()
