"""What the library tests need to run on both store backends (the `store_backend` fixture of
tests/conftest.py: a SQLite file path, or a fresh database on a real PostgreSQL 18 +
pgvector).

Searching a Library on PostgreSQL needs the retrieval index in the store (issue 15, the
index part, built at the same time by another change): until the Library constructs its
index from `store.index_storage()`, search runs on SQLite only. Tests that only search call
`needs_search(location)` (skipped on PostgreSQL); tests where search is one check among
others guard it with `searchable(location)`. Set `PG_SEARCH` to True to run them all.
"""

from __future__ import annotations

import pytest

PG_SEARCH = True


def is_postgres(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


def searchable(location: str) -> bool:
    return PG_SEARCH or not is_postgres(location)


def needs_search(location: str) -> None:
    if not searchable(location):
        pytest.skip("search on PostgreSQL waits for the store-backed retrieval index")
