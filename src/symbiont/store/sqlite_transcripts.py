"""Agent transcripts on the SQLite store, and their tables (migration 3).

`SQLiteTranscriptStore(store)` is what `SQLiteStore.transcripts` returns: the shared SQL of
`symbiont.store._transcript_sql` run in the store's own transactions (its connection, lock
and busy retries). `TRANSCRIPT_DDL` is the store's migration 3 (`symbiont.store.migrations`);
every statement is `IF NOT EXISTS`, so files where an older agent created these tables
upgrade cleanly. Never edit it: add a migration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from symbiont.store._transcript_sql import SqlTranscriptStore

if TYPE_CHECKING:
    from symbiont.store.sqlite import SQLiteStore
    from symbiont.store.transcripts import TranscriptStore

__all__ = ["TRANSCRIPT_DDL", "SQLiteTranscriptStore"]

TRANSCRIPT_DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS agent_transcripts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL CHECK (kind IN ('task', 'mutation')),
        parent_id INTEGER REFERENCES agent_transcripts(id) ON DELETE SET NULL,
        task TEXT NOT NULL,
        model TEXT NOT NULL DEFAULT '',
        outcome TEXT NOT NULL DEFAULT 'running',
        answer TEXT,
        error TEXT,
        capability_id TEXT,              -- the capability a mutation run stored
        steps INTEGER NOT NULL DEFAULT 0,    -- model calls
        input_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        config TEXT NOT NULL DEFAULT '{}',   -- JSON: k, max_steps, parent capability...
        messages TEXT,                   -- JSON: the final conversation
        started_at REAL NOT NULL,
        finished_at REAL
    )""",
    """CREATE TABLE IF NOT EXISTS agent_steps (
        transcript_id INTEGER NOT NULL REFERENCES agent_transcripts(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        kind TEXT NOT NULL,              -- retrieve | model | tool | note
        name TEXT NOT NULL DEFAULT '',   -- the tool's name for tool steps
        ok INTEGER,                      -- tool steps: did the tool succeed
        data TEXT NOT NULL,              -- JSON
        input_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        duration_s REAL NOT NULL DEFAULT 0,
        at REAL NOT NULL,
        PRIMARY KEY (transcript_id, position)
    )""",
    "CREATE INDEX IF NOT EXISTS agent_transcripts_started ON agent_transcripts(started_at)",
    "CREATE INDEX IF NOT EXISTS agent_transcripts_parent ON agent_transcripts(parent_id)",
)


class SQLiteTranscriptStore(SqlTranscriptStore):
    """The transcript tables of one `SQLiteStore`."""

    def __init__(self, store: SQLiteStore) -> None:
        super().__init__(store)


if TYPE_CHECKING:

    def _implements_the_protocol(repo: SQLiteTranscriptStore) -> TranscriptStore:
        return repo
