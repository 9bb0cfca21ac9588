"""`WorkerPoolExecutor`: a search's trials in confined workers forked once, then reused.

The default executor forks the live process for every candidate, so each one is judged
against the program's state at that moment and nothing one candidate does can reach the
next. That fork is most of a cheap candidate's cost: the live process's page tables are
copied, and every page either side then writes (reference counts touch most of them) is
copied again, fault by fault — on this machine about 8 ms of the parent's CPU and as much
of the child's for a process with the `openai` SDK loaded.

Many searches do not need either promise: their metric computes from the candidate and
its arguments, not from state the program keeps changing. For them this executor forks a
few workers from the live process once (at the first candidate) and sends each worker one
candidate after another, as OpenEvolve's process pool does. What it keeps and what it
gives up:

kept
  * confinement: each worker confines itself as a confined trial does (the same code,
    `symbiont.trial`): no inherited descriptors but its channel, no environment or
    registered secrets, no network, read-only files, no new processes, no signals to
    others. `trial="fork"` on the evolvable (trusted code) makes unconfined workers.
  * killable candidates, each with its own timeout: the parent waits for a reply with the
    candidate's deadline; past it the worker is SIGKILLed with everything it started, the
    candidate is a `timeout`, and the next candidate gets a fresh worker.
  * a memory limit per candidate: a worker's address space may grow by the evolvable's
    `memory_mb` beyond what it inherited (RLIMIT_AS); a candidate that runs out is a
    `memory` rejection and its worker is replaced, as is a worker that grew by more than a
    quarter of that limit, so every candidate starts with at least three quarters of it.
  * crashes (a segfault, `os._exit`) are rejections with the signal's name and the tail of
    stderr; the worker is replaced. Results come back as JSON, never pickle; stdout and
    stderr tails are the candidate's own.

given up (why it is a choice, never the default)
  * the live state: a worker sees the program as it was when the worker was forked (at
    the first candidate, and again whenever a worker is replaced: after `recycle_after`
    candidates, and once it is `recycle_after_s` seconds old — by default 1,000
    candidates or a minute, whichever comes first, so its view of the program is never
    more than about a minute old, however slow the model). A worker that has served
    `recycle_after` candidates has its successor forked ahead, while it runs its last one
    (so the next candidate finds the successor ready instead of waiting for a fork): the
    successor sees the program as it was when that last candidate started, without what
    its result leads to. A worker found too old when a candidate comes is stopped and the
    candidate waits for a new one (a fork: milliseconds, once a minute). Promotions made
    since a worker's fork are not in it; the candidate being judged always is.
  * isolation between the candidates one worker runs: the candidate's code is swapped
    out again after each one, but what it changed in memory (a global it rebound, a list
    it appended to, a cache it filled) is still there for the next candidates in that
    worker. A worker that is left with more threads than it started with is replaced.
    Use it for candidates you trust not to tamper with the evaluation, or whose tampering
    a final check in a fresh trial would catch.

The seed (the active revision, judged before any candidate) is evaluated by an ordinary
forked trial, so the search starts from the live state.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import linecache
import marshal
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from symbiont import trial as _trial
from symbiont.diagnostics import Diagnostic
from symbiont.errors import SandboxError
from symbiont.search.evaluator import Evaluation, cascade_job, evaluate, read_trial
from symbiont.trial import TrialLimits, TrialResult

if TYPE_CHECKING:
    from symbiont.evaluation import Check
    from symbiont.evolvable import Evolvable
    from symbiont.search.config import SearchConfig, Stage

__all__ = ["WorkerPoolExecutor"]

_HEADER = struct.Struct("!I")  # frame length, then the frame
_RECYCLE = b"R"  # the first byte of a reply: the worker exits after this candidate
_KEEP = b"K"
_EXIT_HARNESS_FAILED = 70  # as in symbiont.trial: the worker's own harness failed


@dataclasses.dataclass(slots=True)
class _Shipped:
    """A candidate as a worker receives it: what `cascade_job` needs of a `Candidate`."""

    code: Any
    helpers_code: Any
    filename: str


class _Successor:
    """A worker being forked ahead of the candidate that will need it (see
    `WorkerPoolExecutor._fork_ahead`); in the pool's `_ahead` until a candidate claims it."""

    __slots__ = ("future",)
    future: Future[_Worker]  # set when its fork is submitted, before it joins `_ahead`


class _Worker:
    """One forked worker, as the parent sees it."""

    def __init__(self, pid: int, sock: socket.socket, out_r: int, err_r: int) -> None:
        self.pid = pid
        self.sock = sock
        self.out_r, self.err_r = out_r, err_r
        self.pidfd: int | None = None
        self.served = 0
        self.born = time.monotonic()  # forked (just before this)
        self.exit_code: int | None = None  # once stopped: negative for a signal
        self._stopped = False
        self._stopping = threading.Lock()  # a stop may come from two threads (see stop)
        # While a candidate runs on the event loop: what to do with a ready descriptor
        # (False: nothing more will come from it; see _Watcher); and the watcher that has
        # its descriptors, if one has.
        self.on_ready: Callable[[int], bool] | None = None
        self.watcher: _Watcher | None = None
        if _trial._USE_PIDFD:
            with contextlib.suppress(OSError):
                self.pidfd = os.pidfd_open(pid)

    def fds(self) -> list[int]:
        return [self.sock.fileno(), self.out_r, self.err_r]

    def watched_fds(self) -> list[int]:
        """What says the worker has something for us: its channel, pipes and exit."""
        return [*self.fds(), *([self.pidfd] if self.pidfd is not None else [])]

    def alive(self) -> bool:
        return not self._stopped and not _trial._exited_nowait(self.pid)

    def stop(self) -> None:
        """Kill (with whatever it started), reap and close; once, from any thread. A second
        caller (`close` while the forker thread stops the worker in the background, say)
        returns once the worker is reaped and its descriptors closed, never closing a
        number twice (it may name another descriptor by then)."""
        with self._stopping:
            if self._stopped:
                return
            self._stopped = True
            if self.watcher is not None:  # out of the epoll set before the numbers are freed
                self.watcher.forget(self)
            _trial._kill_group(self.pid)
            try:
                _, status = os.waitpid(self.pid, 0)
                self.exit_code = os.waitstatus_to_exitcode(status)
            except ChildProcessError:  # someone else reaped it (a SIGCHLD handler)
                self.exit_code = None
            for fd in self.fds():
                _trial._OPEN_FDS.discard(fd)
            self.sock.close()
            closing: tuple[int | None, ...] = (self.out_r, self.err_r, self.pidfd)
            for own in closing:
                if own is not None:
                    with contextlib.suppress(OSError):
                        os.close(own)


class WorkerPoolExecutor:
    """Trials in confined workers forked from the live process once and reused (see the
    module's docstring for what that keeps and what it gives up).

    `workers`: at most this many candidates at once (None: the search's `parallel`); a
    worker each. `recycle_after`: a worker is replaced after this many candidates, which
    bounds what one candidate can leave behind for others; `recycle_after_s` (None: no
    limit): a worker is replaced once it is this many seconds old, which bounds how stale
    its view of the program gets. Each replacement costs the live process a pause of a few
    milliseconds (the fork holds the interpreter's lock while the kernel copies its page
    tables, and the pages both sides then write are copied fault by fault): about 15 ms
    on this 2-core machine, so recycling every 200 candidates of a millisecond cost the
    live program 5% of its time, every 1,000 about 1%. Counts: `forks` (workers started),
    `served` (candidates run).

    Replacing a worker stays off the search's path: its successor is forked ahead, while
    it runs its last candidate, and it is stopped (killed, reaped, closed) after that
    candidate without anyone waiting; both on the pool's forker thread. So for a moment
    there may be a process more than `workers` for each worker being replaced (`workers`
    bounds the candidates in flight, not the processes), and a successor forked ahead of a
    candidate that never comes (the search ended) is stopped unused, but counted in
    `forks`. `close` waits for all of it: no process is left once it returns."""

    name = "pool"

    def __init__(
        self,
        *,
        workers: int | None = None,
        recycle_after: int = 1000,
        recycle_after_s: float | None = 60.0,
    ) -> None:
        if workers is not None and not (isinstance(workers, int) and workers >= 1):
            raise ValueError(f"workers must be a positive int or None, not {workers!r}")
        if not (isinstance(recycle_after, int) and recycle_after >= 1):
            raise ValueError(f"recycle_after must be a positive int, not {recycle_after!r}")
        if recycle_after_s is not None and not (
            isinstance(recycle_after_s, int | float)
            and not isinstance(recycle_after_s, bool)
            and recycle_after_s > 0
        ):
            raise ValueError(
                f"recycle_after_s must be a positive number of seconds or None, "
                f"not {recycle_after_s!r}"
            )
        self.workers = workers
        self.recycle_after = recycle_after
        self.recycle_after_s = recycle_after_s
        self.forks = 0
        self.served = 0
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        # Successors being forked ahead (see _fork_ahead) that no candidate waits for yet:
        # one goes to _idle when it is ready, unless a candidate claimed it meanwhile.
        self._ahead: list[_Successor] = []
        self._lock = threading.Lock()
        self._slots: threading.Semaphore | None = None
        self._async_slots: asyncio.Semaphore | None = None
        self._job: Callable[[Any], Callable[[], Any]] | None = None
        self._key: str | None = None
        self._closed = False
        # Workers are forked by one thread that lives as long as the pool: a forked process
        # dies with the thread that forked it (PR_SET_PDEATHSIG), so a short-lived caller's
        # thread (a thread pool's, say) must not be the one.
        self._forker: ThreadPoolExecutor | None = None
        self._limits_for: tuple[object, TrialLimits] = (None, TrialLimits())
        self._watcher: _Watcher | None = None  # the event loop's view of the workers

    # -- the Executor protocol -------------------------------------------------------------
    def open(self, handle: Evolvable, config: SearchConfig) -> None:
        from symbiont.search.executors import ExecutorError

        if handle.options.native:
            raise ExecutorError(
                f"{handle.key} is a native (Numba) evolvable; WorkerPoolExecutor runs plain "
                "Python candidates only (use the default forked trials)"
            )
        check, stages = config.check, config.all_stages
        maximize = config.direction == "maximize"

        def job_for(candidate: _Shipped) -> Callable[[], Any]:
            # restore=True: the worker's function goes back to its own code after each one.
            return cascade_job(handle, candidate, check, stages, maximize, True)

        self._job = job_for
        self._key = handle.key
        self._slots = threading.BoundedSemaphore(self.workers or config.parallel)
        self._async_slots = asyncio.Semaphore(self.workers or config.parallel)
        self._closed = False
        if self._forker is None:
            self._forker = ThreadPoolExecutor(1, thread_name_prefix="symbiont-pool-fork")

    def evaluate(
        self,
        handle: Evolvable,
        candidate: Any,
        check: Check | None,
        stages: tuple[Stage, ...],
        *,
        maximize: bool,
        timeout_s: float,
    ) -> Evaluation:
        if candidate is None:  # the seed: judged against the live state, in a fresh trial
            return evaluate(handle, None, check, stages, maximize=maximize, timeout_s=timeout_s)
        self._check_open(handle)
        assert self._slots is not None
        with self._slots:
            return read_trial(self._run(handle, candidate, timeout_s), stages)

    def _check_open(self, handle: Evolvable) -> None:
        """Refuse a candidate the pool cannot run: not opened for this function, or closed."""
        from symbiont.search.executors import ExecutorError

        if self._job is None or self._slots is None or self._key != handle.key:
            raise ExecutorError(f"WorkerPoolExecutor.open was not called for {handle.key}")
        if self._closed:
            raise ExecutorError(
                f"this WorkerPoolExecutor was closed (its search ended); open it again for "
                f"{handle.key}, or pass it to a new search, which does"
            )

    def close(self) -> None:
        """Stop every worker (idempotent; a search calls it when it ends)."""
        with self._lock:
            self._closed = True
            forker, self._forker = self._forker, None
        if forker is not None:
            # What the forker thread was given runs first: workers being stopped in the
            # background are reaped, and a fork under way ends (a successor forked ahead
            # sees _closed and stops itself; one a candidate waits for joins _all).
            forker.shutdown(wait=True)
        with self._lock:
            workers, self._idle, self._all = list(self._all), [], set()
            self._ahead.clear()  # nothing left in it: each fork ahead took itself out
        for worker in workers:
            worker.stop()
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.dispose()

    def __enter__(self) -> WorkerPoolExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one candidate ----------------------------------------------------------------------
    def _limits(self, handle: Evolvable, timeout_s: float) -> TrialLimits:
        memory_mb = handle.options.memory_mb
        key = (timeout_s, memory_mb)
        if self._limits_for[0] != key:  # the same for every candidate of a search
            memory = None if memory_mb is None else memory_mb * 1024 * 1024
            self._limits_for = (key, TrialLimits(timeout_s=timeout_s, memory_bytes=memory))
        return self._limits_for[1]

    def _claim(self, handle: Evolvable, limits: TrialLimits) -> _Worker | Future[_Worker]:
        """A worker for the next candidate: an idle one that is still alive and not older
        than `recycle_after_s`; else the successor being forked ahead, if one is (its fork
        is under way: waiting for it is shorter than for a fork of our own); else a new one
        being forked. In one hold of the lock, so a successor that becomes idle meanwhile
        is not missed."""
        max_age = self.recycle_after_s
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive() and (max_age is None or time.monotonic() - worker.born < max_age):
                    return worker
                # it died while idle (its forking thread ended, say), or it is too old
                self._all.discard(worker)
                if not self._stop_later(worker):
                    worker.stop()
            if self._ahead:
                return self._ahead.pop(0).future  # claimed: it will not go to _idle
            return self._forked(handle, limits)

    def _take(self, handle: Evolvable, limits: TrialLimits) -> _Worker:
        worker = self._claim(handle, limits)
        return worker if isinstance(worker, _Worker) else worker.result()

    def _forked(self, handle: Evolvable, limits: TrialLimits) -> Future[_Worker]:
        """A new worker, forked by the pool's own thread."""
        if self._forker is None:  # closed while this candidate waited for its turn
            from symbiont.search.executors import ExecutorError

            raise ExecutorError(f"this WorkerPoolExecutor was closed; {handle.key}'s candidate "
                                "was not run")  # fmt: skip

        def fork() -> _Worker:
            worker = self._fork(handle, limits)
            with self._lock:
                self._all.add(worker)
            return worker

        return self._forker.submit(fork)

    def _fork_ahead(self, handle: Evolvable, limits: TrialLimits) -> None:
        """Start forking the successor of a worker that has just been sent its last
        candidate, so the candidate after it finds a worker ready (or one nearly so).

        Why then: a candidate that waits for a fork waits for all of it, and the fork holds
        the interpreter's lock while the kernel copies the page tables. Started as the last
        candidate goes out, the fork overlaps that candidate's run, when the event loop has
        nothing to do but wait for the reply; the new worker's own start (its confinement)
        runs meanwhile in the worker. Earlier would not gain more (the fork would still stop
        the loop) and would make the successor's view of the program older.

        Skipped when a worker is idle already (fewer candidates in flight than workers: the
        next candidate has one) or the pool is closed. A successor that no candidate
        claimed goes to `_idle`; one forked after `close` is stopped at once."""
        with self._lock:
            if self._idle or self._closed or self._forker is None:
                return
            successor = _Successor()

            def fork() -> _Worker:
                try:
                    worker = self._fork(handle, limits)
                except BaseException:
                    with self._lock:  # the next candidate forks its own (and sees the error)
                        if successor in self._ahead:
                            self._ahead.remove(successor)
                    raise
                with self._lock:
                    claimed = successor not in self._ahead
                    if not claimed:
                        self._ahead.remove(successor)
                    if claimed or not self._closed:  # a claimed one: as _forked's
                        self._all.add(worker)
                        if not claimed:
                            self._idle.append(worker)
                        return worker
                worker.stop()  # closed meanwhile, and no candidate waits for it
                return worker

            try:
                successor.future = self._forker.submit(fork)
            except RuntimeError:  # the interpreter is exiting: the next candidate forks
                return
            self._ahead.append(successor)

    def _adopt(self, forked: Future[_Worker]) -> None:
        """A worker forked for a candidate that was cancelled while it waited for the fork:
        to the idle ones, as if it had served (stopped if the pool closed meanwhile)."""
        if forked.cancelled() or forked.exception() is not None:
            return
        self._give_back(forked.result(), True)

    def _give_back(self, worker: _Worker, keep: bool) -> None:
        """Back to the idle workers; or, if it may not serve again (it served its
        `recycle_after` candidates, failed, or the pool closed), stopped without waiting
        for it (see _stop_later). Never blocks for long but on a closed pool."""
        with self._lock:
            if keep and not self._closed and worker.served < self.recycle_after:
                self._idle.append(worker)
                return
            self._all.discard(worker)
            if self._stop_later(worker):
                return
        worker.stop()  # closed: as `close` stops the others

    def _stop_later(self, worker: _Worker) -> bool:
        """Have the forker thread stop a worker that left `_all` (killing, reaping and
        closing take milliseconds nobody needs to wait for); False if the pool is closed
        (the caller stops it). Called with the lock held, so `close`, which waits for the
        forker thread, cannot miss it."""
        forker = None if self._closed else self._forker
        if forker is None:
            return False
        try:
            forker.submit(worker.stop)
        except RuntimeError:  # the interpreter is exiting
            return False
        return True

    def _prepare(
        self, handle: Evolvable, candidate: Any, timeout_s: float
    ) -> tuple[TrialLimits, bytes]:
        """The candidate's limits, and its request frame (its code objects are marshalled:
        the worker is this process's own fork, and nothing comes back but JSON)."""
        limits = self._limits(handle, timeout_s)
        lines = "".join(linecache.getlines(candidate.filename))
        body = marshal.dumps((candidate.code, candidate.helpers_code, candidate.filename, lines))
        return limits, _HEADER.pack(len(body)) + body

    def _send(self, worker: _Worker, request: bytes) -> None:
        """Hand the candidate over (small, and the idle worker is reading: never blocks
        for long). A worker that died between two candidates shows in the wait."""
        try:
            worker.sock.sendall(request)
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET):
                raise
        self.served += 1
        worker.served += 1

    def _run(self, handle: Evolvable, candidate: Any, timeout_s: float) -> TrialResult:
        limits, request = self._prepare(handle, candidate, timeout_s)
        worker = self._take(handle, limits)
        started = time.perf_counter()
        wait = _Wait(worker, limits, time.monotonic() + timeout_s)
        keep = False
        try:
            self._send(worker, request)
            if worker.served == self.recycle_after:  # its last one: fork its successor now
                self._fork_ahead(handle, limits)
            outcome = self._wait(wait)
            if outcome == "exit":
                wait.drain()
                worker.stop()
            trial, keep = self._conclude(handle, candidate, wait, outcome, started)
            return trial
        finally:
            self._give_back(worker, keep)

    async def evaluate_async(
        self,
        handle: Evolvable,
        candidate: Any,
        check: Check | None,
        stages: tuple[Stage, ...],
        *,
        maximize: bool,
        timeout_s: float,
    ) -> Evaluation:
        """`evaluate` without a thread: the event loop watches the worker's channel, pipes
        and exit, so waiting for a candidate costs no thread hop (the controller uses this
        when an executor has it). Forks and kills still run off the loop's thread."""
        if candidate is None:
            return await asyncio.to_thread(
                self.evaluate, handle, None, check, stages, maximize=maximize, timeout_s=timeout_s
            )
        self._check_open(handle)
        assert self._async_slots is not None
        async with self._async_slots:
            return read_trial(await self._run_async(handle, candidate, timeout_s), stages)

    async def _run_async(self, handle: Evolvable, candidate: Any, timeout_s: float) -> TrialResult:
        limits, request = self._prepare(handle, candidate, timeout_s)
        claimed = self._claim(handle, limits)
        if isinstance(claimed, _Worker):
            worker = claimed
        else:
            try:
                worker = await asyncio.wrap_future(claimed)
            except asyncio.CancelledError:
                # No candidate will run on the worker being forked for this one: the pool
                # keeps it for the next (a fork not yet begun is cancelled with us).
                claimed.add_done_callback(self._adopt)
                raise
        started = time.perf_counter()
        wait = _Wait(worker, limits, time.monotonic() + timeout_s)
        keep = False
        try:
            self._watcher_here().watch(worker)
            self._send(worker, request)
            if worker.served == self.recycle_after:  # its last one: fork its successor now
                self._fork_ahead(handle, limits)
            outcome = await _wait_async(wait)
            if outcome == "exit":
                wait.drain()
                await asyncio.to_thread(worker.stop)  # its exit code goes into the result
            trial, keep = self._conclude(handle, candidate, wait, outcome, started)
            return trial
        finally:
            self._give_back(worker, keep)  # a worker that goes is stopped in the background

    def _watcher_here(self) -> _Watcher:
        """The watcher on the running event loop (a new one for a new loop)."""
        loop = asyncio.get_running_loop()
        watcher = self._watcher
        if watcher is None or watcher.loop is not loop:
            if watcher is not None:
                watcher.dispose()
            watcher = self._watcher = _Watcher(loop)
        return watcher

    def _conclude(
        self, handle: Evolvable, candidate: Any, wait: _Wait, outcome: str, started: float
    ) -> tuple[TrialResult, bool]:
        """The trial's result, and whether its worker may serve again."""
        limits, worker = wait.limits, wait.worker
        mode = "pool/" + ("fork" if handle.options.trial == "fork" else "confined")
        duration = time.perf_counter() - started

        def done(ok: bool, value: Any, diag: Diagnostic | None) -> TrialResult:
            return TrialResult(ok, value, diag, wait.out.text(), wait.err.text(), duration, mode)

        if outcome == "reply":
            flag, payload = bytes(wait.reply[4:5]), bytes(wait.reply[5:])
            report = _trial._decode(payload)
            if report is None:
                return done(
                    False, None, _trial._invalid("the worker's report was garbled (not JSON)")
                ), False
            memory = report[2] is not None and report[2].kind == "memory"
            return done(*report), flag == _KEEP and not memory
        if outcome == "timeout":
            return done(False, None, _trial.timeout_diagnostic(limits.timeout_s)), False
        if outcome == "over":
            return done(False, None, _trial.oversize_diagnostic(limits.max_result_bytes)), False
        # The worker exited without replying: a crash, or os._exit in the candidate.
        code, stderr = worker.exit_code, wait.err.text()
        if code is not None and code < 0:
            return done(
                False, None, _trial._crash_diagnostic(-code, stderr, candidate.filename)
            ), False
        if code == _EXIT_HARNESS_FAILED:
            return done(
                False,
                None,
                Diagnostic(
                    "trial",
                    "exit",
                    "the pool's worker failed before it could run the candidate (a fault of "
                    "this machine or of symbiont, not of the candidate)",
                    detail=stderr[-2000:] or None,
                ),
            ), False
        return done(False, None, _trial.no_report_diagnostic(code)), False

    def _wait(self, wait: _Wait) -> str:
        """Block until `wait` has an outcome (see `_Wait.outcome`)."""
        worker = wait.worker
        poller = select.poll()
        for fd in worker.fds():
            poller.register(fd, select.POLLIN)
        if worker.pidfd is not None:
            poller.register(worker.pidfd, select.POLLIN)
        slice_s = 0.001
        while True:
            remaining = wait.deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            wait_s = remaining if worker.pidfd is not None else min(remaining, slice_s)
            slice_s = min(slice_s * 2, 0.05)
            events = poller.poll(wait_s * 1000.0)
            for fd, _ev in events:
                if not wait.readable(fd):
                    poller.unregister(fd)
            if worker.pidfd is None and not events and _trial._exited_nowait(worker.pid):
                wait.exited = True
            if wait.outcome:
                return wait.outcome

    # -- starting a worker -------------------------------------------------------------------
    def _fork(self, handle: Evolvable, limits: TrialLimits) -> _Worker:
        assert self._job is not None
        confine = handle.options.trial != "fork"
        if not confine:
            _trial._announce_unconfined()
        if not _trial._PRCTL_LOADED:
            _trial._PRCTL, _trial._PRCTL_LOADED = _trial._load_prctl(), True
        job_for = self._job
        fds: list[int] = []
        with _trial._FORK_LOCK:
            plan = _trial._plan(limits, confine)
            # RLIMIT_CPU is a backstop behind the wall clock; here it spans every candidate
            # the worker may run before it is replaced.
            plan = dataclasses.replace(plan, cpu_seconds=plan.cpu_seconds * self.recycle_after)
            _trial._prepare_stdio()
            try:
                parent_end, child_end = socket.socketpair()
                out_r, out_w = os.pipe()
                err_r, err_w = os.pipe()
            except OSError as exc:
                raise SandboxError(f"could not start a pool worker: {exc}") from exc
            fds = [parent_end.fileno(), child_end.fileno(), out_r, out_w, err_r, err_w]
            # Registered before the fork: the worker (and other trials' children) close them.
            _trial._OPEN_FDS.update(fds)
            try:
                pid = os.fork()
            except OSError as exc:
                _trial._OPEN_FDS.difference_update(fds)
                for closing in (parent_end, child_end):
                    closing.close()
                for fd in (out_r, out_w, err_r, err_w):
                    os.close(fd)
                raise SandboxError(f"could not start a pool worker: {exc}") from exc
            if pid == 0:  # pragma: no cover - the worker; coverage cannot follow os._exit
                _worker_main(child_end.fileno(), out_w, err_w, plan, limits, job_for)
        self.forks += 1
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)
        for fd in (child_end.fileno(), out_w, err_w):
            _trial._OPEN_FDS.discard(fd)
        child_end.close()
        os.close(out_w)
        os.close(err_w)
        parent_end.setblocking(True)
        for fd in (out_r, err_r):
            os.set_blocking(fd, False)
        return _Worker(pid, parent_end, out_r, err_r)


class _Wait:
    """What is known while one candidate runs: the reply so far, the output tails, and
    whether the worker exited. `readable(fd)` takes what one ready descriptor has."""

    def __init__(self, worker: _Worker, limits: TrialLimits, deadline: float) -> None:
        self.worker = worker
        self.limits = limits
        self.deadline = deadline
        self.reply = bytearray()
        self.out = _trial._Tail(limits.tail_bytes)
        self.err = _trial._Tail(limits.tail_bytes)
        self.exited = False
        self._cap = limits.max_result_bytes + 64 + _HEADER.size

    @property
    def outcome(self) -> str:
        """ "reply" (a whole reply came), "over" (past its cap), "exit" (the worker ended
        without one) or "" (not yet)."""
        if _complete(self.reply):
            self.drain()  # it flushed its stdout and stderr before replying
            return "reply"
        if len(self.reply) > self._cap:
            return "over"
        return "exit" if self.exited else ""

    def readable(self, fd: int) -> bool:
        """Read from a ready descriptor; False once it has nothing more to give."""
        worker = self.worker
        if fd == worker.pidfd:
            self.exited = True
            return False
        if fd == worker.sock.fileno():
            try:
                data = worker.sock.recv(1 << 16)
            except BlockingIOError:
                return True
            except OSError:
                data = b""
            if not data:
                self.exited = True  # the channel closed: the worker is gone
                return False
            self.reply += data
            return True
        sink = self.out if fd == worker.out_r else self.err
        return _trial._read_available(fd, sink) != _trial._EOF

    def drain(self) -> None:
        """What the worker wrote to stdout and stderr so far."""
        for fd, sink in ((self.worker.out_r, self.out), (self.worker.err_r, self.err)):
            with contextlib.suppress(OSError):
                while _trial._read_available(fd, sink) == _trial._DATA:
                    pass


class _Watcher:
    """The workers' descriptors (channel, pipes, exit) in one epoll set of the pool's,
    which the event loop watches as a single reader.

    A worker's descriptors join the set when it first runs a candidate on the loop and stay
    until it is stopped, so a candidate costs no reader registrations (asyncio's
    `add_reader` and `remove_reader` for four descriptors per candidate were about a
    twentieth of a cheap candidate's CPU in the live process). A descriptor that becomes
    ready while nobody waits on its worker (a worker that died while idle) leaves the set
    (it would wake the loop again and again) and joins again at the worker's next
    candidate. epoll's set is safe to change from any thread; the loop's reader is added
    and removed on the loop's thread only.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.epoll = select.epoll()
        self.owners: dict[int, _Worker] = {}
        self._fd = self.epoll.fileno()
        _trial._OPEN_FDS.add(self._fd)  # children forked meanwhile close it
        loop.add_reader(self._fd, self._dispatch)

    def watch(self, worker: _Worker) -> None:
        """Make sure the worker's descriptors are in the set."""
        worker.watcher = self
        for fd in worker.watched_fds():
            if fd not in self.owners:
                try:
                    self.epoll.register(fd, select.EPOLLIN)
                except FileExistsError:  # left in the set by a worker gone (cannot happen)
                    self.epoll.modify(fd, select.EPOLLIN)
                self.owners[fd] = worker

    def forget(self, worker: _Worker) -> None:
        for fd in worker.watched_fds():
            self._drop(fd)
        worker.watcher = None

    def _drop(self, fd: int) -> None:
        if self.owners.pop(fd, None) is not None:
            with contextlib.suppress(OSError, ValueError):
                self.epoll.unregister(fd)

    def _dispatch(self) -> None:
        try:
            ready = self.epoll.poll(0)
        except (OSError, ValueError):  # closed under us by dispose
            return
        for fd, _events in ready:
            worker = self.owners.get(fd)
            if worker is None:
                continue  # dropped since
            if worker.on_ready is None:
                self._drop(fd)  # nobody waits on this worker now
                continue
            if not worker.on_ready(fd):
                self._drop(fd)  # nothing more to come from it (EOF, exit)

    def _close(self) -> None:
        if not self.loop.is_closed():
            self.loop.remove_reader(self._fd)
        _trial._OPEN_FDS.discard(self._fd)
        self.epoll.close()

    def dispose(self) -> None:
        """Stop watching (from any thread): the loop's reader goes on the loop's thread
        before the epoll set is closed, so the loop never keeps a stale descriptor."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop or self.loop.is_closed():
            self._close()
            return
        try:
            self.loop.call_soon_threadsafe(self._close)
        except RuntimeError:  # the loop closed meanwhile
            self._close()


async def _wait_async(wait: _Wait) -> str:
    """`WorkerPoolExecutor._wait` on the event loop: the pool's watcher hands over the
    worker's ready descriptors (see _Watcher), a timer ends it at the deadline."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[str] = loop.create_future()
    worker = wait.worker

    def settle(outcome: str) -> None:
        if not done.done():
            done.set_result(outcome)

    def on_ready(fd: int) -> bool:
        more = wait.readable(fd)
        if wait.outcome:
            settle(wait.outcome)
        return more

    polls: list[asyncio.TimerHandle] = []

    def check_exit() -> None:  # without a pidfd: look now and then
        if _trial._exited_nowait(worker.pid):
            wait.exited = True
            if wait.outcome:
                settle(wait.outcome)
                return
        polls.append(loop.call_later(0.05, check_exit))

    worker.on_ready = on_ready
    timer = loop.call_at(
        loop.time() + max(0.0, wait.deadline - time.monotonic()), settle, "timeout"
    )
    if worker.pidfd is None:
        polls.append(loop.call_later(0.05, check_exit))
    try:
        return await done
    finally:
        worker.on_ready = None
        timer.cancel()
        for handle in polls:
            handle.cancel()


def _complete(reply: bytearray) -> bool:
    if len(reply) < _HEADER.size:
        return False
    (size,) = _HEADER.unpack_from(reply)
    return len(reply) >= _HEADER.size + size


# -- the worker --------------------------------------------------------------------------------


def _read_exact(fd: int, n: int) -> bytes | None:
    """`n` bytes from `fd`, None at EOF (the parent closed the channel)."""
    parts = []
    while n:
        data = os.read(fd, min(n, 1 << 20))
        if not data:
            return None
        parts.append(data)
        n -= len(data)
    return b"".join(parts)


def _worker_main(
    channel: int,
    out_w: int,
    err_w: int,
    plan: Any,
    limits: TrialLimits,
    job_for: Callable[[Any], Callable[[], Any]],
) -> None:  # pragma: no cover - runs in the forked worker, which ends in os._exit
    """Set up and confine as a trial child does, then run candidates until the parent
    closes the channel (or this worker should be replaced)."""
    code = _EXIT_HARNESS_FAILED
    try:
        channel, _keep, ours = _trial._child_setup(channel, out_w, err_w, plan)
        if plan.confinement is not None:
            channel = _trial._confine_child(channel, plan)
        threads = threading.active_count()
        start_size = _trial._address_space() or 0
        grow_limit = (limits.memory_bytes or 0) // 4
        while True:
            header = _read_exact(channel, _HEADER.size)
            if header is None:
                break
            (size,) = _HEADER.unpack(header)
            body = _read_exact(channel, size)
            if body is None:
                break
            code_obj, helpers, filename, text = marshal.loads(body)
            if text:
                linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
            job = job_for(_Shipped(code_obj, helpers, filename))
            payload = _trial._run_job_in_child(job, limits, filename)
            del job
            for stream in ours:
                with contextlib.suppress(Exception):
                    stream.flush()
            replace = threading.active_count() > threads or (
                grow_limit > 0 and (_trial._address_space() or 0) - start_size > grow_limit
            )
            flag = _RECYCLE if replace else _KEEP
            _trial._write_all(channel, _HEADER.pack(len(payload) + 1) + flag + payload)
            linecache.cache.pop(filename, None)
            if replace:
                break
        code = 0
    except BaseException as exc:
        with contextlib.suppress(BaseException):
            os.write(2, f"symbiont pool worker failed: {exc!r}\n".encode("utf-8", "replace"))
    finally:
        os._exit(code)
