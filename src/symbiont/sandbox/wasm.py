"""The `wasm` sandbox tier: CPython compiled to WebAssembly, one fresh instance per call.

One runner component (componentize-py: CPython + `guest/symbiont_guest.py`, WIT world
`wit/runner.wit`) is built and JIT-compiled once per machine and cached (see
`_wasm_build`); a process maps the compiled form in milliseconds. Each call gets a fresh
instance of it, so nothing a capability does survives into the next call. Instances are
pre-instantiated by a background thread (a small pool), which also disposes of used ones
and has a ready instance compile the latest call's source ahead (`prepare`; compiling,
never running it), so a repeated call costs roughly the call itself.

Confinement, from the inside out:

- The guest has no WASI preopens (no filesystem), no environment variables, no argv, empty
  stdin; the interpreter has no `socket` module, and wasmtime's WASI refuses network use
  by default. stdout/stderr are captured into the result's logs. The only way out is the
  `host.call` import, served by `HostFunctions.dispatch`, which checks permissions on the
  host side.
- Time: epoch interruption (a ticker thread advances the engine epoch every 10 ms while
  calls run, and for a second after) traps runaway wasm code. No blocking WASI wait is
  reachable from the guest's Python (the epoch cannot interrupt one): `time.sleep` is the
  host's `sleep` below, which ends at the call's deadline and then traps the guest;
  `select`/`poll` raise (see the guest's `_fence_blocking_waits`). Host functions keep to
  the same deadline. So a timed-out call ends its thread and its Store at once; the
  caller's own wait with a timeout remains as a last resort (the call is then abandoned).
- Host-call arguments: `host.call` is a raw C callback that refuses an argument larger
  than its host function can need before copying it into Python.
- Memory: `Store.set_limits(memory_size=...)`; CPython raises MemoryError inside, which
  the guest reports as "memory".
- Output: the result JSON is capped at `max_output_bytes`, logs at `max_log_bytes`.
- Hashing: every instance has the snapshot's string-hash secret (one per build; a new one
  per instance would need every cached hash and table of the snapshot heap rebuilt, which
  nothing in the toolchain can do). What that gives a capability, and what bounds it, is
  in docs/security.md ("One string-hash secret per build").

Start-up cost matters here (a new process that makes one call should take well under
300 ms), so modules only some calls need (logging, the host functions and their network
stack) are imported when first used.
"""

from __future__ import annotations

import _thread
import atexit
import contextlib
import ctypes
import json
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import wasmtime
from wasmtime import _ffi
from wasmtime.component import Component, Func, Linker
from wasmtime.component._enter import enter_wasm

from symbiont.errors import CapabilityError, SandboxError
from symbiont.sandbox import _wasm_build
from symbiont.sandbox.base import (
    HostCall,
    Limits,
    Permissions,
    SandboxFailure,
    SandboxResult,
    parse_input,
)

HOST_INTERFACE = "symbiont:sandbox/host@0.1.0"
TICK_S = 0.01  # epoch granularity: a runaway call stops within ~one tick of its limit
TICKER_LINGER_S = 1.0  # keep ticking this long after the last call (no wake-up per call)
WARMUP_S = 60.0  # deadline for the trusted warm-up call of a pooled instance
_REFILL_NICE = 10  # the pool thread's nice value (Linux: per thread)
PREPARE_S = 2.0  # deadline for compiling a source ahead in a pooled instance
PREPARE_MAX_CHARS = 256 * 1024  # larger sources are compiled by the call itself
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
_SMALL_ARGS = 64 * 1024  # host-call arguments other than file contents and log lines
_MAX_TRACEBACK = 20_000
# Trusted warm-up run on every pooled instance before a capability sees it: keyword
# arguments, containers, an exception caught, an f-string, a nested JSON result. It touches
# (page-faults in) what a typical call touches: ~8 page faults left for the real call, vs
# ~20 after a bare `return` (each costs microseconds in a VM). A second run would save
# ~0.05 ms more but slows refilling, which bursts of calls feel.
_WARMUP_SOURCE = """\
def _warm(a, b):
    items = [a, b, {"k": [1, 2.5, None, True]}]
    try:
        int("x")
    except ValueError as exc:
        items.append(str(exc))
    return {"items": items, "n": len(items), "s": f"{a}-{b}"}
"""
_WARMUP_INPUT = '{"a": 1, "b": "x"}'
_WARMUP_RUNS = 1
_NO_PERMISSIONS = Permissions()  # frozen dataclasses: one shared default instance each
_DEFAULT_LIMITS = Limits()
_DEFAULT_MEMORY = _DEFAULT_LIMITS.memory_bytes

Progress = _wasm_build.Progress


def _log_exception(message: str) -> None:
    import logging  # only on this rare path: `logging` costs ~5 ms at start-up

    logging.getLogger(__name__).exception(message)


class HostDispatcher(Protocol):
    """What the wasm tier needs of `symbiont.sandbox.hostfns.HostFunctions`."""

    @property
    def calls(self) -> list[HostCall]: ...

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

_current = threading.local()  # .host: the _LazyHost of the call running on this thread


class _LazyHost:
    """The host functions of one call, built on the capability's first host call.

    Most capabilities never call one; building `HostFunctions` would import the host
    side's network stack (~40 ms in a new process) for nothing.
    """

    __slots__ = ("deadline", "factory", "failure", "hostfns", "limits", "permissions")

    def __init__(
        self, factory: HostFactory, permissions: Permissions, limits: Limits, deadline: float
    ) -> None:
        self.factory = factory
        self.permissions = permissions
        self.limits = limits
        self.deadline = deadline
        self.hostfns: HostDispatcher | None = None
        self.failure: BaseException | None = None

    def get(self) -> HostDispatcher:
        if self.hostfns is None:
            try:
                hostfns = self.factory(self.permissions, self.limits)
            except BaseException as exc:
                self.failure = exc
                raise
            if hasattr(hostfns, "deadline"):
                hostfns.deadline = self.deadline  # type: ignore[attr-defined]
            self.hostfns = hostfns
        return self.hostfns


class _DeadlineTrap(Exception):
    """Internal: a host call reached the call's deadline; the guest must trap."""


def _reply_error(kind: str, message: str) -> str:
    return json.dumps({"error": {"kind": kind, "message": message}})


def _args_cap(name: str, limits: Limits) -> int:
    """The largest JSON argument text host function `name` can need (escapes: 6x)."""
    if name == "write_file":
        return 6 * limits.max_file_bytes + _SMALL_ARGS
    if name == "log":
        return 6 * limits.max_log_bytes + _SMALL_ARGS
    return _SMALL_ARGS


def _host_call(name: str, args: str) -> str:
    """The `host.call` import: forwards to the current call's host functions."""
    host: _LazyHost | None = getattr(_current, "host", None)
    if name == "sleep":  # the guest's `time.sleep`: never past the call's deadline
        if host is not None:
            with contextlib.suppress(ValueError):
                seconds = float(args)
                left = host.deadline - time.monotonic()
                time.sleep(max(0.0, min(seconds, left)))
                if seconds >= left:
                    raise _DeadlineTrap
        return '{"ok": null}'
    if host is None:
        return _reply_error("denied", "no host functions during warm-up")
    try:
        return host.get().dispatch(name, args)
    except Exception as exc:  # dispatch promises not to raise; never let it trap the guest
        return _reply_error("io", f"{type(exc).__name__}: {exc}")


def _lift_string(vec: Any) -> str:
    if not vec.size:
        return ""
    return str(
        (ctypes.c_uint8 * vec.size).from_address(ctypes.addressof(vec.data.contents)), "utf-8"
    )


def _host_call_raw_impl(
    _idx: Any, _context: Any, _ty: Any, args: Any, nargs: int, results: Any, nresults: int
) -> int:
    """The raw C callback of `host.call(name, args) -> string`.

    wasmtime-py's generic `add_func` turns every argument into Python objects first (a
    120 MB argument cost 830 MB of host memory); this one reads the argument's size and
    refuses an oversized one before copying it, and lifts the rest with one copy each.
    """
    try:
        if nargs != 2 or nresults != 1 or args[0].kind != _STRING or args[1].kind != _STRING:
            reply = _reply_error("invalid", "host.call takes (name, args) strings")
        else:
            name_vec, args_vec = args[0].of.string, args[1].of.string
            host: _LazyHost | None = getattr(_current, "host", None)
            limits = host.limits if host is not None else _DEFAULT_LIMITS
            name = _lift_string(name_vec) if name_vec.size <= 64 else "?"
            cap = _args_cap(name, limits)
            if args_vec.size > cap:
                reply = _reply_error(
                    "too_large",
                    f"the arguments of {name} are {args_vec.size} bytes; the limit is {cap}",
                )
            else:
                reply = _host_call(name, _lift_string(args_vec))
    except _DeadlineTrap:  # ends the call as a timeout: the guest runs no further
        trap = wasmtime.WasmtimeError("interrupt: the call's deadline passed in time.sleep")
        return ctypes.cast(trap._consume(), ctypes.c_void_p).value or 0
    except Exception as exc:  # never let a host-side bug trap the guest or escape into C
        reply = _reply_error("io", f"{type(exc).__name__}: {exc}")
    data = reply.encode("utf-8", "surrogatepass")
    out = results[0]
    out.kind = _STRING
    _ffi.wasm_byte_vec_new(ctypes.byref(out.of.string), len(data), _as_bytes_ptr(data))
    return 0


_host_call_raw = _ffi.wasmtime_component_func_callback_t(_host_call_raw_impl)
_NO_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)()  # a NULL function pointer


def _add_host_call(instance: Any) -> None:
    name = b"call"
    err = _ffi.wasmtime_component_linker_instance_add_func(
        instance.ptr(),
        ctypes.create_string_buffer(name),
        len(name),
        _host_call_raw,
        None,
        # A NULL finalizer: the callback has no data to free, and a ctypes finalizer would
        # be called when the linker is deleted at interpreter exit, possibly after ctypes
        # freed its thunk (a segfault at exit).
        _NO_FINALIZER,
    )
    if err:
        raise wasmtime.WasmtimeError._from_ptr(err)


class _EpochTicker:
    """Advances the engine epoch every `TICK_S` while calls run (and `TICKER_LINGER_S` after).

    A call only bumps a counter under a lock: the thread keeps ticking through a stream
    of calls instead of being woken (a context switch) for each, and goes back to sleep
    once the process has been idle for `TICKER_LINGER_S`.
    """

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._engine = engine
        self._lock = _thread.allocate_lock()
        self._wake = _thread.allocate_lock()
        self._wake.acquire()
        self._active = 0
        self._last_exit = 0.0
        self._ticking = False
        self._thread: threading.Thread | None = None

    def enter(self) -> None:
        with self._lock:
            self._active += 1
            if self._ticking:
                return
            self._ticking = True
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="symbiont-wasm-epoch", daemon=True
                )
                self._thread.start()
            self._wake.release()

    def exit(self) -> None:
        with self._lock:
            self._active -= 1
            self._last_exit = time.monotonic()

    def _loop(self) -> None:
        while True:
            self._wake.acquire()
            while True:
                time.sleep(TICK_S)
                self._engine.increment_epoch()
                with self._lock:
                    if self._active == 0 and time.monotonic() - self._last_exit > TICKER_LINGER_S:
                        self._ticking = False
                        break


class _RunExport:
    """Calls the runner's `run(source, entry, input) -> result<string, string>` export.

    `wasmtime.component.Func.__call__` re-reads the function's type through the C API and
    converts values generically on every call (~0.1 ms of Python per call, and three copies
    of each string); the type of `run` is fixed by our WIT world, so this lowers the three
    strings and lifts the result directly, with the same C calls and the same frees.
    """

    __slots__ = ("_func",)

    def __init__(self, func: Func) -> None:
        self._func = func._func

    def __call__(
        self, store: wasmtime.Store, source: str, entry: str, input_json: str
    ) -> tuple[bool, str | None]:
        params = (_ffi.wasmtime_component_val_t * 3)()
        n = 0
        try:
            for text in (source, entry, input_json):
                data = text.encode("utf-8")
                val = params[n]
                val.kind = _STRING
                _ffi.wasm_byte_vec_new(ctypes.byref(val.of.string), len(data), _as_bytes_ptr(data))
                n += 1
            result = _ffi.wasmtime_component_val_t()
            func, context = self._func, store._context()
            enter_wasm(
                lambda: _ffi.wasmtime_component_func_call(
                    ctypes.byref(func), context, params, n, ctypes.byref(result), 1
                )
            )
        finally:
            for i in range(n):
                _ffi.wasmtime_component_val_delete(ctypes.byref(params[i]))
        if result.kind != _RESULT:
            raise SandboxError(f"the runner's `run` returned a value of kind {result.kind}")
        is_ok = bool(result.of.result.is_ok)
        ptr = result.of.result.val
        if not ptr:
            return is_ok, None
        val = ptr.contents
        payload: str | None = None
        if val.kind == _STRING:
            vec = val.of.string
            payload = (
                str(
                    (ctypes.c_uint8 * vec.size).from_address(ctypes.addressof(vec.data.contents)),
                    "utf-8",
                )
                if vec.size
                else ""
            )
            _ffi.wasm_byte_vec_delete(ctypes.byref(vec))
        val.kind = _BOOL
        val.of.boolean = False
        _ffi.wasmtime_component_val_delete(ptr)
        return is_ok, payload

    def post_return(self, store: wasmtime.Store) -> None:
        func, context = self._func, store._context()
        enter_wasm(lambda: _ffi.wasmtime_component_func_post_return(ctypes.byref(func), context))


_STRING = _ffi.WASMTIME_COMPONENT_STRING.value
_RESULT = _ffi.WASMTIME_COMPONENT_RESULT.value
_BOOL = _ffi.WASMTIME_COMPONENT_BOOL.value
_BYTE_PTR = ctypes.POINTER(ctypes.c_uint8)


def _as_bytes_ptr(data: bytes) -> Any:
    return ctypes.cast(ctypes.c_char_p(data), _BYTE_PTR)  # no copy: wasm_byte_vec_new copies


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
                _add_host_call(host)
            _runtime = _Runtime(
                engine, component, linker, _EpochTicker(engine), time.perf_counter() - started
            )
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
    run: _RunExport
    prepare: Func
    capture: _Capture
    memory_limit: int = 0
    # The source this instance compiled ahead (`prepare`); such an instance only ever runs
    # that same source, so no capability sees another one's code.
    prepared: str | None = None


def _new_slot(rt: _Runtime, *, warm: bool = True) -> _Slot:
    """A fresh instance, and (for the pool) warmed up by one trusted no-op call.

    The warm-up calls run only trusted code (no capability) and page-faults in the
    memory a call touches, so the real call finds it mapped (~1.5 ms → ~0.4 ms). On
    the caller's own path (empty pool) it would only add a second call, so it is skipped.
    """
    store = wasmtime.Store(rt.engine)
    capture = _Capture()
    wasi = wasmtime.WasiConfig()  # no argv, env, preopens; empty stdin
    wasi.stdout_custom = capture.write
    wasi.stderr_custom = capture.write
    store.set_wasi(wasi)
    store.set_limits(memory_size=_DEFAULT_MEMORY)
    store.set_epoch_deadline(math.ceil(WARMUP_S / TICK_S))  # instantiation runs code too
    instance = rt.linker.instantiate(store, rt.component)
    func = instance.get_func(store, "run")
    prepare = instance.get_func(store, "prepare")
    if func is None or prepare is None:
        raise SandboxError("the wasm runner lacks its `run`/`prepare` exports (stale cache?)")
    run = _RunExport(func)
    if warm:
        for _ in range(_WARMUP_RUNS):
            run(store, _WARMUP_SOURCE, "_warm", _WARMUP_INPUT)
            run.post_return(store)
        capture.data.clear()
    return _Slot(store, run, prepare, capture, _DEFAULT_MEMORY)


def _prepared_slot(rt: _Runtime, source: str) -> _Slot | None:
    """A warmed-up instance that has compiled `source` (None if that trapped).

    Compiling runs none of the capability's code; it is bounded by the epoch deadline
    and the memory limit like a call. Whatever the outcome, the instance is marked as
    `source`'s and will only run `source`.
    """
    slot = _new_slot(rt)
    rt.ticker.enter()
    try:
        slot.store.set_epoch_deadline(math.ceil(PREPARE_S / TICK_S) + 1)
        slot.prepare(slot.store, source)
        slot.prepare.post_return(slot.store)
    except Exception:
        return None
    finally:
        rt.ticker.exit()
    slot.capture.data.clear()
    slot.prepared = source
    return slot


class _Pool:
    """Keeps up to `size` warmed-up instances ready and disposes of used ones.

    Both happen on a background thread after a call returns: instantiating (~2 ms) and
    dropping a used store (unmapping its memory, ~0.2-0.4 ms) stay off the caller's path.

    Capabilities tend to be called repeatedly, so most of the ready instances (all but
    one, at least one) have also compiled the source of the latest call ahead (`prepare`):
    compiling is the largest part of a small call. Such an instance is only ever handed
    to a call with that exact source; the plain one serves any other source.
    """

    def __init__(self, rt: _Runtime, size: int) -> None:
        self.rt = rt
        self._size = size
        self._slots: deque[_Slot] = deque()
        self._used: list[_Slot] = []
        self._hint: str | None = None  # the source to compile ahead: the latest call's
        self._lock = _thread.allocate_lock()
        self._wake = _thread.allocate_lock()  # a binary semaphore: released = work to do
        self._wake.acquire()
        self._closed = False
        self._failures = 0
        self._running = size > 0  # False once the refill thread has ended
        self._thread: threading.Thread | None = None
        if size > 0:
            self._thread = threading.Thread(
                target=self._refill, name="symbiont-wasm-pool", daemon=True
            )
            self._thread.start()

    def take(self, source: str) -> _Slot:
        with self._lock:
            plain = None
            for slot in self._slots:
                if slot.prepared is None:
                    if plain is None:
                        plain = slot
                elif slot.prepared is source or slot.prepared == source:
                    self._slots.remove(slot)
                    return slot
            if plain is not None:
                self._slots.remove(plain)
                return plain
        return _new_slot(self.rt, warm=False)  # nothing ready: instantiate right here

    def done(self, slot: _Slot | None, source: str | None = None) -> None:
        """Hand back a used instance (to be dropped) and wake the refill thread."""
        if not self._running:
            return  # no pool thread: the caller drops it
        with self._lock:
            if slot is not None:
                self._used.append(slot)
            if source is not None and len(source) <= PREPARE_MAX_CHARS:
                self._hint = source
        self._signal()

    def _signal(self) -> None:
        with contextlib.suppress(RuntimeError):  # already released: a wake-up is pending
            self._wake.release()

    def _plan(self) -> tuple[bool, str | None]:
        """Under the lock: whether to build an instance, and the source to prepare (if any)."""
        hint = self._hint
        stale = [s for s in self._slots if s.prepared is not None and s.prepared != hint]
        for slot in stale:  # compiled for a source that is no longer the latest
            self._slots.remove(slot)
            self._used.append(slot)
        prepared = sum(1 for s in self._slots if s.prepared is not None)
        want_prepared = max(1, self._size - 1) if hint is not None else 0
        if prepared < want_prepared:
            return True, hint
        return len(self._slots) < self._size, None

    def _refill(self) -> None:
        if _REFILL_NICE:
            # Background work: when a call and a refill compete for a core, the call wins.
            with contextlib.suppress(OSError, AttributeError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _REFILL_NICE)
        try:
            while True:
                with self._lock:
                    if self._closed:
                        return
                    build, source = self._plan()
                if build:
                    try:
                        slot = (
                            _new_slot(self.rt)
                            if source is None
                            else _prepared_slot(self.rt, source)
                        )
                    except Exception:
                        _log_exception("pre-instantiating a wasm sandbox instance failed")
                        self._failures += 1
                        if self._failures >= 3:
                            return
                        time.sleep(0.5)
                        continue
                    if slot is None:  # compiling the source ahead trapped: prepare no more
                        with self._lock:
                            if self._hint == source:
                                self._hint = None
                        continue
                    with self._lock:
                        if self._closed:
                            return
                        self._slots.append(slot)
                with self._lock:
                    used, self._used = self._used, []
                if used:
                    del used  # drops the stores (unmaps their memory) here, not in a call
                elif not build:
                    self._wake.acquire()
        finally:
            self._running = False
            with self._lock:
                self._used.clear()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._slots.clear()
            self._used.clear()
        self._signal()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)


# Callers whose call overran: their threads still run wasm until the epoch deadline traps
# it. The interpreter must not finalize under them (wasmtime would run on freed state and
# crash the process at exit), so exit waits for them, briefly.
_ABANDONED: set[_Caller] = set()
_EXIT_WAIT_S = 10.0


def _wait_for_abandoned_calls() -> None:
    deadline = time.monotonic() + _EXIT_WAIT_S
    for caller in list(_ABANDONED):
        caller._thread.join(timeout=max(0.0, deadline - time.monotonic()))


atexit.register(_wait_for_abandoned_calls)


class _Caller:
    """A persistent worker thread that makes wasm calls, so the caller can stop waiting.

    Epoch interruption stops wasm code, and no blocking WASI call is reachable from the
    guest; should a call still overrun (a host-side stall), the caller returns "timeout"
    and this thread is abandoned: it finishes on its own once the host call returns (the
    epoch deadline has passed, so the guest traps at once). The hand-off uses two bare locks (no Condition/Event objects): it is
    on every call's path.
    """

    def __init__(self) -> None:
        self._go = _thread.allocate_lock()
        self._go.acquire()
        self._job: Callable[[], Any] | None = None
        self._done: Any = None
        self._outcome: list[Any] = []
        self.abandoned = False
        self._thread = threading.Thread(target=self._loop, name="symbiont-wasm-call", daemon=True)
        self._thread.start()

    def call(self, job: Callable[[], Any], timeout: float) -> tuple[bool, Any]:
        """Run `job` on this thread; (False, None) if it did not finish within `timeout`."""
        done = _thread.allocate_lock()
        done.acquire()
        outcome: list[Any] = []
        self._job, self._done, self._outcome = job, done, outcome
        self._go.release()
        if not done.acquire(timeout=timeout):
            self.abandoned = True  # it ends by itself; the next call gets another thread
            _ABANDONED.add(self)
            self.stop()  # in case it finished just now and already waits for a next job
            return False, None
        return True, outcome[0]

    def _loop(self) -> None:
        while True:
            self._go.acquire()
            job, done, outcome = self._job, self._done, self._outcome
            self._job = self._done = None
            if job is None:
                return
            result: Any
            try:
                result = job()
            except BaseException as exc:
                # The traceback would keep the job's frame, and so its instance, alive.
                result = exc.with_traceback(None)
            # Drop the job (and with it the used instance, now owned by the pool thread)
            # before waking the caller, so the instance is not freed on a call's path.
            job = None
            outcome.append(result)
            done.release()
            del result, outcome, done
            if self.abandoned:
                _ABANDONED.discard(self)
                return

    def stop(self) -> None:
        self._job = None
        with contextlib.suppress(RuntimeError):  # already released: it wakes up anyway
            self._go.release()


# ---------------------------------------------------------------------------------------
# The sandbox
# ---------------------------------------------------------------------------------------


class WasmSandbox:
    """Runs capabilities in CPython-in-WebAssembly, a fresh instance per call.

    `pool_size` instances are kept pre-instantiated (0: instantiate on every call).
    `host_functions` builds the host side of `symbiont.host` for one call (default:
    `symbiont.sandbox.hostfns.HostFunctions`); it is called on the capability's first
    host-function call, not before. The runner is built on first use (tens of seconds,
    once per machine, progress to `progress` or stderr) — call `ensure_runner` to do that
    up front.
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
        self._idle: list[_Caller] = []  # worker threads not running a call
        self._closed = False

    # -- lifecycle ----------------------------------------------------------------------

    def ensure_runner(self, progress: Progress | None = None) -> Path:
        """Build/cache the runner now (see the module-level `ensure_runner`)."""
        return ensure_runner(progress or self._progress)

    def start(self) -> None:
        """Load the runner and start filling the pool (otherwise done by the first call)."""
        self._ensure_started()

    def _ensure_started(self) -> _Pool:
        with self._lock:
            if self._closed:
                raise SandboxError("this WasmSandbox is closed")
            if self._pool is None:
                self._pool = _Pool(_get_runtime(self._progress), self.pool_size)
            return self._pool

    def _checkout_caller(self) -> _Caller:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return _Caller()

    def _return_caller(self, caller: _Caller) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(caller)
                return
        caller.stop()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, idle = self._pool, self._idle
            self._pool, self._idle = None, []
        if pool is not None:
            pool.close()
        for caller in idle:
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
        permissions = permissions or _NO_PERMISSIONS
        limits = limits or _DEFAULT_LIMITS
        parse_input(input_json)
        if not isinstance(source, str) or not isinstance(entry, str):
            raise CapabilityError("source and entry must be strings")
        started = time.perf_counter()
        pool = self._pool if self._pool is not None and not self._closed else None
        if pool is None:
            pool = self._ensure_started()
        rt = pool.rt
        host = _LazyHost(
            self._host_factory, permissions, limits, time.monotonic() + limits.timeout_s
        )
        slot = pool.take(source)
        slot.capture.budget = limits.max_log_bytes
        if slot.memory_limit != limits.memory_bytes:
            slot.store.set_limits(memory_size=limits.memory_bytes)
            slot.memory_limit = limits.memory_bytes
        ticks = max(1, math.ceil(limits.timeout_s / TICK_S)) + 1
        ticker = rt.ticker

        def call() -> tuple[bool, str | None]:
            # The ticker runs as long as this job does, even if the caller stops waiting,
            # so an abandoned call still reaches its epoch deadline and ends.
            _current.host = host
            ticker.enter()
            try:
                slot.store.set_epoch_deadline(ticks)
                return slot.run(slot.store, source, entry, input_json)
            finally:
                ticker.exit()
                _current.host = None

        caller = self._checkout_caller()
        finished, outcome = caller.call(call, limits.timeout_s + 0.25 + 0.1 * limits.timeout_s)
        elapsed = time.perf_counter() - started
        if finished:
            self._return_caller(caller)
        if host.failure is not None:  # the host_functions factory raised: the caller's bug
            pool.done(slot if finished else None)
            raise host.failure
        hostfns = host.hostfns
        result = SandboxResult(
            duration_s=elapsed,
            host_calls=list(hostfns.calls) if hostfns is not None else [],
            logs=list(hostfns.logs) if hostfns is not None else [],
            tier=self.tier,
        )
        if not finished:
            pool.done(None)
            failure: SandboxFailure | None = SandboxFailure(
                "timeout",
                f"the capability ran past its time limit of {limits.timeout_s:g} s "
                "(blocked inside a host call; abandoned)",
            )
            output = None
        else:
            output, failure = self._interpret(outcome, limits, elapsed)
            if slot.capture.data:
                printed = slot.capture.data.decode("utf-8", "replace")
                result.logs.extend(printed.splitlines())
        overflow = bool(getattr(hostfns, "log_overflow", False)) or slot.capture.overflow
        if not overflow and result.logs:
            log_bytes = sum(len(line.encode("utf-8", "replace")) + 1 for line in result.logs)
            overflow = log_bytes > limits.max_log_bytes
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
        if finished:
            pool.done(slot, source)  # dropped (and replaced) on the pool's thread
        return result

    @staticmethod
    def _interpret(value: Any, limits: Limits, elapsed: float) -> tuple[Any, SandboxFailure | None]:
        if isinstance(value, BaseException):
            return None, _trap_failure(value, limits, elapsed)
        is_ok, payload = value
        if not isinstance(payload, str):
            return None, SandboxFailure("crash", f"the runner returned {value!r:.200}")
        if not is_ok:
            return None, _guest_failure(payload)
        chars = len(payload)  # UTF-8 takes 1-4 bytes per character: encode only if it matters
        if chars > limits.max_output_bytes or (
            chars * 4 > limits.max_output_bytes
            and len(payload.encode("utf-8", "surrogatepass")) > limits.max_output_bytes
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
