"""Agent transcripts: every step of every agent run, kept in the store's SQLite file.

A transcript is one run of the task agent or of the mutation agent (a mutation run points
at the task run that started it). Its steps are written as they happen — the retrieval, each
model call (the messages added since the previous call, the reply, tool calls, tokens,
latency) and each tool call (arguments, result, duration) — so a run that crashes or is
interrupted still leaves everything up to that point, with the outcome `running`.

The tables live next to the library's in the same database file and are created here,
idempotently (`IF NOT EXISTS`); `TRANSCRIPT_DDL` is also the store's migration 3, so every
store file has them.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from symbiont.agent._transcript_ddl import TRANSCRIPT_DDL
from symbiont.errors import StoreError, SymbiontError
from symbiont.store._connection import connect, retry_busy

__all__ = [
    "TRANSCRIPT_DDL",
    "Step",
    "Transcript",
    "TranscriptNotFound",
    "TranscriptStore",
    "ensure_transcript_schema",
]

T = TypeVar("T")


class TranscriptNotFound(SymbiontError, LookupError):
    """No transcript has the given id."""


def ensure_transcript_schema(conn: sqlite3.Connection) -> None:
    """Create the transcript tables if they are missing (one transaction; safe to repeat)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in TRANSCRIPT_DDL:
            conn.execute(statement)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@dataclass(frozen=True, slots=True)
class Step:
    position: int
    kind: str
    name: str
    ok: bool | None
    data: dict[str, Any]
    input_tokens: int
    output_tokens: int
    duration_s: float
    at: float


@dataclass(frozen=True, slots=True)
class Transcript:
    id: int
    kind: str
    parent_id: int | None
    task: str
    model: str
    outcome: str
    answer: str | None
    error: str | None
    capability_id: str | None
    steps: int
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


_COLUMNS = (
    "id, kind, parent_id, task, model, outcome, answer, error, capability_id, steps, "
    "input_tokens, output_tokens, config, started_at, finished_at"
)


class TranscriptStore:
    """Reads and writes transcripts in the SQLite file at `path` (the library's store file)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = connect(self.path)
            retry_busy(lambda: ensure_transcript_schema(conn))
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the transcript tables in {self.path}: {exc}") from exc
        self._conn = conn

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            try:
                return retry_busy(lambda: self._conn.execute(sql, params))
            except sqlite3.Error as exc:
                raise StoreError(f"transcript store {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> TranscriptStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------------
    def start(
        self,
        kind: str,
        task: str,
        *,
        model: str = "",
        parent_id: int | None = None,
        config: dict[str, Any] | None = None,
    ) -> int:
        cur = self._exec(
            "INSERT INTO agent_transcripts (kind, parent_id, task, model, config, started_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (kind, parent_id, task, model, json.dumps(config or {}, default=str), time.time()),
        )
        return int(cur.lastrowid or 0)

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
        self._exec(
            "INSERT INTO agent_steps (transcript_id, position, kind, name, ok, data, input_tokens, "
            "output_tokens, duration_s, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                transcript_id,
                position,
                kind,
                name,
                None if ok is None else int(ok),
                json.dumps(data, ensure_ascii=False, default=str),
                input_tokens,
                output_tokens,
                duration_s,
                time.time(),
            ),
        )
        if kind == "model":
            self._exec(
                "UPDATE agent_transcripts SET steps = steps + 1, input_tokens = input_tokens + ?, "
                "output_tokens = output_tokens + ? WHERE id = ?",
                (input_tokens, output_tokens, transcript_id),
            )

    def finish(
        self,
        transcript_id: int,
        outcome: str,
        *,
        answer: str | None = None,
        error: str | None = None,
        capability_id: str | None = None,
        messages: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        self._exec(
            "UPDATE agent_transcripts SET outcome = ?, answer = ?, error = ?, capability_id = ?, "
            "messages = ?, finished_at = ? WHERE id = ?",
            (
                outcome,
                answer,
                error,
                capability_id,
                None if messages is None else json.dumps(list(messages), default=str),
                time.time(),
                transcript_id,
            ),
        )

    # -- reading -----------------------------------------------------------------------------
    def list(self, limit: int = 50, *, kind: str | None = None) -> list[Transcript]:
        """The most recent transcripts first (without their steps)."""
        where, params = ("WHERE kind = ?", [kind]) if kind else ("", [])
        rows = self._exec(
            f"SELECT {_COLUMNS} FROM agent_transcripts {where} ORDER BY id DESC LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [self._row(r) for r in rows]

    def get(self, transcript_id: int) -> Transcript:
        row = self._exec(
            f"SELECT {_COLUMNS}, messages FROM agent_transcripts WHERE id = ?", (transcript_id,)
        ).fetchone()
        if row is None:
            (count,) = self._exec("SELECT count(*) FROM agent_transcripts").fetchone()
            hint = " (there are none yet: run `symbiont agent`)" if not count else ""
            raise TranscriptNotFound(f"no transcript {transcript_id}{hint}")
        steps = tuple(
            Step(
                position=p,
                kind=k,
                name=n,
                ok=None if ok is None else bool(ok),
                data=json.loads(d),
                input_tokens=i,
                output_tokens=o,
                duration_s=s,
                at=a,
            )
            for p, k, n, ok, d, i, o, s, a in self._exec(
                "SELECT position, kind, name, ok, data, input_tokens, output_tokens, duration_s, at "
                "FROM agent_steps WHERE transcript_id = ? ORDER BY position",
                (transcript_id,),
            ).fetchall()
        )
        children = tuple(
            r[0]
            for r in self._exec(
                "SELECT id FROM agent_transcripts WHERE parent_id = ? ORDER BY id",
                (transcript_id,),
            ).fetchall()
        )
        base = self._row(row[:-1])
        messages = json.loads(row[-1]) if row[-1] else None
        return Transcript(
            **{
                **{f: getattr(base, f) for f in Transcript.__dataclass_fields__},
                "messages": messages,
                "step_records": steps,
                "children": children,
            }
        )

    @staticmethod
    def _row(row: Sequence[Any]) -> Transcript:
        return Transcript(
            id=int(row[0]),
            kind=row[1],
            parent_id=row[2],
            task=row[3],
            model=row[4],
            outcome=row[5],
            answer=row[6],
            error=row[7],
            capability_id=row[8],
            steps=int(row[9]),
            input_tokens=int(row[10]),
            output_tokens=int(row[11]),
            config=json.loads(row[12] or "{}"),
            started_at=float(row[13]),
            finished_at=None if row[14] is None else float(row[14]),
        )
