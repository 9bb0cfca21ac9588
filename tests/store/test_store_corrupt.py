"""A file at the store path that is not a (usable) symbiont store is refused, never changed."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from store_helpers import MakeRev

from symbiont.cli import main
from symbiont.errors import CorruptStoreError, StoreError
from symbiont.store import LATEST_VERSION, open_store


def refused_unchanged(path: Path, *fragments: str) -> CorruptStoreError:
    """Open `path`, expect CorruptStoreError naming it, and check its bytes did not change."""
    before = path.read_bytes()
    with pytest.raises(CorruptStoreError) as info:
        open_store(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message
    assert path.read_bytes() == before
    return info.value


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "symbiont.db"
    path.write_bytes(os.urandom(8192))
    refused_unchanged(path, "not a SQLite database")


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "symbiont.db"
    path.write_text("these are my notes, not a database\n")
    refused_unchanged(path, "not a SQLite database")


def test_sqlite_header_followed_by_garbage(tmp_path: Path) -> None:
    path = tmp_path / "symbiont.db"
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(4096 * 3))
    refused_unchanged(path, "not a usable symbiont store")


def test_sqlite_database_of_another_application(tmp_path: Path) -> None:
    path = tmp_path / "symbiont.db"
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    other.execute("INSERT INTO users (name) VALUES ('ada')")
    other.commit()
    other.close()
    refused_unchanged(path, "another application", "users", "symbiont_meta")
    # The other application's data is still there.
    assert sqlite3.connect(path).execute("SELECT name FROM users").fetchall() == [("ada",)]


def test_foreign_wal_database_with_unmerged_frames_is_not_checkpointed(tmp_path: Path) -> None:
    """Even closing our probe connection must not merge the other app's WAL into its file."""
    path = tmp_path / "symbiont.db"
    other = sqlite3.connect(path)
    other.execute("PRAGMA journal_mode = WAL")
    other.execute("PRAGMA wal_autocheckpoint = 0")
    other.execute("CREATE TABLE notes (t TEXT)")
    other.commit()
    other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    other.execute("INSERT INTO notes VALUES ('only in the WAL')")
    other.commit()  # still open: its WAL is not merged into the main file
    try:
        refused_unchanged(path, "another application", "notes")
    finally:
        other.close()


def test_empty_sqlite_database_of_another_kind_is_refused_by_application_id(
    tmp_path: Path,
) -> None:
    path = tmp_path / "symbiont.db"
    other = sqlite3.connect(path)
    other.execute("PRAGMA application_id = 1234")
    other.execute("CREATE TABLE t (x)")
    other.commit()
    other.close()
    refused_unchanged(path, "another application")


def test_newer_schema_is_refused(tmp_path: Path, make_rev: MakeRev) -> None:
    path = tmp_path / "symbiont.db"
    with open_store(path) as s:
        fr = s.ensure_function("m.f", "fp", "")
        s.add_revision(make_rev(fr.id, "def f():\n    return 1\n"))
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    raw.commit()
    raw.close()
    error = refused_unchanged(path, f"schema version {LATEST_VERSION + 1}", "newer")
    assert "Upgrade symbiont" in str(error)


def test_marker_of_another_application(tmp_path: Path) -> None:
    path = tmp_path / "symbiont.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE symbiont_meta (key TEXT PRIMARY KEY, value TEXT)")
    raw.execute("INSERT INTO symbiont_meta VALUES ('application', 'impostor')")
    raw.execute("PRAGMA user_version = 1")
    raw.commit()
    raw.close()
    refused_unchanged(path, "does not mark it as a symbiont store", "impostor")


def test_damaged_pages_are_reported_as_corruption(tmp_path: Path, make_rev: MakeRev) -> None:
    path = tmp_path / "symbiont.db"
    with open_store(path) as s:
        fr = s.ensure_function("m.f", "fp", "")
        for i in range(200):
            s.add_revision(make_rev(fr.id, f"def f():\n    return {i}\n" + "#" * 500))
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 20 * page
    for offset in range(2 * page, len(data), page):  # overwrite every page but the first
        data[offset : offset + page] = os.urandom(page)
    path.write_bytes(bytes(data))
    before = path.read_bytes()
    with pytest.raises(CorruptStoreError) as info, open_store(path) as s:
        s.revisions("m.f")
    assert str(path) in str(info.value)
    assert path.read_bytes() == before


def test_directory_at_the_store_path(tmp_path: Path) -> None:
    (tmp_path / "symbiont.db").mkdir()
    with pytest.raises(StoreError, match="is a folder"):
        open_store(tmp_path / "symbiont.db")


def test_an_empty_file_becomes_a_store(tmp_path: Path) -> None:
    path = tmp_path / "symbiont.db"
    path.touch()
    with open_store(path) as s:
        assert s.schema_version == LATEST_VERSION


def test_cli_reports_a_corrupt_store_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "symbiont.db"
    path.write_bytes(b"\x00\x01garbage" * 100)
    before = path.read_bytes()
    code = main(["history", "step", "--store", str(path)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("symbiont: error:") and str(path) in err
    assert "Traceback" not in err
    assert path.read_bytes() == before
