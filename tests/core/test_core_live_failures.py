"""Live failures (issue 9, item 7): exceptions the live function raises — the declared body
r0 included — are kept as a bounded ring in memory and in the store, with the revision they
hit, a bounded repr of the call's arguments and the traceback; exceptions of asyncio tasks
count when capture is on."""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import failure_targets as t

import symbiont
from symbiont.models import ScriptedModel
from symbiont.store import open_store

TARGETS_FILE = str(Path(t.__file__).resolve())


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def runtime(store_path: Path) -> Iterator[symbiont.Runtime]:
    rt = symbiont.Runtime(store=store_path, failure_ring=3)
    yield rt
    rt.close()


def raise_ratio(rt: symbiont.Runtime, items: list[int]) -> None:
    with pytest.raises(ZeroDivisionError), rt.capture_failures():
        t.caller(items)


def test_a_failure_of_the_declared_body_keeps_revision_arguments_and_traceback(
    runtime: symbiont.Runtime, store_path: Path
) -> None:
    big = list(range(10_000))
    raise_ratio(runtime, big)
    [failure] = runtime.take_failures(t.ratio)
    assert failure.revision == 0 and failure.function == t.ratio.symbiont.key
    # The arguments: named, bounded (10,000 items are not spelled out).
    assert failure.args.startswith("items=[0, 1, 2") and "scale=0.0" in failure.args
    assert "9999" not in failure.args and len(failure.args) <= 1000
    # The whole traceback, with the caller's frame and the declared body's line.
    assert "Traceback (most recent call last)" in failure.traceback
    assert "in caller" in failure.traceback and "in ratio" in failure.traceback
    assert "return sum(items) / scale" in failure.traceback and TARGETS_FILE in failure.traceback
    assert failure.traceback.rstrip().endswith("ZeroDivisionError: float division by zero")
    assert "ZeroDivisionError" in failure.diagnostic.message
    assert runtime.take_failures(t.ratio) == []  # taken

    with open_store(store_path) as store:
        fid = store.lineages(t.ratio.symbiont.key)[0].id
        [stored] = store.failures(fid)
    assert stored.revision_number == 0 and stored.args == failure.args
    assert stored.traceback == failure.traceback and stored.kind == "exception"
    assert "ZeroDivisionError" in stored.message


def test_failures_are_a_bounded_ring_in_memory_and_in_the_store(
    runtime: symbiont.Runtime, store_path: Path
) -> None:
    for n in range(1, 8):
        raise_ratio(runtime, [n])
    kept = runtime.take_failures(t.ratio)
    assert [f.args.split(",")[0] for f in kept] == ["items=[5]", "items=[6]", "items=[7]"]
    with open_store(store_path) as store:
        fid = store.lineages(t.ratio.symbiont.key)[0].id
        assert [f.args.split(",")[0] for f in store.failures(fid)] == [
            "items=[5]", "items=[6]", "items=[7]"
        ]  # fmt: skip


def test_the_innermost_evolvable_gets_the_failure_and_it_is_recorded_once(
    runtime: symbiont.Runtime,
) -> None:
    with pytest.raises(KeyError), runtime.capture_failures(), runtime.capture_failures():
        t.pick({"a": 1}, "b")  # two hooks see it, one failure is recorded
    [failure] = runtime.take_failures()
    assert failure.function == t.pick.symbiont.key
    assert failure.args == "table={'a': 1}, name='b'"


def test_a_repr_that_raises_does_not_hide_the_failure(runtime: symbiont.Runtime) -> None:
    class Nasty(dict[str, int]):
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    with pytest.raises(KeyError), runtime.capture_failures():
        t.pick(Nasty(), "x")
    [failure] = runtime.take_failures(t.pick)
    assert failure.args.startswith("table=<Nasty") and failure.args.endswith("name='x'")


def test_exceptions_of_asyncio_tasks_are_recorded_under_capture_failures(
    runtime: symbiont.Runtime,
) -> None:
    async def work(n: int) -> float:
        await asyncio.sleep(0)
        return t.ratio([n], 0.0)

    async def main() -> None:
        with runtime.capture_failures():
            task = asyncio.create_task(work(41))
            # Nobody awaits the task's result inside the block: it still counts.
            await asyncio.wait([task])
        assert isinstance(task.exception(), ZeroDivisionError)

    asyncio.run(main())
    [failure] = runtime.take_failures(t.ratio)
    assert failure.args == "items=[41], scale=0.0" and "in work" in failure.traceback


def test_a_never_retrieved_task_exception_is_recorded_with_capture_uncaught(
    store_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def work() -> float:
        return t.ratio([7], 0.0)

    async def main() -> None:
        asyncio.get_running_loop().create_task(work())  # fire and forget
        await asyncio.sleep(0.01)

    rt = symbiont.Runtime(store=store_path, capture_uncaught=True)
    try:
        asyncio.run(main())
        gc.collect()  # the task, and with it asyncio's "never retrieved" report, goes away
        [failure] = rt.take_failures(t.ratio)
        assert failure.args == "items=[7], scale=0.0"
    finally:
        rt.close()
    # asyncio's own report is not swallowed.
    assert "Task exception was never retrieved" in caplog.text


def test_a_failure_of_a_promoted_revision_names_that_revision(
    runtime: symbiont.Runtime, store_path: Path
) -> None:
    reply = "```python\ndef shifted(x: float) -> float:\n    return 1.0 / (x - 1.0)\n```"

    def check(fn: object) -> None:
        assert t.shifted(2.0) == 1.0

    report = runtime.evolve_sync(t.shifted, ScriptedModel([reply]), check=check)
    assert report.accepted is not None
    promoted = report.accepted.number
    with pytest.raises(ZeroDivisionError), runtime.capture_failures():
        t.shifted(1.0)
    [failure] = runtime.take_failures(t.shifted)
    assert failure.revision == promoted != 0 and failure.args == "x=1.0"
    assert "ZeroDivisionError" in failure.traceback
    with open_store(store_path) as store:
        fid = store.lineages(t.shifted.symbiont.key)[0].id
        assert [f.revision_number for f in store.failures(fid)] == [promoted]
