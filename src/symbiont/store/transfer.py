"""Copy a whole store into another, losing nothing: `symbiont store migrate`.

    report = migrate("sqlite:./.symbiont/symbiont.db", "postgresql://team@db/symbiont")

Both ends are opened as stores (so both are at the latest schema), then every table is
copied row by row with its ids as they are: functions, revisions and their parents,
activations, evolve runs and attempts, live failures, searches and candidates, capabilities
with their versions, examples, statistics and runs, agent transcripts and steps. Revision
numbers, capability versions and every id therefore mean the same in the copy; on
PostgreSQL the identity sequences are then moved past the copied ids, so the next row gets
the next id. The retrieval index (`idx_*`) is copied through the target's own index storage
with its documents, hashes and vectors as they are, so the target's derived search
structures (FTS5 rows, the tsvector, pgvector's HNSW index) are built the target's way; only
the index's internal row numbers may differ.

All or nothing:

- into PostgreSQL, the copy is one transaction (the index storage's writes are savepoints
  inside it): a failure or Ctrl-C leaves the target as it was;
- into SQLite, the copy is built in a new file next to the target and renamed into place
  when complete.

The source is read in one snapshot. The target must be empty: ids and numbers are kept, so
two stores cannot be merged (copy into a new database, or a new file). A table this
version does not know, or a column the target lacks, stops the copy before anything is
written rather than dropping data.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from symbiont.errors import StoreError
from symbiont.store.evolvables import EvolvableStore
from symbiont.store.pg.connection import redact
from symbiont.store.pg.evolvables import PostgresStore
from symbiont.store.sqlite import SQLiteStore, open_store, store_location

# Every table with data, parents before children, and the order rows are copied in (ids
# ascending: a transcript's parent is an older transcript).
TABLES: tuple[tuple[str, str], ...] = (
    ("functions", "id"),
    ("revisions", "id"),
    ("revision_parents", "function_id, number, position"),
    ("activations", "id"),
    ("evolve_runs", "id"),
    ("evolve_attempts", "run_id, idx"),
    ("live_failures", "id"),
    ("searches", "id"),
    ("search_candidates", "search_id, idx"),
    ("capabilities", "id"),
    ("capability_versions", "capability_id, version"),
    ("capability_examples", "capability_id, position"),
    ("capability_stats", "capability_id"),
    ("capability_runs", "id"),
    ("agent_transcripts", "id"),
    ("agent_steps", "transcript_id, position"),
)
# Written by each store for itself when it is created (markers, versions, SQLite's own).
OWN_TABLES = frozenset({"symbiont_meta", "capability_schema_meta", "sqlite_sequence"})
INDEX_DOCS, INDEX_VECTORS = "idx_docs", "idx_embeddings"
BATCH = 2000

Progress = Callable[[str, int, int], None]  # (what, rows done, rows in all)


@dataclass(slots=True)
class MigrationReport:
    source: str
    target: str
    rows: dict[str, int] = field(default_factory=dict)  # table → rows copied
    index_documents: int = 0
    index_vectors: int = 0
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.rows.values()) + self.index_documents + self.index_vectors


def migrate(
    source: str | Path, target: str | Path, *, progress: Progress | None = None
) -> MigrationReport:
    """Copy the store at `source` into the empty store at `target` (paths, `sqlite:PATH` or
    `postgresql://` URLs); see the module docstring."""
    src, dst = store_location(source), store_location(target)
    if _same(src, dst):
        raise StoreError("--from and --to name the same store; give two different stores")
    if isinstance(src, Path) and not src.is_file():
        raise StoreError(f"no store at {src} to copy from")
    started = time.monotonic()
    report = MigrationReport(_shown(src), _shown(dst))
    notify = progress or (lambda what, done, total: None)
    try:
        with open_store(src) as source_store, _reader(source_store) as reader:
            plan = _plan(reader, report.source)
            if isinstance(dst, str):
                _into_postgres(dst, reader, plan, report, notify)
            else:
                _into_sqlite(dst, reader, plan, report, notify)
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"copying {report.source} to {report.target} failed: {exc}") from exc
    except Exception as exc:
        if type(exc).__module__.startswith("psycopg"):  # the database refused: nothing kept
            raise StoreError(
                f"copying {report.source} to {report.target} failed, nothing was kept: {exc}"
            ) from exc
        raise
    report.seconds = time.monotonic() - started
    return report


# -- the two ends ---------------------------------------------------------------------------


class _SQLiteEnd:
    """One SQLite store's connection (under its lock), for reading or bulk writing."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.conn = store._connection()

    def tables(self) -> set[str]:
        rows = self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {r[0] for r in rows}

    def columns(self, table: str) -> list[str]:
        # hidden (generated) columns are not listed by table_info
        return [r[1] for r in self.conn.execute(f"PRAGMA table_info({table})")]

    def count(self, table: str) -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def batches(self, sql: str) -> Iterator[list[tuple[Any, ...]]]:
        cur = self.conn.execute(sql)
        while rows := cur.fetchmany(BATCH):
            yield rows

    def vectors_sql(self) -> str:
        return f"SELECT id, embedder_id, text_hash, vector FROM {INDEX_VECTORS}"

    @staticmethod
    def vector(value: Any) -> np.ndarray:
        return np.frombuffer(value, dtype="<f4").astype(np.float32)

    def insert(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        marks = ", ".join("?" for _ in columns)
        self.conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)


class _PgEnd:
    """One PostgreSQL store's connection inside a transaction (a snapshot, or the copy)."""

    def __init__(self, cur: Any) -> None:
        self.cur = cur
        self.conn = cur.connection

    def tables(self) -> set[str]:
        self.cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = "
            "current_schema() AND table_type = 'BASE TABLE'"
        )
        return {r[0] for r in self.cur.fetchall()}

    def columns(self, table: str) -> list[str]:
        self.cur.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = %s AND is_generated = 'NEVER' "
            "ORDER BY ordinal_position",
            (table,),
        )
        return [r[0] for r in self.cur.fetchall()]

    def count(self, table: str) -> int:
        self.cur.execute(f"SELECT count(*) FROM {table}")
        return int(self.cur.fetchone()[0])

    def batches(self, sql: str) -> Iterator[list[tuple[Any, ...]]]:
        with self.conn.cursor(name="symbiont_migrate") as cur:  # server-side: in batches
            cur.execute(sql)
            while rows := cur.fetchmany(BATCH):
                yield rows

    def vectors_sql(self) -> str:
        return f"SELECT id, embedder_id, text_hash, embedding::real[] FROM {INDEX_VECTORS}"

    @staticmethod
    def vector(value: Any) -> np.ndarray:
        return np.asarray(value, dtype=np.float32)

    def insert(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        with self.cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def advance_identities(self) -> None:
        """Move every identity sequence past the largest id its column now holds."""
        self.cur.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE "
            "table_schema = current_schema() AND is_identity = 'YES'"
        )
        for table, column in self.cur.fetchall():
            self.cur.execute(
                f"SELECT setval(pg_get_serial_sequence(%s, %s), COALESCE(MAX({column}), 1), "
                f"MAX({column}) IS NOT NULL) FROM {table}",
                (table, column),
            )


End = _SQLiteEnd | _PgEnd


@contextmanager
def _reader(store: EvolvableStore) -> Iterator[End]:
    """The source in one read snapshot, held for the whole copy."""
    if isinstance(store, SQLiteStore):
        with store._lock:
            end = _SQLiteEnd(store)
            end.conn.execute("BEGIN")  # deferred: the first read fixes the snapshot (WAL)
            try:
                yield end
            finally:
                end.conn.execute("COMMIT")
        return
    assert isinstance(store, PostgresStore)
    with store.db.transaction() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield _PgEnd(cur)


# -- what to copy ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Plan:
    tables: list[tuple[str, list[str], str, int]]  # (table, columns, order, rows)
    index: bool  # the source has an index to copy


def _plan(reader: End, where: str) -> _Plan:
    have = reader.tables()
    known = {t for t, _ in TABLES} | OWN_TABLES
    unknown = sorted(
        t
        for t in have - known
        if not t.startswith("idx_") and reader.count(t) > 0  # idx_: the index, below
    )
    if unknown:
        raise StoreError(
            f"{where} has tables this symbiont does not know ({', '.join(unknown)}): it was "
            "written by a newer version or by hand. Nothing was copied; upgrade symbiont to "
            "copy it whole."
        )
    tables = [(t, reader.columns(t), order, reader.count(t)) for t, order in TABLES if t in have]
    return _Plan(tables, INDEX_DOCS in have and INDEX_VECTORS in have)


def _check_target(writer: End, plan: _Plan, where: str) -> None:
    have = writer.tables()
    full = {
        t: n
        for t in [*(t for t, _ in TABLES), INDEX_DOCS, INDEX_VECTORS]
        if t in have and (n := writer.count(t)) > 0
    }
    if full:
        shown = ", ".join(f"{n} {t}" for t, n in full.items())
        raise StoreError(
            f"{where} is not empty ({shown}); symbiont store migrate copies into an empty "
            "store only (ids and revision numbers are kept as they are, so two stores "
            "cannot be merged). Copy into a new database or a new file."
        )
    for table, columns, _, _ in plan.tables:
        missing = sorted(set(columns) - set(writer.columns(table)))
        if missing:
            raise StoreError(
                f"{where} has no column {', '.join(missing)} in {table}; nothing was copied "
                "(the target must be at this symbiont's schema)"
            )


def _copy_tables(
    reader: End, writer: End, plan: _Plan, report: MigrationReport, notify: Progress
) -> None:
    total = sum(n for *_, n in plan.tables)
    done = 0
    for table, columns, order, expected in plan.tables:
        copied = 0
        sql = f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}"
        for rows in reader.batches(sql):
            writer.insert(table, columns, rows)
            copied += len(rows)
            notify(table, done + copied, total)
        if copied != expected:
            raise StoreError(
                f"{report.source} changed while it was read ({table}: {expected} rows "
                f"counted, {copied} read); nothing was copied"
            )
        done += copied
        report.rows[table] = copied


def _copy_index(
    reader: End,
    target: EvolvableStore,
    report: MigrationReport,
    notify: Progress,
    between: Callable[[], None] = lambda: None,
) -> None:
    """Documents and vectors through the target's index storage (see the module doc);
    `between` runs between two of its writes."""
    from symbiont.library.index import IndexDoc, _lexical_columns

    docs = []
    for rows in reader.batches(
        f"SELECT id, name, summary, params, doc_hash, text_hash FROM {INDEX_DOCS} ORDER BY num"
    ):
        for doc_id, name, summary, params, doc_hash, text_hash in rows:
            texts = _lexical_columns(IndexDoc(doc_id, name, summary, tuple(json.loads(params))))
            docs.append((doc_id, name, summary, params, doc_hash, text_hash, texts))
    vectors: dict[str, list[tuple[str, str, np.ndarray]]] = {}
    for rows in reader.batches(f"{reader.vectors_sql()} ORDER BY embedder_id, id"):
        for doc_id, embedder_id, text_hash, value in rows:
            vectors.setdefault(embedder_id, []).append((doc_id, text_hash, reader.vector(value)))
    if not docs and not vectors:
        return
    storage = target.index_storage()
    storage.write(docs, [], next(iter(vectors), ""))
    report.index_documents = len(docs)
    notify("index documents", len(docs), len(docs))
    for embedder_id, rows in vectors.items():
        between()
        storage.write([], rows, embedder_id)
        report.index_vectors += len(rows)
        notify(f"index vectors ({embedder_id})", len(rows), len(rows))


def _verify(writer: End, plan: _Plan, report: MigrationReport) -> None:
    for table, _, _, expected in plan.tables:
        if (n := writer.count(table)) != expected:
            raise StoreError(
                f"{report.target} holds {n} rows of {table} after the copy, not {expected}; "
                "nothing was kept"
            )


# -- into each backend ----------------------------------------------------------------------


def _into_postgres(
    url: str, reader: End, plan: _Plan, report: MigrationReport, notify: Progress
) -> None:
    # one transaction; the index storage's writes nest in it (savepoints)
    with PostgresStore(url) as target, target.db.transaction() as cur:
        writer = _PgEnd(cur)
        cur.execute("LOCK TABLE functions, capabilities IN SHARE ROW EXCLUSIVE MODE")
        _check_target(writer, plan, report.target)
        _copy_tables(reader, writer, plan, report, notify)
        if plan.index:
            # The index storage stages rows in ON COMMIT DROP temporary tables; inside
            # this one transaction, drop them before its next write.
            _copy_index(reader, target, report, notify, lambda: cur.execute("DISCARD TEMP"))
        writer.advance_identities()
        _verify(writer, plan, report)


def _into_sqlite(
    path: Path, reader: End, plan: _Plan, report: MigrationReport, notify: Progress
) -> None:
    if path.exists():  # an empty store may be replaced; anything else is refused
        with SQLiteStore(path) as existing, existing._lock:
            _check_target(_SQLiteEnd(existing), plan, report.target)
    building = path.with_name(f".{path.name}.migrating-{os.getpid()}")
    _remove(building)
    try:
        with SQLiteStore(building, synchronous="FULL") as target:
            with target._lock:
                writer = _SQLiteEnd(target)
                with _immediate(writer):
                    _check_target(writer, plan, report.target)
                    _copy_tables(reader, writer, plan, report, notify)
            if plan.index:
                _copy_index(reader, target, report, notify)
            with target._lock:
                _verify(_SQLiteEnd(target), plan, report)
        os.replace(building, path)
        for suffix in ("-wal", "-shm"):  # of the empty store that was replaced
            with suppress(FileNotFoundError):
                os.remove(f"{path}{suffix}")
    finally:
        _remove(building)


def _immediate(end: _SQLiteEnd) -> AbstractContextManager[None]:
    @contextmanager
    def transaction() -> Iterator[None]:
        end.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            end.conn.execute("ROLLBACK")
            raise
        end.conn.execute("COMMIT")

    return transaction()


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with suppress(FileNotFoundError):
            os.remove(f"{path}{suffix}")


def _same(a: Path | str, b: Path | str) -> bool:
    if isinstance(a, Path) and isinstance(b, Path):
        return a.expanduser().absolute() == b.expanduser().absolute()
    return a == b


def _shown(where: Path | str) -> str:
    return redact(where) if isinstance(where, str) else str(where)
