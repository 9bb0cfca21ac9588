"""The forked trial runner, with real forks: every misbehaviour ends as a diagnostic."""

from __future__ import annotations

import asyncio
import ctypes
import io
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from trial_helpers import is_gone, make_candidate, my_children, open_fds

from symbiont import trial as trial_mod
from symbiont.diagnostics import Diagnostic
from symbiont.trial import TrialLimits, TrialResult, run_forked

QUICK = TrialLimits(timeout_s=5.0)

SHARED_STATE: dict[str, Any] = {"counter": 41, "items": [1, 2, 3]}


def _pid_from(tail: str) -> int:
    return int(tail.split("PID=")[1].split()[0])


def _failed(result: TrialResult, kind: str, mode: str = "confined") -> Diagnostic:
    assert not result.ok, result
    assert result.value is None
    assert result.mode == mode
    diag = result.diagnostic
    assert diag is not None
    assert diag.stage == "trial"
    assert diag.kind == kind, diag.render()
    return diag


# -- values ---------------------------------------------------------------------------------


def test_value_round_trips_as_json() -> None:
    value = {"score": 0.25, "names": ["a", "β", "😀"], "n": 3, "flag": True, "none": None}
    result = run_forked(lambda: value, QUICK)
    assert result.ok and result.diagnostic is None
    assert result.value == value
    assert result.mode == "confined"
    assert result.duration_s > 0


def test_tuples_come_back_as_lists_and_nan_survives() -> None:
    result = run_forked(lambda: {"pair": (1, 2), "nan": float("nan")}, QUICK)
    assert result.ok
    assert result.value["pair"] == [1, 2]
    assert result.value["nan"] != result.value["nan"]


def test_large_value_within_limit_crosses_the_pipe() -> None:
    # Bigger than a pipe buffer (64 KiB): the parent must read while the child writes.
    big = "y" * 500_000
    result = run_forked(lambda: big, QUICK)
    assert result.ok
    assert result.value == big


def test_job_sees_live_state_and_cannot_change_the_parent() -> None:
    def job() -> int:
        seen = SHARED_STATE["counter"]
        SHARED_STATE["counter"] = -1
        SHARED_STATE["items"].append(99)
        return seen

    result = run_forked(job, QUICK)
    assert result.ok and result.value == 41
    assert SHARED_STATE == {"counter": 41, "items": [1, 2, 3]}


def test_code_swap_in_the_child_leaves_the_parent_function_alone() -> None:
    def triple(x: int) -> int:
        return 3 * x

    candidate = make_candidate(
        "def triple(x):\n    return 4 * x\n", "triple", "<symbiont t.triple rev2>"
    )
    original = triple.__code__

    def job() -> int:
        triple.__code__ = candidate.__code__
        return triple(5)

    result = run_forked(job, QUICK)
    assert result.ok and result.value == 20
    assert triple.__code__ is original
    assert triple(5) == 15


def test_non_json_value_is_invalid_result() -> None:
    diag = _failed(run_forked(lambda: {1, 2, 3}, QUICK), "invalid_result")
    assert "set" in diag.message and "JSON" in diag.message
    diag = _failed(run_forked(object, QUICK), "invalid_result")
    assert "object" in diag.message


def test_too_large_value_is_invalid_result() -> None:
    limits = TrialLimits(timeout_s=5.0, max_result_bytes=1000)
    diag = _failed(run_forked(lambda: "z" * 5000, limits), "invalid_result")
    assert "1000" in diag.message


# -- exceptions -------------------------------------------------------------------------------

CANDIDATE = """\
def total(xs):
    acc = 0
    for x in xs:
        acc += 10 // x
    return acc
"""


def _check_total(fn: Any) -> Any:  # plays the user's check: a frame outside the candidate
    return fn([1, 2, 0])


def test_exception_traceback_is_trimmed_to_the_candidate() -> None:
    total = make_candidate(CANDIDATE, "total")
    result = run_forked(lambda: _check_total(total), QUICK)
    diag = _failed(result, "exception")
    assert diag.message == "ZeroDivisionError: integer division or modulo by zero"
    assert diag.line == 4
    assert diag.excerpt is not None
    assert "acc += 10 // x" in diag.excerpt and "^" in diag.excerpt
    assert diag.col is not None and diag.col > 1
    assert diag.detail is not None
    assert '"<symbiont test rev1>", line 4, in total' in diag.detail
    assert __file__ not in diag.detail  # the check's frame was trimmed away
    assert "trial.py" not in diag.detail
    assert diag.detail.rstrip().endswith("ZeroDivisionError: integer division or modulo by zero")


def test_failing_assertion_in_check_keeps_innermost_frames() -> None:
    total = make_candidate(CANDIDATE, "total", "<symbiont test rev9>")

    def check() -> None:
        got = total([5, 10])
        assert got == 7, f"expected 7, got {got}"

    diag = _failed(run_forked(check, QUICK), "exception")
    assert diag.message.startswith("AssertionError: expected 7, got 3")  # pytest may add more
    assert diag.line is None  # no candidate frame: the candidate returned normally
    assert diag.detail is not None
    assert "assert got == 7" in diag.detail
    assert "in check" in diag.detail


def test_stdout_and_stderr_tails_are_returned() -> None:
    def job() -> int:
        print("to stdout")
        print("to stderr", file=sys.stderr)
        os.write(1, b"raw fd write\n")
        return 1

    result = run_forked(job, QUICK)
    assert result.ok
    assert result.stdout_tail == "to stdout\nraw fd write\n"
    assert result.stderr_tail == "to stderr\n"


def test_output_before_an_exception_is_kept() -> None:
    def job() -> None:
        print("step 1 done")
        raise KeyError("missing")

    result = run_forked(job, QUICK)
    diag = _failed(result, "exception")
    assert diag.message == "KeyError: 'missing'"
    assert "step 1 done" in result.stdout_tail


# -- hangs, crashes, bombs, exits --------------------------------------------------------------


def test_hang_times_out_and_child_is_reaped() -> None:
    def job() -> None:
        print(f"PID={os.getpid()}", flush=True)
        while True:
            pass

    started = time.monotonic()
    result = run_forked(job, TrialLimits(timeout_s=0.5))
    elapsed = time.monotonic() - started
    diag = _failed(result, "timeout")
    assert "0.5 s" in diag.message
    assert 0.5 <= elapsed < 5.0
    assert is_gone(_pid_from(result.stdout_tail))


def test_sleeping_child_that_ignores_sigterm_is_still_killed() -> None:
    def job() -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(60)

    _failed(run_forked(job, TrialLimits(timeout_s=0.3)), "timeout")


# Tests of processes the job starts use the unconfined fork: a confined trial cannot start
# any (tests/trial/test_trial_confined.py shows that).


def test_grandchild_holding_the_pipes_does_not_delay_or_survive() -> None:
    def job() -> int:
        # The grandchild inherits stdout/stderr: an EOF-based wait would hang for 30 s.
        proc = subprocess.Popen(["sleep", "30"])
        return proc.pid

    started = time.monotonic()
    result = run_forked(job, QUICK, confine=False)
    assert result.ok
    assert time.monotonic() - started < 5.0
    grandchild = result.value
    deadline = time.monotonic() + 5
    while not is_gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert is_gone(grandchild)


def test_segfault_is_a_crash_naming_sigsegv() -> None:
    crash = make_candidate(
        "import ctypes\n\ndef crash():\n    return ctypes.string_at(0)\n",
        "crash",
        "<symbiont test.crash rev1>",
    )
    result = run_forked(crash, QUICK)
    diag = _failed(result, "crash")
    assert "SIGSEGV" in diag.message
    assert "Segmentation fault" in result.stderr_tail  # faulthandler's report
    assert diag.line == 4  # found in faulthandler's stack
    assert diag.detail is not None and "<symbiont test.crash rev1>" in diag.detail


def test_abort_is_a_crash_naming_sigabrt() -> None:
    diag = _failed(run_forked(os.abort, QUICK), "crash")
    assert "SIGABRT" in diag.message


def test_default_action_of_signals_is_restored_in_the_child() -> None:
    hits: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: hits.append(1))
    try:
        result = run_forked(lambda: os.kill(os.getpid(), signal.SIGUSR1), QUICK)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    diag = _failed(result, "crash")
    assert "SIGUSR1" in diag.message
    assert hits == []


def test_huge_allocation_is_memory() -> None:
    diag = _failed(run_forked(lambda: b"x" * (1 << 40), QUICK), "memory")
    assert diag.message.startswith("MemoryError")


def test_growing_list_is_memory_and_parent_is_fine() -> None:
    def job() -> int:
        hoard: list[int] = []
        while True:
            hoard.append(len(hoard))

    diag = _failed(run_forked(job, TrialLimits(timeout_s=30, memory_bytes=96 << 20)), "memory")
    assert diag.message.startswith("MemoryError")
    assert len(list(range(100_000))) == 100_000  # the parent allocates as before


def test_growing_chunks_are_memory() -> None:
    def job() -> None:
        chunks = []
        while True:
            chunks.append(bytearray(1 << 20))

    _failed(run_forked(job, TrialLimits(timeout_s=30, memory_bytes=64 << 20)), "memory")


def test_infinite_recursion_is_recursion() -> None:
    rec = make_candidate(
        "def rec(n):\n    return rec(n + 1) + 1\n", "rec", "<symbiont test.rec rev1>"
    )
    diag = _failed(run_forked(lambda: rec(0), QUICK), "recursion")
    assert diag.message.startswith("RecursionError: maximum recursion depth exceeded")
    assert diag.line == 2
    assert diag.detail is not None
    assert "Previous line repeated" in diag.detail
    assert len(diag.detail) < 5000


def test_recursion_through_c_without_a_limit_is_a_diagnostic() -> None:
    def job() -> Any:
        sys.setrecursionlimit(10**8)

        def down(n: int) -> Any:
            return list(map(down, [n + 1]))  # every level goes through C: real stack frames

        return down(0)

    result = run_forked(job, TrialLimits(timeout_s=30))
    diag = result.diagnostic
    assert not result.ok and diag is not None
    assert diag.kind in ("recursion", "crash", "memory"), diag.render()


def test_sys_exit_is_exit() -> None:
    diag = _failed(run_forked(lambda: sys.exit(3), QUICK), "exit")
    assert diag.message == "SystemExit: 3"


@pytest.mark.parametrize("code", [0, 5])
def test_os_exit_is_exit_with_its_code(code: int) -> None:
    diag = _failed(run_forked(lambda: os._exit(code), QUICK), "exit")
    assert f"code {code}" in diag.message


# -- output volume -----------------------------------------------------------------------------


def test_ten_megabytes_of_output_keep_only_the_tails() -> None:
    def job() -> str:
        for _ in range(100):
            sys.stdout.write("o" * 100_000)
        sys.stdout.write("\nSTDOUT-END\n")
        os.write(2, b"e" * 3_000_000 + b"\nSTDERR-END\n")
        return "done"

    limits = TrialLimits(timeout_s=30, tail_bytes=1000)
    result = run_forked(job, limits)
    assert result.ok and result.value == "done"
    assert result.stdout_tail.endswith("o\nSTDOUT-END\n")
    assert result.stderr_tail.endswith("e\nSTDERR-END\n")
    assert "earlier bytes omitted" in result.stdout_tail
    assert len(result.stdout_tail) < 1100 and len(result.stderr_tail) < 1100


def test_tail_bytes_zero_keeps_nothing() -> None:
    result = run_forked(lambda: print("hidden") or 1, TrialLimits(tail_bytes=0))
    assert result.ok and result.stdout_tail == ""


def test_stdin_is_empty_in_the_child() -> None:
    result = run_forked(lambda: sys.stdin.read(), QUICK)
    assert result.ok and result.value == ""


# -- resources, threads, event loops -----------------------------------------------------------


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs a choice of CPUs",
)
@pytest.mark.parametrize("confine", [True, False])
def test_the_cpu_set_is_the_programs_in_the_child_and_after(confine: bool) -> None:
    # The fork happens on the parent's CPU alone; both must get the thread's set back.
    before = os.sched_getaffinity(0)
    result = run_forked(lambda: sorted(os.sched_getaffinity(0)), QUICK, confine=confine)
    assert result.ok and result.value == sorted(before)
    assert os.sched_getaffinity(0) == before
    one = {min(before)}
    os.sched_setaffinity(0, one)  # a program that pinned this thread keeps it pinned
    try:
        result = run_forked(lambda: sorted(os.sched_getaffinity(0)), QUICK, confine=confine)
        assert result.ok and result.value == sorted(one)
        assert os.sched_getaffinity(0) == one
    finally:
        os.sched_setaffinity(0, before)


def test_no_fd_leak_and_no_zombies_over_many_trials() -> None:
    children_before = set(my_children())
    run_forked(lambda: 1, QUICK)  # warm-up: lazy one-time loads
    before = open_fds()
    for i in range(40):
        kind = i % 4
        if kind == 0:
            run_forked(lambda: 1, QUICK)
        elif kind == 1:
            run_forked(lambda: 1 / 0, QUICK)
        elif kind == 2:
            run_forked(lambda: os._exit(1), QUICK)
        else:
            run_forked(lambda: time.sleep(10), TrialLimits(timeout_s=0.05))
    assert open_fds() == before
    assert set(my_children()) <= children_before  # other tests' helpers may live on


def test_concurrent_trials_from_four_threads() -> None:
    children_before = set(my_children())
    errors: list[str] = []

    def worker(n: int) -> None:
        for i in range(8):
            want = {"thread": n, "i": i}
            result = run_forked(lambda want=want: (time.sleep(0.005), want)[1], QUICK)
            if not result.ok or result.value != want:
                errors.append(f"{want}: {result}")

    before = open_fds()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert open_fds() == before
    assert set(my_children()) <= children_before  # other tests' helpers may live on


def test_trial_while_another_thread_is_stuck_inside_a_write() -> None:
    # A thread blocked in a write to a full pipe holds its BufferedWriter's lock. A child
    # forked now inherits that lock held; printing through the same object there would
    # deadlock. The runner gives the child fresh stdio, so the job prints fine.
    r, w = os.pipe()
    stuck = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(w, "w"), buffer_size=8), write_through=True
    )
    writer = threading.Thread(target=lambda: stuck.write("x" * 1_000_000), daemon=True)
    old_stdout = sys.stdout
    try:
        writer.start()
        time.sleep(0.2)  # let it fill the pipe and block
        sys.stdout = stuck
        result = run_forked(lambda: print("printed in the child") or 1, TrialLimits(timeout_s=5))
    finally:
        sys.stdout = old_stdout
        os.set_blocking(r, False)
        while writer.is_alive():  # drain so the writer can finish
            try:
                os.read(r, 1 << 20)
            except BlockingIOError:
                time.sleep(0.001)
        writer.join()
        stuck.close()
        os.close(r)
    assert result.ok, result
    assert result.stdout_tail == "printed in the child\n"


def test_trials_while_other_threads_run_the_program() -> None:
    stop = threading.Event()
    calls = [0]

    def busy() -> None:
        while not stop.is_set():
            calls[0] += sum(range(100))
            time.sleep(0)

    threads = [threading.Thread(target=busy) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        results = [run_forked(lambda i=i: i * 2, QUICK) for i in range(10)]
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert [r.value for r in results] == [i * 2 for i in range(10)]
    assert calls[0] > 0


def test_called_from_inside_an_event_loop() -> None:
    async def inner() -> int:
        await asyncio.sleep(0)
        return 7

    async def main() -> tuple[TrialResult, TrialResult]:
        # Directly in the loop's thread; the job runs an event loop of its own.
        direct = run_forked(lambda: asyncio.run(inner()), QUICK)
        # And from the loop's default executor, as the evolve loop does.
        threaded = await asyncio.to_thread(run_forked, lambda: asyncio.run(inner()), QUICK)
        return direct, threaded

    direct, threaded = asyncio.run(main())
    assert direct.ok and direct.value == 7, direct
    assert threaded.ok and threaded.value == 7, threaded


def test_keyboard_interrupt_while_waiting_kills_and_reaps_the_child() -> None:
    children_before = set(my_children())
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("needs the main thread")
    stop = threading.Event()
    interrupted = []

    def interrupt_once_the_child_runs() -> None:
        # Ctrl-C *while waiting*: once the trial's child exists and the parent has had a
        # moment to start waiting (a fixed delay raced the fork of a large test process)
        deadline = time.monotonic() + 15
        while not stop.is_set() and time.monotonic() < deadline:
            if set(my_children()) - children_before:
                time.sleep(0.3)
                interrupted.append(time.monotonic())
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
                return
            time.sleep(0.02)

    # Python's own Ctrl-C handler, as in an interactive program: a test run started in the
    # background of a non-interactive shell inherits SIGINT ignored (POSIX), and then no
    # KeyboardInterrupt can come at all
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    watcher = threading.Thread(target=interrupt_once_the_child_runs, daemon=True)
    watcher.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_forked(lambda: time.sleep(30), TrialLimits(timeout_s=20))
    finally:
        stop.set()
        watcher.join(5)
        signal.signal(signal.SIGINT, previous)
    assert interrupted, "the trial's child never appeared"
    assert set(my_children()) <= children_before  # other tests' helpers may live on


def test_without_pidfd_the_fallback_wait_works(monkeypatch: pytest.MonkeyPatch) -> None:
    children_before = set(my_children())
    monkeypatch.setattr(trial_mod, "_USE_PIDFD", False)
    before = open_fds()
    assert run_forked(lambda: [1, "two"], QUICK).value == [1, "two"]
    _failed(run_forked(lambda: time.sleep(10), TrialLimits(timeout_s=0.2)), "timeout")
    _failed(run_forked(lambda: os._exit(4), QUICK), "exit")
    _failed(run_forked(os.abort, QUICK), "crash")
    result = run_forked(lambda: subprocess.Popen(["sleep", "30"]).pid, QUICK, confine=False)
    assert result.ok  # a grandchild holding the pipes is noticed by the periodic waitid
    assert open_fds() == before
    assert set(my_children()) <= children_before  # other tests' helpers may live on


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        TrialLimits(timeout_s=0)
    with pytest.raises(ValueError, match="memory_bytes"):
        TrialLimits(memory_bytes=-1)
    with pytest.raises(ValueError, match="max_result_bytes"):
        TrialLimits(max_result_bytes=0)
    with pytest.raises(ValueError, match="tail_bytes"):
        TrialLimits(tail_bytes=-5)
    with pytest.raises(TypeError, match="callable"):
        run_forked(42)  # type: ignore[arg-type]


def test_segfault_via_ctypes_in_the_parent_module_is_contained() -> None:
    # The spelling of the "must show": ctypes.string_at(0) in a trusted test.
    result = run_forked(lambda: ctypes.string_at(0), QUICK)
    _failed(result, "crash")
    assert os.getpid() > 0  # still here


def test_a_job_can_run_trials_of_its_own() -> None:
    def job() -> list[Any]:
        print("partial line without newline ", end="")
        inner = run_forked(lambda: {"depth": 2}, QUICK)
        crashed = run_forked(os.abort, QUICK)
        assert crashed.diagnostic is not None
        return [inner.value, inner.stdout_tail, crashed.diagnostic.kind]

    result = run_forked(job, QUICK, confine=False)  # its inner trials are confined
    assert result.ok, result
    assert result.value == [{"depth": 2}, "", "crash"]


def test_job_can_wait_for_subprocesses_even_if_the_program_ignores_sigchld() -> None:
    previous = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        result = run_forked(
            lambda: subprocess.run(["sh", "-c", "exit 7"]).returncode, QUICK, confine=False
        )
    finally:
        signal.signal(signal.SIGCHLD, previous)
    assert result.ok and result.value == 7


def test_out_of_descriptors_is_a_sandbox_error() -> None:
    import resource

    from symbiont.errors import SandboxError

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    used = open_fds()
    lowest_free = min(set(range(max(used) + 2)) - used)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free + 1, hard))  # one fd left: no pipe
    try:
        with pytest.raises(SandboxError, match="could not start a forked trial"):
            run_forked(lambda: 1, QUICK)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert run_forked(lambda: 1, QUICK).ok
    assert not trial_mod._OPEN_FDS


@pytest.mark.parametrize("pidfd", [True, False])
def test_job_that_closes_every_descriptor_and_hangs_times_out(
    pidfd: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trial_mod, "_USE_PIDFD", pidfd)

    def job() -> None:
        os.closerange(0, 4096)  # the report pipe too: only the exit can tell the parent
        time.sleep(30)

    diag = _failed(run_forked(job, TrialLimits(timeout_s=0.3)), "timeout")
    assert "0.3 s" in diag.message


def test_job_that_forks_and_returns_twice_reports_once() -> None:
    def job() -> str:
        pid = os.fork()
        return "grandchild" if pid == 0 else "child"

    result = run_forked(job, QUICK, confine=False)
    assert result.ok and result.value == "child"


def test_parent_with_closed_stdio(monkeypatch: pytest.MonkeyPatch) -> None:
    # A daemon may run with fds 0-2 closed: the trial's pipes then get those numbers.
    monkeypatch.setattr(trial_mod, "_STDIO", None)
    saved = [os.dup(fd) for fd in (0, 1, 2)]
    try:
        for fd in (0, 1, 2):
            os.close(fd)
        ok = run_forked(lambda: print("out") or sys.stdin.read() or 5, QUICK)
        failed = run_forked(lambda: 1 / 0, QUICK)
    finally:
        for fd, copy in zip((0, 1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)
    assert ok.ok and ok.value == 5 and ok.stdout_tail == "out\n", ok
    assert failed.diagnostic is not None and failed.diagnostic.kind == "exception"


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return found


def _job_running(pid: int) -> bool:
    """The trial child has reached its job: confined (seccomp mode 2), or spinning unconfined."""
    try:
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
    except OSError:
        return False
    return "Seccomp:\t2" in status or "State:\tR" in status


@pytest.mark.parametrize("confine", [True, False])
def test_child_dies_with_its_parent(confine: bool) -> None:
    # A parent killed mid-trial must not leave its child spinning as an orphan.
    script = (
        "from symbiont.trial import run_forked, TrialLimits\n"
        "def job():\n"
        "    while True:\n"
        "        pass\n"
        f"run_forked(job, TrialLimits(timeout_s=60), confine={confine})\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 20
        while not [c for c in _children_of(parent.pid) if _job_running(c)]:
            assert time.monotonic() < deadline, "the trial never started"
            assert parent.poll() is None, "the parent process ended early"
            time.sleep(0.01)
        (child,) = _children_of(parent.pid)
        assert not is_gone(child)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 5
    while not is_gone(child) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert is_gone(child)


def test_a_deep_stack_keeps_the_head_of_the_crash_report() -> None:
    """faulthandler lists the innermost frame first: the tail must keep the report's head."""
    crash = make_candidate(
        "import ctypes\n\ndef crash():\n    return ctypes.string_at(0)\n",
        "crash",
        "<symbiont test.crash rev2>",
    )

    def deep(n: int) -> TrialResult:
        return (
            run_forked(crash, TrialLimits(timeout_s=5, tail_bytes=700)) if n == 0 else deep(n - 1)
        )

    result = deep(80)
    _failed(result, "crash")
    assert result.stderr_tail.startswith("Fatal Python error: Segmentation fault")
    assert '"<symbiont test.crash rev2>", line 4' in result.stderr_tail
    assert "later bytes (outer frames) omitted" in result.stderr_tail
