"""WorkerPoolExecutor on the event loop: a worker's descriptors stay in the pool's epoll set
from one candidate to the next (no reader registrations per candidate), leave it when the
worker goes, and nothing is left open when the pool closes.

Real forks and confinement, a real SQLite store, a real event loop.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import search_targets as t
import test_search_pool
from test_search_pool import children, open_fds, work_body, work_candidate

from symbiont.models import ScriptedModel
from symbiont.search import Budget, SearchConfig
from symbiont.search.workers import WorkerPoolExecutor

runtime = test_search_pool.runtime  # the fixture: a store; `work` put back afterwards


def test_one_pool_serves_two_searches_and_leaves_no_descriptor_open(runtime) -> None:
    def search(pool: WorkerPoolExecutor, first: int) -> None:
        replies = [work_body(f"return n + 1 + {k} - {k}") for k in range(first, first + 20)]
        report = runtime.search_sync(
            t.work, ScriptedModel(replies), metric=t.score_work, budget=Budget(evaluations=6),
            islands=1, executor=pool,
        )  # fmt: skip
        assert report.evaluations == 6, report.summary()
        assert not report.rejections, report.summary()

    with WorkerPoolExecutor() as warm_up:  # what the process opens once (confinement's files)
        search(warm_up, 0)
    before_fds, before_children = open_fds(), children()
    pool = WorkerPoolExecutor()
    for first in (100, 200):  # a new event loop for each search: the pool follows it
        search(pool, first)
    assert pool.served == 10  # five candidates a search, the seed in a forked trial of its own
    assert open_fds() == before_fds  # no epoll set, pipe or socket left behind
    assert children() == before_children


def test_pools_one_after_another_on_one_event_loop(runtime) -> None:
    # A closed pool's epoll set leaves the loop before it is closed: a later pool's set may
    # get the same descriptor number, which the loop must not think it watches already.
    async def searches() -> list[tuple[int, int]]:
        done = []
        for first in (300, 400, 500):
            replies = [work_body(f"return n + 1 + {k} - {k}") for k in range(first, first + 20)]
            with WorkerPoolExecutor() as pool:
                report = await runtime.search(
                    t.work, ScriptedModel(replies), metric=t.score_work,
                    budget=Budget(evaluations=4), islands=1, executor=pool,
                )  # fmt: skip
            done.append((report.evaluations, sum(report.rejections.values())))
            await asyncio.sleep(0)  # the loop runs what the closing pool left it to do
        return done

    assert asyncio.run(searches()) == [(4, 0)] * 3  # every candidate judged, none timed out


def test_a_worker_that_died_while_idle_leaves_the_watch_and_is_replaced(runtime) -> None:
    h = t.work.symbiont
    config = SearchConfig(metric=t.score_work)
    good = work_candidate()
    before = children()

    async def scenario(pool: WorkerPoolExecutor) -> None:
        def run():  # type: ignore[no-untyped-def]
            return pool.evaluate_async(h, good, None, config.all_stages, maximize=True, timeout_s=5)

        first = await run()
        assert first.ok and pool.forks == 1
        (pid,) = children() - before
        watcher = pool._watcher
        assert watcher is not None
        kept = set(watcher.owners)
        assert len(kept) >= 3  # channel, stdout, stderr (and the exit, with a pidfd)
        second = await run()  # the same worker, its descriptors still watched
        assert second.ok and pool.forks == 1 and set(watcher.owners) == kept
        os.kill(pid, signal.SIGKILL)  # say, the out-of-memory killer, between two candidates
        deadline = time.monotonic() + 5
        while set(watcher.owners) & kept and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # the loop sees the death and stops watching it
        assert not set(watcher.owners) & kept
        third = await run()
        assert third.ok, third.diagnostic
        assert pool.forks == 2 and set(watcher.owners)

    fds = open_fds()
    with WorkerPoolExecutor() as pool:
        pool.open(h, config)
        asyncio.run(scenario(pool))
    assert open_fds() <= fds
    assert children() == before
