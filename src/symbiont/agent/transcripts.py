"""Agent transcripts: every step of every agent run, kept in the store.

The agents write through `store.transcripts` (a `symbiont.store.transcripts.TranscriptStore`:
SQLite or PostgreSQL, whichever store the library uses); the records and the repository's
protocol live in `symbiont.store.transcripts`, and are re-exported here for the imports
that name this module.

    with open_transcripts("run/symbiont.db") as transcripts:   # a path, URL or open store
        for t in transcripts.list(10):
            print(t.id, t.outcome)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from symbiont.store.sqlite_transcripts import TRANSCRIPT_DDL
from symbiont.store.transcripts import Step, Transcript, TranscriptNotFound, TranscriptStore

__all__ = [
    "TRANSCRIPT_DDL",
    "Step",
    "Transcript",
    "TranscriptNotFound",
    "TranscriptStore",
    "open_transcripts",
]


@contextmanager
def open_transcripts(store_or_path: Any) -> Iterator[TranscriptStore]:
    """The transcripts of a store given as an open store (left open), a SQLite path or a
    `postgresql://` URL (opened, and closed on exit)."""
    from symbiont.store import open_store

    if hasattr(store_or_path, "transcripts"):
        yield store_or_path.transcripts
        return
    store = open_store(store_or_path)
    try:
        yield store.transcripts
    finally:
        store.close()
