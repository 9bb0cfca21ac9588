"""Serving the UI: loopback by default; any other address only with a token.

`serve` blocks (the CLI); `start_in_thread` runs uvicorn on a daemon thread in this process
(`Runtime.serve_ui`). Both bind the socket themselves so port 0 picks a free port and the
real address is known before the first request.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from symbiont.errors import SymbiontError
from symbiont.ui.app import UIConfig, create_app

TOKEN_ENV = "SYMBIONT_UI_TOKEN"
DEFAULT_PORT = 8707


class UnsafeBind(SymbiontError):
    """A UI on an address other than loopback without a token."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse, clearly, to serve beyond loopback without a token."""
    if not is_loopback(host) and not token:
        raise UnsafeBind(
            f"refusing to serve the UI on {host}: it is not a loopback address, so anyone who "
            f"can reach it could read the store. Set a token (--token or ${TOKEN_ENV}) or bind "
            "127.0.0.1"
        )


def _socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise SymbiontError(f"cannot serve the UI on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(64)
    sock.set_inheritable(False)
    return sock


def url_of(sock: socket.socket, token: str | None = None) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def _prepare(config: UIConfig, host: str) -> None:
    check_bind(host, config.token)


def _server(config: UIConfig) -> Any:
    import uvicorn

    app = create_app(config)
    return uvicorn.Server(
        uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2, lifespan="on")
    )


def serve(
    config: UIConfig, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, announce: Any = print
) -> None:
    """Serve until interrupted; `announce(url)` is called once the socket listens."""
    _prepare(config, host)
    sock = _socket(host, port)
    announce(url_of(sock, config.token))
    _server(config).run(sockets=[sock])


@dataclass
class RunningUI:
    """A UI served from a thread of this process; `stop()` ends it."""

    url: str
    server: Any
    thread: threading.Thread
    sock: socket.socket = field(repr=False)

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()

    def __enter__(self) -> RunningUI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_in_thread(config: UIConfig, host: str = "127.0.0.1", port: int = 0) -> RunningUI:
    _prepare(config, host)
    sock = _socket(host, port)
    server = _server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="symbiont-ui", daemon=True
    )
    thread.start()
    return RunningUI(url_of(sock, config.token), server, thread, sock)


def token_from_env() -> str | None:
    return os.environ.get(TOKEN_ENV, "").strip() or None
