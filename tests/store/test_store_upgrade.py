"""A store file written by an older version (schema 1) is upgraded in place, data kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from symbiont.store import LATEST_VERSION, RevisionRecord, open_store
from symbiont.store.migrations import APPLICATION_ID, MIGRATIONS


def test_a_version_1_file_gains_the_library_and_transcript_tables(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in MIGRATIONS[0].statements:  # exactly what a version-1 symbiont wrote
        conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.close()

    store = open_store(path)
    fn = store.ensure_function("m.f", "abc", "def f() -> None:")
    store.add_revision(
        RevisionRecord(
            fn.id,
            0,
            "def f() -> None:\n    pass\n",
            "",
            (),
            "default",
            None,
            "accepted",
            "promote",
            [],
            None,
            {},
            "h0",
        )
    )
    store.close()

    conn = sqlite3.connect(path)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert LATEST_VERSION >= 3
    assert version == LATEST_VERSION
    assert {"capabilities", "capability_versions", "capability_stats"} <= tables
    assert {"agent_transcripts", "agent_steps"} <= tables
    assert {"functions", "revisions"} <= tables
