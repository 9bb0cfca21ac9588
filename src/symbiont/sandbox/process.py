"""The `process` tier: native speed, each call in a freshly forked, confined worker.

    sandbox = ProcessSandbox()
    result = sandbox.run(source, "main", '{"x": 1}', Permissions(...), Limits(...))

Per call the worker is forked from a zygote (a fresh interpreter started once, see
`_process_worker`) and confines itself before the capability runs:

- network namespace of its own (no network at all; `http_get` goes through the parent),
- Landlock: read-only the Python installation and import paths, read-write a fresh scratch
  folder that is also its working directory; no other file, not even /proc,
- seccomp: no execve, no new sockets, no new processes, no ptrace, no mount, no namespace or
  keyring calls, signals only to itself,
- rlimits: CPU seconds, address space, file size, open files (and processes when not root),
- an empty environment (no API keys), no capabilities,
- host functions brokered over a socketpair to the parent, which runs `HostFunctions.dispatch`
  with the same checks as every tier; results cross as JSON, never pickle.

The parent enforces the wall-clock limit with SIGKILL (through a pidfd, so a recycled pid can
never be hit). If the kernel lacks a protection, the first call raises `SandboxError` naming
it, unless the sandbox was created with `allow_weaker_isolation=True`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import queue
import shutil
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
from symbiont.sandbox._process_worker import recv_frame, send_frame
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


def _default_preload() -> tuple[str, ...]:
    return ("numpy",) if importlib.util.find_spec("numpy") is not None else ()


class _Zygote:
    """One zygote process and its control socket; serves one call at a time."""

    def __init__(self, preload: tuple[str, ...]) -> None:
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        package_root = str(Path(symbiont.__file__).resolve().parent.parent)
        code = (
            "import sys; sys.path.insert(0, sys.argv.pop(1)); "
            "from symbiont.sandbox._process_worker import main; main()"
        )
        config = json.dumps({"preload": list(preload)})
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

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.ctrl.close()
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)


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

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def kill(self) -> None:
        if self.pidfd is not None:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)

    def run(self, source: str, entry: str, input_json: str) -> SandboxFailure | str:
        scratch = tempfile.mkdtemp(prefix="symbiont-scratch-")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ctrl = self.zygote.ctrl
        request = {
            "op": "run",
            "scratch": scratch,
            "limits": {
                "timeout_s": self.limits.timeout_s,
                "memory_bytes": self.limits.memory_bytes,
                "max_file_bytes": self.limits.max_file_bytes,
            },
        }
        try:
            try:
                ctrl.settimeout(_STATUS_TIMEOUT_S)
                socket.send_fds(ctrl, [json.dumps(request).encode()], [theirs.fileno()])
                theirs.close()
                msg, fds, _f, _a = socket.recv_fds(ctrl, 4096, 1)
                if not msg or len(fds) != 1:
                    raise OSError("no fork acknowledgement")
                self.pidfd = fds[0]
            except OSError as exc:
                self.zygote.broken = True
                raise SandboxError(f"the process-tier zygote stopped answering: {exc}") from None
            outcome = self._converse(ours, source, entry, input_json)
            status = self._reap(outcome)
            if outcome is not None:
                return outcome
            return self._classify_death(status)
        finally:
            ours.close()
            with contextlib.suppress(OSError):
                theirs.close()
            if self.pidfd is not None:
                os.close(self.pidfd)
            shutil.rmtree(scratch, ignore_errors=True)

    def _reap(self, outcome: SandboxFailure | str | None) -> dict[str, Any]:
        """Make sure the worker is gone and read its exit status from the zygote."""
        if outcome is not None:
            self.kill()  # we have what we need; whatever the worker does next is irrelevant
        ctrl = self.zygote.ctrl
        settled = outcome is not None or self.killed_for_timeout
        wait = _STATUS_TIMEOUT_S if settled else max(self.remaining(), 0.001)
        for _attempt in range(2):
            ctrl.settimeout(wait)
            try:
                msg = ctrl.recv(4096)
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

    def _converse(
        self, sock: socket.socket, source: str, entry: str, input_json: str
    ) -> SandboxFailure | str | None:
        """Send the job, broker host calls; the result text, a failure, or None (worker died)."""
        job = {
            "source": source,
            "entry": entry,
            "input": input_json,
            "max_output_bytes": self.limits.max_output_bytes,
            "max_call_bytes": self.frame_cap,
        }
        try:
            sock.settimeout(max(self.remaining(), 0.001))
            send_frame(sock, b"J", json.dumps(job).encode("utf-8", "surrogatepass"))
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
                if kind == b"C":
                    name, _, args = payload.decode("utf-8", "replace").partition("\n")
                    reply = self.hostfns.dispatch(name, args)
                    sock.settimeout(max(self.remaining(), 0.001))
                    send_frame(sock, b"H", reply.encode("utf-8", "surrogatepass"))
                elif kind == b"R":
                    return self._result(payload)
                elif kind == b"E":
                    return self._failure(payload)
                else:
                    self.kill()
                    return SandboxFailure("crash", f"the worker sent an unknown frame {kind!r}")
        except TimeoutError:
            self.killed_for_timeout = True
            self.kill()
            return SandboxFailure(
                "timeout", f"the capability ran longer than {self.limits.timeout_s} s"
            )
        except (BrokenPipeError, ConnectionResetError):
            return None

    def _result(self, payload: bytes) -> SandboxFailure | str:
        if len(payload) > self.limits.max_output_bytes:
            return SandboxFailure(
                "output_too_large",
                f"the result is larger than the limit of {self.limits.max_output_bytes} bytes",
            )
        try:
            text = payload.decode("utf-8")
            json.loads(text)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            return SandboxFailure("invalid_output", f"the result is not valid JSON: {exc}")
        return text

    @staticmethod
    def _failure(payload: bytes) -> SandboxFailure:
        try:
            data = json.loads(payload)
            kind = data["kind"]
            if kind not in (
                "timeout", "memory", "denied", "exception", "output_too_large", "crash",
                "invalid_output", "unavailable",
            ):  # fmt: skip
                raise ValueError(kind)
            tb = data.get("traceback")
            return SandboxFailure(kind, str(data.get("message", "")), str(tb) if tb else None)
        except (ValueError, KeyError, TypeError, RecursionError):
            return SandboxFailure("crash", "the worker sent a malformed failure report")


class ProcessSandbox:
    """Runs capabilities in confined, pre-forked worker processes (Linux only).

    `pool_size` zygotes serve calls in parallel (one call each at a time). `preload` names
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
    ) -> None:
        if pool_size < 1:
            raise SandboxError(f"pool_size must be at least 1, not {pool_size}")
        self.allow_weaker_isolation = allow_weaker_isolation
        self.pool_size = pool_size
        self.preload = _default_preload() if preload is None else tuple(preload)
        self._lock = threading.Lock()
        self._idle: queue.LifoQueue[_Zygote] = queue.LifoQueue()
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
        zygote = _Zygote(self.preload)
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
        """What this machine offers: Landlock ABI, missing protections, readable folders."""
        zygote = self._acquire()
        try:
            return {
                "landlock_abi": zygote.ready.get("landlock_abi", 0),
                "missing": dict(zygote.ready.get("missing", {})),
                "read_only": list(zygote.ready.get("read_only", [])),
            }
        finally:
            self._release(zygote)

    def _acquire(self) -> _Zygote:
        if self._closed:
            raise SandboxError("this ProcessSandbox is closed")
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if len(self._all) < self.pool_size:
                zygote = self._start_zygote()
                self._all.append(zygote)
                return zygote
        return self._idle.get()

    def _release(self, zygote: _Zygote) -> None:
        if zygote.broken or zygote.proc.poll() is not None:
            zygote.close()
            with self._lock:
                if zygote in self._all:
                    self._all.remove(zygote)
            return
        self._idle.put(zygote)

    def close(self) -> None:
        """Stop the zygotes (a running call finishes or is killed by its own deadline)."""
        self._closed = True
        with self._lock:
            zygotes, self._all = self._all, []
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
            result.output = json.loads(outcome)
        return result


__all__ = ["ProcessSandbox"]
