"""Fixtures for the store tests: a fresh store on each backend and a revision factory.

`store` is parametrised over SQLite and a real PostgreSQL (via `store_backend` in
tests/conftest.py); `sqlite_store` is for what only a SQLite file has (PRAGMAs, WAL, busy
locks, corrupt files)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from store_helpers import MakeRev, source_hash

from symbiont.store import EvolvableStore, RevisionRecord, SQLiteStore, open_store


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "home" / "symbiont.db"


@pytest.fixture
def store(store_backend: str) -> Iterator[EvolvableStore]:
    s = open_store(store_backend)
    yield s
    s.close()


@pytest.fixture
def sqlite_store(store_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(store_path)
    yield s
    s.close()


@pytest.fixture
def make_rev() -> MakeRev:
    def make(
        function_id: int,
        source: str,
        *,
        number: int = -1,
        parents: tuple[int, ...] = (),
        origin: str = "model",
        model: str | None = "test-model",
        status: str = "accepted",
        stage: str | None = None,
        diagnostics: list[dict[str, Any]] | None = None,
        score: float | None = None,
        metrics: dict[str, float] | None = None,
        reply: str = "",
    ) -> RevisionRecord:
        return RevisionRecord(
            function_id=function_id,
            number=number,
            source=source,
            reply=reply,
            parents=parents,
            origin=origin,
            model=model,
            status=status,
            stage=stage or ("promote" if status == "accepted" else "typecheck"),
            diagnostics=diagnostics or [],
            score=score,
            metrics=metrics or {},
            content_hash=source_hash(source),
        )

    return make
