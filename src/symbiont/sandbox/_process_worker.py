"""The zygote and the worker of the `process` tier (this module runs in a separate Python).

The parent starts this module once per pool slot as a fresh interpreter (`python -I`, an empty
environment): the *zygote*. A fresh interpreter rather than a fork of the parent, because the
parent's memory holds what a capability must not see (API keys inside model clients, user
data) and may run threads that make fork unsafe. The zygote imports what workers need,
enters a new network namespace (no interfaces but a down loopback), probes the kernel and
opens the folders workers may read. Then, for each call, it forks a *worker* that confines
itself (rlimits, empty environment, cwd = scratch folder, Landlock, no capabilities, seccomp)
and runs the capability. The parent talks to the worker over a socketpair passed through the
zygote: the job in, host-function calls out (brokered by the parent), the result out; JSON
and bytes only, never pickle.

Frames on the call socket: 1 type byte + 4-byte big-endian length + payload.
  parent → worker: b"J" job JSON {"source", "entry", "input"}; b"H" host reply JSON
  worker → parent: b"C" host call "name\\nargs_json"; b"R" result JSON; b"E" failure JSON
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import resource
import signal
import socket
import struct
import sys
import traceback
from typing import Any

from symbiont import host as host_module
from symbiont.sandbox import _landlock, _process_runner, _seccomp

HEADER = struct.Struct(">cI")
CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
MAX_REPLY_BYTES = 256 * 1024 * 1024
_MEMORY_FRAME = json.dumps({"kind": "memory", "message": "the capability ran out of memory"})
TIER_HINT = "process tier"


# ---------------------------------------------------------------------------------------
# frames
# ---------------------------------------------------------------------------------------


def send_frame(sock: socket.socket, kind: bytes, payload: bytes) -> None:
    sock.sendall(HEADER.pack(kind, len(payload)) + payload)


def recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def recv_frame(sock: socket.socket, max_bytes: int) -> tuple[bytes, bytes] | None:
    head = recv_exact(sock, HEADER.size)
    if head is None:
        return None
    kind, size = HEADER.unpack(head)
    if size > max_bytes:
        raise ValueError(f"frame of {size} bytes exceeds the limit of {max_bytes}")
    payload = recv_exact(sock, size)
    if payload is None:
        return None
    return kind, payload


# ---------------------------------------------------------------------------------------
# probing the kernel (in the zygote)
# ---------------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def _enter_network_namespace() -> str | None:
    """Unshare the network namespace; returns an error text or None."""
    if os.geteuid() == 0:
        if _libc.unshare(CLONE_NEWNET) == 0:
            return None
        return f"unshare(CLONE_NEWNET) failed: {os.strerror(ctypes.get_errno())}"
    uid, gid = os.geteuid(), os.getegid()
    if _libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        return (
            "unshare(CLONE_NEWUSER|CLONE_NEWNET) failed: "
            f"{os.strerror(ctypes.get_errno())} (unprivileged user namespaces disabled?)"
        )
    try:
        with open("/proc/self/setgroups", "w") as fh:
            fh.write("deny")
        with open("/proc/self/uid_map", "w") as fh:
            fh.write(f"{uid} {uid} 1")
        with open("/proc/self/gid_map", "w") as fh:
            fh.write(f"{gid} {gid} 1")
    except OSError as exc:
        return f"user namespace id mapping failed: {exc}"
    return None


def _probe_seccomp() -> str | None:
    """Install the filter in a throwaway child and check that socket() is refused."""
    if not _seccomp.supported():
        return f"no seccomp syscall table for architecture {_seccomp.machine()!r}"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 3
        try:
            _seccomp.install(os.getpid())
            try:
                socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                code = 1
            except PermissionError:
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return None
    return f"seccomp filter could not be installed or did not work (probe exit {code})"


def _count_user_processes(uid: int) -> int:
    count = 0
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError):
                    if os.stat(f"/proc/{entry}").st_uid == uid:
                        count += 1
    return count


def _read_only_paths() -> list[str]:
    """What a worker may read: the Python installation, import paths, system libraries."""
    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    candidates += [p for p in sys.path if p]
    candidates += ["/usr/lib", "/lib", "/lib64", "/usr/lib64", "/usr/local/lib"]
    seen: list[str] = []
    for path in candidates:
        real = os.path.realpath(path)
        if os.path.isdir(real) and real not in seen and real != "/":
            seen.append(real)
    return seen


# ---------------------------------------------------------------------------------------
# the worker (a forked child of the zygote)
# ---------------------------------------------------------------------------------------


class _HostClient:
    """`symbiont.host` transport in the worker: one request/reply per call over the socket."""

    def __init__(self, sock: socket.socket, max_frame: int) -> None:
        self._sock = sock
        self._max_frame = max_frame

    def __call__(self, name: str, args_json: str) -> str:
        payload = f"{name}\n{args_json}".encode("utf-8", "surrogatepass")
        if len(payload) > self._max_frame:
            # The parent would kill us for an oversized frame; answer like the host would.
            message = (
                f"the arguments of {name}() are {len(payload)} bytes, over the limit of "
                f"{self._max_frame} bytes for one host call"
            )
            return json.dumps({"error": {"kind": "too_large", "message": message}})
        send_frame(self._sock, b"C", payload)
        frame = recv_frame(self._sock, MAX_REPLY_BYTES)
        if frame is None or frame[0] != b"H":
            raise ConnectionError("the sandbox host went away")
        return frame[1].decode("utf-8")


def _confine(
    sock: socket.socket, req: dict[str, Any], zygote: dict[str, Any], ro_fds: list[int]
) -> None:
    """Everything between fork and running the capability; raises if a protection fails."""
    os.setsid()  # own session and process group: kill(0, ...) reaches only ourselves
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # oversize writes raise EFBIG instead
    limits = req["limits"]
    features = zygote["enabled"]
    cpu = int(limits["timeout_s"]) + 2
    page = os.sysconf("SC_PAGE_SIZE")
    with open("/proc/self/statm") as fh:
        vm_now = int(fh.read().split()[0]) * page
    rlimits = {
        resource.RLIMIT_CPU: (cpu, cpu + 1),
        resource.RLIMIT_AS: (vm_now + int(limits["memory_bytes"]),) * 2,
        resource.RLIMIT_FSIZE: (int(limits["max_file_bytes"]),) * 2,
        resource.RLIMIT_NOFILE: (64, 64),
        resource.RLIMIT_CORE: (0, 0),
    }
    if os.geteuid() != 0:  # root is exempt from RLIMIT_NPROC; seccomp denies fork anyway
        n = zygote["user_processes"] + 16
        rlimits[resource.RLIMIT_NPROC] = (n, n)
    for which, value in rlimits.items():
        resource.setrlimit(which, value)
    os.environ.clear()  # calls unsetenv for each key: nothing from the host remains
    os.chdir(req["scratch"])
    _seccomp.set_no_new_privs()
    if features["landlock"]:
        scratch_fd = os.open(req["scratch"], os.O_PATH | os.O_CLOEXEC)
        rules = [(fd, _landlock.READ_ONLY) for fd in ro_fds]
        rules.append((scratch_fd, _landlock.READ_WRITE))
        rules += [(fd, rights) for fd, rights in zygote["dev_rules"]]
        _landlock.restrict(zygote["landlock_abi"], rules)
        os.close(scratch_fd)
    keep = sock.fileno()
    os.closerange(3, keep)
    os.closerange(keep + 1, 65536)
    if features["drop_capabilities"]:
        _seccomp.drop_capabilities()
    if features["seccomp"]:
        _seccomp.install(os.getpid())


def _serve(sock: socket.socket) -> None:
    """Read the job, run it, send the outcome."""
    frame = recv_frame(sock, MAX_REPLY_BYTES)
    if frame is None or frame[0] != b"J":
        return
    job = json.loads(frame[1])
    host_module.install_process_transport(_HostClient(sock, int(job["max_call_bytes"])))
    try:
        input_value = json.loads(job["input"])
        outcome = _process_runner.run_capability(
            job["source"], job["entry"], input_value, int(job["max_output_bytes"]), TIER_HINT
        )
        if outcome.kind is None:
            send_frame(sock, b"R", outcome.payload.encode("utf-8"))
            return
        failure = {
            "kind": outcome.kind,
            "message": outcome.payload[:65536],
            "traceback": (outcome.traceback or "")[-65536:] or None,
        }
        send_frame(sock, b"E", json.dumps(failure).encode("utf-8", "replace"))
    except MemoryError:
        send_frame(sock, b"E", _MEMORY_FRAME.encode())


def _worker(callfd: int, req: dict[str, Any], zygote: dict[str, Any], ro_fds: list[int]) -> None:
    sock = socket.socket(fileno=callfd)
    code = 0
    try:
        try:
            _confine(sock, req, zygote, ro_fds)
        except BaseException as exc:
            failure = {
                "kind": "crash",
                "message": f"sandbox setup failed, the capability was not run: {exc!r}",
                "traceback": None,
            }
            send_frame(sock, b"E", json.dumps(failure).encode())
            code = 71
            return
        _serve(sock)
    except BaseException:
        code = 70
    finally:
        os._exit(code)


# ---------------------------------------------------------------------------------------
# the zygote
# ---------------------------------------------------------------------------------------


def _status_dict(status: int) -> dict[str, Any]:
    if os.WIFSIGNALED(status):
        return {"signal": os.WTERMSIG(status)}
    return {"exit": os.waitstatus_to_exitcode(status)}


def main() -> None:
    ctrl = socket.socket(fileno=int(sys.argv[1]))
    config = json.loads(sys.argv[2])
    try:
        for name in config.get("preload", ()):
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
        missing: dict[str, str] = {}
        netns_error = _enter_network_namespace()
        if netns_error:
            missing["network namespace"] = netns_error
        abi = _landlock.abi_version()
        if abi < 1:
            missing["landlock"] = "Landlock is not available in this kernel (or disabled at boot)"
        seccomp_error = _probe_seccomp()
        if seccomp_error:
            missing["seccomp"] = seccomp_error
        ro_fds = [os.open(p, os.O_PATH | os.O_CLOEXEC) for p in _read_only_paths()]
        dev_rules: list[tuple[int, int]] = []
        for path, rights in (
            ("/dev/null", _landlock.FS_READ_FILE | _landlock.FS_WRITE_FILE),
            ("/dev/urandom", _landlock.FS_READ_FILE),
            ("/dev/zero", _landlock.FS_READ_FILE),
        ):
            with contextlib.suppress(OSError):
                dev_rules.append((os.open(path, os.O_PATH | os.O_CLOEXEC), rights))
        zygote = {
            "landlock_abi": abi,
            "enabled": {
                "landlock": abi >= 1,
                "seccomp": seccomp_error is None,
                "drop_capabilities": True,
            },
            "dev_rules": dev_rules,
            "user_processes": 0 if os.geteuid() == 0 else _count_user_processes(os.geteuid()),
        }
        ready = {
            "ready": True,
            "landlock_abi": abi,
            "missing": missing,
            "read_only": _read_only_paths(),
            "pid": os.getpid(),
        }
        ctrl.send(json.dumps(ready).encode())
    except BaseException:
        with contextlib.suppress(OSError):
            ctrl.send(json.dumps({"fatal": traceback.format_exc()}).encode())
        raise
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(ctrl, 65536, 1)
        except (ConnectionError, OSError):
            return
        if not msg:
            return
        req = json.loads(msg)
        if req.get("op") != "run" or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            continue
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the worker
            ctrl.close()
            _worker(fds[0], req, zygote, ro_fds)
        os.close(fds[0])
        pidfd = os.pidfd_open(pid)
        try:
            socket.send_fds(ctrl, [json.dumps({"pid": pid}).encode()], [pidfd])
        finally:
            os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        try:
            ctrl.send(json.dumps(_status_dict(status)).encode())
        except OSError:
            return


if __name__ == "__main__":
    main()
