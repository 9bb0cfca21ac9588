"""One way to talk to PostgreSQL for every repository of the PostgreSQL store.

`PgDatabase(url)` opens a psycopg 3 connection on first use, brings the database to the
latest schema version (`schema.PG_MIGRATIONS`, applied under an advisory lock so that many
processes opening a new database at once apply each migration exactly once), and gives:

    with db.transaction() as cur:      # one transaction; commit, or roll back and re-raise
        cur.execute("UPDATE ... WHERE id = %s", (x,))
    rows = db.read("SELECT ... WHERE id = %s", (x,))

Serialization failures and deadlocks (another process won a race) are retried with
jittered backoff; a dropped connection is reopened once. psycopg errors become
`StoreError` / `CorruptStoreError` that name the database (never its password).
A forked child never uses its parent's connection: it opens its own on first use.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from symbiont.errors import CorruptStoreError, StoreError
from symbiont.store.pg.schema import PG_MIGRATIONS

T = TypeVar("T")

LATEST_PG_VERSION = PG_MIGRATIONS[-1].version
# Arbitrary constant: the advisory lock key under which migrations run ('SYMB').
_MIGRATION_LOCK = 0x53594D42


def redact(url: str) -> str:
    """`url` without its password, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable PostgreSQL URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def is_postgres_url(value: object) -> bool:
    return isinstance(value, str) and value.startswith(("postgresql://", "postgres://"))


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise StoreError(
            "a PostgreSQL store needs psycopg 3: pip install 'symbiont[postgres]'"
        ) from exc
    return psycopg


class PgDatabase:
    """A lazily opened, fork-aware, thread-safe (one lock) PostgreSQL connection."""

    def __init__(self, url: str, *, connect_timeout_s: float = 10.0, retries: int = 20) -> None:
        if not is_postgres_url(url):
            raise StoreError(f"not a PostgreSQL URL: {redact(str(url))!r}")
        self.url = url
        self.where = redact(url)
        self.connect_timeout_s = connect_timeout_s
        self.retries = retries
        self.schema_version = 0
        self._lock = threading.RLock()
        self._conn: Any = None
        self._pid = os.getpid()
        self._closed = False
        self._migrated = False
        self._connection()  # fail at open, with a clear message, not at first use

    # -- connection ---------------------------------------------------------------------
    def _open(self) -> Any:
        psycopg = _psycopg()
        try:
            conn = psycopg.connect(
                self.url, autocommit=True, connect_timeout=max(1, int(self.connect_timeout_s))
            )
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the PostgreSQL store {self.where}: {exc}") from exc
        if not self._migrated:
            try:
                self.schema_version = self._migrate(conn)
            except BaseException:
                conn.close()
                raise
            self._migrated = True
        return conn

    def _connection(self) -> Any:
        if self._closed:
            raise StoreError(f"the store {self.where} is closed")
        if self._pid != os.getpid():  # forked: the parent's socket is not ours to use
            self._pid = os.getpid()
            self._conn = None
        if self._conn is None or self._conn.closed:
            self._conn = self._open()
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            conn, self._conn = self._conn, None
            if conn is not None and self._pid == os.getpid():
                conn.close()

    # -- migrations ---------------------------------------------------------------------
    def _migrate(self, conn: Any) -> int:
        psycopg = _psycopg()
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                current = self._version(cur)
                for m in PG_MIGRATIONS:
                    if m.version <= current:
                        continue
                    for statement in m.statements:
                        cur.execute(statement)
                    cur.execute(
                        "INSERT INTO symbiont_meta (key, value) VALUES ('schema_version', %s) "
                        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                        (str(m.version),),
                    )
                    current = m.version
                return current
        except psycopg.Error as exc:
            raise StoreError(f"cannot migrate the PostgreSQL store {self.where}: {exc}") from exc

    def _version(self, cur: Any) -> int:
        """The schema version of the database; refuses foreign and newer ones."""
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = "
            "current_schema() AND table_type = 'BASE TABLE'"
        )
        tables = {r[0] for r in cur.fetchall()}
        if "symbiont_meta" not in tables:
            if tables:
                shown = ", ".join(sorted(tables)[:8])
                raise CorruptStoreError(
                    f"{self.where} holds tables of another application ({shown}) and no "
                    "symbiont_meta table; symbiont left it unchanged: use an empty database "
                    "or another schema"
                )
            return 0
        cur.execute("SELECT key, value FROM symbiont_meta")
        meta = dict(cur.fetchall())
        if meta.get("application") != "symbiont":
            raise CorruptStoreError(
                f"{self.where} has a symbiont_meta table that does not mark it as a symbiont "
                "store; symbiont left it unchanged"
            )
        try:
            version = int(meta.get("schema_version", "0"))
        except ValueError as exc:
            raise CorruptStoreError(
                f"{self.where} has an unreadable schema_version {meta['schema_version']!r}"
            ) from exc
        if version > LATEST_PG_VERSION:
            raise CorruptStoreError(
                f"{self.where} has schema version {version}, newer than this symbiont knows "
                f"(up to {LATEST_PG_VERSION}): upgrade symbiont to use it; it was left unchanged"
            )
        return version

    # -- statements ---------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor inside one transaction (no retry: use `write` for retried work)."""
        with self._lock:
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                yield cur

    def write(
        self, op: Callable[[Any], T], what: str = "writing", *, idempotent: bool = False
    ) -> T:
        """Run `op(cursor)` in one transaction; retried as a whole when PostgreSQL reports a
        serialization failure or deadlock (the transaction was rolled back, so nothing is
        applied twice). A connection lost during the transaction is retried on a new one
        only when `op` is `idempotent` (reads): a commit may have reached the server before
        the connection broke, and a blind retry of an insert would store it twice."""
        return self._run(op, what, idempotent=idempotent)

    def read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        def op(cur: Any) -> list[tuple[Any, ...]]:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

        return self._run(op, "reading", idempotent=True)

    def _run(self, op: Callable[[Any], T], what: str, *, idempotent: bool) -> T:
        psycopg = _psycopg()
        errors = psycopg.errors
        delay = 0.005
        for attempt in range(self.retries):
            try:
                with self.transaction() as cur:
                    return op(cur)
            except (errors.SerializationFailure, errors.DeadlockDetected) as exc:
                if attempt == self.retries - 1:
                    raise StoreError(
                        f"the store {self.where} kept conflicting with other writers while "
                        f"{what}: {exc}"
                    ) from exc
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.2)
            except psycopg.OperationalError as exc:
                with self._lock:
                    broken = self._conn is None or self._conn.closed or self._conn.broken
                    if broken:
                        self._conn = None
                if broken and not idempotent:
                    raise StoreError(
                        f"the connection to the store {self.where} was lost while {what}; "
                        "the write may or may not have been committed (it was not retried, "
                        f"so nothing is stored twice): {exc}"
                    ) from exc
                if not broken or attempt > 0:
                    raise StoreError(f"store {self.where}: {exc}") from exc
            except psycopg.IntegrityError as exc:
                raise StoreError(f"the store {self.where} refused a write: {exc}") from exc
            except psycopg.Error as exc:
                raise StoreError(f"store {self.where}: {exc}") from exc
        raise AssertionError("unreachable")
