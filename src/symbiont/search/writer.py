"""A search's store writer: each candidate's one transaction, committed from one thread, in
order, while the search goes on.

With one candidate in flight every step of a search runs after the one before: the model
request, extract and pipeline, the trial, the store. The store's step need not be one of
them: the next prompt needs only the in-memory program database. A candidate's transaction
(its revision, its search row and, for a new best, its activation) costs about 0.2 ms on a
local SQLite file, now and then a WAL checkpoint of several ms (an fsync), an fsync per
commit with synchronous=FULL, a network round trip with PostgreSQL. So the controller
updates its memory first, giving a new revision the number the store will give it (the
lineage's next: `SearchController._number`), and hands the transaction to this writer,
which commits them one at a time, in the order they came, while the next model request is
already going.

What it promises:

- One transaction per candidate, committed in order: a crash (SIGKILL included) loses at
  most the candidates not yet committed, never part of one, and the store holds a prefix of
  the search, which `resume=True` replays.
- `drain` (blocking) and `flush` (awaitable) return when every write handed over so far is
  committed; the controller flushes when a search ends, fails or is cancelled, before its
  report returns, and before it calls user code that may read the store (a `promote`
  callable).
- At most `limit` writes wait at once (`full`): a slow store holds the search back rather
  than letting it run far ahead of what is durable.
- A failed write stops the writer: the later candidates are not written (they may name the
  failed one as a parent), and `error` holds the exception for the search to raise.
- A predicted number the store did not give (another process added revisions to the same
  lineage meanwhile): the writer records the number it got (`renumbered`) and writes every
  later row with the real numbers (parents, the revision a duplicate or a migrant names, the
  active revision a promotion was judged against); the controller applies the same mapping
  to its memory once nothing is pending. A promotion whose compare-and-set lost (another
  process promoted in between) is listed in `lost`.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from symbiont.evolvable import Revision
    from symbiont.store.searches import CandidateRecord, SearchRepository

DEFAULT_LIMIT = 16  # writes waiting at once before the search waits for the store


@dataclass(slots=True)
class CandidateWrite:
    """One candidate's transaction: its row, its revision (numbered `revision.number` by the
    controller, the number the store should give it) and, for a promotion, the active number
    it was judged against (a compare-and-set)."""

    row: CandidateRecord
    revision: Revision | None = None
    promote_over: int | None = None


class CandidateWriter:
    """Commits a search's candidates from one thread, in submission order."""

    def __init__(
        self,
        repo: SearchRepository,
        search_id: int,
        function_id: int,
        *,
        limit: int = DEFAULT_LIMIT,
    ) -> None:
        self.repo = repo
        self.search_id = search_id
        self.function_id = function_id
        self.limit = max(1, limit)
        self.error: BaseException | None = None
        self.renumbered: dict[int, int] = {}  # predicted number -> the store's
        self.lost: list[int] = []  # predicted numbers whose promotion lost its compare-and-set
        self.committed = 0
        self._pending: collections.deque[concurrent.futures.Future[None]] = collections.deque()
        self._thread = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="symbiont-search-writer"
        )

    # -- the search's side (the event loop's thread) ---------------------------------------
    def submit(self, write: CandidateWrite) -> None:
        pending = self._pending
        while pending and pending[0].done():
            pending.popleft()
        pending.append(self._thread.submit(self._commit, write))

    @property
    def pending(self) -> int:
        """Writes handed over and not yet committed (or skipped after an error)."""
        return sum(not f.done() for f in self._pending)

    @property
    def full(self) -> bool:
        return len(self._pending) >= self.limit and self.pending >= self.limit

    @property
    def attention(self) -> bool:
        """Something the search must act on once nothing is pending: an error, numbers the
        store gave otherwise, a lost promotion."""
        return self.error is not None or bool(self.renumbered) or bool(self.lost)

    def drain(self) -> None:
        """Wait until every write handed over is done (blocking)."""
        if self._pending:
            concurrent.futures.wait(list(self._pending))
            self._pending.clear()

    async def flush(self) -> None:
        """Wait until every write handed over is done, without blocking the event loop (the
        writes run in order: the last one done means all are)."""
        while self._pending:
            last = self._pending[-1]
            await asyncio.wrap_future(last)
            while self._pending and self._pending[0].done():
                self._pending.popleft()

    def take(self) -> tuple[dict[int, int], list[int]]:
        """The renumbering and the lost promotions seen so far, cleared (call when drained)."""
        renumbered, lost = self.renumbered, self.lost
        self.renumbered, self.lost = {}, []
        return renumbered, lost

    def close(self) -> None:
        """Drain, then end the thread."""
        self.drain()
        self._thread.shutdown(wait=True)

    # -- the writer's thread ---------------------------------------------------------------
    def _commit(self, write: CandidateWrite) -> None:
        if self.error is not None:  # stopped: a later candidate may name the failed one
            return
        from symbiont.runtime import _to_record

        try:
            renumber = self.renumbered
            row, revision = write.row, write.revision
            if renumber:
                row.parent_number = _mapped(renumber, row.parent_number)
                if revision is None:  # a duplicate, a seed or a migrant names a revision
                    row.revision_number = _mapped(renumber, row.revision_number)
            record = None
            predicted = None
            if revision is not None:
                predicted = revision.number
                record = _to_record(self.function_id, revision, number=-1)
                if renumber:
                    record.parents = tuple(renumber.get(p, p) for p in record.parents)
            cas = None
            if write.promote_over is not None:
                cas = (renumber.get(write.promote_over, write.promote_over),)
            number, _idx, activated = self.repo.record_candidate(
                self.search_id, row, record, promote_over=cas
            )
            self.committed += 1
            if predicted is not None and number is not None and number != predicted:
                self.renumbered[predicted] = number
            if cas is not None and not activated and predicted is not None:
                self.lost.append(predicted)
        except BaseException as exc:  # kept for the search to raise; later writes stop
            self.error = exc


def _mapped(renumber: dict[int, int], number: int | None) -> int | None:
    return None if number is None else renumber.get(number, number)
