"""Persistent store: every revision a model wrote, its lineage, activations and evolve runs.

    store = open_store()            # $SYMBIONT_HOME/symbiont.db, else ./.symbiont/symbiont.db
    fn = store.ensure_function(sig.key, sig.fingerprint(), sig.render())
    rec = store.add_revision(RevisionRecord(fn.id, -1, ...))   # -1: next number, atomically

Callers depend on the `Store` protocol; `SQLiteStore` is the embedded default.
"""

from __future__ import annotations

from symbiont.store.migrations import LATEST_VERSION, MIGRATIONS, Migration
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
from symbiont.store.sqlite import Pricing, SQLiteStore, default_store_path, open_store

__all__ = [
    "LATEST_VERSION",
    "MIGRATIONS",
    "ORIGINS",
    "STATUSES",
    "ActivationRecord",
    "AttemptRecord",
    "FailureRecord",
    "FunctionRecord",
    "Migration",
    "Pricing",
    "RevisionRecord",
    "RunRecord",
    "SQLiteStore",
    "Store",
    "default_store_path",
    "open_store",
]
