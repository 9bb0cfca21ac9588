"""The SQLite store: the embedded default behind `symbiont.store.Store`.

Why it is built the way it is:

- **WAL + synchronous=NORMAL by default.** Readers never block the writer. In WAL mode a
  commit is written to the WAL file (the OS page cache) before `add_revision` returns, and
  the WAL is fsync'd at each checkpoint: a crash of the program — an exception, SIGKILL,
  the OOM killer, a segfault — loses *no* committed transaction, and the database is never
  corrupted. Only a power cut or a kernel crash can drop the last transactions committed
  since the last checkpoint (the file stays consistent; they are simply not there). FULL
  fsyncs the WAL at every commit, which costs 0.2 ms on an idle disk but 4-14 ms on a busy
  shared one — more than the rest of the search harness per candidate. Ask for power-loss
  durability with `synchronous="FULL"` (or `"EXTRA"`), or `SYMBIONT_STORE_SYNC=FULL` in the
  environment for every store the program opens.
- **One short IMMEDIATE transaction per write.** The write lock is taken at BEGIN, so the
  busy handler applies (a DEFERRED transaction upgrading to a writer can fail at once with
  SQLITE_BUSY). After a short `busy_timeout` (100 ms) every write and read is retried with
  jittered sleeps of at most 20 ms while the database is busy — shorter than SQLite's own
  growing sleeps, so two writers take turns instead of one starving the other — and
  "database is locked" never reaches a user; after `lock_timeout_s` (60 s) the caller gets a
  `StoreError` that says which file is busy.
- **One connection per store, guarded by a lock.** The runtime calls from several threads;
  calls are sub-millisecond, so a lock is simpler than a connection per thread and keeps
  `close()` able to close everything. A connection is never used across `fork()` (the
  trial runner forks the live process): the child opens its own.
- **Never touch a file that is not ours.** A file at the path is inspected read-only
  before anything is written: not SQLite, a SQLite database of another application
  (no `symbiont_meta` marker table), or a schema newer than this version knows gives a
  `CorruptStoreError` naming the file and what is wrong, and leaves its bytes unchanged.
"""

from __future__ import annotations

import functools
import os
import random
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from symbiont.errors import CorruptStoreError, StoreError
from symbiont.store.evolvables import EvolvableStore, Pricing
from symbiont.store.evolvables import dumps as _dumps  # noqa: F401  (kept importable here)
from symbiont.store.migrations import (
    APPLICATION_ID,
    LATEST_VERSION,
    MARKER_TABLE,
    apply_migrations,
)

if TYPE_CHECKING:
    from symbiont.store.pg.evolvables import PostgresStore

T = TypeVar("T")

SQLITE_MAGIC = b"SQLite format 3\x00"
DB_FILE_NAME = "symbiont.db"

# Connections inherited over fork(): kept referenced so they are never closed (or used) in
# the child, which would disturb the parent's locks.
_INHERITED: list[sqlite3.Connection] = []
_STORES: weakref.WeakSet[SQLiteStore] = weakref.WeakSet()


def default_store_path() -> Path:
    """`$SYMBIONT_HOME/symbiont.db`, else `./.symbiont/symbiont.db` in the working directory."""
    home = os.environ.get("SYMBIONT_HOME", "").strip()
    if home:
        return Path(home).expanduser() / DB_FILE_NAME
    return Path.cwd() / ".symbiont" / DB_FILE_NAME


# Selects the store when no path is given: a postgresql:// URL or a SQLite file path.
STORE_ENV = "SYMBIONT_STORE"

# WAL + NORMAL: committed transactions survive any crash of the process (see module doc).
DEFAULT_SYNCHRONOUS = "NORMAL"
SYNC_ENV = "SYMBIONT_STORE_SYNC"


def store_location(where: str | Path | None = None) -> Path | str:
    """Where a store is: a `postgresql://` (or `postgres://`) URL, kept as text, or the path
    of a SQLite file (`sqlite:PATH` names one explicitly).

    None: `$SYMBIONT_STORE` when set, else `default_store_path()`. Another URL scheme is an
    error rather than a file of that odd name.
    """
    if where is None:
        where = os.environ.get(STORE_ENV, "").strip() or default_store_path()
    if isinstance(where, Path):
        return where.expanduser()
    text = str(where).strip()
    if text.startswith(("postgresql://", "postgres://")):
        return text
    if text.startswith("sqlite:"):
        text = text.removeprefix("sqlite:")
        text = text.removeprefix("//")  # sqlite:///abs/path, as SQLAlchemy writes it
        if not text:
            raise StoreError("sqlite: needs a file path after it, e.g. sqlite:./symbiont.db")
        return Path(text).expanduser()
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if scheme:
        raise StoreError(
            f"a store is a SQLite file path (or sqlite:PATH) or a postgresql:// URL, not a "
            f"{scheme.group(1)}:// URL"
        )
    return Path(text).expanduser()


def open_store(
    path: str | Path | None = None,
    *,
    pricing: Pricing | None = None,
    synchronous: str | None = None,
    lock_timeout_s: float = 60.0,
) -> SQLiteStore | PostgresStore:
    """Open (creating if needed) the store at `path`: a `postgresql://` URL opens the
    PostgreSQL store (`symbiont.store.pg`), anything else a SQLite file. None: the
    `SYMBIONT_STORE` environment variable, else `default_store_path()`.

    A SQLite file gets its missing folders, WAL and foreign keys; either backend applies
    pending migrations. `pricing` defaults to the `SYMBIONT_PRICE_IN/OUT` environment
    variables. `synchronous` and `lock_timeout_s` are SQLite's (see `SQLiteStore`).
    """
    where = store_location(path)
    pricing = pricing if pricing is not None else Pricing.from_env()
    if isinstance(where, str):
        from symbiont.store.pg.evolvables import PostgresStore

        return PostgresStore(where, pricing=pricing)
    return SQLiteStore(
        where, pricing=pricing, synchronous=synchronous, lock_timeout_s=lock_timeout_s
    )


def _is_busy(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _is_corruption(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text or "corrupt" in text


def inspect_file(path: Path) -> None:
    """Refuse, without opening it with SQLite, a file that cannot be a SQLite database."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"cannot read the store file {path}: {exc.strerror or exc}") from exc
    if path.is_dir():
        raise StoreError(
            f"the store path {path} is a folder; give a file path such as {path / DB_FILE_NAME}"
        )
    if size == 0:
        return  # an empty file is an empty database: SQLite itself treats it so
    try:
        with path.open("rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise StoreError(f"cannot read the store file {path}: {exc.strerror or exc}") from exc
    if head != SQLITE_MAGIC:
        raise CorruptStoreError(
            f"{path} is not a symbiont store: it is not a SQLite database (its first bytes are "
            f"{head[:8]!r}, not the SQLite header). symbiont left it unchanged; move it away or "
            "point --store / SYMBIONT_HOME at another place."
        )


class SQLiteStore(EvolvableStore):
    """Revisions, lineages, activations and evolve runs in one SQLite file (see module doc).

    The repository itself (`EvolvableStore`) is shared with the PostgreSQL store; this class
    owns the file: validation, connection, WAL, busy retries and forks.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        pricing: Pricing | None = None,
        synchronous: str | None = None,
        busy_timeout_s: float = 0.1,
        lock_timeout_s: float = 60.0,
    ) -> None:
        """`synchronous`: "NORMAL" (default: every commit survives a crash of the program,
        the last ones may not survive a power cut), "FULL" or "EXTRA" (fsync per commit);
        None reads `SYMBIONT_STORE_SYNC`, else NORMAL. See the module docstring."""
        where = "synchronous"
        if synchronous is None:
            synchronous = os.environ.get(SYNC_ENV, "").strip() or DEFAULT_SYNCHRONOUS
            where = SYNC_ENV
        if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise StoreError(f"{where} must be FULL, NORMAL or EXTRA, not {synchronous!r}")
        self.path: Path = Path(path).expanduser().absolute()
        self.pricing = pricing
        self.synchronous = synchronous.upper()
        self.busy_timeout_s = busy_timeout_s
        self.lock_timeout_s = lock_timeout_s
        self.schema_version = 0
        self._lock = threading.RLock()
        self._closed = False
        self._pid = os.getpid()
        self._conn: sqlite3.Connection | None = None
        inspect_file(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the folder of the store {self.path}: {exc.strerror or exc}"
            ) from exc
        if self.path.exists() and self.path.stat().st_size > 0:
            self._validate_read_only()
        self._conn = self._connect(initial=True)
        _STORES.add(self)

    # -- connection -----------------------------------------------------------------------
    def _connect(self, *, initial: bool = False) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout_s,
                isolation_level=None,  # explicit BEGIN/COMMIT only
                check_same_thread=False,  # guarded by self._lock
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store {self.path}: {exc}") from exc
        try:
            self._guard(lambda: self._retry(lambda: self._configure(conn), what="configuring"))
            if initial:
                self.schema_version = self._guard(
                    lambda: self._retry(lambda: apply_migrations(conn), what="migrating")
                )
        except BaseException:
            conn.close()
            raise
        return conn

    def _validate_read_only(self) -> None:
        """Check an existing file through a read-only connection, so that even closing it
        cannot checkpoint a foreign database's WAL into its main file."""
        try:
            conn = sqlite3.connect(
                self.path.as_uri() + "?mode=ro", uri=True, timeout=self.busy_timeout_s
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store {self.path}: {exc}") from exc
        try:
            self._validate(conn)
        finally:
            conn.close()

    def _validate(self, conn: sqlite3.Connection) -> None:
        """Read-only checks that the database is ours (or empty) and not newer than us."""
        try:
            tables = [
                r[0]
                for r in self._retry(
                    lambda: conn.execute(
                        "SELECT name FROM sqlite_master WHERE type = 'table'"
                    ).fetchall(),
                    what="reading",
                )
            ]
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
            marker: str | None = None
            if MARKER_TABLE in tables:
                row = conn.execute(
                    f"SELECT value FROM {MARKER_TABLE} WHERE key = 'application'"
                ).fetchone()
                marker = row[0] if row else None
        except sqlite3.DatabaseError as exc:
            raise CorruptStoreError(
                f"{self.path} is not a usable symbiont store: SQLite says {exc!s}. symbiont "
                "left it unchanged; move it away (or restore a backup) and run again."
            ) from exc
        where = "; symbiont left it unchanged — point --store / SYMBIONT_HOME at another file"
        if not tables and version == 0 and app_id in (0, APPLICATION_ID):
            return  # a new store
        if app_id not in (0, APPLICATION_ID) or MARKER_TABLE not in tables:
            shown = ", ".join(sorted(tables)[:8]) + (", ..." if len(tables) > 8 else "")
            raise CorruptStoreError(
                f"{self.path} is a SQLite database of another application (tables: "
                f"{shown or 'none'}; no {MARKER_TABLE} table){where}"
            )
        if marker != "symbiont":
            raise CorruptStoreError(
                f"{self.path} has a {MARKER_TABLE} table that does not mark it as a symbiont "
                f"store (application={marker!r}){where}"
            )
        if version > LATEST_VERSION:
            raise CorruptStoreError(
                f"{self.path} has schema version {version}, newer than this symbiont knows "
                f"(up to {LATEST_VERSION}): it was written by a newer symbiont. Upgrade symbiont "
                "to use it; the file was left unchanged."
            )
        if version == 0:
            raise CorruptStoreError(
                f"{self.path} has the symbiont marker but no schema version (user_version 0): "
                f"it was damaged or edited by hand{where}"
            )

    def _configure(self, conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(
                f"cannot switch the store {self.path} to WAL mode (got {mode!r}); is it on a "
                "network file system? Put the store on a local disk."
            )
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")

    def _connection(self) -> sqlite3.Connection:
        if self._closed or self._conn is None:
            raise StoreError(f"the store {self.path} is closed")
        if self._pid != os.getpid():
            self._after_fork()
        assert self._conn is not None
        return self._conn

    def _after_fork(self) -> None:
        """In a forked child: abandon the parent's connection, open our own on first use."""
        if self._pid == os.getpid():
            return
        if self._conn is not None:
            _INHERITED.append(self._conn)
        self._pid = os.getpid()
        self._conn = None if self._closed else self._connect()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            conn, self._conn = self._conn, None
            if conn is not None and self._pid == os.getpid():
                conn.close()
            elif conn is not None:
                _INHERITED.append(conn)

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # -- transactions with retry ----------------------------------------------------------
    def _retry(self, op: Callable[[], T], *, what: str) -> T:
        """Run `op`, retrying with jittered backoff while SQLite reports busy/locked."""
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.002
        while True:
            try:
                return op()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise StoreError(
                        f"the store {self.path} stayed busy for {self.lock_timeout_s:.0f} s "
                        f"while {what}: another process holds its write lock"
                    ) from exc
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.02)

    def _write(self, op: Callable[[sqlite3.Connection], T], what: str = "writing") -> T:
        """Run `op` in one IMMEDIATE transaction; commit, or roll back and re-raise."""

        def attempt() -> T:
            with self._lock:
                conn = self._connection()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = op(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                return result

        return self._guard(lambda: self._retry(attempt, what=what))

    def _read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        def attempt() -> T:
            with self._lock:
                return op(self._connection())

        return self._guard(lambda: self._retry(attempt, what="reading"))

    def _guard(self, op: Callable[[], T]) -> T:
        """Turn raw sqlite3 errors into symbiont errors that name the file."""
        try:
            return op()
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"the store {self.path} refused a write: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            if _is_corruption(exc):
                raise CorruptStoreError(
                    f"the store {self.path} is damaged: SQLite says {exc!s}"
                ) from exc
            raise StoreError(f"store {self.path}: {exc}") from exc

    # -- the other repositories of this store (one seam: no SQL above symbiont.store) ----
    # Each is created on first use and shares this store's file. The PostgreSQL store
    # (`symbiont.store.pg`) offers the same ones, so callers never ask which backend it is;
    # `searches` is written once for both (`EvolvableStore.searches`).
    @functools.cached_property
    def capabilities(self) -> Any:
        """The capability library's records (`symbiont.store.sqlite_capabilities`)."""
        from symbiont.store.sqlite_capabilities import SQLiteCapabilityStore

        return SQLiteCapabilityStore(self)

    @functools.cached_property
    def transcripts(self) -> Any:
        """Agent transcripts (`symbiont.store.sqlite_transcripts`)."""
        from symbiont.store.sqlite_transcripts import SQLiteTranscriptStore

        return SQLiteTranscriptStore(self)

    def index_storage(self) -> Any:
        """A new persistence handle for one retrieval index (`symbiont.store.sqlite_index`)."""
        from symbiont.store.sqlite_index import SQLiteIndexStorage

        return SQLiteIndexStorage(self)

    # -- maintenance ----------------------------------------------------------------------
    def integrity_check(self) -> str:
        """`PRAGMA integrity_check` ("ok" when the file is sound)."""
        rows = self._read(lambda c: c.execute("PRAGMA integrity_check").fetchall())
        return "\n".join(str(r[0]) for r in rows)


def _reinit_after_fork() -> None:
    for store in list(_STORES):
        store._lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
