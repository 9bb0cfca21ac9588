"""Which store a location names: a postgresql:// URL, SYMBIONT_STORE, sqlite:PATH, a path."""

from __future__ import annotations

from pathlib import Path

import pytest

import symbiont
from symbiont.errors import DeclarationError, StoreError
from symbiont.store import PostgresStore, SQLiteStore, open_store, store_location
from symbiont.ui.data import Data, overview_counts


def test_locations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYMBIONT_STORE", raising=False)
    monkeypatch.setenv("SYMBIONT_HOME", str(tmp_path / "home"))
    assert store_location(None) == tmp_path / "home" / "symbiont.db"
    assert store_location("postgresql://u@h/db") == "postgresql://u@h/db"
    assert store_location("postgres://u@h/db") == "postgres://u@h/db"
    assert store_location(f"sqlite:{tmp_path}/a.db") == tmp_path / "a.db"
    assert store_location(f"sqlite://{tmp_path}/b.db") == tmp_path / "b.db"
    assert store_location("~/c.db") == Path.home() / "c.db"
    monkeypatch.setenv("SYMBIONT_STORE", f"sqlite:{tmp_path}/env.db")
    assert store_location(None) == tmp_path / "env.db"  # SYMBIONT_STORE wins over HOME
    with pytest.raises(StoreError, match="not a mysql:// URL"):
        store_location("mysql://h/db")
    with pytest.raises(StoreError, match="needs a file path"):
        store_location("sqlite:")


def test_symbiont_store_selects_postgres_everywhere(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYMBIONT_STORE", pg_url)
    monkeypatch.setenv("SYMBIONT_HOME", str(tmp_path / "home"))
    with open_store() as s:
        assert isinstance(s, PostgresStore) and s.url == pg_url
        assert "://" in str(s.path) and s.schema_version >= 5
        s.ensure_function("m.f", "fp", "def f() -> None:")
    rt = symbiont.Runtime()
    try:
        assert isinstance(rt.store, PostgresStore)
        assert "m.f" in rt.store.all_keys()  # other tests' evolvables register too
    finally:
        rt.close()
    assert not (tmp_path / "home").exists()  # no SQLite file was made on the side


def test_an_open_store_is_shared_and_a_bad_one_refused(pg_url: str, tmp_path: Path) -> None:
    store = open_store(pg_url)
    rt = symbiont.Runtime(store=store)
    assert rt.store is store
    rt.close()
    with pytest.raises(DeclarationError, match="postgresql:// URL"):
        symbiont.Runtime(store=42)
    assert isinstance(open_store(tmp_path / "x.db"), SQLiteStore)
    store.close()


def test_the_ui_reads_a_postgres_store_and_never_shows_its_password(
    pg_url: str, tmp_path: Path
) -> None:
    with open_store(pg_url) as s:
        fn = s.ensure_function("m.f", "fp", "def f() -> None:")
        s.add_revision(
            symbiont.store.RevisionRecord(
                fn.id, -1, "def f() -> None:\n    pass\n", "", (), "default", None,
                "accepted", "promote", [], None, {}, "h0",
            )
        )  # fmt: skip
    with_password = pg_url.replace("postgres:@", "postgres:hunter2@", 1)
    assert "hunter2" in with_password  # the test server takes any password on its socket
    data = Data(with_password, data_root=tmp_path / "data", tier="inprocess")
    try:
        assert "hunter2" not in str(data.path) and "***" in str(data.path)
        counts = overview_counts(data)
        assert (counts["functions"], counts["revisions"], counts["capabilities"]) == (1, 1, 0)
    finally:
        data.close()
