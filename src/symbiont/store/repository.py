"""The repository interface every store implements (SQLite, PostgreSQL).

Callers (the runtime, the CLI, the capability library) depend on this protocol only, so
either backend can be dropped in without touching them. Methods speak in records
(`symbiont.store.records`), never in rows or SQL. Both backends implement it through one
class, `symbiont.store.evolvables.EvolvableStore`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from symbiont.store.records import (
    ActivationRecord,
    AttemptRecord,
    FailureRecord,
    FunctionRecord,
    RevisionRecord,
    RunRecord,
)


class Store(Protocol):
    """Functions, their lineages of revisions, activations and evolve runs."""

    # Where the store is, for messages: a SQLite file's Path, or a PostgreSQL URL without
    # its password (a str: it is not a file, so never wrap it in Path).
    path: Path | str

    # -- functions ------------------------------------------------------------------------
    def ensure_function(self, key: str, fingerprint: str, signature_text: str) -> FunctionRecord:
        """The lineage for (key, fingerprint), created on first sight."""
        ...

    def get_function(self, function_id: int) -> FunctionRecord: ...

    def lineages(self, key: str) -> list[FunctionRecord]:
        """Every lineage of `key`, most recently seen first."""
        ...

    def find_functions(self, pattern: str) -> list[FunctionRecord]:
        """Lineages whose key is `pattern` or ends with `.pattern`."""
        ...

    def all_keys(self) -> list[str]: ...

    def resolve_key(self, pattern: str) -> str:
        """The one key `pattern` names (see `find_functions`); RevisionError otherwise."""
        ...

    # -- revisions ------------------------------------------------------------------------
    def add_revision(self, rev: RevisionRecord) -> RevisionRecord:
        """Insert `rev` (number -1: allocate the next number atomically); returns it filled."""
        ...

    def update_revision(
        self,
        function_id: int,
        number: int,
        *,
        status: str | None = None,
        score: float | None = None,
        metrics: dict[str, float] | None = None,
        diagnostics: list[dict[str, Any]] | None = None,
    ) -> None: ...

    def next_revision_number(self, function_id: int) -> int: ...

    def revisions(self, key: str, fingerprint: str | None = None) -> list[RevisionRecord]: ...

    def revisions_of(self, function_id: int) -> list[RevisionRecord]: ...

    def get_revision(
        self, key: str, number: int, fingerprint: str | None = None
    ) -> RevisionRecord: ...

    def find_by_hash(self, function_id: int, content_hash: str) -> RevisionRecord | None: ...

    # -- activation -----------------------------------------------------------------------
    def set_active(self, function_id: int, number: int, *, reason: str = "activate") -> None: ...

    def set_active_if(
        self, function_id: int, expected_active: int | None, new: int, *, reason: str = "activate"
    ) -> bool:
        """Compare-and-set activation: `new` only if `expected_active` is still active."""
        ...

    def active_revision(self, key: str, fingerprint: str) -> RevisionRecord | None: ...

    def activations(self, function_id: int) -> list[ActivationRecord]: ...

    def rollback(self, function_id: int, number: int | None = None) -> int:
        """Make the previously active accepted revision (or `number`) active; returns it."""
        ...

    def record_declared_body(self, rev: RevisionRecord) -> tuple[RevisionRecord, bool]:
        """Add the declared body unless the newest `default` revision already is it."""
        ...

    # -- live failures --------------------------------------------------------------------
    def add_failure(self, failure: FailureRecord, *, keep: int = 100) -> FailureRecord: ...

    def failures(self, function_id: int, limit: int | None = None) -> list[FailureRecord]: ...

    # -- evolve runs ----------------------------------------------------------------------
    def start_run(self, function_id: int, config: dict[str, Any]) -> int: ...

    def add_attempt(self, run_id: int, attempt: AttemptRecord) -> None: ...

    def finish_run(self, run_id: int, outcome: str, accepted_number: int | None) -> None: ...

    def runs(self, limit: int = 20, key: str | None = None) -> list[RunRecord]: ...

    def run(self, run_id: int) -> RunRecord: ...

    def close(self) -> None: ...
