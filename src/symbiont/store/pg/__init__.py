"""The PostgreSQL (+ pgvector) store: the same repositories as the SQLite store, for a team
sharing one library and one record of revisions. Selected by a `postgresql://` URL
(`SYMBIONT_STORE`, `Runtime(store=...)`, `Library(store=...)`). Needs psycopg 3
(`pip install 'symbiont[postgres]'`) and a server with the pgvector extension."""

from __future__ import annotations

from symbiont.store.pg.connection import LATEST_PG_VERSION, PgDatabase, is_postgres_url, redact
from symbiont.store.pg.evolvables import PostgresStore

__all__ = ["LATEST_PG_VERSION", "PgDatabase", "PostgresStore", "is_postgres_url", "redact"]
