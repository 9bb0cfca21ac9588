"""The `process` tier: native speed, each call in a freshly forked, confined worker.

    sandbox = ProcessSandbox()
    result = sandbox.run(source, "main", '{"x": 1}', Permissions(...), Limits(...))

Per call a fresh worker is forked from a zygote (a fresh interpreter started once, see
`_process_worker`) and confines itself before the capability runs; when calls repeat their
limits, the zygote forks and confines the next call's worker while the current one runs (a
spare that has run nothing when its call arrives), so a warm call waits for neither:

- namespaces: network (no network at all; `http_get` goes through the parent), UTS and PID
  (shared with its zygote), mount (a read-only root holding only the Python installation, the
  import paths, three devices and a fresh size-capped tmpfs /scratch, its working directory;
  no other file exists for it, not even /proc) and IPC (its own, gone with it),
- a dedicated unprivileged uid/gid, no supplementary groups, no capabilities, no new privileges,
- Landlock: read-only the Python installation and import paths, read-write the scratch folder,
- seccomp: no execve, no new sockets, no new processes, no ptrace, no mount, no namespace or
  keyring calls, no file metadata changes (mode, owner, times, extended attributes), no
  System V IPC, signals only to itself,
- rlimits: CPU seconds, address space, file size, open files, tasks (threads included),
- an empty environment (no API keys),
- host functions brokered over a socketpair to the parent, which runs `HostFunctions.dispatch`
  with the same checks as every tier; results cross as JSON, never pickle, and every frame the
  worker sends is checked (strict JSON, finite numbers, only kinds a worker can know).

The parent enforces the wall-clock limit with SIGKILL (through a pidfd, so a recycled pid can
never be hit) and decides timeouts, crashes and memory exhaustion from the exit status; a call
returns only once its worker has exited. If the
kernel lacks a protection, the first call raises `SandboxError` naming it, unless the sandbox
was created with `allow_weaker_isolation=True`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import math
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import symbiont
from symbiont.errors import SandboxError
from symbiont.sandbox._process_worker import (
    EXIT_OUT_OF_MEMORY,
    WORKER_KINDS,
    WORKER_SLOTS,
    recv_frame,
    send_frame,
)
from symbiont.sandbox.base import (
    Limits,
    Permissions,
    SandboxFailure,
    SandboxResult,
    parse_input,
)
from symbiont.sandbox.hostfns import HostFunctions

log = logging.getLogger("symbiont.sandbox")

_ZYGOTE_ENV = {
    "LC_ALL": "C.UTF-8",
    "OPENBLAS_NUM_THREADS": "1",  # BLAS thread pools would make the zygote multi-threaded
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
_CRASH_SIGNALS = {
    signal.SIGSEGV: "segmentation fault",
    signal.SIGBUS: "bus error",
    signal.SIGABRT: "abort",
    signal.SIGILL: "illegal instruction",
    signal.SIGFPE: "floating-point exception",
    signal.SIGSYS: "forbidden system call (seccomp)",
}
_ZYGOTE_START_TIMEOUT_S = 60.0
_STATUS_TIMEOUT_S = 10.0
_MIN_SCRATCH_BYTES = 16 * 1024 * 1024
_PRESEND_BYTES = 64 * 1024  # well within a Unix socket's send buffer: never blocks


def scratch_bytes(limits: Limits) -> int:
    """The scratch quota of one call: four files of the size limit, at least 16 MiB, at most
    the memory limit (the tmpfs lives in the host's memory)."""
    return min(max(_MIN_SCRATCH_BYTES, 4 * limits.max_file_bytes), limits.memory_bytes)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def strict_json(text: str) -> Any:
    """Decode JSON as the standard defines it: no NaN or Infinity, no number that overflows."""
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)


def remove_tree(root: str) -> None:
    """Remove `root` and everything below it, however deep; never raises, never recurses.

    Walks with directory descriptors (no path ever grows past one name, so depth cannot hit
    PATH_MAX or the interpreter's recursion limit) and holds at most two open at a time.
    Symlinks are removed, never followed. What cannot be removed is left, not retried.
    """
    names: list[str] = []  # the path from root to the current folder
    stuck: set[tuple[int, int]] = set()  # folders that could not be emptied
    try:
        current = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        while True:
            descend = None
            with contextlib.suppress(OSError), os.scandir(current) as entries:
                for entry in entries:
                    is_dir = False
                    with contextlib.suppress(OSError):
                        is_dir = entry.is_dir(follow_symlinks=False)
                    if not is_dir:
                        with contextlib.suppress(OSError):
                            os.unlink(entry.name, dir_fd=current)
                        continue
                    with contextlib.suppress(OSError):
                        info = entry.stat(follow_symlinks=False)
                        if (info.st_dev, info.st_ino) not in stuck:
                            descend = entry.name
                            break
            if descend is not None:
                try:
                    child = os.open(
                        descend, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=current
                    )
                except OSError:
                    with contextlib.suppress(OSError):
                        info = os.stat(descend, dir_fd=current, follow_symlinks=False)
                        stuck.add((info.st_dev, info.st_ino))
                    continue
                os.close(current)
                current = child
                names.append(descend)
                continue
            if not names:
                break
            name = names.pop()
            parent = os.open("..", os.O_RDONLY | os.O_DIRECTORY, dir_fd=current)
            try:
                os.rmdir(name, dir_fd=parent)
            except OSError:
                info = os.fstat(current)
                stuck.add((info.st_dev, info.st_ino))
            os.close(current)
            current = parent
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            os.close(current)
    with contextlib.suppress(OSError):
        os.rmdir(root)


def _default_preload() -> tuple[str, ...]:
    return ("numpy",) if importlib.util.find_spec("numpy") is not None else ()


class _Zygote:
    """One zygote process and its control socket. It runs up to WORKER_SLOTS workers at
    once; `lock` pairs each fork request with its acknowledgement, `running` counts calls."""

    def __init__(self, preload: tuple[str, ...], without: tuple[str, ...] = ()) -> None:
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        package_root = str(Path(symbiont.__file__).resolve().parent.parent)
        # `symbiont` is a bare package in the zygote, as in the wasm guest: a capability gets
        # `symbiont.host`; the package's __init__ (the evolvable machinery, and with it
        # `threading`, whose after-fork hook alone costs every worker ~150 page copies)
        # is not loaded.
        code = (
            "import sys, types; root = sys.argv.pop(1); sys.path.insert(0, root); "
            "pkg = types.ModuleType('symbiont'); pkg.__path__ = [root + '/symbiont']; "
            "sys.modules['symbiont'] = pkg; "
            "from symbiont.sandbox._process_worker import main; main()"
        )
        config = json.dumps({"preload": list(preload), "without": list(without)})
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-c", code, package_root, str(child_end.fileno()), config],
                pass_fds=(child_end.fileno(),),
                env=dict(_ZYGOTE_ENV),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                cwd="/",
            )
        finally:
            child_end.close()
        self.ctrl = parent_end
        self.ctrl.settimeout(_ZYGOTE_START_TIMEOUT_S)
        try:
            ready = json.loads(self.ctrl.recv(1 << 20) or b"{}")
        except (OSError, ValueError) as exc:
            self.close()
            raise SandboxError(f"the process-tier zygote did not start: {exc}") from None
        if "fatal" in ready or not ready.get("ready"):
            self.close()
            raise SandboxError(
                "the process-tier zygote failed to start:\n" + str(ready.get("fatal", ready))
            )
        self.ready: dict[str, Any] = ready
        self.broken = False
        self.lock = threading.Lock()
        self.running = 0  # guarded by the sandbox's pool condition

    def spare(self) -> int | None:
        """The pid (in the zygote's PID namespace) of the worker it keeps confined ahead of
        the next call, which has run nothing yet; None when there is none."""
        try:
            with self.lock:
                self.ctrl.settimeout(_STATUS_TIMEOUT_S)
                self.ctrl.send(json.dumps({"op": "spare"}).encode())
                reply = json.loads(self.ctrl.recv(4096) or b"{}")
        except (OSError, ValueError):
            self.broken = True
            return None
        spare = reply.get("spare") if isinstance(reply, dict) else None
        return spare if isinstance(spare, int) else None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.ctrl.close()
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)


class _Output:
    """A result the worker sent that passed every check: the decoded JSON value."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class _Call:
    """The parent's side of one worker run."""

    def __init__(self, zygote: _Zygote, hostfns: HostFunctions, limits: Limits) -> None:
        self.zygote = zygote
        self.hostfns = hostfns
        self.limits = limits
        self.deadline = time.monotonic() + limits.timeout_s
        self.killed_for_timeout = False
        self.pidfd: int | None = None
        self.frame_cap = 6 * max(limits.max_file_bytes, limits.max_log_bytes, 64 * 1024) + 64 * 1024
        self.setup_failure: str | None = None  # the worker could not confine itself
        # The zygote reports the worker's exit status on this call's own socket.
        self.status, self._status_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.memory_traceback: str | None = None  # sent with a MemoryError, before exiting

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def kill(self) -> None:
        if self.pidfd is not None:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)

    def run(self, source: str, entry: str, input_json: str) -> SandboxFailure | _Output:
        # Without a mount namespace the scratch folder is a host folder; else a tmpfs that
        # exists only in the worker's mount namespace and vanishes with it.
        in_namespace = self.zygote.ready.get("scratch") == "tmpfs"
        scratch = None if in_namespace else tempfile.mkdtemp(prefix="symbiont-scratch-")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        status_theirs = self._status_theirs
        ctrl = self.zygote.ctrl
        request = {
            "op": "run",
            "scratch": scratch,
            "limits": {
                "timeout_s": self.limits.timeout_s,
                "memory_bytes": self.limits.memory_bytes,
                "max_file_bytes": self.limits.max_file_bytes,
                "scratch_bytes": scratch_bytes(self.limits),
            },
        }
        try:
            # A job that fits the socket's buffer goes in before the worker exists: it reads
            # it (after confining itself) without waiting for a round trip to us.
            job = self._job(source, entry, input_json)
            presend = len(job) + 5 <= _PRESEND_BYTES
            if presend:
                send_frame(ours, b"J", job)
            try:
                with self.zygote.lock:
                    ctrl.settimeout(_STATUS_TIMEOUT_S)
                    socket.send_fds(
                        ctrl,
                        [json.dumps(request).encode()],
                        [theirs.fileno(), status_theirs.fileno()],
                    )
                    msg, fds, _f, _a = socket.recv_fds(ctrl, 4096, 1)
                theirs.close()
                status_theirs.close()
                if not msg or len(fds) != 1:
                    for fd in fds:
                        os.close(fd)
                    refusal = json.loads(msg).get("error") if msg else None
                    raise OSError(refusal or "no fork acknowledgement")
                self.pidfd = fds[0]
            except (OSError, ValueError) as exc:
                self.zygote.broken = True
                raise SandboxError(f"the process-tier zygote stopped answering: {exc}") from None
            outcome = self._converse(ours, None if presend else job)
            status = self._reap(outcome)
            if outcome is not None:
                return outcome
            return self._classify_death(status)
        finally:
            ours.close()
            self.status.close()
            for end in (theirs, status_theirs):
                with contextlib.suppress(OSError):
                    end.close()
            if self.pidfd is not None:
                os.close(self.pidfd)
            if scratch is not None:
                remove_tree(scratch)

    def _reap(self, outcome: SandboxFailure | _Output | None) -> dict[str, Any]:
        """Make sure the worker is gone and read its exit status from the zygote.

        With an outcome in hand the status does not matter: the worker is killed and this
        waits only until it has exited (its pidfd says so; its memory, descriptors and
        namespaces are gone by then), not for the zygote to reap it and report.
        """
        if outcome is not None:
            self.kill()  # we have what we need; whatever the worker does next is irrelevant
            if self.pidfd is not None:
                poller = select.poll()
                poller.register(self.pidfd, select.POLLIN)
                if poller.poll(_STATUS_TIMEOUT_S * 1000):
                    return {}
            self.zygote.broken = True
            return {"unknown": True}
        settled = self.killed_for_timeout
        wait = _STATUS_TIMEOUT_S if settled else max(self.remaining(), 0.001)
        for _attempt in range(2):
            self.status.settimeout(wait)
            try:
                msg = self.status.recv(4096)
            except TimeoutError:
                if not settled:  # the worker closed its socket but is still running
                    settled = self.killed_for_timeout = True
                    self.kill()
                    wait = _STATUS_TIMEOUT_S
                    continue
                break
            except OSError:
                break
            if msg:
                return json.loads(msg)
            break
        self.zygote.broken = True
        return {"unknown": True}

    def _classify_death(self, status: dict[str, Any]) -> SandboxFailure:
        sig = status.get("signal")
        if self.killed_for_timeout:
            return SandboxFailure(
                "timeout", f"the capability ran longer than {self.limits.timeout_s} s"
            )
        if self.setup_failure is not None:
            return SandboxFailure("crash", self.setup_failure)
        if status.get("exit") == EXIT_OUT_OF_MEMORY and self.memory_traceback is not None:
            return SandboxFailure(
                "memory",
                f"the capability ran out of memory (limit {self.limits.memory_bytes} bytes)",
                self.memory_traceback or None,
            )
        if sig == signal.SIGXCPU:
            return SandboxFailure("timeout", "the capability used up its CPU-time limit")
        if sig is not None:
            name = _CRASH_SIGNALS.get(sig)
            if name is None:
                try:
                    name = signal.Signals(sig).name
                except ValueError:
                    name = f"signal {sig}"
            if sig == signal.SIGKILL:
                name = "SIGKILL (killed from outside, possibly out of memory)"
            return SandboxFailure("crash", f"the worker died: {name}")
        if "exit" in status:
            return SandboxFailure(
                "crash", f"the worker exited with code {status['exit']} without a result"
            )
        return SandboxFailure("crash", "the worker disappeared without a result")

    def _job(self, source: str, entry: str, input_json: str) -> bytes:
        job = {
            "source": source,
            "entry": entry,
            "input": input_json,
            "max_output_bytes": self.limits.max_output_bytes,
            "max_call_bytes": self.frame_cap,
        }
        return json.dumps(job).encode("utf-8", "surrogatepass")

    def _converse(self, sock: socket.socket, job: bytes | None) -> SandboxFailure | _Output | None:
        """Send the job (unless it was sent ahead: None), broker host calls; the result, a
        failure, or None (the exit status decides: the worker died, could not confine
        itself, or ran out of memory)."""
        confined = False
        try:
            if job is not None:
                sock.settimeout(max(self.remaining(), 0.001))
                send_frame(sock, b"J", job)
            while True:
                left = self.remaining()
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
                cap = max(self.frame_cap, self.limits.max_output_bytes + 1024)
                try:
                    frame = recv_frame(sock, cap)
                except ValueError as exc:
                    self.kill()
                    return SandboxFailure("output_too_large", f"the worker sent too much: {exc}")
                if frame is None:
                    return None
                kind, payload = frame
                if not confined:
                    # Sent before anything of the capability ran: the worker's own word.
                    if kind == b"K":
                        confined = True
                        continue
                    if kind == b"S":
                        self.setup_failure = self._setup_message(payload)
                        return None
                    self.kill()
                    return SandboxFailure("crash", "the worker sent no confinement report")
                if kind == b"C":
                    name, _, args = payload.decode("utf-8", "replace").partition("\n")
                    reply = self.hostfns.dispatch(name, args)
                    sock.settimeout(max(self.remaining(), 0.001))
                    send_frame(sock, b"H", reply.encode("utf-8", "surrogatepass"))
                elif kind == b"R":
                    return self._result(payload)
                elif kind == b"E":
                    return self._failure(payload)
                elif kind == b"M" and self.memory_traceback is None:
                    # Only a note: "memory" needs the exit status that goes with it.
                    self.memory_traceback = payload[-65536:].decode("utf-8", "replace")
                else:
                    self.kill()
                    return SandboxFailure(
                        "invalid_output", f"the worker sent an unexpected frame {kind[:1]!r}"
                    )
        except TimeoutError:
            self.killed_for_timeout = True
            self.kill()
            return SandboxFailure(
                "timeout", f"the capability ran longer than {self.limits.timeout_s} s"
            )
        except (BrokenPipeError, ConnectionResetError):
            if not confined:  # it may have reported a failed setup before the job was read
                with contextlib.suppress(OSError, ValueError):
                    sock.settimeout(1.0)
                    frame = recv_frame(sock, 65536)
                    if frame is not None and frame[0] == b"S":
                        self.setup_failure = self._setup_message(frame[1])
            return None

    def _result(self, payload: bytes) -> SandboxFailure | _Output:
        if len(payload) > self.limits.max_output_bytes:
            return SandboxFailure(
                "output_too_large",
                f"the result is larger than the limit of {self.limits.max_output_bytes} bytes",
            )
        try:
            return _Output(strict_json(payload.decode("utf-8")))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            return SandboxFailure("invalid_output", f"the result is not valid JSON: {exc}")

    @staticmethod
    def _failure(payload: bytes) -> SandboxFailure:
        """A failure the worker reports: only kinds it can know, text fields only."""
        try:
            data = strict_json(payload.decode("utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not an object")
            kind, message, tb = data.get("kind"), data.get("message"), data.get("traceback")
            if not isinstance(message, str) or not (tb is None or isinstance(tb, str)):
                raise ValueError("message and traceback must be text")
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            return SandboxFailure(
                "invalid_output", f"the worker sent a malformed failure report ({exc})"
            )
        if kind not in WORKER_KINDS:
            return SandboxFailure(
                "invalid_output",
                f"the worker reported the error kind {str(kind)[:40]!r}, which only the host "
                f"decides (a worker may report: {', '.join(WORKER_KINDS)})",
            )
        return SandboxFailure(kind, message[:65536], tb[-65536:] if tb else None)

    @staticmethod
    def _setup_message(payload: bytes) -> str:
        try:
            message = json.loads(payload)["message"]
        except (ValueError, KeyError, TypeError, RecursionError):
            message = None
        if not isinstance(message, str):
            return "sandbox setup failed, the capability was not run"
        return message[:4096]


class ProcessSandbox:
    """Runs capabilities in confined, pre-forked worker processes (Linux only).

    Each zygote runs up to WORKER_SLOTS calls at once, every worker brokered by its own
    caller's thread, so a call whose host function is slow never holds up another; a further
    zygote (up to `pool_size`) starts only when every zygote is full. `preload` names
    modules the zygote imports once so workers get them for free (default: numpy when
    installed). With `allow_weaker_isolation=True`, missing kernel protections are logged
    and named in the result's tier instead of refusing to run.
    """

    tier = "process"

    def __init__(
        self,
        allow_weaker_isolation: bool = False,
        pool_size: int = 1,
        preload: tuple[str, ...] | None = None,
        *,
        _without: tuple[str, ...] = (),
    ) -> None:
        if pool_size < 1:
            raise SandboxError(f"pool_size must be at least 1, not {pool_size}")
        self.allow_weaker_isolation = allow_weaker_isolation
        self.pool_size = pool_size
        self.preload = _default_preload() if preload is None else tuple(preload)
        self._without = tuple(_without)  # protections left out on purpose (tests of fallbacks)
        self._pool = threading.Condition()  # guards _all, _closed and each zygote's running
        self._all: list[_Zygote] = []
        self._missing: dict[str, str] | None = None
        self._closed = False
        self.tier_label = "process"

    # -- lifecycle --------------------------------------------------------------------------

    def _start_zygote(self) -> _Zygote:
        if not sys.platform.startswith("linux"):
            raise SandboxError("the process tier needs Linux (namespaces, Landlock, seccomp)")
        if not hasattr(os, "pidfd_open"):
            raise SandboxError("the process tier needs os.pidfd_open (Linux ≥ 5.3)")
        zygote = _Zygote(self.preload, self._without)
        missing: dict[str, str] = zygote.ready.get("missing", {})
        if missing and not self.allow_weaker_isolation:
            zygote.close()
            listing = "; ".join(f"{name}: {why}" for name, why in missing.items())
            raise SandboxError(
                f"the process tier cannot isolate fully on this machine, missing: {listing}. "
                "Pass allow_weaker_isolation=True to run without these protections."
            )
        if missing:
            self.tier_label = "process (weaker isolation: no " + ", no ".join(missing) + ")"
            log.warning("%s", self.tier_label)
        self._missing = missing
        return zygote

    def probe(self) -> dict[str, Any]:
        """What this machine offers: every protection (None when in effect, else why not),
        the missing ones, Landlock ABI, the worker's ids and task cap, readable folders, and
        the pid (in the zygote's namespace) of the worker confined ahead of the next call."""
        zygote = self._acquire()
        try:
            ready = zygote.ready
            return {
                "landlock_abi": ready.get("landlock_abi", 0),
                "protections": dict(ready.get("protections", {})),
                "missing": dict(ready.get("missing", {})),
                "read_only": list(ready.get("read_only", [])),
                "pid": ready.get("pid"),
                "uid": ready.get("uid"),
                "gid": ready.get("gid"),
                "max_tasks": ready.get("max_tasks"),
                "worker_slots": ready.get("worker_slots"),
                "last_uid": ready.get("last_uid"),
                "scratch": ready.get("scratch"),
                "spare": zygote.spare(),
            }
        finally:
            self._release(zygote)

    def _acquire(self) -> _Zygote:
        """The least busy zygote with a free worker slot; a new one (up to pool_size) only
        when every zygote is full, else wait for a slot."""
        with self._pool:
            while True:
                if self._closed:
                    raise SandboxError("this ProcessSandbox is closed")
                usable = [z for z in self._all if not z.broken and z.running < WORKER_SLOTS]
                if usable:
                    zygote = min(usable, key=lambda z: z.running)
                    zygote.running += 1
                    return zygote
                if len(self._all) < self.pool_size:
                    zygote = self._start_zygote()  # others wait for it: they would use it
                    zygote.running = 1
                    self._all.append(zygote)
                    return zygote
                self._pool.wait()

    def _release(self, zygote: _Zygote) -> None:
        with self._pool:
            zygote.running -= 1
            dead = zygote.broken or zygote.proc.poll() is not None
            if dead and zygote in self._all:
                self._all.remove(zygote)
            self._pool.notify_all()
        if dead:
            zygote.close()  # calls still on it see its status sockets close: a crash each

    def close(self) -> None:
        """Stop the zygotes (a running call finishes or is killed by its own deadline)."""
        with self._pool:
            self._closed = True
            zygotes, self._all = self._all, []
            self._pool.notify_all()
        for zygote in zygotes:
            zygote.close()

    def __enter__(self) -> ProcessSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    # -- running ----------------------------------------------------------------------------

    def run(
        self,
        source: str,
        entry: str,
        input_json: str,
        permissions: Permissions | None = None,
        limits: Limits | None = None,
    ) -> SandboxResult:
        """Run `entry(**input)` from `source` in a fresh confined worker."""
        permissions = permissions or Permissions()
        limits = limits or Limits()
        parse_input(input_json)
        started = time.perf_counter()
        hostfns = HostFunctions(permissions, limits)
        zygote = self._acquire()
        try:
            call = _Call(zygote, hostfns, limits)
            hostfns.deadline = call.deadline
            outcome = call.run(source, entry, input_json)
        finally:
            self._release(zygote)
        result = SandboxResult(
            duration_s=time.perf_counter() - started,
            host_calls=list(hostfns.calls),
            logs=list(hostfns.logs),
            tier=self.tier_label,
        )
        if hostfns.log_overflow and not (
            isinstance(outcome, SandboxFailure) and outcome.kind in ("timeout", "crash", "memory")
        ):
            outcome = SandboxFailure(
                "output_too_large",
                f"the capability logged more than the limit of {limits.max_log_bytes} bytes",
                outcome.traceback if isinstance(outcome, SandboxFailure) else None,
            )
        if isinstance(outcome, SandboxFailure):
            result.error = outcome
        else:
            result.output = outcome.value
        return result


__all__ = ["ProcessSandbox"]
