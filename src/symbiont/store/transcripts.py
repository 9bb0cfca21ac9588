"""Agent transcripts: what the agents ask of a store to keep every step of every run.

    repo = store.transcripts                       # SQLite or PostgreSQL, same methods
    tid = repo.start("task", "What is E042's salary?", model="gpt-4o")
    repo.add_step(tid, 0, "retrieve", {"hits": [...]})
    repo.finish(tid, "answered", answer="...")

A transcript is one run of the task agent or of the mutation agent (a mutation run points
at the task run that started it). Steps are written as they happen, each in its own
transaction with the transcript's counters, so a run that crashes still leaves everything
up to that point, with the outcome `running`.

Implementations: `symbiont.store.sqlite_transcripts.SQLiteTranscriptStore` and
`symbiont.store.pg.transcripts.PgTranscriptStore`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from symbiont.errors import SymbiontError

__all__ = ["Step", "Transcript", "TranscriptNotFound", "TranscriptStore"]


class TranscriptNotFound(SymbiontError, LookupError):
    """No transcript has the given id."""


@dataclass(frozen=True, slots=True)
class Step:
    position: int
    kind: str  # retrieve | model | tool | note
    name: str  # the tool's name for tool steps
    ok: bool | None  # tool steps: did the tool succeed
    data: dict[str, Any]
    input_tokens: int
    output_tokens: int
    duration_s: float
    at: float


@dataclass(frozen=True, slots=True)
class Transcript:
    id: int
    kind: str  # task | mutation
    parent_id: int | None
    task: str
    model: str
    outcome: str
    answer: str | None
    error: str | None
    capability_id: str | None  # the capability a mutation run stored
    steps: int  # model calls
    input_tokens: int
    output_tokens: int
    config: dict[str, Any]
    started_at: float
    finished_at: float | None
    messages: list[dict[str, Any]] | None = None
    step_records: tuple[Step, ...] = ()
    children: tuple[int, ...] = field(default=())

    @property
    def duration_s(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at


class TranscriptStore(Protocol):
    """Transcripts and their steps in one store."""

    def start(
        self,
        kind: str,
        task: str,
        *,
        model: str = "",
        parent_id: int | None = None,
        config: dict[str, Any] | None = None,
    ) -> int:
        """A new transcript (outcome `running`); returns its id."""
        ...

    def add_step(
        self,
        transcript_id: int,
        position: int,
        kind: str,
        data: dict[str, Any],
        *,
        name: str = "",
        ok: bool | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        duration_s: float = 0.0,
    ) -> None:
        """One step; a `model` step also adds to the transcript's call and token counts."""
        ...

    def finish(
        self,
        transcript_id: int,
        outcome: str,
        *,
        answer: str | None = None,
        error: str | None = None,
        capability_id: str | None = None,
        messages: Sequence[dict[str, Any]] | None = None,
    ) -> None: ...

    def list(self, limit: int = 50, *, kind: str | None = None) -> list[Transcript]:
        """The most recent transcripts first, without their steps."""
        ...

    def get(self, transcript_id: int) -> Transcript:
        """One transcript with its steps, messages and children; `TranscriptNotFound`."""
        ...

    def count(self) -> int:
        """How many transcripts the store holds."""
        ...

    def close(self) -> None:
        """Nothing to release: the store owns the connection (kept for symmetry)."""
        ...
