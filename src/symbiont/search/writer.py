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

Commits are grouped: the writer waits up to `window_s` (5 ms) after the oldest write it
holds, then commits every write it holds in one transaction (a group commit, as a database
server's log writer does). With one candidate in flight every 1.5 ms that is three or four
candidates per commit: the transaction's fixed cost (BEGIN, the lineage's and the search's
locks, COMMIT and its WAL frames) is paid once for them, and the writer wakes once. It costs
the candidates of that window when the process is killed; a flush does not wait for it.

What it promises:

- Every candidate whole, committed in order: a crash (SIGKILL included) loses at most the
  candidates not yet committed (those of the last `window_s`, or more when the store is
  slow), never part of one, and the store holds a prefix of the search, which
  `resume=True` replays.
- `drain` (blocking) and `flush` (awaitable) return when every write handed over so far is
  committed; the controller flushes when a search ends, fails or is cancelled, before its
  report returns, and before it calls user code that may read the store (a `promote`
  callable).
- At most `limit` writes wait at once (`full`): a slow store holds the search back rather
  than letting it run far ahead of what is durable.
- A failed write stops the writer: the later candidates are not written (they may name the
  failed one as a parent), and `error` holds the exception for the search to raise. When a
  group fails, its candidates are written again one transaction each, so the ones before
  the failing one are committed, as they would have been without grouping.
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
import dataclasses
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from symbiont.evolvable import Revision
    from symbiont.store.searches import CandidateBatch, CandidateRecord, SearchRepository

DEFAULT_LIMIT = 16  # writes waiting at once before the search waits for the store
DEFAULT_WINDOW_S = 0.005  # how long the oldest write waits for others to share its commit


@dataclass(slots=True)
class CandidateWrite:
    """One candidate's transaction: its row, its revision (numbered `revision.number` by the
    controller, the number the store should give it) and, for a promotion, the active number
    it was judged against (a compare-and-set)."""

    row: CandidateRecord
    revision: Revision | None = None
    promote_over: int | None = None


_Queued = tuple[CandidateWrite, "concurrent.futures.Future[None]", int]  # and its sequence


class CandidateWriter:
    """Commits a search's candidates from one thread, in submission order, grouped."""

    def __init__(
        self,
        repo: SearchRepository,
        search_id: int,
        function_id: int,
        *,
        limit: int = DEFAULT_LIMIT,
        window_s: float | None = None,
    ) -> None:
        self.repo = repo
        self.search_id = search_id
        self.function_id = function_id
        self.limit = max(1, limit)
        self.window_s = max(0.0, DEFAULT_WINDOW_S if window_s is None else window_s)
        self.error: BaseException | None = None
        self.renumbered: dict[int, int] = {}  # predicted number -> the store's
        self.lost: list[int] = []  # predicted numbers whose promotion lost its compare-and-set
        self.committed = 0  # candidates committed
        self.commits = 0  # transactions that committed them
        # The search's side: one future per write handed over, done once it is committed.
        self._pending: collections.deque[concurrent.futures.Future[None]] = collections.deque()
        # Shared with the writer's thread, under `_cond`:
        self._cond = threading.Condition()
        self._queue: collections.deque[_Queued] = collections.deque()  # not yet taken
        self._queued_at = 0.0  # when the oldest write in `_queue` came
        self._submitted = 0  # writes handed over so far (their sequence numbers)
        self._urgent_upto = 0  # writes up to this sequence are flushed: no window
        self._running = False  # a `_run` job is queued or running on the thread
        # A pool of one thread rather than a bare thread: the interpreter waits for its job
        # at exit, so what is queued is committed even if the search was never closed.
        self._thread = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="symbiont-search-writer"
        )

    # -- the search's side (the event loop's thread) ---------------------------------------
    def submit(self, write: CandidateWrite) -> None:
        pending = self._pending
        while pending and pending[0].done():
            pending.popleft()
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        pending.append(future)
        with self._cond:
            self._submitted += 1
            if not self._queue:
                self._queued_at = time.monotonic()
            self._queue.append((write, future, self._submitted))
            if len(self._queue) >= self.limit:
                self._cond.notify()
            if not self._running:
                self._running = True
                self._thread.submit(self._run)

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

    def _hurry(self) -> None:
        """Commit what is handed over now, without its window."""
        with self._cond:
            self._urgent_upto = self._submitted
            self._cond.notify()

    def drain(self) -> None:
        """Wait until every write handed over is done (blocking)."""
        if self._pending:
            self._hurry()
            concurrent.futures.wait(list(self._pending))
            self._pending.clear()

    async def flush(self) -> None:
        """Wait until every write handed over is done, without blocking the event loop (the
        writes run in order: the last one done means all are)."""
        if self._pending:
            self._hurry()
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
    def _run(self) -> None:
        """Take the writes queued (after the oldest one's window, unless they are flushed or
        a full group waits) and commit them together; until the queue is empty."""
        while True:
            with self._cond:
                queue = self._queue
                while queue and len(queue) < self.limit and queue[0][2] > self._urgent_upto:
                    left = self._queued_at + self.window_s - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                if not queue:
                    self._running = False
                    return
                group = list(queue)
                queue.clear()
            self._commit(group)

    def _commit(self, group: list[_Queued]) -> None:
        if self.error is None:  # after an error: stopped, a later candidate may name it
            try:
                renumbered, lost = self.repo.record_batch(
                    self.search_id, lambda batch: self._fill(batch, group)
                )
            except BaseException as exc:
                if len(group) > 1:  # one at a time: the ones before the failing one commit
                    for one in group:
                        self._commit([one])
                    return
                self.error = exc  # kept for the search to raise; later writes stop
            else:
                self.renumbered, self.lost = renumbered, self.lost + lost
                self.committed += len(group)
                self.commits += 1
        for _write, future, _seq in group:
            future.set_result(None)

    def _fill(
        self, batch: CandidateBatch, group: list[_Queued]
    ) -> tuple[dict[int, int], list[int]]:
        """Record `group` in `batch`; the renumbering (the writer's so far, and what this
        group adds) and the promotions that lost. Changes nothing outside the transaction:
        a store that stays busy runs it again."""
        from symbiont.runtime import _to_record

        renumber, lost = dict(self.renumbered), []
        for write, _future, _seq in group:
            row, revision = write.row, write.revision
            if renumber:
                row = dataclasses.replace(row, parent_number=_mapped(renumber, row.parent_number))
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
            number, _idx, activated = batch.record(row, record, promote_over=cas)
            if predicted is not None and number is not None and number != predicted:
                renumber[predicted] = number
            if cas is not None and not activated and predicted is not None:
                lost.append(predicted)
        return renumber, lost


def _mapped(renumber: dict[int, int], number: int | None) -> int | None:
    return None if number is None else renumber.get(number, number)
