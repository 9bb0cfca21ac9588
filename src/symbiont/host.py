"""`symbiont.host`: the functions a capability uses to reach the outside world.

    from symbiont.host import http_get, read_file, write_file, list_files, now_ms, log

The same API exists in every sandbox tier. Here, in the real module, each call is turned into
JSON and handed to a transport: in the `inprocess` tier a `HostFunctions` held in a context
variable, in the `process` tier a client over the socketpair to the parent (installed by the
worker). The permission checks always run on the host side, so replacing these functions
from inside a capability cannot widen what it may do.

Outside a sandbox there is no transport and every call raises `SandboxError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from symbiont.errors import SandboxError

Transport = Callable[[str, str], str]  # (name, args_json) -> reply JSON

_current: ContextVar[Transport | None] = ContextVar("symbiont_host_transport", default=None)
_process_transport: Transport | None = None  # set once by a process-tier worker


class HostError(OSError):
    """A host function failed: not_found, too_large, timeout, io or invalid arguments."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __str__(self) -> str:
        return self.message


class HostDenied(HostError, PermissionError):
    """A host function refused the call: the capability lacks the permission."""


# Private aliases: a capability rebinding `symbiont.host.HostDenied` does not change what
# this module raises (it could only misreport its own failure; the refusal is host-side).
_HostError = HostError
_HostDenied = HostDenied


@contextmanager
def using(transport: Transport) -> Iterator[None]:
    """Route this context's host calls to `transport` (used by the inprocess tier)."""
    token = _current.set(transport)
    try:
        yield
    finally:
        _current.reset(token)


def install_process_transport(transport: Transport) -> None:
    """Route every host call of this process to `transport` (used by process-tier workers)."""
    global _process_transport
    _process_transport = transport


def _call(name: str, **args: Any) -> Any:
    transport = _current.get() or _process_transport
    if transport is None:
        raise SandboxError(
            f"symbiont.host.{name}() was called outside a sandbox: host functions exist only "
            "while a capability runs in a sandbox tier (wasm, process or inprocess)"
        )
    reply = json.loads(transport(name, json.dumps(args, ensure_ascii=False)))
    if "error" in reply:
        err = reply["error"]
        kind = str(err.get("kind", "io"))
        message = str(err.get("message", ""))
        if kind == "denied":
            raise _HostDenied(kind, message)
        raise _HostError(kind, message)
    return reply.get("ok")


def http_get(url: str) -> str:
    """GET `url` (allowlisted hosts only); returns the response body as text."""
    return _call("http_get", url=url)


def read_file(path: str) -> str:
    """Read a text file inside the capability's data folder."""
    return _call("read_file", path=path)


def write_file(path: str, content: str) -> None:
    """Write (atomically) a text file inside the capability's data folder."""
    _call("write_file", path=path, content=content)


def list_files(path: str = ".") -> list[str]:
    """List the entries of a folder inside the capability's data folder."""
    return _call("list_files", path=path)


def now_ms() -> int:
    """Milliseconds since the Unix epoch, from the host's clock."""
    return _call("now_ms")


def log(message: str) -> None:
    """Append a line to the run's log (captured into the result, size-capped)."""
    _call("log", message=str(message))


__all__ = [
    "HostDenied",
    "HostError",
    "http_get",
    "install_process_transport",
    "list_files",
    "log",
    "now_ms",
    "read_file",
    "using",
    "write_file",
]
