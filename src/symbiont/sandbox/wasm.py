"""The `wasm` sandbox tier: CPython compiled to WebAssembly, one fresh instance per call.

One runner component (componentize-py: CPython + `guest/symbiont_guest.py`, WIT world
`wit/runner.wit`) is built and JIT-compiled once per machine and cached (see
`_wasm_build`); a process maps the compiled form in milliseconds. Each call gets a fresh
instance of it, so nothing a capability does survives into the next call. Instances are
pre-instantiated by a background thread (a small pool), so a call costs roughly the call
itself.

Confinement, from the inside out:

- The guest has no WASI preopens (no filesystem), no environment variables, no argv, empty
  stdin; the interpreter has no `socket` module, and wasmtime's WASI refuses network use
  by default. stdout/stderr are captured into the result's logs. The only way out is the
  `host.call` import, served by `HostFunctions.dispatch`, which checks permissions on the
  host side.
- Time: epoch interruption (a ticker thread advances the engine epoch every 10 ms while a
  call runs) traps runaway wasm code; a watchdog on the calling side catches the rest
  (a call blocked inside a WASI host call past its deadline is abandoned and reported).
- Memory: `Store.set_limits(memory_size=...)`; CPython raises MemoryError inside, which
  the guest reports as "memory".
- Output: the result JSON is capped at `max_output_bytes`, logs at `max_log_bytes`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import wasmtime
from wasmtime.component import Component, Func, Linker

from symbiont.errors import CapabilityError, SandboxError
from symbiont.sandbox import _wasm_build
from symbiont.sandbox.base import (
    HostCall,
    Limits,
    Permissions,
    SandboxFailure,
    SandboxResult,
)

log = logging.getLogger(__name__)

HOST_INTERFACE = "symbiont:sandbox/host@0.1.0"
TICK_S = 0.01  # epoch granularity: a runaway call stops within ~one tick of its limit
WARMUP_S = 60.0  # deadline for the trusted warm-up call of a pooled instance
_KINDS = frozenset(
    {
        "timeout",
        "memory",
        "denied",
        "exception",
        "output_too_large",
        "crash",
        "invalid_output",
        "unavailable",
    }
)
_MAX_MESSAGE = 4_000
_MAX_TRACEBACK = 20_000
_WARMUP_SOURCE = "def _warm():\n    return None\n"

Progress = _wasm_build.Progress


class HostDispatcher(Protocol):
    """What the wasm tier needs of `symbiont.sandbox.hostfns.HostFunctions`."""

    calls: list[HostCall]
    logs: list[str]

    def dispatch(self, name: str, args_json: str) -> str: ...


HostFactory = Callable[[Permissions, Limits], HostDispatcher]


def _default_host_factory(permissions: Permissions, limits: Limits) -> HostDispatcher:
    from symbiont.sandbox.hostfns import HostFunctions

    return HostFunctions(permissions, limits)


def ensure_runner(progress: Progress | None = None) -> Path:
    """Build and compile the runner now if this machine has no cached copy.

    Returns the path of `runner.wasm`; the compiled form `runner.cwasm` sits next to it.
    `progress` receives one-line messages (default: printed to stderr) — only when
    something has to be built.
    """
    directory, _compiled = _wasm_build.ensure_built(_runtime_engine(), progress)
    return directory / "runner.wasm"


# ---------------------------------------------------------------------------------------
# Process-wide runtime: one engine, one compiled component, one linker, one ticker
# ---------------------------------------------------------------------------------------

_current = threading.local()  # .hostfns: the dispatcher of the call running on this thread


def _host_call(_store: Any, name: str, args: str) -> str:
    """The `host.call` import: forwards to the current call's host functions."""
    hostfns: HostDispatcher | None = getattr(_current, "hostfns", None)
    if hostfns is None:
        return json.dumps(
            {"error": {"kind": "denied", "message": "no host functions during warm-up"}}
        )
    try:
        return hostfns.dispatch(name, args)
    except Exception as exc:  # dispatch promises not to raise; never let it trap the guest
        return json.dumps({"error": {"kind": "io", "message": f"{type(exc).__name__}: {exc}"}})


class _EpochTicker:
    """Advances the engine epoch every `TICK_S`, but only while some call is running."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._engine = engine
        self._active = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        with self._cond:
            self._active += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="symbiont-wasm-epoch", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._active == 0:
                    self._cond.wait()
            time.sleep(TICK_S)
            self._engine.increment_epoch()


@dataclass
class _Runtime:
    engine: wasmtime.Engine
    component: Component
    linker: Linker
    ticker: _EpochTicker
    load_s: float


_engine_lock = threading.Lock()
_engine: wasmtime.Engine | None = None
_runtime_lock = threading.Lock()
_runtime: _Runtime | None = None


def _runtime_engine() -> wasmtime.Engine:
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = _wasm_build.make_engine()
        return _engine


def _get_runtime(progress: Progress | None) -> _Runtime:
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            started = time.perf_counter()
            engine = _runtime_engine()
            try:
                component = _wasm_build.load_component(engine, progress)
            except wasmtime.WasmtimeError as exc:
                raise SandboxError(f"the wasm runner could not be loaded: {exc}") from exc
            linker = Linker(engine)
            linker.add_wasip2()
            with linker.root() as root, root.add_instance(HOST_INTERFACE) as host:
                host.add_func("call", _host_call)
            _runtime = _Runtime(
                engine, component, linker, _EpochTicker(engine), time.perf_counter() - started
            )
            log.debug("wasm runner loaded in %.1f ms", _runtime.load_s * 1000)
        return _runtime


# ---------------------------------------------------------------------------------------
# Instances
# ---------------------------------------------------------------------------------------


@dataclass
class _Capture:
    """The guest's stdout/stderr, kept up to a byte budget."""

    budget: int = 0  # 0 while warming up: nothing is kept
    data: bytearray = field(default_factory=bytearray)
    overflow: bool = False

    def write(self, chunk: bytes) -> None:
        room = self.budget - len(self.data)
        if len(chunk) > room:
            if self.budget:
                self.overflow = True
            chunk = chunk[: max(room, 0)]
        self.data += chunk


@dataclass
class _Slot:
    store: wasmtime.Store
    run: Func
    capture: _Capture


def _new_slot(rt: _Runtime) -> _Slot:
    """A fresh, warmed-up instance: instantiated, then one trusted no-op call.

    The warm-up call runs only the guest's own code (no capability) and page-faults in
    the memory a call touches, so the real call finds it mapped (~1.5 ms → ~0.4 ms).
    """
    store = wasmtime.Store(rt.engine)
    capture = _Capture()
    wasi = wasmtime.WasiConfig()  # no argv, env, preopens; empty stdin
    wasi.stdout_custom = capture.write
    wasi.stderr_custom = capture.write
    store.set_wasi(wasi)
    store.set_epoch_deadline(math.ceil(WARMUP_S / TICK_S))
    instance = rt.linker.instantiate(store, rt.component)
    run = instance.get_func(store, "run")
    if run is None:
        raise SandboxError("the wasm runner has no `run` export (stale cache?)")
    run(store, _WARMUP_SOURCE, "_warm", "{}")
    run.post_return(store)
    capture.data.clear()
    return _Slot(store, run, capture)


class _Pool:
    """Keeps up to `size` warmed-up instances ready, refilled by a background thread."""

    def __init__(self, rt: _Runtime, size: int) -> None:
        self._rt = rt
        self._size = size
        self._slots: deque[_Slot] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._failures = 0
        self._thread: threading.Thread | None = None
        if size > 0:
            self._thread = threading.Thread(
                target=self._refill, name="symbiont-wasm-pool", daemon=True
            )
            self._thread.start()

    def take(self) -> _Slot:
        with self._cond:
            if self._slots:
                return self._slots.popleft()
        return _new_slot(self._rt)  # the pool is empty: instantiate on the caller's thread

    def refill(self) -> None:
        """Wake the refill thread (called after a call, so it does not compete with it)."""
        with self._cond:
            self._cond.notify()

    def _refill(self) -> None:
        while True:
            with self._cond:
                while not self._closed and len(self._slots) >= self._size:
                    self._cond.wait()
                if self._closed:
                    return
            try:
                slot = _new_slot(self._rt)
            except Exception:
                log.exception("pre-instantiating a wasm sandbox instance failed")
                self._failures += 1
                if self._failures >= 3:
                    return
                time.sleep(0.5)
                continue
            with self._cond:
                if self._closed:
                    return
                self._slots.append(slot)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._slots.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _Caller:
    """A persistent thread that makes the wasm calls, so the caller can stop waiting.

    Epoch interruption stops wasm code, but not a guest blocked inside a WASI host call
    (a sleep); the caller then returns "timeout" and this thread is abandoned: it finishes
    on its own once the host call returns (the epoch deadline has passed, so the guest
    traps at once) and a new thread takes over.
    """

    def __init__(self) -> None:
        self._jobs: deque[tuple[Callable[[], None], threading.Event]] = deque()
        self._wake = threading.Semaphore(0)
        self.abandoned = False
        self._thread = threading.Thread(target=self._loop, name="symbiont-wasm-call", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> threading.Event:
        done = threading.Event()
        self._jobs.append((job, done))
        self._wake.release()
        return done

    def _loop(self) -> None:
        while True:
            self._wake.acquire()
            job, done = self._jobs.popleft()
            if job is _STOP:
                return
            try:
                job()
            finally:
                done.set()
            if self.abandoned:
                return

    def stop(self) -> None:
        self.submit(_STOP)


def _STOP() -> None:
    return None


# ---------------------------------------------------------------------------------------
# The sandbox
# ---------------------------------------------------------------------------------------


class WasmSandbox:
    """Runs capabilities in CPython-in-WebAssembly, a fresh instance per call.

    `pool_size` instances are kept pre-instantiated (0: instantiate on every call).
    `host_functions` builds the host side of `symbiont.host` for one call (default:
    `symbiont.sandbox.hostfns.HostFunctions`). The runner is built on first use (tens of
    seconds, once per machine, progress to `progress` or stderr) — call `ensure_runner`
    to do that up front.
    """

    tier = "wasm"

    def __init__(
        self,
        pool_size: int = 2,
        *,
        host_functions: HostFactory | None = None,
        progress: Progress | None = None,
    ) -> None:
        if pool_size < 0:
            raise ValueError("pool_size must be >= 0")
        self.pool_size = pool_size
        self._host_factory = host_functions or _default_host_factory
        self._progress = progress
        self._lock = threading.Lock()
        self._pool: _Pool | None = None
        self._caller: _Caller | None = None
        self._closed = False

    # -- lifecycle ----------------------------------------------------------------------

    def ensure_runner(self, progress: Progress | None = None) -> Path:
        """Build/cache the runner now (see the module-level `ensure_runner`)."""
        return ensure_runner(progress or self._progress)

    def start(self) -> None:
        """Load the runner and start filling the pool (otherwise done by the first call)."""
        self._ensure_started()

    def _ensure_started(self) -> tuple[_Pool, _Caller]:
        with self._lock:
            if self._closed:
                raise SandboxError("this WasmSandbox is closed")
            if self._pool is None:
                self._pool = _Pool(_get_runtime(self._progress), self.pool_size)
            if self._caller is None or self._caller.abandoned:
                self._caller = _Caller()
            return self._pool, self._caller

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, caller = self._pool, self._caller
            self._pool = self._caller = None
        if pool is not None:
            pool.close()
        if caller is not None and not caller.abandoned:
            caller.stop()

    def __enter__(self) -> WasmSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running ------------------------------------------------------------------------

    def run(
        self,
        source: str,
        entry: str,
        input_json: str,
        permissions: Permissions | None = None,
        limits: Limits | None = None,
    ) -> SandboxResult:
        """Run `entry(**input)` from `source` in a fresh wasm instance."""
        permissions = permissions or Permissions()
        limits = limits or Limits()
        try:
            json.loads(input_json)
        except (TypeError, ValueError) as exc:
            raise CapabilityError(f"the input is not valid JSON: {exc}") from None
        if not isinstance(source, str) or not isinstance(entry, str):
            raise CapabilityError("source and entry must be strings")
        started = time.perf_counter()
        pool, caller = self._ensure_started()
        rt = _get_runtime(self._progress)
        hostfns = self._host_factory(permissions, limits)
        deadline = time.monotonic() + limits.timeout_s
        if hasattr(hostfns, "deadline"):
            hostfns.deadline = deadline  # type: ignore[attr-defined]
        slot = pool.take()
        slot.capture.budget = limits.max_log_bytes
        slot.store.set_limits(memory_size=limits.memory_bytes)
        outcome: list[Any] = []

        ticks = max(1, math.ceil(limits.timeout_s / TICK_S)) + 1

        def call() -> None:
            # The ticker runs as long as this job does, even if the caller stops waiting,
            # so an abandoned call still reaches its epoch deadline and ends.
            _current.hostfns = hostfns
            try:
                with rt.ticker.running():
                    slot.store.set_epoch_deadline(ticks)
                    outcome.append(slot.run(slot.store, source, entry, input_json))
            except BaseException as exc:
                outcome.append(exc)
            finally:
                _current.hostfns = None

        done = caller.submit(call)
        finished = done.wait(limits.timeout_s + 0.25 + 0.1 * limits.timeout_s)
        elapsed = time.perf_counter() - started
        pool.refill()
        if not finished:
            caller.abandoned = True  # it ends by itself; the next call gets a new thread
            failure: SandboxFailure | None = SandboxFailure(
                "timeout",
                f"the capability ran past its time limit of {limits.timeout_s:g} s "
                "(blocked inside a host call; abandoned)",
            )
            output = None
        else:
            output, failure = self._interpret(outcome[0], limits, elapsed)
        result = SandboxResult(
            duration_s=elapsed,
            host_calls=list(hostfns.calls),
            logs=list(hostfns.logs),
            tier=self.tier,
        )
        if finished:
            printed = slot.capture.data.decode("utf-8", "replace")
            result.logs.extend(line for line in printed.splitlines())
        log_bytes = sum(len(line.encode("utf-8", "replace")) + 1 for line in result.logs)
        overflow = (
            bool(getattr(hostfns, "log_overflow", False))
            or slot.capture.overflow
            or log_bytes > limits.max_log_bytes
        )
        if overflow:
            result.logs = _cap_logs(result.logs, limits.max_log_bytes)
            if failure is None or failure.kind not in ("timeout", "crash", "memory"):
                failure = SandboxFailure(
                    "output_too_large",
                    f"the capability logged more than the limit of {limits.max_log_bytes} bytes",
                    failure.traceback if failure is not None else None,
                )
        if failure is not None:
            result.error = failure
        else:
            result.output = output
        return result

    @staticmethod
    def _interpret(value: Any, limits: Limits, elapsed: float) -> tuple[Any, SandboxFailure | None]:
        if isinstance(value, BaseException):
            return None, _trap_failure(value, limits, elapsed)
        tag = getattr(value, "tag", None)
        payload = getattr(value, "payload", None)
        if not isinstance(payload, str) or tag not in ("ok", "err"):
            return None, SandboxFailure("crash", f"the runner returned {value!r:.200}")
        if tag == "err":
            return None, _guest_failure(payload)
        if len(payload) > limits.max_output_bytes or (
            len(payload.encode("utf-8", "surrogatepass")) > limits.max_output_bytes
        ):
            return None, SandboxFailure(
                "output_too_large",
                f"the result is {len(payload.encode('utf-8', 'surrogatepass'))} bytes of "
                f"JSON, over the limit of {limits.max_output_bytes}",
            )
        try:
            return json.loads(payload), None
        except (ValueError, RecursionError) as exc:
            return None, SandboxFailure("invalid_output", f"the result is not valid JSON: {exc}")


def _guest_failure(payload: str) -> SandboxFailure:
    """The guest's own error report (JSON {"kind", "message", "traceback"})."""
    try:
        data = json.loads(payload)
        kind, message, tb = data["kind"], data["message"], data.get("traceback")
    except (ValueError, KeyError, TypeError, RecursionError):
        return SandboxFailure(
            "invalid_output", f"the runner's error report is not valid: {payload[:_MAX_MESSAGE]}"
        )
    if kind not in _KINDS:
        kind = "exception"
    return SandboxFailure(
        kind,
        str(message)[:_MAX_MESSAGE],
        str(tb)[-_MAX_TRACEBACK:] if tb is not None else None,
    )


def _trap_failure(exc: BaseException, limits: Limits, elapsed: float) -> SandboxFailure:
    """A trap (or host-side error) ended the call; say which limit, if any, it was."""
    text = str(exc)
    lowered = text.lower()
    cause = _trap_cause(text)
    if "interrupt" in lowered or elapsed >= limits.timeout_s:
        return SandboxFailure(
            "timeout", f"the capability ran past its time limit of {limits.timeout_s:g} s"
        )
    if "call stack exhausted" in lowered or "stack overflow" in lowered:
        return SandboxFailure(
            "crash",
            "the capability overflowed the wasm call stack (too deep recursion in C "
            f"code); the instance was discarded ({cause})",
        )
    if "memory" in lowered and ("grow" in lowered or "limit" in lowered):
        return SandboxFailure("memory", f"the capability exceeded its memory limit ({cause})")
    if "exited with" in lowered:
        return SandboxFailure(
            "crash", f"the capability ended the runner without a result ({cause})"
        )
    if not isinstance(exc, wasmtime.WasmtimeError):
        return SandboxFailure(
            "crash", f"the host failed during the call: {type(exc).__name__}: {exc}"[:_MAX_MESSAGE]
        )
    return SandboxFailure("crash", f"the wasm runner trapped: {cause}"[:_MAX_MESSAGE])


def _trap_cause(text: str) -> str:
    """The informative part of a wasmtime error: the cause, not the wasm backtrace."""
    if "Caused by:" in text:
        causes = [ln.strip() for ln in text.split("Caused by:", 1)[1].splitlines()]
        causes = [ln.split(": ", 1)[1] if ln[:1].isdigit() and ": " in ln else ln for ln in causes]
        joined = "; ".join(ln for ln in causes if ln)
        if joined:
            return joined
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0] if lines else "unknown trap"


def _cap_logs(lines: list[str], max_bytes: int) -> list[str]:
    kept: list[str] = []
    used = 0
    for line in lines:
        size = len(line.encode("utf-8", "replace")) + 1
        if used + size > max_bytes:
            kept.append(f"[log truncated at {max_bytes} bytes]")
            break
        kept.append(line)
        used += size
    return kept


__all__ = ["HOST_INTERFACE", "HostDispatcher", "WasmSandbox", "ensure_runner"]
