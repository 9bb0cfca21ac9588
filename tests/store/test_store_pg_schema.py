"""The PostgreSQL schema mirrors the SQLite one, migrations run once, foreign and newer
databases are refused (against a real PostgreSQL 18 + pgvector server)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from symbiont.errors import CorruptStoreError, StoreError
from symbiont.store import open_store
from symbiont.store.pg import PgDatabase, redact


def _sqlite_columns(path: Path) -> dict[str, set[str]]:
    conn = sqlite3.connect(path)
    tables = [
        r[0]
        for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not r[0].startswith(("sqlite_", "idx_"))
    ]
    out = {t: {c[1] for c in conn.execute(f"PRAGMA table_info({t})")} for t in tables}
    conn.close()
    return out


def _pg_columns(url: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    with psycopg.connect(url) as conn:
        for table, column in conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public'"
        ):
            out.setdefault(table, set()).add(column)
    return {t: c for t, c in out.items() if not t.startswith("idx_")}


def test_same_tables_and_columns_as_sqlite(tmp_path: Path, pg_url: str) -> None:
    open_store(tmp_path / "s.db").close()
    PgDatabase(pg_url).close()
    assert _pg_columns(pg_url) == _sqlite_columns(tmp_path / "s.db")


def test_migrations_apply_once_from_many_processes(pg_url: str) -> None:
    code = "import sys; from symbiont.store.pg import PgDatabase; PgDatabase(sys.argv[1]).close()"
    procs = [subprocess.Popen([sys.executable, "-c", code, pg_url]) for _ in range(4)]
    assert [p.wait(60) for p in procs] == [0, 0, 0, 0]
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT key, value FROM symbiont_meta ORDER BY key").fetchall()
        (markers,) = conn.execute("SELECT count(*) FROM capability_schema_meta").fetchone()
    meta = dict(rows)
    assert meta["application"] == "symbiont"
    assert meta["schema_version"] == "5"
    assert len(rows) == 3  # application, created_at, schema_version: each inserted once
    assert markers == 1


def test_foreign_database_is_refused_and_left_alone(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id int)")
    with pytest.raises(CorruptStoreError, match=r"another application.*invoices"):
        PgDatabase(pg_url)
    with psycopg.connect(pg_url) as conn:
        tables = {
            r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
    assert tables == {"invoices"}


def test_newer_schema_is_refused(pg_url: str) -> None:
    PgDatabase(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE symbiont_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(CorruptStoreError, match="schema version 99, newer"):
        PgDatabase(pg_url)


def test_unreachable_server_is_a_clear_error_without_the_password() -> None:
    url = "postgresql://alice:s3cret-pw@127.0.0.1:1/nowhere"
    with pytest.raises(StoreError) as info:
        PgDatabase(url, connect_timeout_s=2)
    assert "cannot connect" in str(info.value)
    assert "s3cret-pw" not in str(info.value)
    assert redact(url) == "postgresql://alice:***@127.0.0.1:1/nowhere"


def _kill_backends(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def test_a_lost_connection_retries_reads_but_never_a_write(pg_url: str) -> None:
    db = PgDatabase(pg_url)
    try:
        _kill_backends(pg_url)  # the server drops our connection (a restart, a failover)
        assert db.read("SELECT 41 + 1") == [(42,)]  # a read is retried on a new connection

        def insert(cur: object) -> None:
            _kill_backends(pg_url)  # lost in the middle of the transaction
            cur.execute(  # type: ignore[attr-defined]
                "INSERT INTO symbiont_meta (key, value) VALUES ('probe', 'x')"
            )

        with pytest.raises(StoreError, match="may or may not have been committed"):
            db.write(insert)
        assert db.read("SELECT count(*) FROM symbiont_meta WHERE key = 'probe'") == [(0,)]
    finally:
        db.close()
