"""Confinement pieces shared by the forked trial and the process sandbox tier.

Each function does one step of confining the calling process, the one that is about to run
code nobody reviewed: close inherited descriptors, empty the environment and wipe secrets
from memory, rlimits, death with the parent, a network namespace, Landlock, no
capabilities, seccomp. The expensive parts (the seccomp program, the Landlock ruleset, the
secrets' addresses) are built once by the parent; a forked child only applies them, which
costs it a few system calls. The order the callers follow: wipe, rlimits, namespace,
no-new-privs + Landlock, close descriptors, drop capabilities, seccomp last (it denies
calls the earlier steps make).

Linux only; every function raises OSError when the kernel refuses, so a caller can fail
closed (never run the code half-confined without saying so).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import re
import resource
import signal
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from symbiont.sandbox import _landlock, _seccomp

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_GET_SECCOMP = 21

_libc = ctypes.CDLL(None, use_errno=True)
_memset = ctypes.memset


def _function(name: str, restype: Any, *argtypes: Any) -> Any:
    """A libc function bound with its own types (a fresh object, so the same symbol can be
    bound twice, as `syscall` is, with different argument types); a stand-in that raises
    OSError where libc lacks it (not Linux), so importing this module works everywhere."""
    try:
        fn = _libc[name]
    except AttributeError:

        def missing(*_args: Any) -> int:
            raise OSError(0, f"{name}() is not available on {sys.platform}")

        return missing
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


def _unprototyped(name: str) -> Any:
    """A libc function without argument types: each argument must be a small int or a
    ctypes object, passed as is. A forked child calls these: a prototyped call converts
    every argument through its type's `from_param` (objects made and freed), which costs a
    child several page copies more per call."""
    try:
        return _libc[name]  # a fresh function object: restype int, no argtypes
    except AttributeError:
        return _function(name, ctypes.c_int)  # the stand-in that raises OSError


# Bound in the parent at import: a forked child then only calls them (its first use of a
# ctypes function would build it, and every page written on the way is a copy-on-write
# fault). A child's calls are the unprototyped ones, given small ints or ctypes objects made
# beforehand: converting arguments through argtypes costs it more page copies than the call.
_clearenv = _function("clearenv", ctypes.c_int)
_raw_prctl = _unprototyped("prctl")
_raw_syscall = _unprototyped("syscall")
_raw_memset = _unprototyped("memset")
_sched_getcpu = _function("sched_getcpu", ctypes.c_int)


def sched_getcpu() -> int:
    """The CPU the calling thread runs on (a hint: it may move right after)."""
    cpu = _sched_getcpu()
    if cpu < 0:
        _raise_errno("sched_getcpu")
    return int(cpu)


_CAP_HEADER = _seccomp._CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
_CAP_DATA = (_seccomp._CapData * 2)()  # all zero: no capabilities
_CAP_POINTERS = (ctypes.pointer(_CAP_HEADER), ctypes.pointer(_CAP_DATA))
_NR_CAPSET = _seccomp.SYSCALLS.get(_seccomp.machine(), {}).get("capset", -1)
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2

# A pid placeholder for a seccomp program built before the fork: above PID_MAX_LIMIT (2**22),
# so it never matches a real pid and cannot be confused with a system call number.
_PID_PLACEHOLDER = 0x7FFFFFF0

# Public data imports may need besides the Python installation and sys.path.
_SYSTEM_READ_ONLY = ("/usr/lib", "/lib", "/lib64", "/usr/lib64", "/usr/local/lib")
_DEVICES = (
    ("/dev/null", _landlock.FS_READ_FILE | _landlock.FS_WRITE_FILE),  # discarding output
    ("/dev/urandom", _landlock.FS_READ_FILE),
    ("/dev/zero", _landlock.FS_READ_FILE),
)


def _raise_errno(what: str) -> None:
    err = ctypes.get_errno()
    raise OSError(err, f"{what}: {os.strerror(err)}")


# -- probing (in the parent) -----------------------------------------------------------------


def seccomp_available() -> str | None:
    """None when this kernel can install a seccomp filter here, else why not."""
    if not sys.platform.startswith("linux"):
        return f"seccomp is Linux-only (this is {sys.platform})"
    if not _seccomp.supported():
        return f"no seccomp system call table for architecture {_seccomp.machine()!r}"
    # PR_GET_SECCOMP fails with EINVAL on a kernel built without seccomp.
    if _libc.prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0:
        return f"seccomp is not available in this kernel ({os.strerror(ctypes.get_errno())})"
    return None


def read_only_paths(extra: Iterable[str] = ()) -> list[str]:
    """What confined code may read: the Python installation, sys.path, system libraries.

    Real paths of existing folders, without duplicates; "/" is never granted (it would
    grant everything).
    """
    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    candidates += [p for p in sys.path if p]
    candidates += [*_SYSTEM_READ_ONLY, *extra]
    seen: list[str] = []
    for path in candidates:
        real = os.path.realpath(path)
        if os.path.isdir(real) and real not in seen and real != "/":
            seen.append(real)
    return seen


def read_only_ruleset(abi: int, paths: Iterable[str]) -> int:
    """A Landlock ruleset descriptor: read `paths`, write nothing but /dev/null, no TCP.

    Built once in a parent; each forked child enters it with `_landlock.restrict_self`.
    """
    fds: list[int] = []
    try:
        rules: list[tuple[int, int]] = []
        for path in paths:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            fds.append(fd)
            rules.append((fd, _landlock.READ_ONLY))
        for path, rights in _DEVICES:
            with contextlib.suppress(OSError):  # a container without the device: no rule
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                fds.append(fd)
                rules.append((fd, rights))
        ruleset = _landlock.create_ruleset(abi, rules)
    finally:
        for fd in fds:
            os.close(fd)
    os.set_inheritable(ruleset, False)
    return ruleset


@dataclass(frozen=True, slots=True)
class SeccompProgram:
    """A seccomp program built before the fork; `for_pid` bakes in the child's pid.

    It also carries the program in a ctypes buffer with its `sock_fprog`, both made in the
    parent, so `install_seccomp` in a child patches the pid in place and makes two calls.
    """

    code: bytes
    pid_offsets: tuple[int, ...]  # byte offsets of the instructions comparing with the pid
    buffer: Any = field(default=None, compare=False, repr=False)  # ctypes copy of `code`
    fprog: Any = field(default=None, compare=False, repr=False)  # struct sock_fprog for it
    words: Any = field(default=None, compare=False, repr=False)  # `buffer` as 32-bit words
    pid_words: tuple[int, ...] = field(default=(), compare=False, repr=False)  # their k fields
    fprog_pointer: Any = field(default=None, compare=False, repr=False)  # pointer to `fprog`

    def for_pid(self, pid: int) -> bytes:
        buf = bytearray(self.code)
        for offset in self.pid_offsets:
            struct.pack_into("=I", buf, offset + 4, pid)  # the k field of that instruction
        return bytes(buf)


def seccomp_program(
    *,
    extra_denied: tuple[str, ...] = (),
    unix_socketpair: bool = False,
    denied_prctl: tuple[int, ...] = (),
    bucketed: bool = False,
) -> SeccompProgram:
    """`_seccomp.build_filter` with a placeholder pid, and where to patch the real one."""
    code = _seccomp.build_filter(
        _PID_PLACEHOLDER,
        extra_denied=extra_denied,
        unix_socketpair=unix_socketpair,
        denied_prctl=denied_prctl,
        bucketed=bucketed,
    )
    offsets = tuple(
        i
        for i in range(0, len(code), 8)
        if struct.unpack_from("=HBBI", code, i)[0] == _seccomp.BPF_JEQ_K
        and struct.unpack_from("=HBBI", code, i)[3] == _PID_PLACEHOLDER
    )
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = _seccomp._SockFprog(len(code) // 8, ctypes.addressof(buffer))
    words = memoryview(buffer).cast("B").cast("I")  # native order, as the kernel reads it
    pid_words = tuple((offset + 4) // 4 for offset in offsets)
    return SeccompProgram(code, offsets, buffer, fprog, words, pid_words, ctypes.pointer(fprog))


def data_region(obj: str | bytes) -> tuple[int, int] | None:
    """(address, size) of the characters of a str or bytes object, to wipe them later.

    CPython only. None when the object's layout is not the compact one this reads (then it
    cannot be wiped). A str's cached UTF-8 copy (non-ASCII text only) is not covered.
    """
    if sys.implementation.name != "cpython":
        return None
    if isinstance(obj, bytes):
        return id(obj) + bytes.__basicsize__ - 1, len(obj)  # ob_sval follows the header
    if not isinstance(obj, str) or not obj:
        return None
    widest = max(map(ord, obj))
    codec = "latin-1" if widest < 256 else "utf-16-le" if widest < 65536 else "utf-32-le"
    payload = obj.encode(codec, "surrogatepass")
    raw = ctypes.string_at(id(obj), sys.getsizeof(obj))
    offset = raw.find(payload, 16)  # past the reference count and type pointer
    if offset < 0:
        return None
    return id(obj) + offset, len(payload)


def environment_block() -> tuple[int, int] | None:
    """Where the kernel put this process's initial environment strings (its stack).

    Those bytes stay in memory after `clearenv`; a child wipes them. Read once: they never
    move.
    """
    try:
        with open("/proc/self/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()  # from field 3 (state) on
        start, end = int(fields[47]), int(fields[48])  # fields 50 and 51: env_start, env_end
    except (OSError, ValueError, IndexError):
        return None
    return (start, end - start) if 0 < start < end else None


# -- applying (in the child) -----------------------------------------------------------------


def wipe(regions: Iterable[tuple[Any, Any]]) -> None:
    """Overwrite each (address, size) with zeros: copies of secrets in this process only
    (a forked child's pages are its own copies, the parent keeps its values).

    Addresses and sizes are ints, or, cheaper for a forked child, the `c_void_p` and
    `c_size_t` objects `as_pointers` made for them beforehand.
    """
    for address, size in regions:
        if isinstance(address, int):
            _memset(address, 0, size)
        else:
            _raw_memset(address, 0, size)


def as_pointers(regions: Iterable[tuple[int, int]]) -> tuple[tuple[Any, Any], ...]:
    """(address, size) pairs as ctypes objects, so `wipe` passes them to memset as they are."""
    return tuple((ctypes.c_void_p(address), ctypes.c_size_t(size)) for address, size in regions)


# Names of environment variables whose values are credentials. All variables are removed;
# these are also overwritten in memory (the values of the others are no secret, and every
# overwrite costs the child a call and a page copy).
SECRET_NAME = re.compile(
    rb"KEY|TOKEN|SECRET|PASS|PWD|CRED|AUTH|SESSION|COOKIE|PRIVATE|SIGNATURE|DSN|URL|URI",
    re.IGNORECASE,
)


def environment_regions() -> list[tuple[int, int]]:
    """(address, size) of the environment's credentials in memory, worked out by the parent.

    For every variable whose name matches SECRET_NAME: the bytes object `os.environ` holds
    (shared with `os.environb`) and the C string ("NAME=value") the C-level `environ` points
    to. A child wipes them (`scrub_environment`) without walking the environment itself.
    Values of 0-1 bytes are interpreter-wide singletons and are left alone.
    """
    regions = []
    for name, value in os.environ._data.items():  # type: ignore[attr-defined]
        if isinstance(value, bytes) and len(value) > 1 and SECRET_NAME.search(name):
            region = data_region(value)
            if region is not None:
                regions.append(region)
    for address in c_environ():
        entry = ctypes.string_at(address)
        if SECRET_NAME.search(entry.split(b"=", 1)[0]):
            regions.append((address, len(entry)))
    return regions


try:  # the C-level `environ` variable itself: indexing reads its current value each time
    _ENVIRON: Any = ctypes.POINTER(ctypes.c_void_p).in_dll(_libc, "environ")
except ValueError:  # no `environ` symbol under that name (not glibc/musl)
    _ENVIRON = None


def c_environ() -> list[int]:
    """The addresses of the C-level environment strings, in order.

    Called by a parent before every confined trial: it reads the array through a pointer
    bound once at import, so it allocates little besides the list.
    """
    entries = _ENVIRON
    if not entries:  # no symbol, or environ is NULL (after clearenv)
        return []
    out = []
    i = 0
    while address := entries[i]:
        out.append(address)
        i += 1
    return out


def c_environ_is(addresses: tuple[int, ...]) -> bool:
    """Does the C-level environment hold exactly these string addresses, in this order?

    What `c_environ() == list(addresses)` says, without building the list: it stops at
    the first difference, so it never reads past the array's NULL terminator.
    """
    entries = _ENVIRON
    if not entries:
        return not addresses
    for i, address in enumerate(addresses):
        if entries[i] != address:
            return False
    return not entries[len(addresses)]


def scrub_environment(regions: Iterable[tuple[int, int]], block: tuple[int, int] | None) -> None:
    """Empty the environment and overwrite its values in memory.

    `regions` from `environment_regions` and `block` from `environment_block`, both taken by
    the parent just before the fork. Python's `os.environ` and the C-level `environ` are
    emptied; the credentials they held and the whole initial block on the stack (every
    variable the process started with) are overwritten, so neither getenv, os.environ,
    /proc/self/environ nor a scan of the process's memory finds those values.
    """
    wipe(regions)
    if block is not None:
        wipe((block,))
    data = os.environ._data  # type: ignore[attr-defined]  # os.environb shares this dict
    try:
        if _clearenv() != 0:
            _raise_errno("clearenv")
    except OSError:
        if sys.platform.startswith("linux"):
            raise
        for name in list(data):  # no clearenv (macOS): one unsetenv per variable
            os.unsetenv(name)
    # Both mappings get one new empty dict. The old one is not emptied: freeing its dozens
    # of keys and values would cost a forked child about as many page copies. Only atexit's
    # list of callbacks refers to it (through its `clear`): no Python object leads to it,
    # and the child ends with os._exit, which runs no callback. Its credentials are zeros
    # already; the rest is what freed memory would have held anyway.
    empty: dict[bytes, bytes] = {}
    os.environ._data = empty  # type: ignore[attr-defined]
    if os.supports_bytes_environ:
        os.environb._data = empty  # type: ignore[attr-defined]
    atexit.register(data.clear)


def set_rlimits(limits: dict[int, tuple[int, int]]) -> None:
    """Set each rlimit; soft = hard where the caller says so, so code cannot raise it back."""
    for which, value in limits.items():
        resource.setrlimit(which, value)


def die_with_parent(parent_pid: int, sig: int = int(signal.SIGKILL)) -> None:
    """PR_SET_PDEATHSIG, then check the parent did not die before it took effect."""
    if _raw_prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        _raise_errno("prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent_pid:
        raise OSError(0, "the parent died before the child was confined")


def set_not_dumpable() -> None:
    """No core file, and other processes of the user may not ptrace or read our memory."""
    if _raw_prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        _raise_errno("prctl(PR_SET_DUMPABLE)")


def enter_network_namespace() -> None:
    """A new network namespace (no interfaces but a down loopback): no network at all.

    As root, unshare(CLONE_NEWNET); otherwise inside a new user namespace that maps only our
    own uid and gid. Costs about a millisecond, and the kernel tears the namespace down
    asynchronously after the process exits.
    """
    if os.geteuid() == 0:
        if _libc.unshare(CLONE_NEWNET) != 0:
            _raise_errno("unshare(CLONE_NEWNET)")
        return
    uid, gid = os.geteuid(), os.getegid()
    if _libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        _raise_errno("unshare(CLONE_NEWUSER|CLONE_NEWNET) (unprivileged user namespaces off?)")
    with open("/proc/self/setgroups", "w") as fh:
        fh.write("deny")
    with open("/proc/self/uid_map", "w") as fh:
        fh.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as fh:
        fh.write(f"{gid} {gid} 1")


def set_no_new_privs() -> None:
    """No execve may gain privileges (setuid, file capabilities); Landlock and seccomp
    need it. Permanent, inherited."""
    if _raw_prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        _raise_errno("prctl(PR_SET_NO_NEW_PRIVS)")


def enter_landlock(ruleset: int) -> None:
    """No new privileges, then the Landlock domain of `ruleset` (see `read_only_ruleset`)."""
    set_no_new_privs()
    if _raw_syscall(_landlock.SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
        _raise_errno("landlock_restrict_self")


def close_descriptors(keep: int) -> int:
    """Close every descriptor but stdio (0-2) and `keep`; returns `keep`'s new number (3).

    Whatever the process inherited (database files, sockets, other pipes) is gone, so the
    code that runs next cannot reach it, whichever Python objects still name the numbers.
    """
    if keep != 3:
        os.dup2(keep, 3, inheritable=False)
        keep = 3
    os.closerange(4, 1 << 20)  # close_range(2) where the kernel has it: one system call
    return keep


def drop_capabilities(*, bounding: bool = True) -> None:
    """Empty the capability sets (root stays uid 0 but loses its privileges).

    `bounding=False` leaves the bounding set and makes one system call with arguments built
    at import: the bounding set only matters at execve, which a process whose seccomp filter
    denies execve never reaches (and with no-new-privs, execve cannot regain them either).
    """
    if bounding:
        _seccomp.drop_capabilities()
    elif _raw_syscall(_NR_CAPSET, *_CAP_POINTERS) != 0:
        _raise_errno("capset")


def install_seccomp(program: SeccompProgram, pid: int, *, no_new_privs: bool = True) -> None:
    """The seccomp filter, with `pid` as the only target signals may reach. Last step.

    Patches the program's own buffer: call it in a forked child (the parent's copy keeps
    the placeholder). `no_new_privs=False` when the caller has set it already (Landlock
    needs it too), which saves a system call.
    """
    if program.words is None or program.fprog_pointer is None:  # made without its buffers
        _seccomp.install_program(program.for_pid(pid))
        return
    words = program.words
    for index in program.pid_words:
        words[index] = pid
    if no_new_privs:
        set_no_new_privs()
    if _raw_prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, program.fprog_pointer, 0, 0) != 0:
        _raise_errno("prctl(PR_SET_SECCOMP)")
