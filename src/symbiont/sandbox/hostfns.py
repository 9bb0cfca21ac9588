"""Host functions: the only way out of a sandbox, with every permission check on the host side.

Every tier (wasm, process, inprocess) routes a capability's `symbiont.host` calls to one
`HostFunctions.dispatch(name, args_json)` running in the host process, so a capability that
monkey-patches its own copy of `symbiont.host` gains nothing: the checks are not in its
address space. Replies are JSON text: `{"ok": value}` or
`{"error": {"kind": ..., "message": ...}}` with kind in
`denied | not_found | too_large | timeout | io | invalid`.

Why each check is the way it is:

- `http_get` resolves the name itself, refuses private/loopback/link-local/multicast/reserved
  addresses (unless `allow_private_network`), and connects to *the address it checked*, so a
  DNS answer that changes between check and connect (DNS rebinding) gains nothing. Redirects
  are followed by hand, each hop re-checked, at most 5. Size and time are bounded.
- Files are resolved inside `data_dir` with `realpath` (containment check), then opened by
  walking directory file descriptors with `O_NOFOLLOW`, so a symlink swapped in after the check
  fails instead of being followed. Writes go to a temporary file in the same folder, are
  fsynced and renamed over the target (atomic: readers see the old or the new content).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from symbiont.sandbox.base import HostCall, Limits, Permissions

if TYPE_CHECKING:
    import http.client

# The network modules (http.client, ssl, socket, ipaddress, urllib.parse: ~40 ms together)
# are imported inside the functions that use them, so a sandbox whose capabilities never
# call `http_get` does not pay for them at start-up.

HOST_FUNCTION_NAMES = ("http_get", "read_file", "write_file", "list_files", "now_ms", "log")
MAX_REDIRECTS = 5
MAX_RECORDED_CALLS = 10_000  # the parent must not grow without bound either
MAX_LIST_ENTRIES = 10_000
_SUMMARY_CHARS = 200
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


class _Refused(Exception):
    """Internal: a host call ends with an error reply of `kind`."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _short(text: str, limit: int = _SUMMARY_CHARS) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def address_is_public(addr: str) -> bool:
    """True for a globally routable unicast address (not private, loopback, link-local...)."""
    import ipaddress

    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved or ip.is_loopback:
        return False
    if ip.is_link_local or ip.is_private:
        return False
    return bool(ip.is_global)


class HostFunctions:
    """The host side of `symbiont.host` for one capability run (one instance per run).

    `calls` records every call (allowed or not); `logs` holds the captured `log` lines.
    `log_overflow` becomes True when the capability tried to log more than
    `limits.max_log_bytes`: tiers turn that into the result kind "output_too_large".
    `deadline` (a `time.monotonic()` value, optional) caps the time an `http_get` may take so a
    host call cannot outlive the run's wall-clock limit.
    """

    def __init__(self, permissions: Permissions, limits: Limits) -> None:
        self.permissions = permissions
        self.limits = limits
        self.calls: list[HostCall] = []
        self.logs: list[str] = []
        self.log_overflow = False
        self.dropped_calls = 0
        self.deadline: float | None = None
        self._log_bytes = 0

    # -- entry point ------------------------------------------------------------------------

    def dispatch(self, name: str, args_json: str) -> str:
        """Run host function `name` with JSON arguments; never raises, always returns JSON."""
        summary = name
        try:
            try:
                args = json.loads(args_json) if args_json else {}
            except (ValueError, RecursionError) as exc:
                raise _Refused("invalid", f"arguments are not JSON: {exc}") from None
            if not isinstance(args, dict):
                raise _Refused("invalid", "arguments must be a JSON object")
            summary = self._summary(name, args)
            handler = {
                "http_get": self._http_get,
                "read_file": self._read_file,
                "write_file": self._write_file,
                "list_files": self._list_files,
                "now_ms": self._now_ms,
                "log": self._log,
            }.get(name)
            if handler is None:
                raise _Refused("invalid", f"unknown host function {name!r}")
            value = handler(args)
        except _Refused as refusal:
            allowed = refusal.kind not in ("denied", "invalid")
            self._record(HostCall(name, summary, allowed, f"{refusal.kind}: {refusal.message}"))
            return json.dumps({"error": {"kind": refusal.kind, "message": refusal.message}})
        except Exception as exc:  # a bug or an OS error we did not foresee: still a reply
            self._record(HostCall(name, summary, True, f"io: {exc}"))
            return json.dumps({"error": {"kind": "io", "message": f"{type(exc).__name__}: {exc}"}})
        self._record(HostCall(name, summary, True, None))
        return json.dumps({"ok": value}, ensure_ascii=False)

    def _record(self, call: HostCall) -> None:
        if len(self.calls) < MAX_RECORDED_CALLS:
            self.calls.append(call)
        else:
            self.dropped_calls += 1

    @staticmethod
    def _summary(name: str, args: dict[str, Any]) -> str:
        if name == "http_get":
            return f"url={_short(str(args.get('url')))}"
        if name in ("read_file", "list_files"):
            return f"path={_short(str(args.get('path', '.')))}"
        if name == "write_file":
            content = args.get("content")
            size = len(content.encode("utf-8", "replace")) if isinstance(content, str) else "?"
            return f"path={_short(str(args.get('path')))}, bytes={size}"
        if name == "log":
            message = args.get("message")
            return f"bytes={len(message) if isinstance(message, str) else '?'}"
        return ""

    @staticmethod
    def _str_arg(args: dict[str, Any], key: str, default: str | None = None) -> str:
        value = args.get(key, default)
        if not isinstance(value, str):
            raise _Refused("invalid", f"argument {key!r} must be a string")
        return value

    # -- now_ms, log ------------------------------------------------------------------------

    def _now_ms(self, args: dict[str, Any]) -> int:
        return time.time_ns() // 1_000_000

    def _log(self, args: dict[str, Any]) -> None:
        message = self._str_arg(args, "message")
        size = len(message.encode("utf-8", "replace")) + 1
        if self.log_overflow or self._log_bytes + size > self.limits.max_log_bytes:
            self.log_overflow = True
            raise _Refused(
                "too_large", f"the log is limited to {self.limits.max_log_bytes} bytes per run"
            )
        self._log_bytes += size
        self.logs.append(message)

    # -- files ------------------------------------------------------------------------------

    def _data_root(self, *, write: bool) -> str:
        perms = self.permissions
        if perms.data_dir is None:
            raise _Refused("denied", "this capability has no data folder (no file access)")
        if write and not perms.write_files:
            raise _Refused("denied", "this capability may not write files")
        if not write and not perms.read_files:
            raise _Refused("denied", "this capability may not read files")
        root = Path(perms.data_dir)
        if write:
            root.mkdir(parents=True, exist_ok=True)
        elif not root.is_dir():
            raise _Refused("not_found", "the data folder does not exist yet")
        return os.path.realpath(root)

    @staticmethod
    def _parts(path: str, *, allow_root: bool) -> list[str]:
        """Validate a capability-relative path; return its components."""
        if "\x00" in path:
            raise _Refused("denied", "NUL byte in path")
        if path.startswith("/") or path.startswith("~"):
            raise _Refused("denied", f"absolute paths are refused: {_short(path)!r}")
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise _Refused("denied", f"'..' is refused in paths: {_short(path)!r}")
        if not parts and not allow_root:
            raise _Refused("invalid", "a file path inside the data folder is required")
        return parts

    @staticmethod
    def _contained(root: str, parts: list[str]) -> list[str]:
        """Resolve symlinks and check the result stays inside `root`; return the real parts."""
        target = os.path.realpath(os.path.join(root, *parts))
        if target != root and not target.startswith(root + os.sep):
            raise _Refused("denied", "the path leaves the data folder (through a symlink)")
        rel = os.path.relpath(target, root)
        return [] if rel == "." else rel.split(os.sep)

    @staticmethod
    def _open_dir(root: str, parts: list[str], *, create: bool) -> int:
        """Open the directory `root/parts...` by walking fds with O_NOFOLLOW (no symlink races)."""
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(root, flags)
        try:
            for part in parts:
                try:
                    nxt = os.open(part, flags, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(part, 0o755, dir_fd=fd)
                    nxt = os.open(part, flags, dir_fd=fd)
                os.close(fd)
                fd = nxt
        except OSError:
            os.close(fd)
            raise
        return fd

    @staticmethod
    def _os_refusal(exc: OSError, path: str) -> _Refused:
        if exc.errno == errno.ELOOP:
            return _Refused("denied", f"symlinks are not followed here: {_short(path)!r}")
        if isinstance(exc, FileNotFoundError):
            return _Refused("not_found", f"no such file in the data folder: {_short(path)!r}")
        if isinstance(exc, IsADirectoryError):
            return _Refused("invalid", f"is a folder, not a file: {_short(path)!r}")
        if isinstance(exc, NotADirectoryError):
            return _Refused("not_found", f"not a folder: {_short(path)!r}")
        return _Refused("io", f"{exc.strerror or exc}: {_short(path)!r}")

    def _read_file(self, args: dict[str, Any]) -> str:
        path = self._str_arg(args, "path")
        root = self._data_root(write=False)
        parts = self._contained(root, self._parts(path, allow_root=False))
        if not parts:
            raise _Refused("invalid", "the data folder itself is not a file")
        limit = self.limits.max_file_bytes
        try:
            dfd = self._open_dir(root, parts[:-1], create=False)
            try:
                fd = os.open(
                    parts[-1],
                    os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                    dir_fd=dfd,
                )
            finally:
                os.close(dfd)
            with os.fdopen(fd, "rb") as fh:
                st = os.fstat(fh.fileno())
                if stat.S_ISDIR(st.st_mode):
                    raise _Refused("invalid", f"is a folder, not a file: {_short(path)!r}")
                if not stat.S_ISREG(st.st_mode):
                    raise _Refused("denied", f"not a regular file: {_short(path)!r}")
                if st.st_size > limit:
                    raise _Refused(
                        "too_large", f"{path!r} is {st.st_size} bytes; the limit is {limit}"
                    )
                data = fh.read(limit + 1)
        except OSError as exc:
            raise self._os_refusal(exc, path) from None
        if len(data) > limit:
            raise _Refused(
                "too_large", f"{_short(path)!r} is larger than the limit of {limit} bytes"
            )
        return data.decode("utf-8", "replace")

    def _write_file(self, args: dict[str, Any]) -> None:
        path = self._str_arg(args, "path")
        content = self._str_arg(args, "content")
        parts0 = self._parts(path, allow_root=False)
        data = content.encode("utf-8", "surrogateescape")
        limit = self.limits.max_file_bytes
        if len(data) > limit:
            raise _Refused("too_large", f"{len(data)} bytes to write; the limit is {limit}")
        root = self._data_root(write=True)
        parts = self._contained(root, parts0)
        if not parts:
            raise _Refused("invalid", "the data folder itself is not a file")
        name = parts[-1]
        tmp = f".{name[:100]}.{os.urandom(6).hex()}.tmp"
        try:
            dfd = self._open_dir(root, parts[:-1], create=True)
            try:
                fd = os.open(
                    tmp,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                    0o644,
                    dir_fd=dfd,
                )
                try:
                    try:
                        view = memoryview(data)
                        while view:
                            view = view[os.write(fd, view) :]
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                    os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp, dir_fd=dfd)
                    raise
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            raise self._os_refusal(exc, path) from None

    def _list_files(self, args: dict[str, Any]) -> list[str]:
        path = self._str_arg(args, "path", ".")
        root = self._data_root(write=False)
        parts = self._contained(root, self._parts(path, allow_root=True))
        try:
            dfd = self._open_dir(root, parts, create=False)
            try:
                names = os.listdir(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            raise self._os_refusal(exc, path) from None
        if len(names) > MAX_LIST_ENTRIES:
            raise _Refused("too_large", f"more than {MAX_LIST_ENTRIES} entries in {path!r}")
        return sorted(n for n in names if not (n.startswith(".") and n.endswith(".tmp")))

    # -- http -------------------------------------------------------------------------------

    def _http_get(self, args: dict[str, Any]) -> str:
        from urllib.parse import urljoin

        url = self._str_arg(args, "url")
        deadline = time.monotonic() + self.limits.http_timeout_s
        if self.deadline is not None:
            deadline = min(deadline, self.deadline)
        for _hop in range(MAX_REDIRECTS + 1):
            scheme, host, port, ip = self._check_url(url)
            status, location, body = self._fetch(url, scheme, host, port, ip, deadline)
            if status in _REDIRECT_CODES and location:
                url = urljoin(url, location)
                continue
            if status == 404:
                raise _Refused("not_found", f"HTTP 404 for {_short(url)}")
            if not 200 <= status < 300:
                raise _Refused("io", f"HTTP {status} for {_short(url)}")
            return body
        raise _Refused("io", f"more than {MAX_REDIRECTS} redirects")

    def _allowlisted(self, scheme: str, host: str, port: int, path: str) -> bool:
        from urllib.parse import urlsplit

        for entry in self.permissions.http_allow:
            entry = entry.strip()
            if "://" in entry:
                p = urlsplit(entry)
                if p.scheme.lower() != scheme or (p.hostname or "").lower() != host:
                    continue
                if (p.port or (443 if p.scheme.lower() == "https" else 80)) != port:
                    continue
                prefix = p.path or "/"
                if prefix.endswith("/"):
                    if path.startswith(prefix) or path == prefix.rstrip("/"):
                        return True
                elif path == prefix or path.startswith(prefix + "/"):
                    return True
            else:
                entry_host, _, entry_port = entry.lower().rpartition(":")
                if not entry_host or not entry_port.isdigit():
                    entry_host, entry_port = entry.lower(), ""
                entry_host = entry_host.strip("[]")
                if entry_port and int(entry_port) != port:
                    continue
                if entry_host.startswith("*."):
                    if host.endswith(entry_host[1:]):
                        return True
                elif host == entry_host:
                    return True
        return False

    def _check_url(self, url: str) -> tuple[str, str, int, str]:
        """Validate scheme, allowlist and resolved address; return (scheme, host, port, ip)."""
        import socket
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise _Refused("invalid", f"not a valid URL: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise _Refused("denied", f"only http and https URLs are allowed, not {scheme or '?'!r}")
        host = (parts.hostname or "").lower()
        if not host:
            raise _Refused("invalid", f"URL without a host: {_short(url)}")
        if parts.username is not None or parts.password is not None:
            raise _Refused("denied", "URLs with credentials (user@host) are refused")
        port = port or (443 if scheme == "https" else 80)
        if not self._allowlisted(scheme, host, port, parts.path or "/"):
            raise _Refused("denied", f"{host} is not on this capability's HTTP allowlist")
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise _Refused("not_found", f"cannot resolve {host}: {exc}") from None
        addrs = [str(info[4][0]) for info in infos]
        if not addrs:
            raise _Refused("not_found", f"{host} has no address")
        if not self.permissions.allow_private_network:
            for addr in addrs:
                if not address_is_public(addr):
                    raise _Refused(
                        "denied",
                        f"{host} resolves to {addr}, a private/loopback/link-local or reserved "
                        "address (allow_private_network is off)",
                    )
        return scheme, host, port, addrs[0]

    def _fetch(
        self, url: str, scheme: str, host: str, port: int, ip: str, deadline: float
    ) -> tuple[int, str | None, str]:
        import http.client
        from urllib.parse import urlsplit

        def remaining() -> float:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Refused(
                    "timeout", f"http_get took longer than the time limit: {_short(url)}"
                )
            return left

        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn = _PinnedConnection(scheme, host, port, ip, remaining())
        limit = self.limits.max_http_bytes
        try:
            conn.request(
                "GET",
                target,
                headers={
                    "User-Agent": "symbiont-sandbox",
                    "Accept-Encoding": "identity",
                    "Connection": "close",
                },
            )
            conn.settimeout(remaining())
            resp = conn.getresponse()
            if resp.status in _REDIRECT_CODES:
                return resp.status, resp.getheader("Location"), ""
            length = resp.getheader("Content-Length")
            if length and length.isdigit() and int(length) > limit:
                raise _Refused("too_large", f"response of {length} bytes; the limit is {limit}")
            chunks: list[bytes] = []
            total = 0
            while True:
                conn.settimeout(remaining())
                chunk = resp.read(min(65536, limit + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
                if total > limit:
                    raise _Refused("too_large", f"the response is larger than {limit} bytes")
            charset = resp.headers.get_content_charset() or "utf-8"
            try:
                body = b"".join(chunks).decode(charset, "replace")
            except LookupError:
                body = b"".join(chunks).decode("utf-8", "replace")
            return resp.status, None, body
        except TimeoutError:
            raise _Refused("timeout", f"http_get timed out: {_short(url)}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise _Refused("io", f"http_get failed for {_short(url)}: {exc}") from None
        finally:
            conn.close()


class _PinnedConnection:
    """An HTTP(S) connection to a host name, made to the one address that passed the checks."""

    def __init__(self, scheme: str, host: str, port: int, ip: str, timeout: float) -> None:
        import http.client
        import socket
        import ssl

        self._ip = ip
        conn: http.client.HTTPConnection
        if scheme == "https":
            context = ssl.create_default_context()
            conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        self._conn = conn
        pinned_ip = ip

        def connect() -> None:  # replaces the name lookup inside http.client
            sock = socket.create_connection((pinned_ip, port), conn.timeout)
            if isinstance(conn, http.client.HTTPSConnection):
                sock = context.wrap_socket(sock, server_hostname=host)
            conn.sock = sock

        conn.connect = connect  # type: ignore[method-assign]

    def request(self, method: str, target: str, headers: dict[str, str]) -> None:
        self._conn.request(method, target, headers=headers)

    def getresponse(self) -> http.client.HTTPResponse:
        return self._conn.getresponse()

    def settimeout(self, seconds: float) -> None:
        if self._conn.sock is not None:
            self._conn.sock.settimeout(seconds)

    def close(self) -> None:
        self._conn.close()
