"""The capability library's repository on the SQLite store, and its tables (migration 2).

`SQLiteCapabilityStore(store)` is what `SQLiteStore.capabilities` returns: the shared SQL of
`symbiont.store._capability_sql` run in the store's own IMMEDIATE transactions (its
connection, lock and busy retries), so a run's outcome and the deprecation it decides are
one transaction that another process cannot race past.

Why the tables are shaped so:
- `capabilities` holds the *current* version of each capability (what search and run use);
  `capability_versions` keeps every version ever stored (lineage, review, rollback).
- `capability_stats` is separate so that recording a run touches one small row, and the
  deprecation decision (consecutive failures >= N) is taken in the same transaction as the
  increment: two processes failing at once cannot both miss it.
- `capability_runs` keeps each outcome (latency for p50, the error text for `lib show`).

`CAPABILITY_DDL` is the store's migration 2 (`symbiont.store.migrations`); every statement
is `IF NOT EXISTS`, so files where an older Library created these tables upgrade cleanly.
Never edit it: add a migration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from symbiont.store._capability_sql import SqlCapabilityStore

if TYPE_CHECKING:
    from symbiont.store.capabilities import CapabilityStore
    from symbiont.store.sqlite import SQLiteStore

__all__ = ["CAPABILITY_DDL", "SQLiteCapabilityStore"]

CAPABILITY_DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS capability_schema_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS capabilities (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        summary TEXT NOT NULL,
        entry TEXT NOT NULL,
        source TEXT NOT NULL,
        input_schema TEXT NOT NULL,      -- JSON
        output_schema TEXT NOT NULL,     -- JSON
        permissions TEXT NOT NULL,       -- JSON
        version INTEGER NOT NULL DEFAULT 1,
        parents TEXT NOT NULL DEFAULT '[]',  -- JSON array of capability ids
        status TEXT NOT NULL DEFAULT 'active'
            CHECK (status IN ('active', 'legacy', 'deprecated')),
        status_reason TEXT,
        replaced_by TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS capabilities_by_status ON capabilities (status)",
    """CREATE TABLE IF NOT EXISTS capability_versions (
        capability_id TEXT NOT NULL REFERENCES capabilities (id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        source TEXT NOT NULL,
        summary TEXT NOT NULL,
        entry TEXT NOT NULL,
        input_schema TEXT NOT NULL,
        output_schema TEXT NOT NULL,
        permissions TEXT NOT NULL,
        examples TEXT NOT NULL,          -- JSON array, as verified for this version
        parents TEXT NOT NULL DEFAULT '[]',
        created_at REAL NOT NULL,
        PRIMARY KEY (capability_id, version)
    )""",
    """CREATE TABLE IF NOT EXISTS capability_examples (
        capability_id TEXT NOT NULL REFERENCES capabilities (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        spec TEXT NOT NULL,              -- JSON: {"input", "expect" | "check", "name"}
        PRIMARY KEY (capability_id, position)
    )""",
    """CREATE TABLE IF NOT EXISTS capability_stats (
        capability_id TEXT PRIMARY KEY REFERENCES capabilities (id) ON DELETE CASCADE,
        runs INTEGER NOT NULL DEFAULT 0,
        failures INTEGER NOT NULL DEFAULT 0,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        last_run_at REAL
    )""",
    """CREATE TABLE IF NOT EXISTS capability_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        capability_id TEXT NOT NULL REFERENCES capabilities (id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        started_at REAL NOT NULL,
        duration_s REAL NOT NULL,
        ok INTEGER NOT NULL,
        error_kind TEXT,
        error TEXT,
        tier TEXT NOT NULL DEFAULT '',
        forced INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS capability_runs_by_capability ON capability_runs (capability_id, id)",
)


class SQLiteCapabilityStore(SqlCapabilityStore):
    """The capability tables of one `SQLiteStore`."""

    def __init__(self, store: SQLiteStore) -> None:
        super().__init__(store)


if TYPE_CHECKING:

    def _implements_the_protocol(repo: SQLiteCapabilityStore) -> CapabilityStore:
        return repo
