"""The PostgreSQL store: the same repository as the SQLite store, shared by a team.

    store = open_store("postgresql://user:pw@host/db")   # or SYMBIONT_STORE=postgresql://...

`PostgresStore` is `EvolvableStore` (the `Store` protocol written once, in SQL both engines
speak) over a `PgDatabase` (one lazily opened, fork-aware connection; migrations under an
advisory lock; deadlocks retried). What differs from SQLite, and why:

- **Writers run concurrently.** SQLite serialises every write on the file; PostgreSQL does
  not, so each write to a lineage first locks that function's row (`SELECT ... FOR
  UPDATE`). Revision numbers (MAX + 1 under the lock), the compare-and-set activation, the
  declared-body record and the failure ring are then decided by one writer at a time per
  lineage, from any number of processes and machines; writes to other lineages, runs and
  searches proceed in parallel. READ COMMITTED otherwise (each statement sees what was
  committed before it began).
- **Reads are one snapshot.** A read of several statements (a lineage with its parents)
  runs in a REPEATABLE READ, READ ONLY transaction, so it never mixes two moments.
- **`path` is the URL without its password**, for messages; `url` is the full one.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from symbiont.store.evolvables import EvolvableStore, Pricing
from symbiont.store.pg.connection import PgDatabase

T = TypeVar("T")

_STORES: weakref.WeakSet[PostgresStore] = weakref.WeakSet()


@functools.lru_cache(maxsize=512)
def pg_sql(sql: str) -> str:
    """The shared SQL in psycopg's parameter style: `?` becomes `%s` (a literal `%` is
    doubled). The shared SQL has no `?` inside string literals."""
    return re.sub(r"\?", "%s", sql.replace("%", "%%"))


class PgSql:
    """The transaction's psycopg cursor, with the `execute` of sqlite3's. One cursor for
    every statement (cheaper than one each): read a result before the next `execute`."""

    __slots__ = ("_cur",)

    def __init__(self, cur: Any) -> None:
        self._cur = cur

    def execute(self, sql: str, params: Any = ()) -> Any:
        self._cur.execute(pg_sql(sql), params)
        return self._cur

    def executemany(self, sql: str, rows: Iterable[Any]) -> None:
        rows = list(rows)
        if rows:  # psycopg refuses an empty batch
            self._cur.executemany(pg_sql(sql), rows)


class PostgresStore(EvolvableStore):
    """Functions, revisions, runs, searches, capabilities and transcripts in one PostgreSQL
    database with pgvector (see the module docstring)."""

    _for_update = " FOR UPDATE"

    def __init__(
        self, url: str, *, pricing: Pricing | None = None, connect_timeout_s: float = 10.0
    ) -> None:
        self.db = PgDatabase(url, connect_timeout_s=connect_timeout_s)
        self.url = url
        self.path: str = self.db.where  # the URL without its password
        self.pricing = pricing
        _STORES.add(self)

    @property
    def schema_version(self) -> int:
        return self.db.schema_version

    def __repr__(self) -> str:
        return f"PostgresStore({self.path!r})"

    def close(self) -> None:
        self.db.close()

    # -- transactions (retries and error messages: PgDatabase) -----------------------------
    def _write(self, op: Callable[[Any], T], what: str = "writing") -> T:
        return self.db.write(lambda cur: op(PgSql(cur)), what)

    def _read(self, op: Callable[[Any], T]) -> T:
        def snapshot(cur: Any) -> T:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            return op(PgSql(cur))

        return self.db.write(snapshot, "reading", idempotent=True)

    # -- the other repositories of this store (one seam: no SQL above symbiont.store) ----
    @functools.cached_property
    def capabilities(self) -> Any:
        """The capability library's records (`symbiont.store.pg.capabilities`)."""
        from symbiont.store.pg.capabilities import PgCapabilityStore

        return PgCapabilityStore(self)

    @functools.cached_property
    def transcripts(self) -> Any:
        """Agent transcripts (`symbiont.store.pg.transcripts`)."""
        from symbiont.store.pg.transcripts import PgTranscriptStore

        return PgTranscriptStore(self)

    def index_storage(self) -> Any:
        """A new persistence handle for one retrieval index (`symbiont.store.pg.index`)."""
        from symbiont.store.pg.index import PgIndexStorage

        return PgIndexStorage(self)


def _reinit_after_fork() -> None:
    # A fork while another thread held the connection's lock would leave the child's copy
    # locked forever; the child opens its own connection anyway (PgDatabase).
    for store in list(_STORES):
        store.db._lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
