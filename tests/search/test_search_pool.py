"""WorkerPoolExecutor: a search's trials in confined workers forked once and reused.

Real forks and the real confinement, a real SQLite store; candidates that hang, crash, exit,
blow their memory limit or leave threads behind while others succeed; what a worker keeps
from one candidate to the next, and that nothing outlives the search.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import search_targets as t

import symbiont
from symbiont.models import ScriptedModel
from symbiont.pipeline import PipelineConfig, Target, run_pipeline
from symbiont.search import Budget, SearchConfig
from symbiont.search.executors import ExecutorError
from symbiont.search.workers import WorkerPoolExecutor


def work_body(expr: str) -> str:
    return f'```python\ndef work(n: int) -> int:\n    """Return n + 1."""\n    {expr}\n```\n'


def children() -> set[int]:
    """Live (not zombie) child processes of this one."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[1]) == os.getpid() and fields[0] != "Z":
            found.add(int(entry))
    return found


@pytest.fixture
def runtime(tmp_path: Path):
    rt = symbiont.Runtime(store=tmp_path / "s.db")
    yield rt
    rt.close()
    h = t.work.symbiont
    h.activate(0)
    del h.revisions[1:]
    h._previous.clear()
    h.revision(0).score = None
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
    target = Target.from_function(t.work, owned_names=h.owned_names)
    config = SearchConfig(metric=t.score_work, parallel=2)

    def compiled(expr: str) -> object:
        result = run_pipeline(work_body(expr), target, PipelineConfig(typecheck=False))
        assert result.candidate is not None, result.diagnostics
        return result.candidate

    before = children()
    with WorkerPoolExecutor() as pool:
        pool.open(h, config)

        def run(expr: str, timeout_s: float = 2.0):
            return pool.evaluate(
                h, compiled(expr), None, config.all_stages, maximize=True, timeout_s=timeout_s
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
    target = Target.from_function(t.work, owned_names=h.owned_names)
    config = SearchConfig(metric=t.score_work)
    good = run_pipeline(work_body("return n + 1"), target, PipelineConfig(typecheck=False))
    assert good.candidate is not None
    before = children()  # a database server of other tests may be one
    with WorkerPoolExecutor() as pool:
        pool.open(h, config)
        first = pool.evaluate(
            h, good.candidate, None, config.all_stages, maximize=True, timeout_s=2
        )
        assert first.ok and pool.forks == 1
        (pid,) = children() - before
        os.kill(pid, signal.SIGKILL)  # say, the out-of-memory killer, between two candidates
        deadline = time.monotonic() + 5
        while pid in children() and time.monotonic() < deadline:
            time.sleep(0.01)
        again = pool.evaluate(
            h, good.candidate, None, config.all_stages, maximize=True, timeout_s=2
        )
        assert again.ok, again.diagnostic
        assert pool.forks == 2


def test_bad_options_and_native_evolvables_are_refused() -> None:
    with pytest.raises(ValueError, match="workers"):
        WorkerPoolExecutor(workers=0)
    with pytest.raises(ValueError, match="recycle_after"):
        WorkerPoolExecutor(recycle_after=0)
    pool = WorkerPoolExecutor()
    with pytest.raises(ExecutorError, match="open was not called"):
        pool.evaluate(t.work.symbiont, object(), None, (), maximize=True, timeout_s=1.0)
