"""Population searches in the store (migration 5): a search record and its candidates.

A search is one row of `searches` (its configuration as JSON, status, why it stopped, its
best). Every candidate the search looked at is one row of `search_candidates`, written in
the *same transaction* as its revision (`record_candidate`), so a process killed at any
moment leaves either both or neither. The program database (islands, MAP-Elites grids,
archive) is not stored as such: it is a deterministic replay of the candidate rows in
order (`symbiont.search.database`), so a resumed search rebuilds exactly what it had.

Migrations are rows with kind "migrant": the revision that moved and the island it
arrived on.

The repository is written once for both backends, in the SQL they share (see
`symbiont.store.evolvables`): a candidate's index is MAX + 1 under the search row's lock
(PostgreSQL) or the file's write lock (SQLite), its revision number under the lineage's.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from symbiont.errors import RevisionError, StoreError
from symbiont.store.evolvables import (
    insert_parent_rows,
    insert_revision_row,
    record_activations,
    score_value,
)
from symbiont.store.records import RevisionRecord

if TYPE_CHECKING:
    from collections.abc import Callable

    from symbiont.store.evolvables import EvolvableStore, Sql

T = TypeVar("T")

SEARCH_DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS searches (
        id INTEGER PRIMARY KEY,
        function_id INTEGER NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
        config TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL CHECK (status IN ('running', 'finished')),
        started_at REAL NOT NULL,
        ended_at REAL,
        stop_reason TEXT NOT NULL DEFAULT '',
        best_number INTEGER,
        best_score REAL
    )""",
    "CREATE INDEX IF NOT EXISTS searches_by_function ON searches (function_id, id)",
    """CREATE TABLE IF NOT EXISTS search_candidates (
        search_id INTEGER NOT NULL REFERENCES searches(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        revision_number INTEGER,
        island INTEGER NOT NULL,
        parent_number INTEGER,
        kind TEXT NOT NULL,
        evaluated INTEGER NOT NULL DEFAULT 0,
        score REAL,
        features TEXT NOT NULL DEFAULT '{}',
        model TEXT,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        cost_usd REAL,
        improved INTEGER NOT NULL DEFAULT 0,
        elapsed_s REAL NOT NULL DEFAULT 0,
        at REAL NOT NULL,
        PRIMARY KEY (search_id, idx)
    )""",
)


@dataclass(slots=True)
class SearchRecord:
    id: int
    function_id: int
    config: dict[str, Any]
    status: str  # running | finished
    started_at: float
    ended_at: float | None
    stop_reason: str
    best_number: int | None
    best_score: float | None
    key: str = ""  # the function's key, filled in by listings


@dataclass(slots=True)
class CandidateRecord:
    """One candidate of a search. kind: "evaluated" (it went through its trial), "seed"
    (the active revision the search started from), "migrant" (a copy moved to another
    island), or the rejection's kind ("duplicate", "near_duplicate", "edit", "parse",
    "trial", "check_failed", "cascade", ...)."""

    island: int
    kind: str
    revision_number: int | None = None
    parent_number: int | None = None
    evaluated: bool = False
    score: float | None = None
    features: dict[str, float] = field(default_factory=dict)
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    improved: bool = False
    elapsed_s: float = 0.0  # search seconds (all sessions) when it was recorded
    idx: int = -1
    at: float = 0.0


_CANDIDATE_COLUMNS = (
    "idx, revision_number, island, parent_number, kind, evaluated, score, features, model, "
    "input_tokens, output_tokens, cost_usd, improved, elapsed_s, at"
)
_SEARCH_COLUMNS = (
    "s.id, s.function_id, s.config, s.status, s.started_at, s.ended_at, s.stop_reason, "
    "s.best_number, s.best_score, f.key"
)


def _search(row: tuple[Any, ...]) -> SearchRecord:
    return SearchRecord(
        id=row[0],
        function_id=row[1],
        config=json.loads(row[2] or "{}"),
        status=row[3],
        started_at=row[4],
        ended_at=row[5],
        stop_reason=row[6] or "",
        best_number=row[7],
        best_score=row[8],
        key=row[9] or "",
    )


def _candidate(row: tuple[Any, ...]) -> CandidateRecord:
    return CandidateRecord(
        idx=row[0],
        revision_number=row[1],
        island=row[2],
        parent_number=row[3],
        kind=row[4],
        evaluated=bool(row[5]),
        score=row[6],
        features={str(k): float(v) for k, v in json.loads(row[7] or "{}").items()},
        model=row[8],
        input_tokens=row[9],
        output_tokens=row[10],
        cost_usd=row[11],
        improved=bool(row[12]),
        elapsed_s=row[13],
        at=row[14],
    )


_INSERT_CANDIDATE = f"""INSERT INTO search_candidates ({_CANDIDATE_COLUMNS}, search_id)
    VALUES ((SELECT COALESCE(MAX(idx), -1) + 1 FROM search_candidates WHERE search_id = ?),
            ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    RETURNING idx"""


def _insert_candidate(
    conn: Sql, search_id: int, c: CandidateRecord, revision_number: int | None
) -> int:
    """Append candidate `c` as the search's next index (MAX + 1, read by the INSERT
    itself; the caller holds the search's lock) with `revision_number`; its index."""
    (idx,) = conn.execute(
        _INSERT_CANDIDATE,
        (
            search_id,
            revision_number,
            c.island,
            c.parent_number,
            c.kind,
            int(c.evaluated),
            score_value(c.score),
            json.dumps(c.features) if c.features else "{}",
            c.model,
            c.input_tokens,
            c.output_tokens,
            c.cost_usd,
            int(c.improved),
            c.elapsed_s,
            c.at or time.time(),
            search_id,
        ),
    ).fetchall()[0]
    return int(idx)


class CandidateBatch:
    """The candidates of one transaction (`SearchRepository.record_batch`). The search's
    lock is taken at its first candidate, a lineage's at the first candidate of that
    lineage; the active number read then is kept up to date by the batch's own
    activations, so each compare-and-set sees the candidates recorded before it."""

    def __init__(self, store: EvolvableStore, conn: Sql, search_id: int) -> None:
        self.store = store
        self.conn = conn
        self.search_id = search_id
        self._search_locked = False
        self._active: dict[int, tuple[int | None]] = {}  # function id -> (active number,)
        # Written by `finish`, once for the batch: its revisions' parent rows, and its
        # activations (each one in the history; a lineage's active number set once).
        self._parents: list[tuple[int, int, int, int]] = []
        self._activations: list[tuple[int, int, str, float]] = []

    def record(
        self,
        candidate: CandidateRecord,
        revision: RevisionRecord | None,
        *,
        promote_over: tuple[int | None] | None = None,
    ) -> tuple[int | None, int, bool]:
        """One candidate: (revision number, candidate index, whether it was made active)."""
        store, conn = self.store, self.conn
        number = candidate.revision_number
        active: tuple[int | None] | None = None
        if revision is not None:  # the lineage's lock first, then the search's
            store._check_revision(revision)
            fid = revision.function_id
            active = self._active.get(fid)
            if active is None:
                active = store._lock_lineage(conn, fid)
                if active is None:
                    raise StoreError(f"the store {store.path} has no function with id {fid}")
                self._active[fid] = active
            number = insert_revision_row(conn, revision, parents_to=self._parents)[1]
        if not self._search_locked:
            sql = f"SELECT 1 FROM searches WHERE id = ?{store._for_update}"
            if conn.execute(sql, (self.search_id,)).fetchone() is None:
                raise StoreError(f"the store {store.path} has no search {self.search_id}")
            self._search_locked = True
        idx = _insert_candidate(conn, self.search_id, candidate, number)
        # The active number was read under the lineage's lock (and follows this batch's own
        # activations): still true here.
        if promote_over is None or active is None or active != promote_over:
            return number, idx, False
        assert revision is not None and number is not None
        if revision.status != "accepted":
            raise RevisionError(
                f"revision {number} of function id {revision.function_id} was rejected "
                f"at the {revision.stage} stage and cannot be made active"
            )
        self._activations.append((revision.function_id, number, "search", time.time()))
        self._active[revision.function_id] = (number,)
        return number, idx, True

    def finish(self) -> None:
        """Write what the batch's candidates left for the end (called by `record_batch`
        before it commits): the parent rows, then the activations (`record_activations`)."""
        conn = self.conn
        if self._parents:
            insert_parent_rows(conn, self._parents)
        if self._activations:
            record_activations(conn, self._activations)


class SearchRepository:
    """The search tables of one store (its transactions, locks and retry policy)."""

    def __init__(self, store: EvolvableStore) -> None:
        self.store = store

    def start(self, function_id: int, config: dict[str, Any]) -> int:
        def op(conn: Sql) -> int:
            (sid,) = conn.execute(
                "INSERT INTO searches (function_id, config, status, started_at) "
                "VALUES (?, ?, 'running', ?) RETURNING id",
                (function_id, json.dumps(config, default=str), time.time()),
            ).fetchall()[0]
            return int(sid)

        return self.store._write(op, "starting a search")

    def record_candidate(
        self,
        search_id: int,
        candidate: CandidateRecord,
        revision: RevisionRecord | None,
        *,
        promote_over: tuple[int | None] | None = None,
    ) -> tuple[int | None, int, bool]:
        """The revision (when there is one), the candidate row and — with `promote_over`
        (the active number the candidate was judged against) — its activation as a
        compare-and-set, all in one transaction.

        Returns (revision number, candidate index, whether it was made active)."""
        return self.record_batch(
            search_id, lambda batch: batch.record(candidate, revision, promote_over=promote_over)
        )

    def record_batch(self, search_id: int, fill: Callable[[CandidateBatch], T]) -> T:
        """Several candidates in one transaction (a group commit): `fill` records them with
        `CandidateBatch.record`, in order, and its result is returned once they are all
        committed; if it raises, none of them is. Each candidate is still whole (its
        revision, row and activation together). `fill` may run more than once (a store that
        stays busy is retried), so it must not change anything outside the batch."""
        store = self.store

        def op(conn: Sql) -> T:
            batch = CandidateBatch(store, conn, search_id)
            result = fill(batch)
            batch.finish()
            return result

        return store._write(op, "recording search candidates")

    def finish(
        self,
        search_id: int,
        stop_reason: str,
        best_number: int | None,
        best_score: float | None,
        *,
        finished: bool = True,
    ) -> None:
        def op(conn: Sql) -> None:
            conn.execute(
                "UPDATE searches SET status = ?, ended_at = ?, stop_reason = ?, "
                "best_number = ?, best_score = ? WHERE id = ?",
                (
                    "finished" if finished else "running",
                    time.time(),
                    stop_reason,
                    best_number,
                    score_value(best_score),
                    search_id,
                ),
            )

        self.store._write(op, "finishing a search")

    def reopen(self, search_id: int) -> None:
        def op(conn: Sql) -> None:
            conn.execute(
                "UPDATE searches SET status = 'running', ended_at = NULL WHERE id = ?",
                (search_id,),
            )

        self.store._write(op, "resuming a search")

    def get(self, search_id: int) -> SearchRecord:
        def op(conn: Sql) -> SearchRecord:
            row = conn.execute(
                f"SELECT {_SEARCH_COLUMNS} FROM searches s JOIN functions f "
                "ON f.id = s.function_id WHERE s.id = ?",
                (search_id,),
            ).fetchone()
            if row is None:
                raise StoreError(f"the store {self.store.path} has no search {search_id}")
            return _search(row)

        return self.store._read(op)

    def latest(self, function_id: int) -> SearchRecord | None:
        """The newest search of this lineage, if any."""

        def op(conn: Sql) -> SearchRecord | None:
            row = conn.execute(
                f"SELECT {_SEARCH_COLUMNS} FROM searches s JOIN functions f "
                "ON f.id = s.function_id WHERE s.function_id = ? ORDER BY s.id DESC LIMIT 1",
                (function_id,),
            ).fetchone()
            return _search(row) if row else None

        return self.store._read(op)

    def recent(self, limit: int = 20, key: str | None = None) -> list[SearchRecord]:
        def op(conn: Sql) -> list[SearchRecord]:
            where, args = ("WHERE f.key = ?", (key,)) if key else ("", ())
            rows = conn.execute(
                f"SELECT {_SEARCH_COLUMNS} FROM searches s JOIN functions f "
                f"ON f.id = s.function_id {where} ORDER BY s.id DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
            return [_search(r) for r in rows]

        return self.store._read(op)

    def candidates(self, search_id: int) -> list[CandidateRecord]:
        def op(conn: Sql) -> list[CandidateRecord]:
            rows = conn.execute(
                f"SELECT {_CANDIDATE_COLUMNS} FROM search_candidates WHERE search_id = ? "
                "ORDER BY idx",
                (search_id,),
            ).fetchall()
            return [_candidate(r) for r in rows]

        return self.store._read(op)

    def counts(self, search_id: int) -> dict[str, int]:
        """Candidates per kind."""

        def op(conn: Sql) -> dict[str, int]:
            rows = conn.execute(
                "SELECT kind, COUNT(*) FROM search_candidates WHERE search_id = ? GROUP BY kind",
                (search_id,),
            ).fetchall()
            return {str(k): int(n) for k, n in rows}

        return self.store._read(op)
