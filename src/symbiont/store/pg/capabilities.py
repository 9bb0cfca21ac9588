"""The capability library's repository on a PostgreSQL store.

`PgCapabilityStore(store)` runs the same SQL as the SQLite repository
(`symbiont.store._capability_sql`) in transactions of the store's `PgDatabase`, so the two
backends cannot drift apart. What makes it safe with many processes on many machines, at
PostgreSQL's default READ COMMITTED isolation:

- a run's statistics are updated by one `UPDATE ... RETURNING consecutive_failures`, which
  holds the row lock to the commit; a concurrent failure waits for it and then updates the
  committed row, so no increment is lost and each sees the streak it made;
- the deprecation is `UPDATE capabilities ... WHERE status = 'active'` in that same
  transaction: of several failures reaching the threshold at once, exactly one flips it;
- a new version number is `version = version + 1 ... RETURNING version` (row-locked);
- a capability is inserted with `ON CONFLICT (id) DO NOTHING`: two processes adding one id
  at once store it once and the other is told so, without an integrity error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from symbiont.store._capability_sql import SqlCapabilityStore

if TYPE_CHECKING:
    from symbiont.store.capabilities import CapabilityStore

__all__ = ["PgCapabilityStore"]


class PgCapabilityStore(SqlCapabilityStore):
    """The capability tables of one PostgreSQL store (`symbiont.store.pg.evolvables.PostgresStore`)."""

    def __init__(self, store: Any) -> None:
        super().__init__(store)


if TYPE_CHECKING:

    def _implements_the_protocol(repo: PgCapabilityStore) -> CapabilityStore:
        return repo
