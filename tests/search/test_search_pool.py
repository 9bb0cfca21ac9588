"""WorkerPoolExecutor: a search's trials in confined workers forked once and reused.

Real forks and the real confinement, a real SQLite store; candidates that hang, crash, exit,
blow their memory limit or leave threads behind while others succeed; what a worker keeps
from one candidate to the next; workers replaced off the search's path (successor forked
ahead, the old one stopped on the pool's thread); and that nothing outlives the search.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import search_targets as t

import symbiont
from symbiont import trial
from symbiont.models import ScriptedModel
from symbiont.pipeline import PipelineConfig, Target, run_pipeline
from symbiont.search import Budget, SearchConfig, workers
from symbiont.search.executors import ExecutorError
from symbiont.search.workers import WorkerPoolExecutor
from symbiont.testing import reset


def work_body(expr: str) -> str:
    return f'```python\ndef work(n: int) -> int:\n    """Return n + 1."""\n    {expr}\n```\n'


def work_candidate(expr: str = "return n + 1") -> Any:
    """A candidate for `t.work` returning `expr`, through the pipeline (no type check)."""
    target = Target.from_function(t.work, owned_names=t.work.symbiont.owned_names)
    result = run_pipeline(work_body(expr), target, PipelineConfig(typecheck=False))
    assert result.candidate is not None, result.diagnostics
    return result.candidate


def children(*, zombies: bool = False) -> set[int]:
    """Live (not zombie) child processes of this one; with `zombies`, the exited ones
    nobody reaped instead."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[1]) == os.getpid() and (fields[0] == "Z") == zombies:
            found.add(int(entry))
    return found


def open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


@pytest.fixture
def runtime(tmp_path: Path):
    rt = symbiont.Runtime(store=tmp_path / "s.db")
    yield rt
    rt.close()
    reset(t.work)
    t._SEEN.clear()


def test_a_search_runs_its_candidates_in_one_reused_worker_and_promotes_the_best(runtime) -> None:
    before = children()
    pool = WorkerPoolExecutor()
    model = ScriptedModel([work_body(f"return n + {k}") for k in (3, 2, 1, 7, 0, 1 * 1)])
    report = runtime.search_sync(
        t.work, model, metric=t.score_work, check=t.must_be_confined, executor=pool,
        budget=Budget(evaluations=6), islands=1,
    )  # fmt: skip
    assert report.evaluations == 6 and report.rejections["check_failed"] == 0
    assert report.best_score == 1.0 and t.work(4) == 5  # n + 1 won and is live
    # the seed ran in an ordinary trial; the five candidates in one worker, forked once
    assert pool.forks == 1 and pool.served == 5
    assert children() == before  # the worker ended with the search


def test_hangs_crashes_exits_and_memory_bombs_each_cost_one_worker_while_others_succeed(
    runtime,
) -> None:
    pool = WorkerPoolExecutor()
    model = ScriptedModel(
        [
            work_body("return n + 2"),  # wrong, but the worker lives on
            work_body("while True:\n        pass"),  # killed at the 2 s timeout
            work_body("return -11"),  # the harness segfaults
            work_body("return -3"),  # the harness exits the process
            work_body("return len(bytearray(1 << 40))"),  # over its memory limit
            work_body("return 1 + n"),  # correct: a fresh worker judges it
        ]
    )
    report = runtime.search_sync(
        t.work, model, metric=t.score_work_or_fail_hard, executor=pool,
        budget=Budget(evaluations=7), islands=1,
    )  # fmt: skip
    assert report.evaluations == 7
    assert report.best_score == 1.0 and t.work(4) == 5
    assert report.rejections["timeout"] == 1
    assert report.rejections["crash"] == 1
    assert report.rejections["exit"] == 1
    assert report.rejections["memory"] + report.rejections["exception"] == 1
    # a worker per failure, and one for the first candidates
    assert pool.forks == 5 and pool.served == 6
    stored = {r.number: r for r in runtime.revisions(t.work)}
    crash = next(r for r in stored.values() if "return -11" in r.source)
    assert "SIGSEGV" in crash.diagnostics[0].message
    # faulthandler's report came through the worker's stderr, with the harness's frame
    assert "Segmentation fault" in (crash.diagnostics[0].detail or "")
    assert "score_work_or_fail_hard" in (crash.diagnostics[0].detail or "")


def test_parallel_candidates_get_a_worker_each(runtime) -> None:
    pool = WorkerPoolExecutor()
    model = ScriptedModel([work_body(f"return n + {k} - {k}") for k in range(2, 14)])
    report = runtime.search_sync(
        t.work, model, metric=t.score_work, executor=pool, budget=Budget(evaluations=13),
        parallel=2, islands=1,
    )  # fmt: skip
    assert report.evaluations == 13
    assert 1 <= pool.forks <= 2 and pool.served == 12


def test_fewer_workers_than_candidates_in_flight_take_turns(runtime) -> None:
    pool = WorkerPoolExecutor(workers=1)
    model = ScriptedModel([work_body(f"return n + {k} - {k - 1}") for k in range(2, 10)])
    report = runtime.search_sync(
        t.work, model, metric=t.score_work, executor=pool, budget=Budget(evaluations=9),
        parallel=3, islands=1,
    )  # fmt: skip
    assert report.evaluations == 9 and report.best_score == 1.0
    assert pool.forks == 1 and pool.served == 8


def test_a_worker_keeps_what_candidates_leave_behind_until_it_is_replaced(runtime) -> None:
    # The documented trade: candidates in one worker share its memory. The metric counts
    # the candidates its process scored before; every candidate here is equally good, so
    # the score says which worker judged it and after how many others.
    pool = WorkerPoolExecutor(recycle_after=3)
    model = ScriptedModel([work_body(f"return n + {k} - {k - 1}") for k in range(2, 9)])
    report = runtime.search_sync(
        t.work, model, metric=t.score_and_remember, executor=pool,
        budget=Budget(evaluations=8), islands=1, promote="never",
    )  # fmt: skip
    scores = sorted(
        round((r.score - 1.0) * 1000) for r in runtime.revisions(t.work) if r.number > 0
    )
    # seven candidates: workers of three, three and one; each starts from what the live
    # process had (the seed's ordinary trial scored in a child, so the live list is empty)
    assert scores == [1, 1, 1, 2, 2, 3, 3]
    assert pool.forks == 3 and report.evaluations == 8


class RecordingPool(WorkerPoolExecutor):
    """A pool that notes, on the event loop's thread and in order, the forks it asks for
    (on demand, or ahead of a worker's last candidate) and each candidate's end with its
    worker's pid; and, from the forker thread, the pid of each worker it forks."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.events: list[tuple[str, int]] = []
        self.forked: list[int] = []
        self.loop_threads: set[str] = set()

    def _fork(self, handle: Any, limits: Any) -> Any:
        worker = super()._fork(handle, limits)
        self.forked.append(worker.pid)
        return worker

    def _forked(self, handle: Any, limits: Any) -> Any:
        self.events.append(("fork on demand", 0))
        return super()._forked(handle, limits)

    def _fork_ahead(self, handle: Any, limits: Any) -> None:
        self.events.append(("fork ahead", 0))
        super()._fork_ahead(handle, limits)

    def _conclude(
        self, handle: Any, candidate: Any, wait: Any, outcome: str, started: float
    ) -> tuple[Any, bool]:
        self.events.append(("done", wait.worker.pid))
        self.loop_threads.add(threading.current_thread().name)
        return super()._conclude(handle, candidate, wait, outcome, started)


@pytest.fixture
def stops(monkeypatch: pytest.MonkeyPatch) -> dict[int, list[str]]:
    """The threads each worker's `stop` was called on, by the worker's pid."""
    seen: dict[int, list[str]] = {}
    stop = workers._Worker.stop

    def noted(worker: workers._Worker) -> None:
        seen.setdefault(worker.pid, []).append(threading.current_thread().name)
        stop(worker)

    monkeypatch.setattr(workers._Worker, "stop", noted)
    return seen


def test_a_recycled_worker_is_replaced_ahead_and_stopped_off_the_loop(runtime, stops) -> None:
    # recycle_after=3, twelve candidates one at a time: four workers serve three each. Each
    # successor's fork is asked for as its predecessor's last candidate goes out (before
    # that candidate ends), so no candidate after a recycle waits for a fork of its own;
    # the predecessor is stopped on the pool's forker thread, not on the event loop's.
    def search(pool: WorkerPoolExecutor, first: int, evaluations: int) -> None:
        replies = [work_body(f"return n + 1 + {k} - {k}") for k in range(first, first + 20)]
        report = runtime.search_sync(
            t.work, ScriptedModel(replies), metric=t.score_work, executor=pool,
            budget=Budget(evaluations=evaluations), islands=1, promote="never",
        )  # fmt: skip
        assert report.evaluations == evaluations and not report.rejections, report.summary()

    with WorkerPoolExecutor() as warm_up:  # what the process opens once (confinement's files)
        search(warm_up, 0, 2)
    before, before_fds, registered = children(), open_fds(), set(trial._OPEN_FDS)
    pool = RecordingPool(recycle_after=3)
    search(pool, 100, 13)  # the seed in a trial of its own, then twelve candidates

    done = [pid for kind, pid in pool.events if kind == "done"]
    serving = list(dict.fromkeys(done))
    assert [done.count(pid) for pid in serving] == [3, 3, 3, 3]  # recycled after three
    expected = [("fork on demand", 0)]  # the first worker only
    for pid in serving:
        expected += [("done", pid)] * 2 + [("fork ahead", 0), ("done", pid)]
    assert pool.events == expected
    # the workers served in the order forked; the fifth, forked ahead of a thirteenth
    # candidate that never came, was stopped unused
    assert pool.forked[:4] == serving and len(pool.forked) == 5 == pool.forks
    assert pool.served == 12
    for pid in serving:  # each recycled worker: stopped once, on the forker thread
        assert [name.startswith("symbiont-pool-fork") for name in stops[pid]] == [True]
    assert pool.forked[4] in stops
    assert not {name for names in stops.values() for name in names} & pool.loop_threads
    # nothing outlives the search: no process, no zombie, no descriptor
    assert children() == before and not children(zombies=True)
    assert open_fds() == before_fds and registered == trial._OPEN_FDS


def test_parallel_candidates_with_recycling_leave_nothing_behind(runtime) -> None:
    before, before_zombies = children(), children(zombies=True)
    pool = RecordingPool(recycle_after=3)
    model = ScriptedModel([work_body(f"return n + 2 + {k} - {k} - 1") for k in range(30)])
    report = runtime.search_sync(
        t.work, model, metric=t.score_work, executor=pool, budget=Budget(evaluations=15),
        parallel=2, islands=1, promote="never",
    )  # fmt: skip
    assert report.evaluations == 15 and not report.rejections, report.summary()
    done = [pid for kind, pid in pool.events if kind == "done"]
    assert pool.served == len(done) == 14
    assert max(done.count(pid) for pid in set(done)) <= 3  # no worker past recycle_after
    assert len(set(done)) >= 5 and pool.forks == len(pool.forked) >= len(set(done))
    assert children() == before and children(zombies=True) <= before_zombies


class HeldForkPool(WorkerPoolExecutor):
    """A pool whose `held`-th fork is held (forked, not yet handed to the pool) until
    `release` is set; `holding` is set once it is."""

    def __init__(self, held: int, **options: Any) -> None:
        super().__init__(**options)
        self.held = held
        self.holding = threading.Event()
        self.release = threading.Event()
        self.forked: list[int] = []

    def _fork(self, handle: Any, limits: Any) -> Any:
        worker = super()._fork(handle, limits)
        self.forked.append(worker.pid)
        if len(self.forked) == self.held:
            self.holding.set()
            self.release.wait(10)
        return worker


@pytest.mark.parametrize("path", ["blocking", "event loop"])
def test_a_close_while_a_successor_is_being_forked_leaves_nothing_behind(
    runtime, path: str
) -> None:
    h = t.work.symbiont
    config = SearchConfig(metric=t.score_work)
    good = work_candidate()

    def run(pool: WorkerPoolExecutor) -> Any:
        args = (h, good, None, config.all_stages)
        if path == "blocking":
            return pool.evaluate(*args, maximize=True, timeout_s=5)
        return asyncio.run(pool.evaluate_async(*args, maximize=True, timeout_s=5))

    with WorkerPoolExecutor() as warm_up:  # what the process opens once (confinement's files)
        warm_up.open(h, config)
        assert run(warm_up).ok
    before, before_fds, registered = children(), open_fds(), set(trial._OPEN_FDS)
    # recycle_after=1: the first candidate's worker has its successor (the second fork)
    # forked ahead, and that fork is held
    pool = HeldForkPool(2, recycle_after=1)
    pool.open(h, config)
    try:
        # The worker's last candidate: its successor is forked ahead, and the worker, done,
        # is to be stopped on the forker thread, after that fork.
        first = run(pool)
        assert first.ok, first.diagnostic
        assert pool.holding.wait(10)  # the successor is forked, and not in the pool yet
        closing = threading.Thread(target=pool.close)
        closing.start()
        deadline = time.monotonic() + 10
        while not pool._closed and time.monotonic() < deadline:
            time.sleep(0.001)
        assert pool._closed  # close is under way, waiting for the forker thread
        pool.release.set()  # the successor comes only now, to a closed pool
        closing.join(10)
        assert not closing.is_alive()
    finally:
        pool.release.set()
        pool.close()
    assert pool.forks == 2 and len(pool.forked) == 2
    assert children() == before and not children(zombies=True)
    assert open_fds() == before_fds and registered == trial._OPEN_FDS


def test_a_candidate_that_leaves_a_thread_running_gets_its_worker_replaced(runtime) -> None:
    pool = WorkerPoolExecutor()
    model = ScriptedModel(
        [work_body("return n + 2"), work_body("return -7"), work_body("return n + 1")]
    )
    report = runtime.search_sync(
        t.work, model, metric=t.score_work_or_fail_hard, executor=pool,
        budget=Budget(evaluations=4), islands=1,
    )  # fmt: skip
    assert report.evaluations == 4 and report.best_score == 1.0
    # the first worker judged n + 2 and -7, then ended for the thread -7 left behind
    assert pool.forks == 2 and pool.served == 3


def test_each_candidate_gets_its_own_output_tail(runtime) -> None:
    pool = WorkerPoolExecutor()
    model = ScriptedModel(
        [
            work_body("print('first says hello')\n    raise ValueError('one')"),
            work_body("print('second says hello')\n    raise ValueError('two')"),
        ]
    )
    runtime.search_sync(
        t.work, model, metric=t.score_work, executor=pool, budget=Budget(evaluations=3),
        islands=1,
    )  # fmt: skip
    assert pool.forks == 1  # an exception does not cost the worker
    failed = [r for r in runtime.revisions(t.work) if r.number > 0]
    details = {r.diagnostics[0].message.split(":")[-1].strip(): r.diagnostics[0].detail or ""
               for r in failed}  # fmt: skip
    assert "first says hello" in details["one"] and "second" not in details["one"]
    assert "second says hello" in details["two"] and "first" not in details["two"]


def test_the_blocking_evaluate_runs_candidates_too(runtime) -> None:
    # The Executor protocol's blocking call (from threads), as opposed to the event-loop
    # path a search takes: a good candidate, a hanging one, a good one after it.
    h = t.work.symbiont
    config = SearchConfig(metric=t.score_work, parallel=2)
    before = children()
    with WorkerPoolExecutor() as pool:
        pool.open(h, config)

        def run(expr: str, timeout_s: float = 2.0):
            return pool.evaluate(
                h, work_candidate(expr), None, config.all_stages, maximize=True, timeout_s=timeout_s
            )

        with ThreadPoolExecutor(2) as threads:
            good, slow = threads.map(run, ["return n + 1", "while True:\n        pass"])
        assert good.ok and good.score is not None and good.score.value == 1.0
        assert not slow.ok and slow.kind == "timeout"
        after = run("return n + 3 - 2")
        assert after.ok and after.score is not None and after.score.value == 1.0
        assert pool.forks == 2  # two at once; the killed one was not replaced until needed
        assert pool.served == 3
    assert children() == before  # closing the pool ended its workers


def test_a_worker_that_died_while_idle_is_replaced_not_blamed(runtime) -> None:
    h = t.work.symbiont
    config = SearchConfig(metric=t.score_work)
    good = work_candidate()
    before = children()  # a database server of other tests may be one
    with WorkerPoolExecutor() as pool:
        pool.open(h, config)
        first = pool.evaluate(h, good, None, config.all_stages, maximize=True, timeout_s=2)
        assert first.ok and pool.forks == 1
        (pid,) = children() - before
        os.kill(pid, signal.SIGKILL)  # say, the out-of-memory killer, between two candidates
        deadline = time.monotonic() + 5
        while pid in children() and time.monotonic() < deadline:
            time.sleep(0.01)
        again = pool.evaluate(h, good, None, config.all_stages, maximize=True, timeout_s=2)
        assert again.ok, again.diagnostic
        assert pool.forks == 2


@pytest.mark.parametrize("max_age", [0.6, None], ids=["aged-out", "no-age-limit"])
def test_a_worker_older_than_recycle_after_s_is_replaced_by_one_that_sees_the_program_now(
    runtime, stops, max_age: float | None
) -> None:
    """`recycle_after_s` bounds how stale a worker's view of the live program gets: a worker
    found older than that when a candidate comes is stopped (on the forker thread), and the
    candidate runs in a new worker forked from the program as it is now. The metric counts,
    in a list of the program's, the candidates its process scored; the live program adds
    ten to that list between the second and the third candidate."""
    h = t.work.symbiont
    config = SearchConfig(metric=t.score_and_remember)
    good = work_candidate()
    before = children()
    pool = WorkerPoolExecutor(recycle_after_s=max_age)
    pool.open(h, config)
    try:

        def score() -> int:
            result = pool.evaluate(h, good, None, config.all_stages, maximize=True, timeout_s=5)
            assert result.ok and result.score is not None, result.diagnostic
            return round((result.score.value - 1.0) * 1000)

        assert [score(), score()] == [1, 2]  # one worker, well within its age
        t._SEEN.extend([1] * 10)  # the live program moves on
        time.sleep(0.8)
        third = score()
    finally:
        pool.close()
    on_forker = [
        pid
        for pid, threads in stops.items()
        if all(name.startswith("symbiont-pool-fork") for name in threads)
    ]
    if max_age is None:
        assert third == 3 and pool.forks == 1 and not on_forker  # the old worker, old view
    else:
        assert third == 11 and pool.forks == 2  # a new worker: the live list, then its own
        assert len(on_forker) == 1  # the aged-out worker, stopped off the caller's thread
    assert children() == before and not children(zombies=True)


def test_a_candidate_cancelled_while_its_worker_is_forked_leaves_that_worker_to_the_next(
    runtime,
) -> None:
    """A search that gives up on a candidate (cancelled) while the candidate waits for its
    worker's fork: the worker, once forked, joins the idle ones, and the next candidate runs
    on it instead of forking another (before, it sat unused until `close`)."""
    h = t.work.symbiont
    config = SearchConfig(metric=t.score_work)
    good = work_candidate()
    before = children()
    pool = HeldForkPool(1)  # the first worker's fork is held
    pool.open(h, config)

    async def scenario() -> Any:
        first = asyncio.ensure_future(
            pool.evaluate_async(h, good, None, config.all_stages, maximize=True, timeout_s=5)
        )
        while not pool.holding.is_set():
            await asyncio.sleep(0.001)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        pool.release.set()
        deadline = time.monotonic() + 10
        while not pool._idle and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        assert pool._idle, "the worker forked for the cancelled candidate was not kept"
        return await pool.evaluate_async(
            h, good, None, config.all_stages, maximize=True, timeout_s=5
        )

    try:
        second = asyncio.run(scenario())
    finally:
        pool.release.set()
        pool.close()
    assert second.ok, second.diagnostic
    assert pool.forks == 1 and len(pool.forked) == 1 and pool.served == 1
    assert children() == before and not children(zombies=True)


def test_bad_options_and_native_evolvables_are_refused() -> None:
    with pytest.raises(ValueError, match="workers"):
        WorkerPoolExecutor(workers=0)
    with pytest.raises(ValueError, match="recycle_after"):
        WorkerPoolExecutor(recycle_after=0)
    for age in (0, -1.5, True, "60"):
        with pytest.raises(ValueError, match="recycle_after_s"):
            WorkerPoolExecutor(recycle_after_s=age)  # type: ignore[arg-type]
    pool = WorkerPoolExecutor()
    with pytest.raises(ExecutorError, match="open was not called"):
        pool.evaluate(t.work.symbiont, object(), None, (), maximize=True, timeout_s=1.0)


def test_a_closed_pool_refuses_a_candidate_clearly_and_starts_nothing(runtime) -> None:
    """After `close` (a search ended), a candidate handed to the pool is refused with an
    ExecutorError that says so, not an assertion, and no worker is forked for it; `open`
    makes the pool usable again."""
    h = t.work.symbiont
    config = SearchConfig(metric=t.score_work)
    good = work_candidate()
    before = children()
    pool = WorkerPoolExecutor()
    pool.open(h, config)
    first = pool.evaluate(h, good, None, config.all_stages, maximize=True, timeout_s=2)
    assert first.ok and pool.forks == 1
    pool.close()
    with pytest.raises(ExecutorError, match="was closed"):
        pool.evaluate(h, good, None, config.all_stages, maximize=True, timeout_s=2)

    async def run_async():  # type: ignore[no-untyped-def]
        return await pool.evaluate_async(
            h, good, None, config.all_stages, maximize=True, timeout_s=2
        )

    with pytest.raises(ExecutorError, match="was closed"):
        asyncio.run(run_async())
    assert pool.forks == 1 and children() == before
    pool.open(h, config)  # usable again
    again = pool.evaluate(h, good, None, config.all_stages, maximize=True, timeout_s=2)
    assert again.ok and pool.forks == 2
    pool.close()
    assert children() == before
