"""The pipeline in several threads at once, as `search` runs it (`asyncio.to_thread`, several
candidates in flight): CPython 3.11's `ast.parse` shares one depth counter between threads
(gh-106905), so without symbiont.pyast's lock a valid candidate failed now and then with
`SystemError: AST constructor recursion depth mismatch` (seen in CI's circle-packing test)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator

import pipeline_targets as pt
import pytest

from symbiont import pyast
from symbiont.pipeline import PipelineConfig, Target, extract_and_parse, run_pipeline

# A candidate deep and long enough that a thread switch lands inside its parse.
BODY = "".join(f"    state = State(state.count + ({i} * k) // 2, state.name)\n" for i in range(120))
GOOD = f"```python\ndef step(state: State, k: int = 3) -> State:\n{BODY}    return state\n```"


class _Finalized:
    """Garbage whose finalizer runs Python code: the collector runs it in the middle of
    whatever allocates, a parse included, and that is where the interpreter switches
    threads."""

    def __del__(self) -> None:
        sum(range(20))


@pytest.fixture
def eager_switching() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def test_candidates_parse_in_four_threads_at_once(eager_switching: None) -> None:
    target = Target.from_function(pt.step)
    config = PipelineConfig(typecheck=False)
    failures: list[str] = []

    def work() -> None:
        for _ in range(40):
            junk = [_Finalized() for _ in range(40)]
            for item in junk:
                item.cycle = item  # type: ignore[attr-defined]  # collected by the GC, mid-parse
            del junk
            try:
                extracted = extract_and_parse(GOOD, target)
                if extracted is None or extracted.tree is None:
                    failures.append("extract_and_parse found no tree")
                    continue
                result = run_pipeline(GOOD, target, config, extracted=extracted)
            except SystemError as exc:  # what 3.11 raised without the lock
                failures.append(repr(exc))
                continue
            if not result.ok:
                failures.append(f"{result.stage}: {result.diagnostics}")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_a_child_forked_while_another_thread_parses_can_parse() -> None:
    """A trial is forked from the event loop while a worker thread may be inside a parse,
    holding the lock: the child must not wait for a thread it does not have."""
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with pyast._lock:
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    try:
        pid = os.fork()
        if pid == 0:  # the child: parse, exit 0 on success; the parent kills it if it hangs
            try:
                ok = pyast.parse("x = 1").body[0].targets[0].id == "x"
            finally:
                os._exit(0 if ok else 1)
        deadline_s = 10.0
        waited = 0.0
        status = None
        while waited < deadline_s:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            threading.Event().wait(0.05)
            waited += 0.05
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung on the parse lock")
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        release.set()
        holder.join()
