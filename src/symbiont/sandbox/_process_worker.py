"""The zygote and the worker of the `process` tier (this module runs in a separate Python).

The parent starts this module once per pool slot as a fresh interpreter (`python -I`, an empty
environment): the *zygote*. A fresh interpreter rather than a fork of the parent, because the
parent's memory holds what a capability must not see (API keys inside model clients, user
data) and may run threads that make fork unsafe. The zygote imports what workers need, then
isolates itself once:

- new network and UTS namespaces (no interfaces but a down loopback; hostname "sandbox"),
- a new mount namespace whose root is a small read-only tmpfs holding only read-only binds of
  the Python installation and import paths, /dev/null, /dev/zero, /dev/urandom and an empty
  /scratch (pivot_root; the old root is detached, so nothing else exists, not even /proc),
- a new PID namespace: the zygote becomes its pid 1, workers get pids 2, 3, ... and see no
  other process; when the zygote dies every worker dies with it.

It probes what the kernel gave (see `PROTECTIONS`) and reports it. Then, for each call, it
forks a *worker* (or hands the call to a *spare*: a worker it forked and that confined itself
ahead of the call, see `_serve_calls`) that confines itself before anything of the capability
runs: new mount and
IPC namespaces (a fresh tmpfs with a size and inode cap on /scratch, its working directory;
SysV and POSIX IPC objects die with it), rlimits (CPU, address space, file size, open files,
tasks), an empty environment, a dedicated unprivileged uid/gid with no supplementary groups
and no capabilities, no new privileges, Landlock, and seccomp last. The parent talks to the
worker over a socketpair passed through the zygote: the job in, host-function calls out
(brokered by the parent), the result out; JSON and bytes only, never pickle.

Frames on the call socket: 1 type byte + 4-byte big-endian length + payload.
  parent → worker: b"J" job JSON {"source", "entry", "input", ...}; b"H" host reply JSON
  worker → parent, first: b"K" (confined; nothing of the capability has run yet) or b"S"
    (setup failed, JSON {"message"}; the worker exits).
  then, written by code the capability controls, so the parent checks every byte:
    b"C" host call "name\\nargs_json"; b"R" result JSON; b"E" failure JSON {"kind",
    "message", "traceback"} with a kind the worker can know (WORKER_KINDS); b"M" the
    traceback of a MemoryError, after which the worker exits with EXIT_OUT_OF_MEMORY.
  Timeouts, crashes and memory exhaustion are decided by the parent from the exit status.
"""

from __future__ import annotations

import _signal
import contextlib
import ctypes
import importlib
import json
import os
import resource
import select
import signal
import socket
import struct
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

from symbiont import host as host_module
from symbiont.sandbox import _confine as _shared
from symbiont.sandbox import _landlock, _process_runner, _seccomp

HEADER = struct.Struct(">cI")
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 0x2
PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
IPC_PRIVATE = 0
IPC_CREAT = 0o1000

MAX_REPLY_BYTES = 256 * 1024 * 1024
TIER_HINT = "process tier"
# Workers run as WORKER_ID_BASE + WORKER_SLOTS × the zygote's pid + their slot (uid and gid):
# unused ids, one per running worker, so RLIMIT_NPROC counts only that worker's own tasks
# (threads included, raw clone too). Above the ranges distributions and container managers
# hand out (systemd: < 0x70000000) and below systemd's "foreign" range (0x7FFE0000).
WORKER_ID_BASE = 0x70000000
WORKER_SLOTS = 8  # workers one zygote runs at once (each its own caller thread in the parent)
MAX_TASKS = 32  # threads + processes of one worker, the main thread included
SCRATCH = "/scratch"
SCRATCH_INODES = 10_000
EXIT_SETUP_FAILED = 71
EXIT_OUT_OF_MEMORY = 86
# What a worker may say about its own failure; everything else is the parent's call.
WORKER_KINDS = ("exception", "denied", "output_too_large", "invalid_output", "unavailable")
# Denied on top of `_seccomp.DENIED`: file metadata (Landlock does not cover it; the data
# folder is only reached through host functions, so nothing in the worker needs these) and
# System V IPC (objects that would outlive the worker and escape its memory limit).
EXTRA_DENIED = (
    "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat",
    "utime", "utimes", "futimesat", "utimensat", "setxattr", "lsetxattr", "fsetxattr",
    "setxattrat", "removexattr", "lremovexattr", "fremovexattr", "removexattrat",
    "shmget", "shmat", "shmctl", "shmdt", "msgget", "msgsnd", "msgrcv", "msgctl", "semget",
    "semop", "semctl", "semtimedop",
)  # fmt: skip
# Every protection the zygote reports on (name -> None when in effect, else why not).
PROTECTIONS = (
    "network namespace", "mount namespace", "IPC namespace", "PID namespace",
    "UTS namespace", "unprivileged uid", "task limit", "scratch quota", "landlock", "seccomp",
)  # fmt: skip
_DEVICES = (
    ("/dev/null", _landlock.FS_READ_FILE | _landlock.FS_WRITE_FILE),
    ("/dev/urandom", _landlock.FS_READ_FILE),
    ("/dev/zero", _landlock.FS_READ_FILE),
)


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
# kernel calls
# ---------------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p
]  # fmt: skip
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def _check(res: int, what: str) -> None:
    if res != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _unshare(flags: int, what: str) -> None:
    _check(_libc.unshare(flags), f"unshare({what})")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    _check(
        _libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            flags,
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


def _pivot_root_here() -> None:
    """Make the current directory the root; the old root is detached (gone for good)."""
    nr = _seccomp.SYSCALLS[_seccomp.machine()]["pivot_root"]
    _check(_syscall(ctypes.c_long(nr), b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "umount2(old root)")
    os.chdir("/")


def _enter_network_namespace() -> str | None:
    """Unshare the network namespace (in a user namespace when not root); error text or None."""
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


def _enter_uts_namespace() -> str | None:
    try:
        _unshare(CLONE_NEWUTS, "CLONE_NEWUTS")
        name = b"sandbox"
        _check(_libc.sethostname(name, len(name)), "sethostname")
    except OSError as exc:
        return str(exc)
    return None


def _build_root(paths: list[str]) -> None:
    """Pivot into a read-only tmpfs that holds only read-only binds of `paths`, three
    devices and an empty /scratch. Needs a private mount namespace; undone if it fails."""
    # Descriptors first: the tmpfs is mounted over a folder that may hold some of the paths.
    sources = {path: os.open(path, os.O_PATH | os.O_CLOEXEC) for path in paths}
    for device, _rights in _DEVICES:
        with contextlib.suppress(OSError):
            sources[device] = os.open(device, os.O_PATH | os.O_CLOEXEC)
    base = "/tmp" if os.path.isdir("/tmp") else "/mnt"
    try:
        _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount reaches the host
        _mount("symbiont-root", base, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
        try:
            bound: list[str] = []
            for path in sorted(paths, key=len):
                if any(path.startswith(done + "/") for done in bound):
                    continue  # already inside a bind
                target = base + path
                os.makedirs(target, 0o755, exist_ok=True)
                _mount(f"/proc/self/fd/{sources[path]}", target, None, MS_BIND)
                _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
                bound.append(path)
            os.makedirs(base + "/dev", 0o755, exist_ok=True)
            for device, _rights in _DEVICES:
                if device in sources:
                    os.close(os.open(base + device, os.O_CREAT | os.O_WRONLY, 0o644))
                    _mount(f"/proc/self/fd/{sources[device]}", base + device, None, MS_BIND)
            for link in ("/bin", "/lib", "/lib64", "/sbin"):  # merged-/usr systems
                if os.path.islink(link) and not os.path.lexists(base + link):
                    os.symlink(os.readlink(link), base + link)
            os.mkdir(base + SCRATCH, 0o755)
            _mount(None, base, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
            os.chdir(base)
            _pivot_root_here()
        except BaseException:
            os.chdir("/")
            _libc.umount2(base.encode(), MNT_DETACH)
            raise
    finally:
        for fd in sources.values():
            os.close(fd)


def _count_user_processes(uid: int) -> int:
    count = 0
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError):
                    if os.stat(f"/proc/{entry}").st_uid == uid:
                        count += 1
    return count


def _address_space_now() -> int:
    page = os.sysconf("SC_PAGE_SIZE")
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[0]) * page


# ---------------------------------------------------------------------------------------
# confining one process (the worker, and the zygote's probe)
# ---------------------------------------------------------------------------------------


def _private_scratch(zygote: dict[str, Any], scratch_bytes: int) -> None:
    """Own mount namespace with a fresh size- and inode-capped tmpfs on /scratch."""
    _unshare(CLONE_NEWNS, "CLONE_NEWNS")
    uid, gid = zygote["uid"], zygote["gid"]
    options = f"size={scratch_bytes},nr_inodes={SCRATCH_INODES},mode=0700,uid={uid},gid={gid}"
    _mount("symbiont-scratch", SCRATCH, "tmpfs", MS_NOSUID | MS_NODEV, options)


def _become_worker_user(uid: int, gid: int) -> None:
    """Drop the capability bounding set (needs CAP_SETPCAP), then switch every id: the
    permitted and effective capabilities go with uid 0."""
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == 22:
            break  # EINVAL: past the last capability this kernel knows
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


_SECCOMP_PROGRAM: _shared.SeccompProgram | None = None


def _seccomp_program() -> _shared.SeccompProgram:
    """The worker's filter, built once per zygote: a fork only patches in its pid."""
    global _SECCOMP_PROGRAM
    if _SECCOMP_PROGRAM is None:
        _SECCOMP_PROGRAM = _shared.seccomp_program(extra_denied=EXTRA_DENIED, bucketed=True)
    return _SECCOMP_PROGRAM


def _install_seccomp(pid: int) -> None:
    # Patches the pid into the program's prebuilt buffer (this process's copy) and makes two
    # calls: no copy of the program, no ctypes objects built after the fork.
    _shared.install_seccomp(_seccomp_program(), pid)


def _bound_syscall(*argtypes: Any) -> Any:
    """libc's `syscall` bound with its own argument types (a fresh function object each)."""
    fn = ctypes.CDLL(None, use_errno=True)["syscall"]
    fn.restype = ctypes.c_long
    fn.argtypes = [ctypes.c_long, *argtypes]
    return fn


_ll_create = _bound_syscall(ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint32)
_ll_add = _bound_syscall(ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32)
_ll_restrict = _bound_syscall(ctypes.c_int, ctypes.c_uint32)


class _LandlockPlan:
    """A worker's Landlock domain, prepared once in the zygote: the ruleset attribute and a
    rule for every read-only path and device (rights fitted to folder or file), in ctypes
    buffers. A worker adds the one rule only it can know, its own scratch tmpfs, with four
    kinds of system call and no ctypes object built after the fork (each would cost
    copy-on-write page faults). The same rules as `_landlock.restrict` would make."""

    def __init__(self, abi: int, rules: list[tuple[int, int]]) -> None:
        attr = _landlock.ruleset_attr(abi)
        self.attr = ctypes.create_string_buffer(attr, len(attr))
        self.rules = [
            ctypes.create_string_buffer(_landlock.path_rule(abi, fd, rights), 12)
            for fd, rights in rules
        ]
        self.scratch_rights = _landlock.READ_WRITE & _landlock.handled_fs(abi)
        self.scratch = ctypes.create_string_buffer(12)

    def restrict(self, scratch_fd: int) -> None:
        """Enter the domain (needs no-new-privs first); `scratch_fd`: O_PATH of /scratch."""
        ruleset = _ll_create(_landlock.SYS_LANDLOCK_CREATE_RULESET, self.attr, len(self.attr), 0)
        if ruleset < 0:
            raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
        try:
            struct.pack_into("=Qi", self.scratch, 0, self.scratch_rights, scratch_fd)
            for rule in (*self.rules, self.scratch):
                if _ll_add(_landlock.SYS_LANDLOCK_ADD_RULE, ruleset, 1, rule, 0) != 0:
                    raise OSError(ctypes.get_errno(), "landlock_add_rule")
            if _ll_restrict(_landlock.SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
                raise OSError(ctypes.get_errno(), "landlock_restrict_self")
        finally:
            os.close(ruleset)


def _confine(
    sock: socket.socket, req: dict[str, Any], zygote: dict[str, Any], ro_fds: list[int]
) -> None:
    """Everything between fork and running the capability; raises if a protection fails."""
    os.setsid()  # own session and process group: kill(0, ...) reaches only ourselves
    # `_signal.signal`: `signal.signal` wraps the old handler in an enum, whose machinery
    # alone costs a forked child dozens of page copies.
    for sig in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGCHLD):
        _signal.signal(sig, _signal.SIG_DFL)
    _signal.signal(_signal.SIGXFSZ, _signal.SIG_IGN)  # oversize writes raise EFBIG instead
    limits = req["limits"]
    enabled = zygote["enabled"]
    if enabled["IPC namespace"]:
        _unshare(CLONE_NEWIPC, "CLONE_NEWIPC")
    if enabled["mount namespace"]:
        _private_scratch(zygote, int(limits["scratch_bytes"]))
        os.chdir(SCRATCH)
    else:
        os.chdir(req["scratch"])
        if enabled["unprivileged uid"]:
            os.chown(".", zygote["uid"], zygote["gid"])
    cpu = int(limits["timeout_s"]) + 2
    rlimits = {
        resource.RLIMIT_CPU: (cpu, cpu + 1),
        resource.RLIMIT_AS: (zygote["address_space"] + int(limits["memory_bytes"]),) * 2,
        resource.RLIMIT_FSIZE: (int(limits["max_file_bytes"]),) * 2,
        resource.RLIMIT_NOFILE: (64, 64),
        resource.RLIMIT_CORE: (0, 0),
    }
    if zygote["max_tasks"]:
        rlimits[resource.RLIMIT_NPROC] = (zygote["max_tasks"],) * 2
    for which, value in rlimits.items():
        resource.setrlimit(which, value)
    if os.environ:  # the zygote cleared its own; should anything have set one since
        os.environ.clear()  # calls unsetenv for each key: nothing from the host remains
    if enabled["unprivileged uid"]:
        _become_worker_user(zygote["uid"], zygote["gid"])
    _shared.set_no_new_privs()
    if enabled["landlock"]:
        # Per call: a rule on the /scratch mount point would not cover the tmpfs on it
        # (Landlock skips hidden mount points), so the rule names this call's tmpfs.
        scratch_fd = os.open(".", os.O_PATH | os.O_CLOEXEC)
        zygote["landlock"].restrict(scratch_fd)
        os.close(scratch_fd)
    keep = sock.fileno()
    os.closerange(3, keep)
    os.closerange(keep + 1, 65536)
    # The uid switch dropped the bounding set already (it needed CAP_SETPCAP, gone now);
    # otherwise (a user namespace) drop it here. Then empty the other sets.
    _shared.drop_capabilities(bounding=not enabled["unprivileged uid"])
    if enabled["seccomp"]:
        _install_seccomp(os.getpid())


def _probe_in_child(zygote: dict[str, Any], paths: list[str]) -> dict[str, str | None]:
    """The per-call steps, one by one, each checked (runs in a throwaway child)."""
    found: dict[str, str | None] = {}
    try:
        _unshare(CLONE_NEWIPC, "CLONE_NEWIPC")
        found["IPC namespace"] = None
    except OSError as exc:
        found["IPC namespace"] = str(exc)
    if zygote["enabled"]["mount namespace"]:
        try:
            _private_scratch(zygote, 1 << 20)
            found["scratch quota"] = None
        except OSError as exc:
            found["scratch quota"] = f"no tmpfs for the scratch folder: {exc}"
    if os.geteuid() == 0:
        try:
            _become_worker_user(zygote["uid"], zygote["gid"])
            unreadable = [p for p in paths if not os.access(p, os.R_OK | os.X_OK)]
            found["unprivileged uid"] = (
                None
                if not unreadable
                else "the Python installation is not readable by other users: "
                + ", ".join(unreadable)
            )
        except OSError as exc:
            found["unprivileged uid"] = f"cannot switch to uid {zygote['uid']}: {exc}"
    if not _seccomp.supported():
        found["seccomp"] = f"no seccomp syscall table for architecture {_seccomp.machine()!r}"
        return found
    try:
        _install_seccomp(os.getpid())
    except OSError as exc:
        found["seccomp"] = f"the seccomp filter could not be installed: {exc}"
        return found
    try:
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close()
        found["seccomp"] = "the seccomp filter did not refuse socket()"
    except PermissionError:
        # System V IPC is open to every user, so EPERM here can only come from the filter.
        if _libc.shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600) != -1:
            found["seccomp"] = "the seccomp filter did not refuse shmget()"
        else:
            found["seccomp"] = None
    return found


def _probe_worker(zygote: dict[str, Any], paths: list[str]) -> dict[str, str | None]:
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        found: dict[str, str | None] = {}
        try:
            found = _probe_in_child(zygote, paths)
        except BaseException as exc:
            found = {"seccomp": f"the probe failed: {exc!r}"}
        finally:
            os.write(writer, json.dumps(found).encode())
            os._exit(0)
    os.close(writer)
    data = b""
    while chunk := os.read(reader, 65536):
        data += chunk
    os.close(reader)
    os.waitpid(pid, 0)
    try:
        return dict(json.loads(data))
    except ValueError:
        return {"seccomp": "the probe child died before reporting"}


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


def _serve(sock: socket.socket) -> int:
    """Read the job, run it, send the outcome; the exit code of the worker."""
    frame = recv_frame(sock, MAX_REPLY_BYTES)
    if frame is None or frame[0] != b"J":
        return 0
    job = json.loads(frame[1])
    host_module.install_process_transport(_HostClient(sock, int(job["max_call_bytes"])))
    try:
        input_value = json.loads(job["input"])
        outcome = _process_runner.run_capability(
            job["source"], job["entry"], input_value, int(job["max_output_bytes"]), TIER_HINT
        )
        if outcome.kind is None:
            send_frame(sock, b"R", outcome.payload.encode("utf-8"))
            return 0
        if outcome.kind == "memory":  # the parent decides from the exit code
            send_frame(sock, b"M", (outcome.traceback or "")[-65536:].encode("utf-8", "replace"))
            return EXIT_OUT_OF_MEMORY
        failure = {
            "kind": outcome.kind,
            "message": outcome.payload[:65536],
            "traceback": (outcome.traceback or "")[-65536:] or None,
        }
        send_frame(sock, b"E", json.dumps(failure).encode("utf-8", "replace"))
    except MemoryError:
        return EXIT_OUT_OF_MEMORY
    return 0


def _confine_or_why(
    sock: socket.socket, req: dict[str, Any], zygote: dict[str, Any], ro_fds: list[int]
) -> str | None:
    """Confine this process (`_confine`); None, or why a step failed."""
    try:
        _confine(sock, req, zygote, ro_fds)
    except BaseException as exc:
        return f"sandbox setup failed, the capability was not run: {exc!r}"
    return None


def _serve_confined(sock: socket.socket, failure: str | None) -> int:
    """Report the confinement (b"K", or b"S" with why it failed) and serve the call; the
    worker's exit code."""
    if failure is not None:
        send_frame(sock, b"S", json.dumps({"message": failure}).encode())
        return EXIT_SETUP_FAILED
    send_frame(sock, b"K", b"")
    return _serve(sock)


def _exit_with(body: Callable[[], int]) -> NoReturn:
    """Run a worker's `body` and exit with its code, never returning into the zygote's
    code (MemoryError: EXIT_OUT_OF_MEMORY; anything else raised: 70)."""
    code = 70
    try:
        code = body()
    except MemoryError:
        code = EXIT_OUT_OF_MEMORY
    except BaseException:
        code = 70
    finally:
        os._exit(code)


def _worker(callfd: int, req: dict[str, Any], zygote: dict[str, Any], ro_fds: list[int]) -> None:
    """A worker forked for a call: confine, then serve it."""
    sock = socket.socket(fileno=callfd)
    _exit_with(lambda: _serve_confined(sock, _confine_or_why(sock, req, zygote, ro_fds)))


def _spare_worker(
    chanfd: int, req: dict[str, Any], zygote: dict[str, Any], ro_fds: list[int]
) -> None:
    """A worker forked ahead of a call: confine (exactly as `_worker` does, with the
    limits of the call before), then wait on the zygote's channel for the call socket.

    Nothing of any capability has run in it when the socket arrives, so it reports itself
    confined (b"K") like a fresh worker; or, if a confinement step failed, reports that
    (b"S") to the call it was handed and exits, as a fresh worker would.
    """
    chan = socket.socket(fileno=chanfd)

    def body() -> int:
        failure = _confine_or_why(chan, req, zygote, ro_fds)
        _msg, fds, _flags, _addr = socket.recv_fds(chan, 16, 1)
        if len(fds) != 1:
            return 0  # the zygote discarded this spare
        chan.close()
        return _serve_confined(socket.socket(fileno=fds[0]), failure)

    _exit_with(body)


# ---------------------------------------------------------------------------------------
# the zygote
# ---------------------------------------------------------------------------------------


def _status_dict(status: int) -> dict[str, Any]:
    if os.WIFSIGNALED(status):
        return {"signal": os.WTERMSIG(status)}
    return {"exit": os.waitstatus_to_exitcode(status)}


def _isolate_zygote(
    without: tuple[str, ...] = (),
) -> tuple[dict[str, Any], dict[str, str | None], list[str]]:
    """Namespaces, the new root and the probe; (zygote state, protections, read-only paths).

    `without` names protections to leave out (only "mount namespace" is honoured: the tests
    of the host-folder scratch use it)."""
    found: dict[str, str | None] = dict.fromkeys(PROTECTIONS)
    found["network namespace"] = _enter_network_namespace()
    found["UTS namespace"] = _enter_uts_namespace()
    root = os.geteuid() == 0
    worker_id = WORKER_ID_BASE + WORKER_SLOTS * os.getpid()
    paths = _shared.read_only_paths()  # the same list a confined trial may read
    zygote: dict[str, Any] = {
        "uid": worker_id if root else os.geteuid(),
        "gid": worker_id if root else os.getegid(),
        "address_space": _address_space_now(),
        "max_tasks": 0 if root else _count_user_processes(os.geteuid()) + 16,
    }
    try:
        if "mount namespace" in without:
            raise OSError(0, "left out on request")
        _unshare(CLONE_NEWNS, "CLONE_NEWNS")
        _build_root(paths)
    except OSError as exc:
        found["mount namespace"] = exc.strerror or str(exc)
    abi = _landlock.abi_version()
    if abi < 1:
        found["landlock"] = "Landlock is not available in this kernel (or disabled at boot)"
    zygote["landlock_abi"] = abi
    zygote["enabled"] = {
        "mount namespace": found["mount namespace"] is None,
        "IPC namespace": False,
        "unprivileged uid": False,
        "landlock": abi >= 1,
        "seccomp": False,
    }
    found.update(_probe_worker(zygote, paths))
    if not zygote["enabled"]["mount namespace"]:
        found["scratch quota"] = (
            "no mount namespace: scratch is a folder in the host's temporary directory, "
            "bounded per file by RLIMIT_FSIZE only"
        )
    if not root:
        found["unprivileged uid"] = None  # the worker keeps the caller's own, non-root uid
    for name in ("IPC namespace", "unprivileged uid", "seccomp"):
        zygote["enabled"][name] = found[name] is None
    if root and zygote["enabled"]["unprivileged uid"]:
        zygote["max_tasks"] = MAX_TASKS
    elif root:
        found["task limit"] = "the worker runs as root, which RLIMIT_NPROC does not bind"
    return zygote, found, paths


def _enter_pid_namespace() -> str | None:
    """Fork the zygote into a new PID namespace as its pid 1; the original process only
    waits and exits with it. Returns in the new zygote (or here, with the error text)."""
    try:
        _unshare(CLONE_NEWPID, "CLONE_NEWPID")
    except OSError as exc:
        return str(exc)
    alive_r, alive_w = os.pipe()  # EOF on alive_r: the original process is gone
    pid = os.fork()
    if pid == 0:
        # Die with the original process (the parent kills that one); a SIGKILL from the
        # ancestor namespace reaches a pid 1. Then check it did not die before that.
        os.close(alive_w)
        _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "PR_SET_PDEATHSIG")
        os.set_blocking(alive_r, False)
        try:
            if os.read(alive_r, 1) == b"":
                os._exit(1)
        except BlockingIOError:
            pass
        os.close(alive_r)
        return None
    for fd in range(3, 1024):  # the control socket and the rest belong to the new zygote
        if fd != alive_w:
            with contextlib.suppress(OSError):
                os.close(fd)
    _, status = os.waitpid(pid, 0)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def main() -> None:
    ctrl = socket.socket(fileno=int(sys.argv[1]))
    config = json.loads(sys.argv[2])
    try:
        for name in config.get("preload", ()):
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
        outer_pid = os.getpid()
        zygote, found, paths = _isolate_zygote(tuple(config.get("without", ())))
        found["PID namespace"] = _enter_pid_namespace()
        ro_fds = [os.open(p, os.O_PATH | os.O_CLOEXEC) for p in paths]
        rules = [(fd, _landlock.READ_ONLY) for fd in ro_fds]
        for path, rights in _DEVICES:
            with contextlib.suppress(OSError):
                rules.append((os.open(path, os.O_PATH | os.O_CLOEXEC), rights))
        if zygote["enabled"]["landlock"]:
            zygote["landlock"] = _LandlockPlan(zygote["landlock_abi"], rules)
        # Its few variables (locale, BLAS threads) did their work at start-up and import:
        # gone now, so no worker has any to clear.
        os.environ.clear()
        # Spares need the per-worker scratch tmpfs; "spare worker" in `without`: none.
        zygote["spares"] = zygote["enabled"]["mount namespace"] and "spare worker" not in (
            config.get("without", ())
        )
        if zygote["enabled"]["seccomp"]:
            _seccomp_program()
        missing = {name: why for name, why in found.items() if why is not None}
        ready = {
            "ready": True,
            "landlock_abi": zygote["landlock_abi"],
            "missing": missing,
            "protections": found,
            "read_only": paths,
            "pid": outer_pid,
            "uid": zygote["uid"],
            "gid": zygote["gid"],
            "max_tasks": zygote["max_tasks"],
            "worker_slots": WORKER_SLOTS,
            "last_uid": zygote["uid"] + (WORKER_SLOTS - 1 if os.geteuid() == 0 else 0),
            "scratch": "tmpfs" if zygote["enabled"]["mount namespace"] else "folder",
        }
        ctrl.send(json.dumps(ready).encode())
    except BaseException:
        with contextlib.suppress(OSError):
            ctrl.send(json.dumps({"fatal": traceback.format_exc()}).encode())
        raise
    _serve_calls(ctrl, zygote, ro_fds)


class _Spare:
    """The zygote's side of a worker confined ahead of the next call (see `_spare_worker`)."""

    __slots__ = ("chan", "key", "pid", "pidfd", "slot")

    def __init__(self, pid: int, pidfd: int, slot: int, chan: socket.socket, key: str) -> None:
        self.pid, self.pidfd, self.slot, self.chan, self.key = pid, pidfd, slot, chan, key


def _limits_key(req: dict[str, Any]) -> str:
    return json.dumps(req.get("limits"), sort_keys=True)


def _serve_calls(ctrl: socket.socket, zygote: dict[str, Any], ro_fds: list[int]) -> None:
    """Fork a worker per request, up to WORKER_SLOTS at once; report each exit status on
    that call's own status socket, so a slow call never holds up another.

    With a mount namespace (the scratch tmpfs is made by the worker itself, nothing per
    call comes from the parent but the limits), once two calls in a row had the same
    limits, one extra worker is kept confined ahead: forked when a call is handed over,
    with that call's limits, it serves the next call if that call has the same limits (else
    it is killed and a worker is forked for the call). Fork, after-fork work and
    confinement then happen while the previous call runs, not on the next call's path; the
    worker a call gets is confined exactly the same either way. A request {"op": "spare"}
    answers with the spare's pid here (the parent's `probe()`), after reaping every worker
    that has exited.
    """
    stride = 1 if os.geteuid() == 0 else 0  # not root: every worker keeps the caller's uid
    free = list(range(WORKER_SLOTS))
    running: dict[int, tuple[int, int, int]] = {}  # pidfd -> (pid, status fd, slot)
    spare: _Spare | None = None
    spares = bool(zygote["spares"])
    last_key = None  # the limits of the latest call
    poller = select.poll()
    poller.register(ctrl.fileno(), select.POLLIN)

    def ids(slot: int) -> dict[str, Any]:
        return {
            **zygote,
            "uid": zygote["uid"] + stride * slot,
            "gid": zygote["gid"] + stride * slot,
        }

    def drop_spare(kill: bool) -> int:
        """Forget the spare (killed first if `kill`) and reap it, freeing its slot; its exit
        status."""
        nonlocal spare
        assert spare is not None
        old, spare = spare, None
        if kill:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(old.pidfd, signal.SIGKILL)
        poller.unregister(old.pidfd)
        status = os.waitpid(old.pid, 0)[1]
        os.close(old.pidfd)
        old.chan.close()
        free.append(old.slot)
        return status

    def fork_spare(req: dict[str, Any], key: str) -> None:
        nonlocal spare
        slot = max(free)  # calls take the lowest free slot, the spare the highest
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the spare
            ctrl.close()
            ours.close()
            _spare_worker(theirs.detach(), req, ids(slot), ro_fds)
        theirs.close()
        free.remove(slot)
        pidfd = os.pidfd_open(pid)
        poller.register(pidfd, select.POLLIN)
        spare = _Spare(pid, pidfd, slot, ours, key)

    def reap(pidfd: int, wait: bool = True) -> None:
        """Reap a worker that exited (or will: `wait`) and report its status to its call,
        whose caller may have stopped listening (it had the result already)."""
        pid, status_fd, slot = running[pidfd]
        done, status = os.waitpid(pid, 0 if wait else os.WNOHANG)
        if not done:
            return
        del running[pidfd]
        poller.unregister(pidfd)
        with contextlib.suppress(OSError):
            os.write(status_fd, json.dumps(_status_dict(status)).encode())
        os.close(status_fd)
        os.close(pidfd)
        free.append(slot)

    def reap_exited() -> None:
        """Callers return once their worker has exited, before it is reaped here: reap
        those first, so their slots are free and nothing of theirs is left."""
        for pidfd in list(running):
            reap(pidfd, wait=False)

    while True:
        for fd, _event in poller.poll():
            if spare is not None and fd == spare.pidfd:  # the spare died unused: odd,
                drop_spare(kill=False)  # so from now on a worker per call
                spares = False
                continue
            if fd in running:
                reap(fd)
                continue
            if fd != ctrl.fileno():
                continue  # a pidfd reaped and closed earlier in this batch
            try:
                msg, fds, _flags, _addr = socket.recv_fds(ctrl, 65536, 2)
            except (ConnectionError, OSError):
                return
            if not msg:
                return
            req = json.loads(msg)
            reap_exited()
            if req.get("op") == "spare":  # which pid is the spare (tests tell it from leftovers)
                for passed in fds:
                    os.close(passed)
                ctrl.send(json.dumps({"spare": spare.pid if spare else None}).encode())
                break  # pidfds may have been closed and reused: poll afresh
            valid = req.get("op") == "run" and len(fds) == 2
            key = _limits_key(req)
            if spare is not None and (not valid or spare.key != key):
                drop_spare(kill=True)  # confined for other limits: never serves this call
            if spare is not None:  # hand the call socket to the spare
                try:
                    socket.send_fds(spare.chan, [b"c"], [fds[0]])
                except OSError:  # it died meanwhile
                    drop_spare(kill=True)
            if not valid or not (free or spare):
                for passed in fds:
                    os.close(passed)
                refusal = "malformed request" if not valid else f"more than {WORKER_SLOTS} calls"
                ctrl.send(json.dumps({"error": refusal}).encode())
                break
            if spare is not None:
                pid, pidfd, slot = spare.pid, spare.pidfd, spare.slot
                spare.chan.close()
                spare = None
            else:
                slot = min(free)
                free.remove(slot)
                pid = os.fork()
                if pid == 0:  # pragma: no cover - the worker
                    ctrl.close()
                    _worker(fds[0], req, ids(slot), ro_fds)
                pidfd = os.pidfd_open(pid)
                poller.register(pidfd, select.POLLIN)
            os.close(fds[0])
            running[pidfd] = (pid, fds[1], slot)
            try:
                socket.send_fds(ctrl, [json.dumps({"pid": pid}).encode()], [pidfd])
            except OSError:
                return
            if spares and spare is None and free and key == last_key:
                fork_spare(req, key)
            last_key = key
            # Descriptors may have been closed and reused above: poll afresh rather than
            # act on the rest of this batch.
            break


if __name__ == "__main__":
    main()
