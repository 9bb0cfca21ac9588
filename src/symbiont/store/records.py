"""The records the store keeps, as plain dataclasses.

They are the only thing that crosses the repository boundary: callers never see rows,
cursors or SQL, so a PostgreSQL implementation can return the same objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ORIGINS: tuple[str, ...] = ("default", "model", "mutation", "manual")
STATUSES: tuple[str, ...] = ("accepted", "rejected")


@dataclass(slots=True)
class FunctionRecord:
    """One lineage of an evolvable function: its key plus its signature fingerprint.

    A changed declared signature gives a new record (a new lineage); the old one stays.
    """

    id: int
    key: str  # module.qualname
    fingerprint: str  # DeclaredSignature.fingerprint()
    signature_text: str  # DeclaredSignature.render(), for people and prompts
    created_at: float
    active_number: int | None
    last_seen_at: float | None = None  # last time a program declared this lineage


@dataclass(slots=True)
class RevisionRecord:
    """One candidate body, accepted or rejected, with where it came from and how it fared.

    `number` is per function row (0 = the declared default body); pass -1 to
    `add_revision` to have the store allocate the next number atomically.
    """

    function_id: int
    number: int
    source: str  # the candidate code; "" if none was extracted
    reply: str  # the raw model reply; may be ""
    parents: tuple[int, ...]  # revision numbers; more than one for crossover
    origin: str  # default | model | mutation | manual
    model: str | None
    status: str  # accepted | rejected
    stage: str  # the stage reached (accepted) or failed at (rejected)
    diagnostics: list[dict[str, Any]]  # Diagnostic.to_dict()
    score: float | None
    metrics: dict[str, float]
    content_hash: str
    created_at: float | None = None
    id: int | None = None


@dataclass(slots=True)
class AttemptRecord:
    """One attempt of an evolve run: what the model was asked and how far its answer got."""

    index: int
    revision_number: int | None  # None when no candidate was recorded (e.g. model error)
    stage: str
    ok: bool
    diagnostics: list[dict[str, Any]]
    timings: dict[str, float]  # seconds per stage
    input_tokens: int
    output_tokens: int
    model_latency_s: float
    retries: int
    cost_usd: float | None  # None: computed from the store's pricing, if any


@dataclass(slots=True)
class RunRecord:
    """One evolve run with its attempts summed up (tokens, cost, duration)."""

    id: int
    function_key: str
    config: dict[str, Any]
    started_at: float
    ended_at: float | None  # None while the run is going (or its process died)
    outcome: str | None  # accepted | exhausted | error | ...; None while running
    accepted_number: int | None
    attempts: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None  # None when no attempt has a cost
    duration_s: float | None
    function_id: int = 0
    attempt_records: list[AttemptRecord] = field(default_factory=list)  # filled by run()


@dataclass(frozen=True, slots=True)
class ActivationRecord:
    """One change of a lineage's active revision (for rollback and the audit trail)."""

    function_id: int
    number: int
    reason: str  # activate | rollback | declared (first start) | source change | ...
    at: float


@dataclass(slots=True)
class FailureRecord:
    """An exception the live function raised in a program, kept with the revision it hit.

    The store keeps the newest few per lineage (a ring; see `SQLiteStore.add_failure`).
    """

    function_id: int
    revision_number: int  # the revision whose code raised (0: the declared body)
    at: float
    kind: str  # Diagnostic kind: exception | recursion | memory | exit
    message: str  # "ExcType: message"
    args: str  # bounded repr of the call's arguments ("" if unknown)
    traceback: str  # formatted traceback, bounded
    diagnostic: dict[str, Any] = field(default_factory=dict)  # Diagnostic.to_dict()
    pid: int | None = None  # the process it happened in
    id: int | None = None
