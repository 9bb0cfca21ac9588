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

import difflib
import functools
import json
import math
import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from symbiont.errors import CorruptStoreError, RevisionError, StoreError
from symbiont.store.migrations import (
    APPLICATION_ID,
    LATEST_VERSION,
    MARKER_TABLE,
    apply_migrations,
)
from symbiont.store.records import (
    ORIGINS,
    STATUSES,
    ActivationRecord,
    AttemptRecord,
    FailureRecord,
    FunctionRecord,
    RevisionRecord,
    RunRecord,
)

if TYPE_CHECKING:
    from symbiont.store.repository import Store

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


@dataclass(frozen=True, slots=True)
class Pricing:
    """USD per 1,000 tokens, to turn an attempt's token counts into a cost."""

    price_per_1k_input: float
    price_per_1k_output: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (
            input_tokens / 1000.0 * self.price_per_1k_input
            + output_tokens / 1000.0 * self.price_per_1k_output
        )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Pricing | None:
        """From `SYMBIONT_PRICE_IN` / `SYMBIONT_PRICE_OUT` (USD per 1k tokens); None if unset.

        Setting only one of them prices the other kind of token at zero.
        """
        env = os.environ if environ is None else environ
        values: dict[str, float] = {}
        for name in ("SYMBIONT_PRICE_IN", "SYMBIONT_PRICE_OUT"):
            raw = env.get(name, "").strip()
            if not raw:
                continue
            try:
                value = float(raw)
            except ValueError:
                raise StoreError(
                    f"{name}={raw!r} is not a number; set it to the price in USD per 1,000 "
                    "tokens, e.g. 0.005"
                ) from None
            if not math.isfinite(value) or value < 0:
                raise StoreError(
                    f"{name}={raw!r} must be a non-negative price in USD per 1k tokens"
                )
            values[name] = value
        if not values:
            return None
        return cls(values.get("SYMBIONT_PRICE_IN", 0.0), values.get("SYMBIONT_PRICE_OUT", 0.0))


# WAL + NORMAL: committed transactions survive any crash of the process (see module doc).
DEFAULT_SYNCHRONOUS = "NORMAL"
SYNC_ENV = "SYMBIONT_STORE_SYNC"


def open_store(
    path: str | Path | None = None,
    *,
    pricing: Pricing | None = None,
    synchronous: str | None = None,
    lock_timeout_s: float = 60.0,
) -> SQLiteStore:
    """Open (creating if needed) the store at `path` (default: `default_store_path()`).

    Creates missing folders and the file, turns on WAL and foreign keys, and applies pending
    migrations. `pricing` defaults to the `SYMBIONT_PRICE_IN/OUT` environment variables.
    """
    return SQLiteStore(
        default_store_path() if path is None else path,
        pricing=pricing if pricing is not None else Pricing.from_env(),
        synchronous=synchronous,
        lock_timeout_s=lock_timeout_s,
    )


def _is_busy(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _is_corruption(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text or "corrupt" in text


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, allow_nan=True)


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


class SQLiteStore:
    """Revisions, lineages, activations and evolve runs in one SQLite file (see module doc)."""

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
        self.path = Path(path).expanduser().absolute()
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

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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

    # -- functions ------------------------------------------------------------------------
    def ensure_function(self, key: str, fingerprint: str, signature_text: str) -> FunctionRecord:
        """The lineage for (key, fingerprint), created on first sight; marks it last seen now.

        A changed fingerprint gives a new lineage; the earlier one stays, readable.
        """
        if not key or not fingerprint:
            raise StoreError("a function needs a non-empty key and signature fingerprint")
        now = time.time()

        def op(conn: sqlite3.Connection) -> FunctionRecord:
            conn.execute(
                """INSERT INTO functions (key, fingerprint, signature_text, created_at,
                       last_seen_at)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (key, fingerprint) DO UPDATE
                   SET signature_text = excluded.signature_text,
                       last_seen_at = excluded.last_seen_at""",
                (key, fingerprint, signature_text, now, now),
            )
            row = conn.execute(
                f"SELECT {_FUNCTION_COLUMNS} FROM functions WHERE key = ? AND fingerprint = ?",
                (key, fingerprint),
            ).fetchone()
            return _function(row)

        return self._write(op)

    def get_function(self, function_id: int) -> FunctionRecord:
        row = self._read(
            lambda c: c.execute(
                f"SELECT {_FUNCTION_COLUMNS} FROM functions WHERE id = ?", (function_id,)
            ).fetchone()
        )
        if row is None:
            raise RevisionError(f"the store {self.path} has no function with id {function_id}")
        return _function(row)

    def lineages(self, key: str) -> list[FunctionRecord]:
        """Every lineage of `key`, the one a program declared most recently first."""
        rows = self._read(
            lambda c: c.execute(
                f"""SELECT {_FUNCTION_COLUMNS} FROM functions WHERE key = ?
                    ORDER BY last_seen_at DESC, id DESC""",
                (key,),
            ).fetchall()
        )
        return [_function(r) for r in rows]

    def all_keys(self) -> list[str]:
        rows = self._read(
            lambda c: c.execute("SELECT DISTINCT key FROM functions ORDER BY key").fetchall()
        )
        return [r[0] for r in rows]

    def find_functions(self, pattern: str) -> list[FunctionRecord]:
        """Lineages whose key is `pattern`, else whose key ends with `.pattern`.

        So "step", "counter.step" and "examples.counter.step" all find
        `examples.counter.step`; callers decide what to do when several keys match.
        """
        pattern = pattern.strip()
        if not pattern:
            return []
        exact = self.lineages(pattern)
        if exact:
            return exact
        rows = self._read(
            lambda c: c.execute(
                f"""SELECT {_FUNCTION_COLUMNS} FROM functions
                    WHERE length(key) > length(?1)
                      AND substr(key, length(key) - length(?1)) = '.' || ?1
                    ORDER BY key, last_seen_at DESC, id DESC""",
                (pattern,),
            ).fetchall()
        )
        return [_function(r) for r in rows]

    def resolve_key(self, pattern: str) -> str:
        """The one function key `pattern` names; RevisionError with close matches otherwise."""
        found = self.find_functions(pattern)
        keys = sorted({f.key for f in found})
        if len(keys) == 1:
            return keys[0]
        if len(keys) > 1:
            raise RevisionError(
                f"{pattern!r} matches several functions in {self.path}: {', '.join(keys)}; "
                "give more of the name"
            )
        known = self.all_keys()
        if not known:
            raise RevisionError(
                f"no function {pattern!r}: the store {self.path} has no functions yet "
                "(run a program that declares an @evolvable with this store first)"
            )
        candidates = {k: k for k in known}
        for k in known:  # also match against suffixes, so "stpe" finds "counter.step"
            parts = k.split(".")
            for i in range(1, len(parts)):
                candidates.setdefault(".".join(parts[i:]), k)
        close = difflib.get_close_matches(pattern, list(candidates), n=5, cutoff=0.5)
        suggestions = list(dict.fromkeys(candidates[c] for c in close))
        hint = (
            f"close matches: {', '.join(suggestions)}"
            if suggestions
            else f"known functions: {', '.join(known[:10])}" + (", ..." if len(known) > 10 else "")
        )
        raise RevisionError(f"no function {pattern!r} in the store {self.path}; {hint}")

    def _lineage(
        self, conn: sqlite3.Connection, key: str, fingerprint: str | None
    ) -> FunctionRecord | None:
        if fingerprint is None:
            row = conn.execute(
                f"""SELECT {_FUNCTION_COLUMNS} FROM functions WHERE key = ?
                    ORDER BY last_seen_at DESC, id DESC LIMIT 1""",
                (key,),
            ).fetchone()
        else:
            row = conn.execute(
                f"SELECT {_FUNCTION_COLUMNS} FROM functions WHERE key = ? AND fingerprint = ?",
                (key, fingerprint),
            ).fetchone()
        return _function(row) if row else None

    # -- revisions ------------------------------------------------------------------------
    def add_revision(self, rev: RevisionRecord) -> RevisionRecord:
        """Insert `rev`; returns it with `id`, `created_at` (and `number`) filled in.

        `number == -1` allocates the next number inside the write transaction, so two
        processes adding revisions to one function at once never collide. Re-adding an
        existing number with the same content hash returns the stored one (two programs
        starting at once both record revision 0); a different content is an error.
        """
        self._check_revision(rev)

        def op(conn: sqlite3.Connection) -> RevisionRecord:
            if (
                conn.execute("SELECT 1 FROM functions WHERE id = ?", (rev.function_id,)).fetchone()
                is None
            ):
                raise StoreError(
                    f"cannot add a revision: the store {self.path} has no function with id "
                    f"{rev.function_id} (call ensure_function first)"
                )
            number = rev.number
            if number == -1:
                number = _next_number(conn, rev.function_id)
            else:
                existing = conn.execute(
                    f"SELECT {_REVISION_COLUMNS} FROM revisions WHERE function_id = ? AND number = ?",
                    (rev.function_id, number),
                ).fetchone()
                if existing is not None:
                    stored = self._revision(conn, existing)
                    if stored.content_hash == rev.content_hash and stored.origin == rev.origin:
                        return stored
                    raise RevisionError(
                        f"function id {rev.function_id} already has a different revision "
                        f"{number}; pass number=-1 to get the next free number"
                    )
            return _insert_revision(conn, rev, number)

        return self._write(op)

    def _check_revision(self, rev: RevisionRecord) -> None:
        if rev.origin not in ORIGINS:
            raise StoreError(
                f"revision origin must be one of {', '.join(ORIGINS)}, not {rev.origin!r}"
            )
        if rev.status not in STATUSES:
            raise StoreError(
                f"revision status must be one of {', '.join(STATUSES)}, not {rev.status!r}"
            )
        if rev.number < -1:
            raise StoreError(f"revision number must be >= 0 (or -1 to allocate), not {rev.number}")

    def record_declared_body(self, rev: RevisionRecord) -> tuple[RevisionRecord, bool]:
        """Make sure the lineage's newest `default` revision is the declared body `rev`.

        In one transaction: when the newest revision of origin `default` has `rev`'s content
        hash, it is returned with False; otherwise `rev` is added under the next number (0
        for a new lineage), with that earlier default body as its parent, and returned with
        True. Two processes starting at once with the same edited body record it once.
        """
        if rev.origin != "default":
            raise StoreError(f"a declared body has origin 'default', not {rev.origin!r}")
        self._check_revision(rev)

        def op(conn: sqlite3.Connection) -> tuple[RevisionRecord, bool]:
            if (
                conn.execute("SELECT 1 FROM functions WHERE id = ?", (rev.function_id,)).fetchone()
                is None
            ):
                raise StoreError(
                    f"cannot record a declared body: the store {self.path} has no function "
                    f"with id {rev.function_id} (call ensure_function first)"
                )
            row = conn.execute(
                f"""SELECT {_REVISION_COLUMNS} FROM revisions
                    WHERE function_id = ? AND origin = 'default' ORDER BY number DESC LIMIT 1""",
                (rev.function_id,),
            ).fetchone()
            latest = self._revision(conn, row) if row is not None else None
            if latest is not None and latest.content_hash == rev.content_hash:
                return latest, False
            parents = (latest.number,) if latest is not None else ()
            number = _next_number(conn, rev.function_id)
            return _insert_revision(conn, replace(rev, parents=parents), number), True

        return self._write(op)

    def update_revision(
        self,
        function_id: int,
        number: int,
        *,
        status: str | None = None,
        score: float | None = None,
        metrics: dict[str, float] | None = None,
        diagnostics: list[dict[str, Any]] | None = None,
    ) -> None:
        """Change what is known about a revision after its trial; None leaves a field as is."""
        if status is not None and status not in STATUSES:
            raise StoreError(
                f"revision status must be one of {', '.join(STATUSES)}, not {status!r}"
            )
        sets: list[str] = []
        values: list[Any] = []
        if status is not None:
            sets.append("status = ?")
            values.append(status)
        if score is not None:
            sets.append("score = ?")
            values.append(_score(score))
        if metrics is not None:
            sets.append("metrics = ?")
            values.append(_dumps(dict(metrics)))
        if diagnostics is not None:
            sets.append("diagnostics = ?")
            values.append(_dumps(list(diagnostics)))

        def op(conn: sqlite3.Connection) -> None:
            if sets:
                cur = conn.execute(
                    f"UPDATE revisions SET {', '.join(sets)} WHERE function_id = ? AND number = ?",
                    (*values, function_id, number),
                )
                found = cur.rowcount > 0
            else:
                found = (
                    conn.execute(
                        "SELECT 1 FROM revisions WHERE function_id = ? AND number = ?",
                        (function_id, number),
                    ).fetchone()
                    is not None
                )
            if not found:
                raise RevisionError(
                    f"cannot update revision {number} of function id {function_id}: not in "
                    f"the store {self.path}"
                )

        self._write(op)

    def next_revision_number(self, function_id: int) -> int:
        """The number the next revision would get now (use `number=-1` to insert atomically)."""
        return self._read(lambda c: _next_number(c, function_id))

    def revisions(self, key: str, fingerprint: str | None = None) -> list[RevisionRecord]:
        """Every revision of a lineage in number order; None: the newest lineage of `key`."""

        def op(conn: sqlite3.Connection) -> list[RevisionRecord]:
            fr = self._lineage(conn, key, fingerprint)
            return [] if fr is None else self._revisions_of(conn, fr.id)

        return self._read(op)

    def revisions_of(self, function_id: int) -> list[RevisionRecord]:
        return self._read(lambda c: self._revisions_of(c, function_id))

    def get_revision(self, key: str, number: int, fingerprint: str | None = None) -> RevisionRecord:
        def op(conn: sqlite3.Connection) -> RevisionRecord:
            fr = self._lineage(conn, key, fingerprint)
            if fr is None:
                raise RevisionError(f"no function {key!r} in the store {self.path}")
            row = conn.execute(
                f"SELECT {_REVISION_COLUMNS} FROM revisions WHERE function_id = ? AND number = ?",
                (fr.id, number),
            ).fetchone()
            if row is None:
                top = _next_number(conn, fr.id) - 1
                have = f"it has revisions 0–{top}" if top >= 0 else "it has no revisions"
                raise RevisionError(f"{key} has no revision {number}; {have}")
            return self._revision(conn, row)

        return self._read(op)

    def find_by_hash(self, function_id: int, content_hash: str) -> RevisionRecord | None:
        """The earliest revision of this lineage with exactly this content hash, if any."""

        def op(conn: sqlite3.Connection) -> RevisionRecord | None:
            row = conn.execute(
                f"""SELECT {_REVISION_COLUMNS} FROM revisions
                    WHERE function_id = ? AND content_hash = ? ORDER BY number LIMIT 1""",
                (function_id, content_hash),
            ).fetchone()
            return self._revision(conn, row) if row else None

        return self._read(op)

    def _revisions_of(self, conn: sqlite3.Connection, function_id: int) -> list[RevisionRecord]:
        parents: dict[int, list[int]] = {}
        for number, parent in conn.execute(
            """SELECT number, parent_number FROM revision_parents WHERE function_id = ?
               ORDER BY number, position""",
            (function_id,),
        ):
            parents.setdefault(number, []).append(parent)
        rows = conn.execute(
            f"SELECT {_REVISION_COLUMNS} FROM revisions WHERE function_id = ? ORDER BY number",
            (function_id,),
        ).fetchall()
        return [self._revision(conn, r, parents.get(r[1], [])) for r in rows]

    def _revision(
        self, conn: sqlite3.Connection, row: tuple[Any, ...], parents: Iterable[int] | None = None
    ) -> RevisionRecord:
        (
            function_id, number, source, reply, origin, model, status, stage,
            diagnostics, score, metrics, content_hash, created_at, rid,
        ) = row  # fmt: skip
        if parents is None:
            parents = [
                p
                for (p,) in conn.execute(
                    """SELECT parent_number FROM revision_parents
                       WHERE function_id = ? AND number = ? ORDER BY position""",
                    (function_id, number),
                )
            ]
        where = f"revision {number} of function id {function_id}"
        return RevisionRecord(
            function_id=function_id,
            number=number,
            source=source,
            reply=reply,
            parents=tuple(parents),
            origin=origin,
            model=model,
            status=status,
            stage=stage,
            diagnostics=self._json(diagnostics, list, where),
            score=score,
            metrics=self._json(metrics, dict, where),
            content_hash=content_hash,
            created_at=created_at,
            id=rid,
        )

    def _json(self, text: str, kind: type, where: str) -> Any:
        try:
            value = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise CorruptStoreError(
                f"the store {self.path} has unreadable JSON in {where}: {exc}"
            ) from exc
        if not isinstance(value, kind):
            raise CorruptStoreError(
                f"the store {self.path} has a {type(value).__name__} where a {kind.__name__} "
                f"belongs in {where}"
            )
        return value

    # -- activation -----------------------------------------------------------------------
    def set_active(self, function_id: int, number: int, *, reason: str = "activate") -> None:
        """Make accepted revision `number` the lineage's active one (used at the next start).

        Each change is also appended to the activation history, which `rollback` replays.
        """
        self._write(lambda c: self._set_active(c, function_id, number, reason))

    def set_active_if(
        self,
        function_id: int,
        expected_active: int | None,
        new: int,
        *,
        reason: str = "activate",
    ) -> bool:
        """Compare-and-set: make `new` active only if `expected_active` still is; True if so.

        Read and write happen in one IMMEDIATE transaction, so of two processes that
        evaluated candidates against the same active revision, exactly one promotes; the
        other gets False and the winner's activation stands. `expected_active` None means
        "no revision is active yet". Setting the revision that is already active is True.
        """

        def op(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT active_number FROM functions WHERE id = ?", (function_id,)
            ).fetchone()
            if row is None:
                raise RevisionError(f"the store {self.path} has no function with id {function_id}")
            if row[0] == new:
                return True
            if row[0] != expected_active:
                return False
            self._set_active(conn, function_id, new, reason)
            return True

        return self._write(op)

    def _set_active(
        self, conn: sqlite3.Connection, function_id: int, number: int, reason: str
    ) -> None:
        row = conn.execute(
            """SELECT f.key, f.active_number, r.status, r.stage FROM functions f
               LEFT JOIN revisions r ON r.function_id = f.id AND r.number = ?
               WHERE f.id = ?""",
            (number, function_id),
        ).fetchone()
        if row is None:
            raise RevisionError(f"the store {self.path} has no function with id {function_id}")
        key, active, status, stage = row
        if status is None:
            raise RevisionError(f"{key} has no revision {number} in the store {self.path}")
        if status != "accepted":
            raise RevisionError(
                f"{key} revision {number} was rejected at the {stage} stage and cannot be made active"
            )
        if active == number:
            return
        conn.execute("UPDATE functions SET active_number = ? WHERE id = ?", (number, function_id))
        conn.execute(
            "INSERT INTO activations (function_id, number, reason, at) VALUES (?, ?, ?, ?)",
            (function_id, number, reason, time.time()),
        )

    def active_revision(self, key: str, fingerprint: str) -> RevisionRecord | None:
        def op(conn: sqlite3.Connection) -> RevisionRecord | None:
            row = conn.execute(
                f"""SELECT {_REVISION_COLUMNS_R} FROM functions f
                    JOIN revisions r ON r.function_id = f.id AND r.number = f.active_number
                    WHERE f.key = ? AND f.fingerprint = ?""",
                (key, fingerprint),
            ).fetchone()
            return self._revision(conn, row) if row else None

        return self._read(op)

    def activations(self, function_id: int) -> list[ActivationRecord]:
        rows = self._read(
            lambda c: c.execute(
                """SELECT function_id, number, reason, at FROM activations
                   WHERE function_id = ? ORDER BY id""",
                (function_id,),
            ).fetchall()
        )
        return [ActivationRecord(*r) for r in rows]

    def previous_active(self, function_id: int) -> int | None:
        """The revision `rollback` without a number would activate; None if there is none."""
        return self._read(lambda c: _previous_active(c, function_id))

    def rollback(self, function_id: int, number: int | None = None) -> int:
        """Activate `number`, or the previously active accepted revision; returns it.

        The activation history is replayed as a stack (an activation pushes, a rollback pops
        back to its target), so repeated rollbacks walk further back instead of flipping
        between two revisions — as `Evolvable.rollback` does in memory.
        """

        def op(conn: sqlite3.Connection) -> int:
            target = number
            if target is None:
                target = _previous_active(conn, function_id)
                if target is None:
                    key = conn.execute(
                        "SELECT key FROM functions WHERE id = ?", (function_id,)
                    ).fetchone()
                    raise RevisionError(
                        f"{key[0] if key else function_id}: nothing to roll back to (no earlier "
                        "accepted revision was active)"
                    )
            self._set_active(conn, function_id, target, "rollback")
            return target

        return self._write(op)

    # -- live failures ----------------------------------------------------------------------
    def add_failure(self, failure: FailureRecord, *, keep: int = 100) -> FailureRecord:
        """Record a live failure; only the newest `keep` of its lineage are kept (a ring).

        The insert and the trim are one transaction, so the ring never holds more than
        `keep` rows, whatever several processes do at once.
        """
        if keep < 1:
            raise StoreError(f"keep must be at least 1, not {keep}")

        def op(conn: sqlite3.Connection) -> FailureRecord:
            if (
                conn.execute(
                    "SELECT 1 FROM functions WHERE id = ?", (failure.function_id,)
                ).fetchone()
                is None
            ):
                raise StoreError(
                    f"cannot record a failure: the store {self.path} has no function with id "
                    f"{failure.function_id}"
                )
            cur = conn.execute(
                """INSERT INTO live_failures (function_id, revision_number, at, kind, message,
                       args, traceback, diagnostic, pid)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    failure.function_id,
                    failure.revision_number,
                    failure.at,
                    failure.kind,
                    failure.message,
                    failure.args,
                    failure.traceback,
                    _dumps(dict(failure.diagnostic)),
                    failure.pid,
                ),
            )
            conn.execute(
                """DELETE FROM live_failures WHERE function_id = ?1 AND id NOT IN (
                       SELECT id FROM live_failures WHERE function_id = ?1
                       ORDER BY id DESC LIMIT ?2)""",
                (failure.function_id, keep),
            )
            return replace(failure, id=cur.lastrowid)

        return self._write(op)

    def failures(self, function_id: int, limit: int | None = None) -> list[FailureRecord]:
        """The lineage's recorded live failures, oldest first (the newest `limit` if given)."""
        rows = self._read(
            lambda c: c.execute(
                """SELECT * FROM (
                       SELECT function_id, revision_number, at, kind, message, args, traceback,
                              diagnostic, pid, id
                       FROM live_failures WHERE function_id = ? ORDER BY id DESC LIMIT ?)
                   ORDER BY id""",
                (function_id, -1 if limit is None else int(limit)),
            ).fetchall()
        )
        return [
            FailureRecord(
                function_id=fid,
                revision_number=number,
                at=at,
                kind=kind,
                message=message,
                args=args,
                traceback=tb,
                diagnostic=self._json(diagnostic, dict, f"live failure {rid}"),
                pid=pid,
                id=rid,
            )
            for (fid, number, at, kind, message, args, tb, diagnostic, pid, rid) in rows
        ]

    # -- evolve runs ----------------------------------------------------------------------
    def start_run(self, function_id: int, config: dict[str, Any]) -> int:
        now = time.time()

        def op(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO evolve_runs (function_id, config, started_at) VALUES (?, ?, ?)",
                (function_id, json.dumps(config, sort_keys=True, default=str), now),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

        return self._write(op)

    def add_attempt(self, run_id: int, attempt: AttemptRecord) -> None:
        """Record one attempt; its cost comes from the store's pricing when not given.

        Reporting the same attempt index again replaces the earlier report.
        """
        cost = attempt.cost_usd
        if cost is None and self.pricing is not None:
            cost = self.pricing.cost(attempt.input_tokens or 0, attempt.output_tokens or 0)

        def op(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM evolve_runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise StoreError(f"no evolve run {run_id} in the store {self.path}")
            conn.execute(
                """INSERT OR REPLACE INTO evolve_attempts (run_id, idx, revision_number, stage,
                       ok, diagnostics, timings, input_tokens, output_tokens, model_latency_s,
                       retries, cost_usd, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    run_id,
                    attempt.index,
                    attempt.revision_number,
                    attempt.stage,
                    1 if attempt.ok else 0,
                    _dumps(list(attempt.diagnostics)),
                    _dumps(dict(attempt.timings)),
                    int(attempt.input_tokens or 0),
                    int(attempt.output_tokens or 0),
                    float(attempt.model_latency_s or 0.0),
                    int(attempt.retries or 0),
                    cost,
                    time.time(),
                ),
            )

        self._write(op)

    def finish_run(self, run_id: int, outcome: str, accepted_number: int | None) -> None:
        now = time.time()

        def op(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                "UPDATE evolve_runs SET ended_at = ?, outcome = ?, accepted_number = ? WHERE id = ?",
                (now, outcome, accepted_number, run_id),
            )
            if cur.rowcount == 0:
                raise StoreError(f"no evolve run {run_id} in the store {self.path}")

        self._write(op)

    def runs(self, limit: int = 20, key: str | None = None) -> list[RunRecord]:
        """The most recent evolve runs (newest first), optionally of one function key."""
        rows = self._read(
            lambda c: c.execute(
                f"{_RUNS_QUERY} WHERE (?1 IS NULL OR f.key = ?1) "
                "GROUP BY r.id ORDER BY r.started_at DESC, r.id DESC LIMIT ?2",
                (key, int(limit)),
            ).fetchall()
        )
        return [self._run(r) for r in rows]

    def run(self, run_id: int) -> RunRecord:
        """One run with its attempt records."""

        def op(conn: sqlite3.Connection) -> RunRecord:
            row = conn.execute(f"{_RUNS_QUERY} WHERE r.id = ? GROUP BY r.id", (run_id,)).fetchone()
            if row is None:
                raise StoreError(f"no evolve run {run_id} in the store {self.path}")
            rec = self._run(row)
            where = f"attempts of run {run_id}"
            for a in conn.execute(
                """SELECT idx, revision_number, stage, ok, diagnostics, timings, input_tokens,
                          output_tokens, model_latency_s, retries, cost_usd
                   FROM evolve_attempts WHERE run_id = ? ORDER BY idx""",
                (run_id,),
            ):
                rec.attempt_records.append(
                    AttemptRecord(
                        index=a[0],
                        revision_number=a[1],
                        stage=a[2],
                        ok=bool(a[3]),
                        diagnostics=self._json(a[4], list, where),
                        timings=self._json(a[5], dict, where),
                        input_tokens=a[6],
                        output_tokens=a[7],
                        model_latency_s=a[8],
                        retries=a[9],
                        cost_usd=a[10],
                    )
                )
            return rec

        return self._read(op)

    def _run(self, row: tuple[Any, ...]) -> RunRecord:
        (rid, key, config, started, ended, outcome, accepted, fid, n, tin, tout, cost) = row
        return RunRecord(
            id=rid,
            function_key=key,
            config=self._json(config, dict, f"evolve run {rid}"),
            started_at=started,
            ended_at=ended,
            outcome=outcome,
            accepted_number=accepted,
            attempts=n,
            input_tokens=tin,
            output_tokens=tout,
            cost_usd=cost,
            duration_s=(ended - started) if ended is not None else None,
            function_id=fid,
        )

    # -- the other repositories of this store (one seam: no SQL above symbiont.store) ----
    # Each is created on first use and shares this store's file. The PostgreSQL store
    # (`symbiont.store.pg`) offers the same four, so callers never ask which backend it is.
    @functools.cached_property
    def searches(self) -> Any:
        """Population searches and their candidates (`symbiont.store.searches`)."""
        from symbiont.store.searches import SearchRepository

        return SearchRepository(self)

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


# -- helpers -------------------------------------------------------------------------------

_FUNCTION_COLUMNS = "id, key, fingerprint, signature_text, created_at, active_number, last_seen_at"
_REVISION_FIELDS = (
    "function_id", "number", "source", "reply", "origin", "model", "status", "stage",
    "diagnostics", "score", "metrics", "content_hash", "created_at", "id",
)  # fmt: skip
_REVISION_COLUMNS = ", ".join(_REVISION_FIELDS)
_REVISION_COLUMNS_R = ", ".join(f"r.{c}" for c in _REVISION_FIELDS)
_RUNS_QUERY = """
    SELECT r.id, f.key, r.config, r.started_at, r.ended_at, r.outcome, r.accepted_number,
           r.function_id, COUNT(a.idx), COALESCE(SUM(a.input_tokens), 0),
           COALESCE(SUM(a.output_tokens), 0), SUM(a.cost_usd)
    FROM evolve_runs r
    JOIN functions f ON f.id = r.function_id
    LEFT JOIN evolve_attempts a ON a.run_id = r.id
"""


def _function(row: tuple[Any, ...]) -> FunctionRecord:
    return FunctionRecord(*row)


def _score(value: float | None) -> float | None:
    # SQLite stores NaN as NULL anyway; say so explicitly rather than by accident.
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def _next_number(conn: sqlite3.Connection, function_id: int) -> int:
    row = conn.execute(
        "SELECT COALESCE(MAX(number) + 1, 0) FROM revisions WHERE function_id = ?",
        (function_id,),
    ).fetchone()
    return int(row[0])


def _insert_revision(conn: sqlite3.Connection, rev: RevisionRecord, number: int) -> RevisionRecord:
    """Insert `rev` as revision `number` with its parents (inside the caller's transaction)."""
    created = rev.created_at if rev.created_at is not None else time.time()
    parents = tuple(int(p) for p in rev.parents)
    cur = conn.execute(
        """INSERT INTO revisions (function_id, number, source, reply, origin, model,
               status, stage, diagnostics, score, metrics, content_hash, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            rev.function_id,
            number,
            rev.source,
            rev.reply or "",
            rev.origin,
            rev.model,
            rev.status,
            rev.stage,
            _dumps(list(rev.diagnostics)),
            _score(rev.score),
            _dumps(dict(rev.metrics)),
            rev.content_hash,
            created,
        ),
    )
    conn.executemany(
        """INSERT INTO revision_parents (function_id, number, position, parent_number)
           VALUES (?, ?, ?, ?)""",
        [(rev.function_id, number, i, p) for i, p in enumerate(parents)],
    )
    return replace(
        rev,
        number=number,
        id=cur.lastrowid,
        created_at=created,
        parents=parents,
        diagnostics=list(rev.diagnostics),
        metrics=dict(rev.metrics),
    )


def _activation_stack(conn: sqlite3.Connection, function_id: int) -> list[int]:
    stack: list[int] = []
    for number, reason in conn.execute(
        "SELECT number, reason FROM activations WHERE function_id = ? ORDER BY id",
        (function_id,),
    ):
        if reason == "rollback" and number in stack:
            while stack[-1] != number:
                stack.pop()
        elif not stack or stack[-1] != number:
            stack.append(number)
    return stack


def _previous_active(conn: sqlite3.Connection, function_id: int) -> int | None:
    row = conn.execute(
        "SELECT active_number FROM functions WHERE id = ?", (function_id,)
    ).fetchone()
    if row is None:
        return None
    active = row[0]
    stack = _activation_stack(conn, function_id)
    if active is not None and (not stack or stack[-1] != active):
        stack.append(active)
    accepted = {
        n
        for (n,) in conn.execute(
            "SELECT number FROM revisions WHERE function_id = ? AND status = 'accepted'",
            (function_id,),
        )
    }
    for n in reversed(stack[:-1]):
        if n != active and n in accepted:
            return n
    # Nothing earlier was active: fall back to the declared body, like Evolvable.rollback.
    if active not in (None, 0) and 0 in accepted:
        return 0
    return None


if TYPE_CHECKING:

    def _implements_the_protocol(store: SQLiteStore) -> Store:
        return store  # mypy/ty check that SQLiteStore satisfies symbiont.store.Store


def _reinit_after_fork() -> None:
    for store in list(_STORES):
        store._lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
