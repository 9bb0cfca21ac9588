"""The transcript tables in SQL both engines read: one `TranscriptStore` for SQLite and
PostgreSQL, over the store's `_write` / `_read` transactions, as
`symbiont.store._capability_sql` explains. Step data, configs and messages are JSON in TEXT
columns, as in every other table of the store."""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Sequence
from typing import Any

from symbiont.store.transcripts import Step, Transcript, TranscriptNotFound

_COLUMNS = (
    "id, kind, parent_id, task, model, outcome, answer, error, capability_id, steps, "
    "input_tokens, output_tokens, config, started_at, finished_at"
)
_STEP_COLUMNS = "position, kind, name, ok, data, input_tokens, output_tokens, duration_s, at"


def _transcript(row: Sequence[Any], **more: Any) -> Transcript:
    return Transcript(
        id=int(row[0]),
        kind=row[1],
        parent_id=None if row[2] is None else int(row[2]),
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
        **more,
    )


def _step(row: Sequence[Any]) -> Step:
    position, kind, name, ok, data, input_tokens, output_tokens, duration_s, at = row
    return Step(
        position=int(position),
        kind=kind,
        name=name,
        ok=None if ok is None else bool(ok),
        data=json.loads(data),
        input_tokens=int(input_tokens),
        output_tokens=int(output_tokens),
        duration_s=float(duration_s),
        at=float(at),
    )


class SqlTranscriptStore:
    """`symbiont.store.transcripts.TranscriptStore` over a store's transactions (either engine)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.store.path)!r})"

    def close(self) -> None:
        """Nothing to release: the store owns the connection."""

    def __enter__(self) -> SqlTranscriptStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------
    def start(
        self,
        kind: str,
        task: str,
        *,
        model: str = "",
        parent_id: int | None = None,
        config: dict[str, Any] | None = None,
    ) -> int:
        params = (kind, parent_id, task, model, json.dumps(config or {}, default=str), time.time())
        row = self.store._write(
            lambda tx: tx.execute(
                "INSERT INTO agent_transcripts (kind, parent_id, task, model, config, "
                "started_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                params,
            ).fetchone(),
            "starting a transcript",
        )
        return int(row[0])

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
        step = (
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
        )

        def op(tx: Any) -> None:
            tx.execute(
                f"INSERT INTO agent_steps (transcript_id, {_STEP_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                step,
            )
            if kind == "model":
                tx.execute(
                    "UPDATE agent_transcripts SET steps = steps + 1, "
                    "input_tokens = input_tokens + ?, output_tokens = output_tokens + ? "
                    "WHERE id = ?",
                    (input_tokens, output_tokens, transcript_id),
                )

        self.store._write(op, "recording a transcript step")

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
        params = (
            outcome,
            answer,
            error,
            capability_id,
            None if messages is None else json.dumps(list(messages), default=str),
            time.time(),
            transcript_id,
        )
        self.store._write(
            lambda tx: tx.execute(
                "UPDATE agent_transcripts SET outcome = ?, answer = ?, error = ?, "
                "capability_id = ?, messages = ?, finished_at = ? WHERE id = ?",
                params,
            ),
            "finishing a transcript",
        )

    # -- reading -------------------------------------------------------------------------
    def list(self, limit: int = 50, *, kind: str | None = None) -> builtins.list[Transcript]:
        where, params = ("WHERE kind = ?", (kind,)) if kind else ("", ())
        rows = self.store._read(
            lambda tx: tx.execute(
                f"SELECT {_COLUMNS} FROM agent_transcripts {where} ORDER BY id DESC LIMIT ?",
                (*params, int(limit)),
            ).fetchall()
        )
        return [_transcript(r) for r in rows]

    def get(self, transcript_id: int) -> Transcript:
        def op(tx: Any) -> Transcript | None:
            row = tx.execute(
                f"SELECT {_COLUMNS}, messages FROM agent_transcripts WHERE id = ?",
                (transcript_id,),
            ).fetchone()
            if row is None:
                return None
            steps = tx.execute(
                f"SELECT {_STEP_COLUMNS} FROM agent_steps WHERE transcript_id = ? "
                "ORDER BY position",
                (transcript_id,),
            ).fetchall()
            children = tx.execute(
                "SELECT id FROM agent_transcripts WHERE parent_id = ? ORDER BY id",
                (transcript_id,),
            ).fetchall()
            return _transcript(
                row[:-1],
                messages=json.loads(row[-1]) if row[-1] else None,
                step_records=tuple(_step(s) for s in steps),
                children=tuple(int(c[0]) for c in children),
            )

        found = self.store._read(op)
        if found is None:
            hint = " (there are none yet: run `symbiont agent`)" if not self.count() else ""
            raise TranscriptNotFound(f"no transcript {transcript_id}{hint}")
        return found

    def count(self) -> int:
        row = self.store._read(
            lambda tx: tx.execute("SELECT count(*) FROM agent_transcripts").fetchone()
        )
        return int(row[0])
