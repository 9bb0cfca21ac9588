"""A seccomp BPF filter written by hand (ctypes + struct), and capability dropping.

The filter is a short classic-BPF program the kernel runs on every system call of the
worker. It checks the architecture field first (a 32-bit or x32 system call would otherwise
reach different numbers), then returns EPERM for the calls a capability never needs: running
programs, new sockets, creating processes, ptrace and cross-process memory access, mounts,
namespaces, keyrings, kexec, bpf, perf, io_uring, kernel modules. Signals and `prlimit64`
are allowed only towards the worker itself (killing the parent fails). `clone` is allowed
only for threads without namespace flags; `clone3` returns ENOSYS so libc falls back to
`clone`, whose flags we can inspect. EPERM rather than a kill so the capability sees a clean
`PermissionError`, which the sandbox reports as "denied".
"""

from __future__ import annotations

import ctypes
import platform
import struct

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
PR_CAPBSET_DROP = 24
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
EPERM = 1
ENOSYS = 38

BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_JGE_K = 0x35
BPF_JSET_K = 0x45
BPF_RET_K = 0x06

OFF_NR = 0
OFF_ARCH = 4
OFF_ARG0_LO = 16  # seccomp_data.args[0], low 32 bits (little-endian)

CLONE_THREAD = 0x00010000
CLONE_NS_FLAGS = (
    0x00000080  # CLONE_NEWTIME
    | 0x00020000  # CLONE_NEWNS
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
)

# System call numbers per architecture (x86_64: arch/x86/entry/syscalls/syscall_64.tbl;
# aarch64: include/uapi/asm-generic/unistd.h).
_COMMON_GENERIC = {
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
    "fspick": 433, "pidfd_open": 434, "clone3": 435, "pidfd_send_signal": 424,
    "pidfd_getfd": 438, "process_madvise": 440, "mount_setattr": 442, "process_mrelease": 448,
}  # fmt: skip
SYSCALLS: dict[str, dict[str, int]] = {
    "x86_64": {
        "execve": 59, "execveat": 322, "socket": 41, "socketpair": 53, "fork": 57,
        "vfork": 58, "clone": 56, "ptrace": 101, "mount": 165, "umount2": 166,
        "pivot_root": 155, "chroot": 161, "unshare": 272, "setns": 308, "keyctl": 250,
        "add_key": 248, "request_key": 249, "kexec_load": 246, "kexec_file_load": 320,
        "bpf": 321, "perf_event_open": 298, "kill": 62, "tkill": 200, "tgkill": 234,
        "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297, "process_vm_readv": 310,
        "process_vm_writev": 311, "prlimit64": 302, "userfaultfd": 323,
        "name_to_handle_at": 303, "open_by_handle_at": 304, "kcmp": 312,
        "init_module": 175, "delete_module": 176, "finit_module": 313, "reboot": 169,
        "swapon": 167, "swapoff": 168, "acct": 163, "setpriority": 141,
        "sched_setparam": 142, "sched_setscheduler": 144, "sched_setaffinity": 203,
        "iopl": 172, "ioperm": 173, "capset": 126, **_COMMON_GENERIC,
    },
    "aarch64": {
        "execve": 221, "execveat": 281, "socket": 198, "socketpair": 199, "clone": 220,
        "ptrace": 117, "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51,
        "unshare": 97, "setns": 268, "keyctl": 219, "add_key": 217, "request_key": 218,
        "kexec_load": 104, "kexec_file_load": 294, "bpf": 280, "perf_event_open": 241,
        "kill": 129, "tkill": 130, "tgkill": 131, "rt_sigqueueinfo": 138,
        "rt_tgsigqueueinfo": 240, "process_vm_readv": 270, "process_vm_writev": 271,
        "prlimit64": 261, "userfaultfd": 282, "name_to_handle_at": 264,
        "open_by_handle_at": 265, "kcmp": 272, "init_module": 105, "delete_module": 106,
        "finit_module": 273, "reboot": 142, "swapon": 224, "swapoff": 225, "acct": 89,
        "setpriority": 140, "sched_setparam": 118, "sched_setscheduler": 119,
        "sched_setaffinity": 122, "capset": 91, **_COMMON_GENERIC,
    },
}  # fmt: skip
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
X32_SYSCALL_BIT = 0x40000000

DENIED = (
    "execve", "execveat", "socket", "socketpair", "fork", "vfork", "ptrace", "mount",
    "umount2", "pivot_root", "chroot", "unshare", "setns", "keyctl", "add_key",
    "request_key", "kexec_load", "kexec_file_load", "bpf", "perf_event_open",
    "pidfd_send_signal", "pidfd_open", "pidfd_getfd", "process_vm_readv", "process_vm_writev",
    "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "name_to_handle_at", "open_by_handle_at", "kcmp", "init_module", "delete_module",
    "finit_module", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick",
    "mount_setattr", "reboot", "swapon", "swapoff", "acct", "setpriority", "sched_setparam",
    "sched_setscheduler", "sched_setaffinity", "process_madvise", "process_mrelease", "iopl",
    "ioperm",
)  # fmt: skip
SELF_ONLY_SIGNALS = ("kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo")

# More calls a caller may deny through `build_filter(extra_denied=...)` (the confined trial
# does): file metadata changes Landlock does not cover (mode, owner, times, extended
# attributes), System V IPC (shared with other processes of the machine), and prctl.
_EXTRA_GENERIC = {"fchmodat2": 452, "setxattrat": 463, "removexattrat": 466}
EXTRA_SYSCALLS: dict[str, dict[str, int]] = {
    "x86_64": {
        "chmod": 90, "fchmod": 91, "fchmodat": 268, "chown": 92, "fchown": 93, "lchown": 94,
        "fchownat": 260, "utime": 132, "utimes": 235, "futimesat": 261, "utimensat": 280,
        "setxattr": 188, "lsetxattr": 189, "fsetxattr": 190, "removexattr": 197,
        "lremovexattr": 198, "fremovexattr": 199, "shmget": 29, "shmat": 30, "shmctl": 31,
        "shmdt": 67, "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71, "semget": 64,
        "semop": 65, "semctl": 66, "semtimedop": 220, "prctl": 157, **_EXTRA_GENERIC,
    },
    "aarch64": {
        "fchmod": 52, "fchmodat": 53, "fchown": 55, "fchownat": 54, "utimensat": 88,
        "setxattr": 5, "lsetxattr": 6, "fsetxattr": 7, "removexattr": 14, "lremovexattr": 15,
        "fremovexattr": 16, "shmget": 194, "shmctl": 195, "shmat": 196, "shmdt": 197,
        "msgget": 186, "msgctl": 187, "msgrcv": 188, "msgsnd": 189, "semget": 190,
        "semctl": 191, "semtimedop": 192, "semop": 193, "prctl": 167, **_EXTRA_GENERIC,
    },
}  # fmt: skip
AF_UNIX = 1

_libc = ctypes.CDLL(None, use_errno=True)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def machine() -> str:
    return platform.machine().lower().replace("arm64", "aarch64").replace("amd64", "x86_64")


def supported() -> bool:
    return machine() in SYSCALLS


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k & 0xFFFFFFFF)


def build_filter(
    pid: int,
    arch: str | None = None,
    *,
    extra_denied: tuple[str, ...] = (),
    unix_socketpair: bool = False,
    denied_prctl: tuple[int, ...] = (),
    bucketed: bool = False,
) -> bytes:
    """The BPF program for a worker whose pid is `pid` (signals only to itself).

    Options (the process worker uses none): `extra_denied` names more calls to refuse (from
    SYSCALLS or EXTRA_SYSCALLS; names this architecture lacks are skipped);
    `unix_socketpair` allows `socketpair(AF_UNIX, ...)`, a connected pair inside the process
    that reaches nothing outside it (an asyncio event loop needs one), while `socket()`
    stays denied for every family; `denied_prctl` refuses those prctl options (say,
    PR_SET_PDEATHSIG, so a child cannot opt out of dying with its parent); `bucketed` lays
    the same rules out as range-tested buckets (same answers, a much shorter path per call,
    several times cheaper to install).
    """
    arch = arch or machine()
    nrs = {**SYSCALLS[arch], **EXTRA_SYSCALLS.get(arch, {})}
    eperm = SECCOMP_RET_ERRNO | EPERM
    prog: list[bytes] = [
        _ins(BPF_LD_W_ABS, OFF_ARCH),
        _ins(BPF_JEQ_K, AUDIT_ARCH[arch], jt=1, jf=0),
        _ins(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),
        _ins(BPF_LD_W_ABS, OFF_NR),
    ]
    if arch == "x86_64":
        prog += [_ins(BPF_JGE_K, X32_SYSCALL_BIT, jt=0, jf=1), _ins(BPF_RET_K, eperm)]
    # (syscall number, block): the block runs when the number matches and always returns,
    # so the accumulator (the number) is intact for the next test after a skip.
    rules: list[tuple[int, list[bytes]]] = []
    denied = [n for n in DENIED if not (unix_socketpair and n == "socketpair")]
    for name in (*denied, *extra_denied):
        if name in nrs:
            rules.append((nrs[name], [_ins(BPF_RET_K, eperm)]))
    if unix_socketpair:  # socketpair: AF_UNIX only
        rules.append(
            (
                nrs["socketpair"],
                [
                    _ins(BPF_LD_W_ABS, OFF_ARG0_LO),
                    _ins(BPF_JEQ_K, AF_UNIX, jt=0, jf=1),
                    _ins(BPF_RET_K, SECCOMP_RET_ALLOW),
                    _ins(BPF_RET_K, eperm),
                ],
            )
        )
    if denied_prctl:
        n = len(denied_prctl)
        block = [_ins(BPF_LD_W_ABS, OFF_ARG0_LO)]
        block += [_ins(BPF_JEQ_K, opt, jt=n - i, jf=0) for i, opt in enumerate(denied_prctl)]
        block += [_ins(BPF_RET_K, SECCOMP_RET_ALLOW), _ins(BPF_RET_K, eperm)]
        rules.append((nrs["prctl"], block))
    rules.append((nrs["clone3"], [_ins(BPF_RET_K, SECCOMP_RET_ERRNO | ENOSYS)]))
    # clone: threads only, no namespace flags.
    rules.append(
        (
            nrs["clone"],
            [
                _ins(BPF_LD_W_ABS, OFF_ARG0_LO),
                _ins(BPF_JSET_K, CLONE_THREAD, jt=1, jf=0),
                _ins(BPF_RET_K, eperm),
                _ins(BPF_JSET_K, CLONE_NS_FLAGS, jt=0, jf=1),
                _ins(BPF_RET_K, eperm),
                _ins(BPF_RET_K, SECCOMP_RET_ALLOW),
            ],
        )
    )
    # Signals: only to ourselves.
    for name in SELF_ONLY_SIGNALS:
        rules.append(
            (
                nrs[name],
                [
                    _ins(BPF_LD_W_ABS, OFF_ARG0_LO),
                    _ins(BPF_JEQ_K, pid, jt=0, jf=1),
                    _ins(BPF_RET_K, SECCOMP_RET_ALLOW),
                    _ins(BPF_RET_K, eperm),
                ],
            )
        )
    # prlimit64: pid 0 (self) or our pid only.
    rules.append(
        (
            nrs["prlimit64"],
            [
                _ins(BPF_LD_W_ABS, OFF_ARG0_LO),
                _ins(BPF_JEQ_K, 0, jt=2, jf=0),
                _ins(BPF_JEQ_K, pid, jt=1, jf=0),
                _ins(BPF_RET_K, eperm),
                _ins(BPF_RET_K, SECCOMP_RET_ALLOW),
            ],
        )
    )
    if not bucketed:
        prog += _rule_chain(rules)
        return b"".join(prog)
    # Sorted by number and cut into buckets: a call passes one range test per bucket below
    # its own, then the tests of its bucket, instead of every test. The kernel runs the
    # program for every system call number when it installs it (to cache the constant
    # answers), so a short path makes installing it several times cheaper.
    # Within a bucket, plain denials share one return and consecutive numbers are one range
    # test: the kernel compiles every instruction, so fewer of them install faster too.
    ordered = sorted(rules, key=lambda rule: rule[0])  # stable: the first rule still wins
    for i in range(0, len(ordered), _BUCKET):
        bucket = _compact_chain(ordered[i : i + _BUCKET], _ins(BPF_RET_K, eperm))
        if i + _BUCKET < len(ordered):
            above = ordered[i + _BUCKET][0]  # the lowest number of the next bucket
            prog.append(_ins(BPF_JGE_K, above, jt=len(bucket), jf=0))
        prog += bucket
    return b"".join(prog)


_BUCKET = 12  # rules per bucket; a bucket's code must stay under 256 instructions (jt)


def _rule_chain(rules: list[tuple[int, list[bytes]]]) -> list[bytes]:
    """Test the number against each rule in turn; allow when none matches."""
    out: list[bytes] = []
    for nr, block in rules:
        out.append(_ins(BPF_JEQ_K, nr, jt=0, jf=len(block)))
        out += block
    out.append(_ins(BPF_RET_K, SECCOMP_RET_ALLOW))
    return out


def _compact_chain(rules: list[tuple[int, list[bytes]]], deny: bytes) -> list[bytes]:
    """`_rule_chain` with the same answers in fewer instructions (rules sorted by number):
    a rule whose block is only `deny` jumps to one `deny` at the end, and a run of three or
    more consecutive such numbers is tested as a range (two JGE)."""
    items: list[tuple[int, int, list[bytes] | None]] = []  # (low, high, block or None: deny)
    seen: set[int] = set()
    for nr, block in rules:
        if nr in seen:
            continue  # an earlier rule for this number answers first (blocks always return)
        seen.add(nr)
        plain = block == [deny]
        if plain and items and items[-1][2] is None and items[-1][1] == nr - 1:
            items[-1] = (items[-1][0], nr, None)
        else:
            items.append((nr, nr, None if plain else block))
    code: list[bytes | tuple[int, int]] = []  # (code, k) placeholders jump to the shared deny
    for low, high, rule in items:
        if rule is not None:
            code.append(_ins(BPF_JEQ_K, low, jt=0, jf=len(rule)))
            code += rule
        elif high - low >= 2:  # low <= nr <= high: deny
            code.append(_ins(BPF_JGE_K, low, jt=0, jf=1))
            code.append((BPF_JGE_K, high + 1))  # nr > high: go on; else deny
        else:
            code += [(BPF_JEQ_K, nr) for nr in range(low, high + 1)]
    code.append(_ins(BPF_RET_K, SECCOMP_RET_ALLOW))
    end = len(code)  # where the shared deny goes
    out = []
    for pc, ins in enumerate(code):
        if isinstance(ins, tuple):
            op, k = ins
            skip = end - pc - 1
            ins = _ins(op, k, jt=skip, jf=0) if op == BPF_JEQ_K else _ins(op, k, jt=0, jf=skip)
        out.append(ins)
    out.append(deny)
    return out


def set_no_new_privs() -> None:
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "prctl(PR_SET_NO_NEW_PRIVS) failed")


def install(pid: int) -> None:
    """Install the filter on the calling thread (the worker is single-threaded here)."""
    install_program(build_filter(pid))


def install_program(code: bytes) -> None:
    """Install a program from `build_filter` on the calling thread (and its future threads)."""
    buf = ctypes.create_string_buffer(code, len(code))
    prog = _SockFprog(len(code) // 8, ctypes.cast(buf, ctypes.c_void_p))
    set_no_new_privs()
    if _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "prctl(PR_SET_SECCOMP) failed")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def drop_capabilities(*, bounding: bool = True) -> None:
    """Empty the bounding, effective, permitted and inheritable capability sets.

    The worker may run as uid 0 (we cannot switch to an unprivileged uid: the Python
    installation may live under /root); without capabilities root cannot override file
    permissions of other users, raise its hard rlimits, load modules, and so on.
    `bounding=False` keeps the bounding set, which matters only at execve (a caller whose
    seccomp filter denies execve saves ~64 system calls).
    """
    for cap in range(64 if bounding else 0):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == 22:
            break  # EINVAL: past the last capability this kernel knows
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    syscall = _libc.syscall
    syscall.restype = ctypes.c_long
    nr = SYSCALLS[machine()]["capset"]
    if syscall(ctypes.c_long(nr), ctypes.byref(header), ctypes.byref(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "capset failed")
