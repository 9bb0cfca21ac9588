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
- Every host function runs under the call's deadline (`deadline`) as a hard bound: HTTP has
  one total deadline for name lookup, connect, TLS, headers and body (the socket timeout
  is recomputed from the time left before every read, so a server that drips one byte a
  second gains nothing); text is decoded only with linear-time codecs from an allowlist;
  path length, depth and component caps are checked before any filesystem call.
- URL allowlist prefixes are matched against the *normalised* path (percent-encoded
  unreserved characters decoded, dot segments resolved), and the normalised URL is the one
  requested, so `/public/../admin` or `/public/%2e%2e/admin` is `/admin`. Encoded slashes
  and backslashes, and dot segments with parameters (`..;`), never match a path prefix.
- IPv6 addresses that carry an IPv4 address (mapped, compatible, 6to4, NAT64, Teredo) are
  checked as the IPv4 address they carry.
- Hard links (a regular file with link count > 1) are refused like symlinks: a hard link to
  a file outside the data folder would otherwise be read or counted as the folder's own.
- `write_file` has quotas per data folder (`Permissions.max_data_bytes`,
  `Permissions.max_data_entries`), measured once per call and kept up to date.
- The call record is never silently truncated: past `MAX_RECORDED_CALLS` the harmless calls
  (`now_ms`, `log`, reads, listings) are folded into a count, shown as a last `folded`
  entry, while every `http_get` and `write_file` is still recorded; past
  `MAX_KEPT_CALLS` those two are refused rather than left unrecorded.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from symbiont.sandbox.base import HostCall, Limits, Permissions

if TYPE_CHECKING:
    import http.client
    import socket

# The network modules (http.client, ssl, socket, ipaddress, urllib.parse: ~40 ms together)
# are imported inside the functions that use them, so a sandbox whose capabilities never
# call `http_get` does not pay for them at start-up.

HOST_FUNCTION_NAMES = ("http_get", "read_file", "write_file", "list_files", "now_ms", "log")
MAX_REDIRECTS = 5
MAX_RECORDED_CALLS = 10_000  # past this, harmless calls are only counted ("folded")
MAX_KEPT_CALLS = 100_000  # http_get/write_file recorded up to here; refused beyond it
MAX_LIST_ENTRIES = 10_000
MAX_PATH_CHARS = 1024  # checked before any filesystem call
MAX_PATH_DEPTH = 32
MAX_COMPONENT_CHARS = 255
_ALWAYS_KEPT = frozenset({"http_get", "write_file"})
# Linear-time text codecs a response may be decoded with (names as `codecs.lookup` gives
# them). Others (punycode: quadratic; idna, unicode_escape, the bytes-to-bytes ones...)
# are refused; an unknown charset name is decoded as UTF-8.
TEXT_CODECS = frozenset(
    {"utf-8", "utf-8-sig", "ascii", "latin-1", "iso8859-1"}
    | {"utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"}
    | {f"iso8859-{n}" for n in range(2, 17) if n != 12}
    | {f"cp{n}" for n in (437, 850, 852, 855, 858, 866, 874, 932, 936, 949, 950)}
    | {f"cp{n}" for n in range(1250, 1259)}
    | {"koi8-r", "koi8-u", "mac-roman", "shift_jis", "euc_jp", "gb2312", "gbk", "gb18030"}
    | {"big5", "euc_kr", "iso2022_jp"}
)
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


def _embedded_ipv4(ip: Any) -> list[Any] | None:
    """The IPv4 addresses an IPv6 address carries (None: it carries none), or [] if it is a
    translation prefix whose traffic cannot be checked (local-use NAT64)."""
    import ipaddress

    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip.sixtofour is not None:  # 2002::/16
        return [ip.sixtofour]
    if ip.teredo is not None:  # 2001::/32: (server, client)
        return list(ip.teredo)
    value = int(ip)
    if ip in ipaddress.ip_network("64:ff9b::/96"):  # NAT64, well-known prefix
        return [ipaddress.IPv4Address(value & 0xFFFFFFFF)]
    if ip in ipaddress.ip_network("64:ff9b:1::/48"):  # NAT64, local use: refuse
        return []
    if value >> 32 == 0 and value > 1:  # IPv4-compatible ::a.b.c.d (deprecated)
        return [ipaddress.IPv4Address(value)]
    return None


def address_is_public(addr: str) -> bool:
    """True for a globally routable unicast address (not private, loopback, link-local...).

    An IPv6 address that carries an IPv4 address (mapped, compatible, 6to4, NAT64, Teredo)
    is public only if every IPv4 address it carries is.
    """
    import ipaddress

    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        carried = _embedded_ipv4(ip)
        if carried is not None:
            return bool(carried) and all(address_is_public(str(v4)) for v4 in carried)
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
    `deadline` (a `time.monotonic()` value, optional) is the call's own deadline: every host
    function stops (kind "timeout") when it is reached, so a host call cannot outlive the
    run's wall-clock limit. `calls` ends with a `folded` entry when calls were only counted.
    """

    def __init__(self, permissions: Permissions, limits: Limits) -> None:
        self.permissions = permissions
        self.limits = limits
        self._calls: list[HostCall] = []
        self.logs: list[str] = []
        self.log_overflow = False
        self.folded_calls = 0  # harmless calls past MAX_RECORDED_CALLS, counted only
        self.deadline: float | None = None
        self._log_bytes = 0
        self._usage: list[int] | None = None  # [bytes, entries] of the data folder

    @property
    def calls(self) -> list[HostCall]:
        """Every call, in order; a last `folded` entry counts those not listed one by one."""
        if not self.folded_calls:
            return self._calls
        note = (
            f"{self.folded_calls} more calls (now_ms, log, read_file, list_files) past the "
            f"first {MAX_RECORDED_CALLS} were counted, not listed; every http_get and "
            "write_file is listed"
        )
        return [*self._calls, HostCall("folded", f"calls={self.folded_calls}", True, note)]

    @property
    def dropped_calls(self) -> int:  # the former name
        return self.folded_calls

    def _time_left(self, what: str) -> float:
        """Seconds left before the call's deadline; refuses with "timeout" once it passed."""
        if self.deadline is None:
            return float("inf")
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _Refused("timeout", f"{what} ran past the call's time limit")
        return left

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
            if name in _ALWAYS_KEPT and len(self._calls) >= MAX_KEPT_CALLS:
                raise _Refused(
                    "denied",
                    f"more than {MAX_KEPT_CALLS} host calls in one run: {name} is refused "
                    "so that no call goes unrecorded",
                )
            self._time_left(name)
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
        if len(self._calls) < MAX_RECORDED_CALLS or (
            call.name in _ALWAYS_KEPT and len(self._calls) < MAX_KEPT_CALLS + 1
        ):
            self._calls.append(call)
        else:
            self.folded_calls += 1

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
        """Validate a capability-relative path; return its components.

        Pure string checks, before any filesystem call: a path of 300,000 components must
        cost nothing (`realpath` on it takes seconds).
        """
        if len(path) > MAX_PATH_CHARS:
            raise _Refused(
                "invalid", f"the path is {len(path)} characters long; the limit is {MAX_PATH_CHARS}"
            )
        if "\x00" in path:
            raise _Refused("denied", "NUL byte in path")
        if path.startswith("/") or path.startswith("~"):
            raise _Refused("denied", f"absolute paths are refused: {_short(path)!r}")
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise _Refused("denied", f"'..' is refused in paths: {_short(path)!r}")
        if len(parts) > MAX_PATH_DEPTH:
            raise _Refused(
                "invalid",
                f"the path is {len(parts)} folders deep; the limit is {MAX_PATH_DEPTH}",
            )
        for part in parts:
            if len(part.encode("utf-8", "surrogateescape")) > MAX_COMPONENT_CHARS:
                raise _Refused(
                    "invalid", f"a path component is longer than {MAX_COMPONENT_CHARS} bytes"
                )
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
                if st.st_nlink > 1:
                    raise _Refused("denied", f"hard links are not followed here: {_short(path)!r}")
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
        if len(parts) > MAX_PATH_DEPTH:  # a symlink inside the folder may lead deeper
            raise _Refused("invalid", f"the path is more than {MAX_PATH_DEPTH} folders deep")
        name = parts[-1]
        tmp = f".{name[:100]}.{os.urandom(6).hex()}.tmp"
        try:
            usage = self._data_usage(root)
            missing = self._missing_dirs(root, parts[:-1])
            old_size, new_entries = 0, missing
            if not missing:
                old_size, exists = self._existing(root, parts, path)
                new_entries += 0 if exists else 1
            else:
                new_entries += 1
            self._check_quota(usage, len(data) - old_size, new_entries)
            self._time_left("write_file")
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
        usage[0] += len(data) - old_size
        usage[1] += new_entries

    def _existing(self, root: str, parts: list[str], path: str) -> tuple[int, bool]:
        """(size, exists) of the file a write replaces; hard links are refused."""
        dfd = self._open_dir(root, parts[:-1], create=False)
        try:
            st = os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return 0, False
        finally:
            os.close(dfd)
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            raise _Refused("denied", f"hard links are not followed here: {_short(path)!r}")
        if stat.S_ISDIR(st.st_mode):
            raise _Refused("invalid", f"is a folder, not a file: {_short(path)!r}")
        return (st.st_size if stat.S_ISREG(st.st_mode) else 0), True

    def _missing_dirs(self, root: str, dirs: list[str]) -> int:
        """How many of the folders on the way to a file do not exist yet."""
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(root, flags)
        try:
            for depth, part in enumerate(dirs):
                try:
                    nxt = os.open(part, flags, dir_fd=fd)
                except FileNotFoundError:
                    return len(dirs) - depth
                os.close(fd)
                fd = nxt
        finally:
            os.close(fd)
        return 0

    def _data_usage(self, root: str) -> list[int]:
        """[bytes, entries] in the data folder, measured once per run (iteratively).

        The walk stops once it has seen more than the quota allows: the folder is full
        either way. Symlinks are counted as entries and never followed.
        """
        if self._usage is not None:
            return self._usage
        perms = self.permissions
        total_bytes = entries = 0
        stack = [root]
        while stack and entries <= perms.max_data_entries:
            self._time_left("write_file (measuring the data folder)")
            folder = stack.pop()
            try:
                with os.scandir(folder) as it:
                    for entry in it:
                        entries += 1
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            total_bytes += entry.stat(follow_symlinks=False).st_size
                        if entries > perms.max_data_entries:
                            break
            except OSError:
                continue
        self._usage = [total_bytes, entries]
        return self._usage

    def _check_quota(self, usage: list[int], more_bytes: int, more_entries: int) -> None:
        perms = self.permissions
        if more_entries and usage[1] + more_entries > perms.max_data_entries:
            raise _Refused(
                "too_large",
                f"the data folder holds {usage[1]} files and folders; the quota is "
                f"{perms.max_data_entries} (max_data_entries)",
            )
        if more_bytes > 0 and usage[0] + more_bytes > perms.max_data_bytes:
            raise _Refused(
                "too_large",
                f"the data folder would hold {usage[0] + more_bytes} bytes; the quota is "
                f"{perms.max_data_bytes} (max_data_bytes)",
            )

    def _list_files(self, args: dict[str, Any]) -> list[str]:
        path = self._str_arg(args, "path", ".")
        root = self._data_root(write=False)
        parts = self._contained(root, self._parts(path, allow_root=True))
        names: list[str] = []
        try:
            dfd = self._open_dir(root, parts, create=False)
            try:
                with os.scandir(dfd) as it:
                    for entry in it:
                        if len(names) >= MAX_LIST_ENTRIES:
                            raise _Refused(
                                "too_large", f"more than {MAX_LIST_ENTRIES} entries in {path!r}"
                            )
                        names.append(entry.name)
            finally:
                os.close(dfd)
        except OSError as exc:
            raise self._os_refusal(exc, path) from None
        return sorted(n for n in names if not (n.startswith(".") and n.endswith(".tmp")))

    # -- http -------------------------------------------------------------------------------

    def _http_get(self, args: dict[str, Any]) -> str:
        from urllib.parse import urljoin

        url = self._str_arg(args, "url")
        deadline = time.monotonic() + self.limits.http_timeout_s
        if self.deadline is not None:
            deadline = min(deadline, self.deadline)
        for _hop in range(MAX_REDIRECTS + 1):
            scheme, host, port, ip, url = self._check_url(url, deadline)
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
        """`path` is normalised (see `normalise_path`)."""
        from urllib.parse import urlsplit

        ambiguous = _ambiguous_path(path)
        for entry in self.permissions.http_allow:
            entry = entry.strip()
            if "://" in entry:
                p = urlsplit(entry)
                if p.scheme.lower() != scheme or (p.hostname or "").lower() != host:
                    continue
                if (p.port or (443 if p.scheme.lower() == "https" else 80)) != port:
                    continue
                prefix = normalise_path(p.path or "/")
                if prefix == "/":
                    return True
                if ambiguous:  # a server might read it as another path than we did
                    continue
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

    def _check_url(self, url: str, deadline: float) -> tuple[str, str, int, str, str]:
        """Validate scheme, allowlist and resolved address.

        Returns (scheme, host, port, ip, url) where `url` is the normalised URL to request.
        """
        from urllib.parse import urlsplit, urlunsplit

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
        if any(ch in url for ch in "\r\n\t ") or any(ord(ch) < 0x20 for ch in url):
            raise _Refused("invalid", "URLs with spaces or control characters are refused")
        port = port or (443 if scheme == "https" else 80)
        path = normalise_path(parts.path or "/")
        if not self._allowlisted(scheme, host, port, path):
            raise _Refused(
                "denied", f"{host}{_short(path, 80)} is not on this capability's HTTP allowlist"
            )
        addrs = _resolve(host, port, deadline)
        if not self.permissions.allow_private_network:
            for addr in addrs:
                if not address_is_public(addr):
                    raise _Refused(
                        "denied",
                        f"{host} resolves to {addr}, a private/loopback/link-local or reserved "
                        "address (allow_private_network is off)",
                    )
        normalised = urlunsplit((scheme, parts.netloc, path, parts.query, ""))
        return scheme, host, port, addrs[0], normalised

    def _fetch(
        self, url: str, scheme: str, host: str, port: int, ip: str, deadline: float
    ) -> tuple[int, str | None, str]:
        """One GET, bounded as a whole by `deadline` (see `_DeadlineReader`)."""
        import http.client
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        limit = self.limits.max_http_bytes
        conn = _PinnedConnection(scheme, host, port, ip, deadline)
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
            resp = conn.getresponse()
            if resp.status in _REDIRECT_CODES:
                return resp.status, resp.getheader("Location"), ""
            length = resp.getheader("Content-Length")
            if length and length.isdigit() and int(length) > limit:
                raise _Refused("too_large", f"response of {length} bytes; the limit is {limit}")
            codec = _text_codec(resp.headers.get_content_charset())
            chunks: list[bytes] = []
            total = 0
            while True:
                chunk = resp.read(min(65536, limit + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
                if total > limit:
                    raise _Refused("too_large", f"the response is larger than {limit} bytes")
            if time.monotonic() >= deadline:
                raise TimeoutError
            return resp.status, None, b"".join(chunks).decode(codec, "replace")
        except TimeoutError:
            raise _Refused("timeout", f"http_get ran past its time limit: {_short(url)}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise _Refused("io", f"http_get failed for {_short(url)}: {exc}") from None
        finally:
            conn.close()


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def normalise_path(path: str) -> str:
    """The path of a URL as a server resolves it (RFC 3986 6.2.2, 5.2.4).

    Percent-encoded unreserved characters are decoded (`%2e` is `.`), other escapes are
    upper-cased, and dot segments are removed (`/a/./b/../c` is `/a/c`). Encoded slashes
    (`%2F`) stay encoded: `_ambiguous_path` keeps them from matching a path prefix.
    """
    out: list[str] = []
    i = 0
    while i < len(path):
        ch = path[i]
        if ch == "%" and i + 2 < len(path) and _is_hex(path[i + 1 : i + 3]):
            decoded = chr(int(path[i + 1 : i + 3], 16))
            out.append(decoded if decoded in _UNRESERVED else path[i : i + 3].upper())
            i += 3
        else:
            out.append(ch)
            i += 1
    text = "".join(out)
    segments = text.split("/")
    resolved: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == ".":
            if last:
                resolved.append("")
        elif segment == "..":
            if len(resolved) > 1:
                resolved.pop()
            if last:
                resolved.append("")
        else:
            resolved.append(segment)
    result = "/".join(resolved)
    return result if result.startswith("/") else "/" + result


def _is_hex(text: str) -> bool:
    return len(text) == 2 and all(c in "0123456789abcdefABCDEF" for c in text)


def _ambiguous_path(path: str) -> bool:
    """True if servers may split `path` differently from us: encoded or back-slashes, or
    a dot segment carrying parameters (`..;x`, which Tomcat reads as `..`)."""
    upper = path.upper()
    if "%2F" in upper or "%5C" in upper or "\\" in path or "%00" in upper:
        return True
    return any(seg.split(";", 1)[0] in (".", "..") for seg in path.split("/") if ";" in seg)


def _text_codec(charset: str | None) -> str:
    """The codec to decode a response with: only linear-time text codecs are allowed."""
    import codecs

    if not charset:
        return "utf-8"
    try:
        name = codecs.lookup(charset).name
    except (LookupError, ValueError):
        return "utf-8"  # an unknown name: decoded as UTF-8 (with replacement characters)
    if name not in TEXT_CODECS:
        raise _Refused(
            "invalid",
            f"the response declares charset {_short(charset, 40)!r}, which is not a text "
            "encoding this host decodes (allowed: UTF-8/16/32, ASCII, Latin-1, cp125x and "
            "other single-byte or CJK text encodings)",
        )
    return name


def _resolve(host: str, port: int, deadline: float) -> list[str]:
    """The addresses of `host`, within the deadline (a lookup that hangs is abandoned)."""
    import ipaddress
    import socket

    with contextlib.suppress(ValueError):
        return [str(ipaddress.ip_address(host))]
    box: list[Any] = []

    def lookup() -> None:
        try:
            box.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except BaseException as exc:
            box.append(exc)

    left = deadline - time.monotonic()
    if left <= 0:
        raise _Refused("timeout", f"no time left to resolve {host}")
    import threading

    worker = threading.Thread(target=lookup, name="symbiont-hostfn-dns", daemon=True)
    worker.start()
    worker.join(left)
    if not box:
        raise _Refused("timeout", f"resolving {host} ran past the time limit")
    result = box[0]
    if isinstance(result, (socket.gaierror, UnicodeError)):
        raise _Refused("not_found", f"cannot resolve {host}: {result}")
    if isinstance(result, BaseException):
        raise _Refused("io", f"cannot resolve {host}: {result}")
    addrs = [str(info[4][0]) for info in result]
    if not addrs:
        raise _Refused("not_found", f"{host} has no address")
    return addrs


class _DeadlineReader(io.RawIOBase):
    """The response stream of a socket, with the timeout recomputed before every read.

    `http.client` sets one socket timeout per operation, so a server that sends one byte
    a second keeps a read alive forever; here every `recv` gets only the time left.
    """

    def __init__(self, sock: Any, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the deadline passed")
        self._sock.settimeout(left)
        return int(self._sock.recv_into(buffer))


class _DeadlineSocket:
    """The socket `http.client` sees: every send and read bounded by one deadline."""

    def __init__(self, sock: Any, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def _arm(self) -> None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the deadline passed")
        self._sock.settimeout(left)

    def sendall(self, data: bytes) -> None:
        self._arm()  # sendall applies its timeout to the whole call
        self._sock.sendall(data)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))

    def settimeout(self, seconds: float | None) -> None:
        pass  # the deadline decides

    def close(self) -> None:
        pass  # `http.client` closes early while the response still reads; see _PinnedConnection


class _PinnedConnection:
    """An HTTP(S) connection to a host name, made to the one address that passed the checks.

    Connect, the TLS handshake (one timeout for the whole handshake), the request and
    every read share one deadline.
    """

    def __init__(self, scheme: str, host: str, port: int, ip: str, deadline: float) -> None:
        import http.client
        import socket
        import ssl

        def left() -> float:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the deadline passed")
            return remaining

        conn: http.client.HTTPConnection
        if scheme == "https":
            context = ssl.create_default_context()
            conn = http.client.HTTPSConnection(host, port, timeout=left(), context=context)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=left())
        self._conn = conn
        self._sockets: list[socket.socket] = []

        def connect() -> None:  # replaces the name lookup inside http.client
            sock = socket.create_connection((ip, port), left())
            try:
                if isinstance(conn, http.client.HTTPSConnection):
                    sock.settimeout(left())
                    sock = context.wrap_socket(sock, server_hostname=host)
            except BaseException:
                sock.close()
                raise
            self._sockets.append(sock)
            conn.sock = _DeadlineSocket(sock, deadline)

        conn.connect = connect  # type: ignore[method-assign]

    def request(self, method: str, target: str, headers: dict[str, str]) -> None:
        self._conn.request(method, target, headers=headers)

    def getresponse(self) -> http.client.HTTPResponse:
        return self._conn.getresponse()

    def close(self) -> None:
        self._conn.close()
        for sock in self._sockets:
            sock.close()
