"""Persistent store: every revision a model wrote, its lineage, activations and evolve runs.

    store = open_store()            # $SYMBIONT_STORE, else $SYMBIONT_HOME/symbiont.db,
                                    # else ./.symbiont/symbiont.db
    store = open_store("postgresql://user@host/db")   # a shared PostgreSQL store
    fn = store.ensure_function(sig.key, sig.fingerprint(), sig.render())
    rec = store.add_revision(RevisionRecord(fn.id, -1, ...))   # -1: next number, atomically

Callers depend on the `Store` protocol; `SQLiteStore` is the embedded default,
`PostgresStore` (`symbiont.store.pg`) the shared one. Both are an `EvolvableStore`.
"""

from __future__ import annotations

from symbiont.store.evolvables import EvolvableStore, Pricing
from symbiont.store.migrations import LATEST_VERSION, MIGRATIONS, Migration
from symbiont.store.pg.evolvables import PostgresStore  # psycopg is imported on first use
from symbiont.store.records import (
    ORIGINS,
    STATUSES,
    ActivationRecord,
    AttemptRecord,
    FailureRecord,
    FunctionRecord,
    RevisionRecord,
    RunRecord,
)
from symbiont.store.repository import Store
from symbiont.store.sqlite import (
    STORE_ENV,
    SQLiteStore,
    default_store_path,
    open_store,
    store_location,
)

__all__ = [
    "LATEST_VERSION",
    "MIGRATIONS",
    "ORIGINS",
    "STATUSES",
    "STORE_ENV",
    "ActivationRecord",
    "AttemptRecord",
    "EvolvableStore",
    "FailureRecord",
    "FunctionRecord",
    "Migration",
    "PostgresStore",
    "Pricing",
    "RevisionRecord",
    "RunRecord",
    "SQLiteStore",
    "Store",
    "default_store_path",
    "open_store",
    "store_location",
]
