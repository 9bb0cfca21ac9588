"""Agent transcripts on a PostgreSQL store.

`PgTranscriptStore(store)` runs the same SQL as the SQLite repository
(`symbiont.store._transcript_sql`) in transactions of the store's `PgDatabase`. Ids come
from the identity column (`RETURNING id`), so agents on many machines writing into one
store never collide; a step and the counters it adds to are one transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from symbiont.store._transcript_sql import SqlTranscriptStore

if TYPE_CHECKING:
    from symbiont.store.transcripts import TranscriptStore

__all__ = ["PgTranscriptStore"]


class PgTranscriptStore(SqlTranscriptStore):
    """The transcript tables of one PostgreSQL store (`symbiont.store.pg.evolvables.PostgresStore`)."""

    def __init__(self, store: Any) -> None:
        super().__init__(store)


if TYPE_CHECKING:

    def _implements_the_protocol(repo: PgTranscriptStore) -> TranscriptStore:
        return repo
