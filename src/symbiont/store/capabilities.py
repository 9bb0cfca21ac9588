"""The capability library's repository: what `symbiont.library.Library` asks of a store.

    repo = store.capabilities                    # SQLite or PostgreSQL, same methods
    repo.add(cap)                                # current row, version, examples: one transaction
    deprecated_now = repo.record_run(run, deprecate_after=2, reason=...)

The library keeps its logic (verification, sandbox runs, blame, the wording of reasons);
the repository keeps the rows and the decisions that must be atomic:

- a capability and its version, examples and zeroed statistics are written in one
  transaction; so is a replacement and the old capability becoming `legacy`;
- version numbers are allocated inside the write (`version = version + 1 ... RETURNING`),
  so two processes storing a new version at once get two numbers, never one;
- a run's outcome is recorded and the deprecation decided in the same transaction
  (consecutive failures >= N flips an *active* capability to `deprecated`), with the
  statistics row updated in place (`runs = runs + 1 ... RETURNING`), so concurrent failures
  lose no count and exactly one of them deprecates it.

Capabilities go in and come out as `symbiont.library.capability.Capability` (plain data;
the stats come from `capability_stats` and the p50 latency of the newest 100 runs).
Implementations: `symbiont.store.sqlite_capabilities.SQLiteCapabilityStore` and
`symbiont.store.pg.capabilities.PgCapabilityStore`.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from symbiont.library.capability import Capability

# The newest runs whose durations give a capability's p50 latency.
LATENCY_WINDOW = 100


@dataclass(frozen=True, slots=True)
class CapabilityRun:
    """One outcome of running a capability, as `record_run` stores it.

    `counted`: a failure attributable to the capability itself; it grows the failure streak.
    A failure that is not counted (an error its examples declare, a host failure) is
    recorded and leaves the streak as it was; a success ends it."""

    capability_id: str
    version: int
    started_at: float
    duration_s: float
    ok: bool
    counted: bool = False
    error_kind: str | None = None
    error: str | None = None
    tier: str = ""
    forced: bool = False


@dataclass(frozen=True, slots=True)
class CapabilityVersion:
    """One stored version of a capability (`versions`, oldest first)."""

    version: int
    source: str
    summary: str
    created_at: float


class CapabilityStore(Protocol):
    """Capabilities, their versions, examples, runs and statistics in one store."""

    # -- writing -------------------------------------------------------------------------
    def add(self, cap: Capability) -> bool:
        """Store a new capability as given (version, status, times), with its version row,
        its examples and zeroed statistics, in one transaction. False, and nothing written,
        when the id is already taken."""
        ...

    def add_version(self, cap: Capability) -> int | None:
        """Store `cap` as the next version of the capability with its id (the current
        version + 1, allocated in the write), replace its examples and restart its failure
        streak, in one transaction. Returns the new version; None when there is no such id."""
        ...

    def supersede(self, old_id: str, new: Capability, reason: str) -> bool:
        """Add `new` and make `old_id` `legacy`, replaced by it with `reason`, in one
        transaction. False, and nothing written, when `new.id` is already taken."""
        ...

    def record_run(
        self, run: CapabilityRun, *, deprecate_after: int, reason: Callable[[int, str], str]
    ) -> bool:
        """Record an outcome and update the statistics; when a counted failure brings the
        streak to `deprecate_after` or more and the capability is active, deprecate it with
        `reason(streak, error)`, in the same transaction. True when this run deprecated it."""
        ...

    def deprecate(self, cap_id: str, reason: str) -> bool:
        """Mark deprecated with `reason` (its `replaced_by` is kept). False if no such id."""
        ...

    def restore(self, cap_id: str) -> bool:
        """Make active again (no reason, no successor) and restart its failure streak."""
        ...

    def set_status(
        self, cap_id: str, status: str, reason: str | None, replaced_by: str | None
    ) -> bool:
        """Set status, reason and successor as given (a folder's metadata on import)."""
        ...

    # -- reading -------------------------------------------------------------------------
    def get(self, cap_id: str) -> Capability | None: ...

    def list(self, status: str | None = None) -> list[Capability]:
        """Every capability sorted by id, or those with `status`."""
        ...

    def ids(self, statuses: Sequence[str] | None = None) -> builtins.list[str]:
        """The ids (sorted) of every capability, or of those with one of `statuses`."""
        ...

    def contains(self, cap_id: str) -> bool: ...

    def versions(self, cap_id: str) -> builtins.list[CapabilityVersion]:
        """Every stored version of `cap_id`, oldest first (empty if there is none)."""
        ...

    def content_version(self) -> tuple[Any, ...]:
        """A value that changes whenever any process stores new capability content (not on
        status changes or runs): a retrieval index compares it to know it is stale."""
        ...

    def close(self) -> None:
        """Nothing to release: the store owns the connection (kept for symmetry)."""
        ...
