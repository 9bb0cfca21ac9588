"""A search's store writes (`symbiont.search.writer`): each candidate's one transaction is
committed by the search's writer thread while the search goes on. What is pending is
committed before the report returns (and when the search is cancelled or fails); a failed
write stops the writes after it; numbers the store gives otherwise (another process adding
to the lineage meanwhile) are followed; a SIGKILL while writes wait leaves every committed
candidate whole, none in part, and the search resumes from them."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import search_targets as t

import symbiont
import symbiont.search.writer as writer_module
from symbiont.errors import StoreError
from symbiont.models import ScriptedModel
from symbiont.search import Budget
from symbiont.store import EvolvableStore, RevisionRecord, open_store
from symbiont.store.searches import CandidateBatch, CandidateRecord, SearchRepository

SCRIPT = Path(__file__).parent / "search_script.py"


def peak_body(c: float) -> str:
    return (
        "```python\ndef peak(x: float) -> float:\n"
        '    """A value to maximise at x = 3: candidates change the constants."""\n'
        f"    return -((x - {c!r}) ** 2)\n```\n"
    )


def bodies(n: int) -> list[str]:
    """n candidates, each better than the one before (every one a new best, promoted)."""
    return [peak_body(1.0 + 2.0 * (k + 1) / (n + 1)) for k in range(n)]


@pytest.fixture
def runtime(peak_runtime: symbiont.Runtime) -> symbiont.Runtime:
    return peak_runtime  # tests/search/conftest.py


def slow_writes(
    monkeypatch: pytest.MonkeyPatch, delay: float = 0.03, fail_at: int | None = None
) -> list[str]:
    """Every candidate's write takes `delay` seconds more (the `fail_at`-th candidate's
    raises a StoreError instead, each time it is tried); returns the names of the threads
    that made them."""
    threads: list[str] = []
    seen: list[object] = []  # the candidates written or tried, in order (held: ids stay)
    record = CandidateBatch.record

    def slow(self, candidate, *args, **kwargs):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread().name)
        place = next((i for i, c in enumerate(seen) if c is candidate), None)
        if place is None:
            place = len(seen)
            seen.append(candidate)
        time.sleep(delay)
        if fail_at is not None and place + 1 == fail_at:
            raise StoreError("the disk is full (a test says so)")
        return record(self, candidate, *args, **kwargs)

    monkeypatch.setattr(CandidateBatch, "record", slow)
    return threads


def committed(store: EvolvableStore, search_id: int) -> list:
    return store.searches.candidates(search_id)


def assert_whole(store: EvolvableStore, search_id: int) -> None:
    """Every row names revisions that exist; every revision the search made has its row
    (nothing written in part); rows are numbered without gaps; each revision's parents
    are its row's parent."""
    (fn,) = store.find_functions("search_targets.peak")
    revisions = {r.number: r for r in store.revisions_of(fn.id)}
    rows = store.searches.candidates(search_id)
    assert [r.idx for r in rows] == list(range(len(rows)))
    made = {}
    for r in rows:
        for number in (r.revision_number, r.parent_number):
            assert number is None or number in revisions, (r, sorted(revisions))
        if r.revision_number is not None and r.kind not in (
            "seed",
            "migrant",
            "duplicate",
            "near_duplicate",
        ):
            made[r.revision_number] = r
    # (a "manual" revision is another process's: the search never makes one)
    assert set(made) == {n for n, r in revisions.items() if r.origin not in ("default", "manual")}
    for number, r in made.items():
        assert tuple(revisions[number].parents) == (r.parent_number,)
        # a parent was recorded before its child was made, and is the search's (or the seed)
        assert r.parent_number is not None and r.parent_number < number
        assert revisions[r.parent_number].origin != "manual"
        if r.evaluated and r.score is not None:
            assert revisions[number].score == pytest.approx(r.score)


def test_the_report_returns_once_every_candidate_is_committed(runtime, monkeypatch) -> None:
    threads = slow_writes(monkeypatch)
    seen: list[tuple[int, int]] = []  # (candidates the search holds, rows committed)
    reader = open_store(runtime.store.path)

    def progress(report) -> None:  # type: ignore[no-untyped-def]
        seen.append((report.candidates, len(committed(reader, report.search_id))))

    report = runtime.search_sync(
        t.peak, ScriptedModel(bodies(6)), metric=t.score_peak, budget=Budget(evaluations=7),
        islands=1, novelty_threshold=None, on_progress=progress,
    )  # fmt: skip
    # the search went on while its writes waited: it did not wait for each commit
    assert any(held + 1 > rows for held, rows in seen), seen
    assert threads and all(name.startswith("symbiont-search-writer") for name in threads)
    # ... and all of them are in the store when the report returns
    rows = committed(reader, report.search_id)
    assert len(rows) == report.candidates + 1 == 7  # the seed's row and six candidates
    assert [r.kind for r in rows] == ["seed"] + ["evaluated"] * 6
    assert reader.searches.get(report.search_id).status == "finished"
    assert report.best is not None and report.promoted[-1] == report.best.number
    (fn,) = reader.find_functions("search_targets.peak")
    assert (
        reader.get_function(fn.id).active_number
        == report.best.number
        == t.peak.symbiont.active.number
    )
    assert_whole(reader, report.search_id)
    reader.close()


def test_a_cancelled_search_commits_what_it_holds_first(runtime, monkeypatch) -> None:
    slow_writes(monkeypatch, delay=0.05)
    held: list[int] = []
    reader = open_store(runtime.store.path)

    async def main() -> None:
        task: asyncio.Task | None = None

        def progress(report) -> None:  # type: ignore[no-untyped-def]
            held.append(report.candidates)
            if report.candidates == 4 and task is not None:
                task.cancel()

        task = asyncio.create_task(
            runtime.search(
                t.peak,
                ScriptedModel(bodies(20)),
                metric=t.score_peak,
                budget=Budget(evaluations=21),
                islands=1,
                novelty_threshold=None,
                on_progress=progress,
            )
        )
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    (search,) = reader.searches.recent(limit=1)
    rows = committed(reader, search.id)
    assert held[-1] == 4 and len(rows) == 1 + 4  # the seed and every candidate it held
    assert search.status == "running"  # cancelled: resumable, not finished
    assert_whole(reader, search.id)
    reader.close()


def test_a_failed_write_fails_the_search_and_nothing_after_it_is_written(
    runtime, monkeypatch
) -> None:
    slow_writes(monkeypatch, delay=0.0, fail_at=4)  # the seed, two candidates, then a failure
    with pytest.raises(StoreError, match="disk is full"):
        runtime.search_sync(
            t.peak, ScriptedModel(bodies(10)), metric=t.score_peak,
            budget=Budget(evaluations=11), islands=1, novelty_threshold=None,
        )  # fmt: skip
    reader = open_store(runtime.store.path)
    (search,) = reader.searches.recent(limit=1)
    rows = committed(reader, search.id)
    assert [r.kind for r in rows] == ["seed", "evaluated", "evaluated"]
    assert_whole(reader, search.id)  # no revision of the failed candidate or a later one
    # The failed write was a new best, live before its commit: the store's active revision
    # (the second candidate's) is live again, not a body the store does not hold.
    (fn,) = reader.find_functions("search_targets.peak")
    stored = {r.number: r for r in reader.revisions_of(fn.id)}
    active = reader.get_function(fn.id).active_number
    assert active == rows[-1].revision_number
    assert t.peak.symbiont.active.number == active
    assert t.peak.symbiont.active.source == stored[active].source
    assert t.peak(3.0) == pytest.approx(-((3.0 - (1.0 + 2.0 * 2 / 11)) ** 2))
    reader.close()


@pytest.mark.parametrize("parallel", [1, 2])
def test_revisions_another_process_adds_meanwhile_move_the_search_s_numbers(
    runtime, parallel: int
) -> None:
    """The search numbers a candidate before the store commits it; another process adding
    to the lineage in between takes that number, and the store gives the next one: the
    rows, the parents, the promotions and this process's memory follow the store."""
    other = open_store(runtime.store.path)
    fn = None
    added: list[int] = []

    def progress(report) -> None:  # type: ignore[no-untyped-def]
        nonlocal fn
        if report.candidates in (2, 5):
            (fn,) = other.find_functions("search_targets.peak")
            source = f"def peak(x: float) -> float:\n    return {len(added)}.0\n"
            record = RevisionRecord(
                function_id=fn.id, number=-1, source=source, reply="", parents=(),
                origin="manual", model="", status="accepted", stage="manual",
                diagnostics=[], score=None, metrics={}, content_hash=f"other-{len(added)}",
            )  # fmt: skip
            added.append(other.add_revision(record).number)

    report = runtime.search_sync(
        t.peak, ScriptedModel(bodies(8)), metric=t.score_peak, budget=Budget(evaluations=9),
        islands=1, novelty_threshold=None, parallel=parallel, on_progress=progress,
    )  # fmt: skip
    assert len(added) == 2 and fn is not None
    stored = {r.number: r for r in other.revisions_of(fn.id)}
    for number in added:  # the other process's revisions are untouched
        assert stored[number].origin == "manual"
    h = t.peak.symbiont
    mine = [r for r in h.revisions if r.number != 0]
    assert len(mine) == 8 and not {r.number for r in mine} & set(added)
    for rev in mine:  # this process's numbers are the store's
        assert stored[rev.number].content_hash == rev.content_hash
        assert tuple(stored[rev.number].parents) == tuple(rev.parents)
    assert report.best is not None and stored[report.best.number].score == report.best_score
    assert other.get_function(fn.id).active_number == h.active.number == report.best.number
    assert all(stored[n].status == "accepted" for n in report.promoted)
    # a later candidate's parent (and its revision's) is the earlier one's stored number
    rows = [r for r in committed(other, report.search_id) if r.kind == "evaluated"]
    assert [r.revision_number for r in rows] == [r.number for r in mine]
    if parallel == 1:  # each candidate is the best so far: the next one's parent
        assert [r.parent_number for r in rows[1:]] == [r.number for r in mine[:-1]]
    # the other's revisions took numbers among the search's, which the search had given
    # its candidates before the store did
    numbers = sorted({r.number for r in mine} | set(added))
    assert numbers == list(range(1, numbers[-1] + 1))
    assert max(added) < numbers[-1]
    # a program database that resumes from the store agrees with this one
    resumed = runtime.search_sync(
        t.peak, ScriptedModel(bodies(8)[-1:]), metric=t.score_peak,
        budget=Budget(evaluations=10), islands=1, novelty_threshold=None, resume=True,
    )  # fmt: skip
    assert resumed.resumed and resumed.best is not None
    assert resumed.best_score == pytest.approx(report.best_score)
    assert_whole(other, report.search_id)
    other.close()


def test_a_search_killed_while_writes_wait_keeps_every_committed_candidate_whole(
    tmp_path: Path,
) -> None:
    """SIGKILL while the search's writes wait for the store (another process holds its
    write lock): the candidates the process held but had not committed are lost, every
    committed one is whole, none is in part, and the resumed search continues from them."""
    location = str(tmp_path / "store.db")
    reader = open_store(location)  # the schema exists before the search starts
    env = {**os.environ, "SEARCH_PROGRESS": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), location, "10000", "0", "11"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()  # the search's progress, as it prints it
    assert proc.stdout is not None
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    lock = sqlite3.connect(location, isolation_level=None)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            started = reader.searches.recent(limit=1)
            if started and sum(c.evaluated for c in committed(reader, started[0].id)) >= 4:
                break
        assert proc.poll() is None, proc.communicate()
        lock.execute("BEGIN IMMEDIATE")  # the store's write lock: the search's writes wait
        (search,) = reader.searches.recent(limit=1)
        rows = committed(reader, search.id)
        done = sum(r.kind not in ("seed", "migrant") for r in rows)
        held = 0
        while held < done + 3:  # the search goes on: three candidates more than committed
            line = lines.get(timeout=60)
            assert line, proc.communicate()
            held = json.loads(line)["candidates"]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if lock.in_transaction:
            lock.execute("ROLLBACK")
        lock.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    after = committed(reader, search.id)
    assert after == rows  # what was held and not committed is lost; nothing else
    assert_whole(reader, search.id)
    done_evaluations = sum(r.evaluated for r in rows)

    resumed = subprocess.run(
        [sys.executable, str(SCRIPT), location, str(done_evaluations + 4), "1", "12"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert result["resumed"] is True and result["evaluations"] == done_evaluations + 4
    final = committed(reader, search.id)
    assert final[: len(rows)] == rows
    assert_whole(reader, search.id)
    reader.close()


def count_transactions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of candidates each of the search's store transactions wrote."""
    sizes: list[int] = []
    record_batch = SearchRepository.record_batch

    def counted(self, search_id, fill):  # type: ignore[no-untyped-def]
        def counting(batch):  # type: ignore[no-untyped-def]
            before = len(written)
            result = fill(batch)
            sizes.append(len(written) - before)
            return result

        return record_batch(self, search_id, counting)

    written: list[object] = []
    record = CandidateBatch.record

    def noted(self, candidate, *args, **kwargs):  # type: ignore[no-untyped-def]
        written.append(candidate)
        return record(self, candidate, *args, **kwargs)

    monkeypatch.setattr(SearchRepository, "record_batch", counted)
    monkeypatch.setattr(CandidateBatch, "record", noted)
    return sizes


def test_candidates_that_come_within_the_window_share_one_commit(runtime, monkeypatch) -> None:
    """Group commit: the writer holds a write for its window and commits every write that
    came meanwhile in one transaction; the report still returns with all of them
    committed, each whole, in order."""
    monkeypatch.setattr(writer_module, "DEFAULT_WINDOW_S", 30.0)  # the whole search
    sizes = count_transactions(monkeypatch)
    report = runtime.search_sync(
        t.peak, ScriptedModel(bodies(12)), metric=t.score_peak, budget=Budget(evaluations=13),
        islands=1, novelty_threshold=None,
    )  # fmt: skip
    reader = open_store(runtime.store.path)
    rows = committed(reader, report.search_id)
    assert [r.kind for r in rows] == ["seed"] + ["evaluated"] * 12
    assert sum(sizes) == 13 and max(sizes) > 1, sizes  # more than one candidate per commit
    assert len(sizes) < 13
    assert_whole(reader, report.search_id)
    assert report.best is not None
    (fn,) = reader.find_functions("search_targets.peak")
    assert reader.get_function(fn.id).active_number == report.best.number
    # every promotion is in the activation history, in order, though grouped
    searched = [x.number for x in reader.activations(fn.id) if x.reason == "search"]
    assert searched == report.promoted and len(searched) == 12
    reader.close()


def test_a_failed_candidate_in_a_group_leaves_the_ones_before_it_committed(
    runtime, monkeypatch
) -> None:
    """A group whose fourth candidate fails is rolled back whole, then written again one
    transaction per candidate: the three before it are committed, it and the ones after it
    are not, and the search raises the store's error."""
    monkeypatch.setattr(writer_module, "DEFAULT_WINDOW_S", 30.0)  # one group
    sizes = count_transactions(monkeypatch)
    slow_writes(monkeypatch, delay=0.0, fail_at=4)
    with pytest.raises(StoreError, match="disk is full"):
        runtime.search_sync(
            t.peak, ScriptedModel(bodies(8)), metric=t.score_peak,
            budget=Budget(evaluations=9), islands=1, novelty_threshold=None,
        )  # fmt: skip
    assert sizes[:3] == [1, 1, 1]  # the group failed (not counted); then one at a time
    reader = open_store(runtime.store.path)
    (search,) = reader.searches.recent(limit=1)
    rows = committed(reader, search.id)
    assert [r.kind for r in rows] == ["seed", "evaluated", "evaluated"]
    assert_whole(reader, search.id)
    (fn,) = reader.find_functions("search_targets.peak")
    active = reader.get_function(fn.id).active_number
    assert active == rows[-1].revision_number == t.peak.symbiont.active.number
    reader.close()


def test_a_flush_does_not_wait_for_the_window(runtime) -> None:
    """`drain` commits what is held at once: with an hour's window it returns, and the
    rows are in the store."""
    store = runtime.store
    fn = store.ensure_function("peak", "fp", "def peak(x: float) -> float")
    search_id = store.searches.start(fn.id, {})
    w = writer_module.CandidateWriter(store.searches, search_id, fn.id, window_s=3600.0)
    for k in range(3):
        w.submit(writer_module.CandidateWrite(CandidateRecord(0, "duplicate", k + 1)))
    done = threading.Thread(target=w.close)
    done.start()
    done.join(timeout=60)
    assert not done.is_alive()
    assert [r.revision_number for r in committed(store, search_id)] == [1, 2, 3]
    assert (w.committed, w.commits) == (3, 1)
