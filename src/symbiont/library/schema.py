"""The capability library's tables, in the same SQLite file as the rest of the store.

`LIBRARY_DDL` is the store's migration 2 (`symbiont.store.migrations`), so every store file
has these tables; `ensure_library_schema` re-applies it when a `Library` opens, which is
harmless (`IF NOT EXISTS` everywhere, one transaction) and keeps older files working.

Why the shape:
- `capabilities` holds the *current* version of each capability (what search and run use);
  `capability_versions` keeps every version ever stored (lineage, review, rollback).
- `capability_stats` is separate so that recording a run touches one small row, and the
  deprecation decision (consecutive failures >= N) is taken in the same IMMEDIATE
  transaction as the increment: two processes failing at once cannot both miss it.
- `capability_runs` keeps each outcome (latency for p50, the error text for `lib show`).
"""

from __future__ import annotations

import sqlite3

LIBRARY_SCHEMA_VERSION = 1

LIBRARY_DDL: tuple[str, ...] = (
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


def ensure_library_schema(conn: sqlite3.Connection) -> None:
    """Create the library's tables if missing. Safe to call from several processes at once."""
    in_tx = conn.in_transaction
    if not in_tx:
        conn.execute("BEGIN IMMEDIATE")
    try:
        for stmt in LIBRARY_DDL:
            conn.execute(stmt)
        conn.execute(
            "INSERT OR IGNORE INTO capability_schema_meta (key, value) VALUES ('version', ?)",
            (str(LIBRARY_SCHEMA_VERSION),),
        )
    except BaseException:
        if not in_tx and conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    if not in_tx:
        conn.execute("COMMIT")
