"""Landlock through raw syscalls (ctypes): confine a process to a few folders.

Landlock is an unprivileged Linux LSM: a process builds a ruleset (which access rights it
*handles*, and which folders get which of them), then restricts itself; from then on every
handled access outside the rules fails with EACCES, for the process and its descendants, and
it cannot be undone. Root is confined too. ABI 4 adds TCP bind/connect control and ABI 6
adds "scopes" that stop signals and abstract-unix connections leaving the domain; we handle
whatever the running kernel offers and report the ABI.
"""

from __future__ import annotations

import ctypes
import os
import stat
import struct

SYS_LANDLOCK_CREATE_RULESET = 444  # same number on x86_64 and aarch64 (asm-generic)
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1

FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
FS_IOCTL_DEV = 1 << 15  # ABI 5
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1

READ_ONLY = FS_READ_FILE | FS_READ_DIR
READ_WRITE = (
    FS_READ_FILE
    | FS_READ_DIR
    | FS_WRITE_FILE
    | FS_REMOVE_DIR
    | FS_REMOVE_FILE
    | FS_MAKE_DIR
    | FS_MAKE_REG
    | FS_MAKE_SYM
    | FS_REFER
    | FS_TRUNCATE
)
FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def abi_version() -> int:
    """The kernel's Landlock ABI version, or 0 when Landlock is missing or disabled."""
    res = _syscall(
        ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET),
        None,
        ctypes.c_size_t(0),
        ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION),
    )
    return int(res) if res > 0 else 0


def handled_fs(abi: int) -> int:
    rights = (1 << 13) - 1
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    if abi >= 5:
        rights |= FS_IOCTL_DEV
    return rights


def _check(res: int, what: str) -> int:
    if res < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return res


def ruleset_attr(abi: int) -> bytes:
    """`struct landlock_ruleset_attr` for `abi`: what the ruleset handles (see
    `create_ruleset`)."""
    fs = handled_fs(abi)
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    if abi >= 6:
        return struct.pack("=QQQ", fs, net, scoped)
    if abi >= 4:
        return struct.pack("=QQ", fs, net)
    return struct.pack("=Q", fs)


def path_rule(abi: int, fd: int, rights: int) -> bytes:
    """`struct landlock_path_beneath_attr` granting `rights` beneath `fd` (an O_PATH fd),
    less the rights `abi` does not know and, for a file, those not valid on a file."""
    allowed = rights & handled_fs(abi)
    if not stat.S_ISDIR(os.fstat(fd).st_mode):
        allowed &= FILE_RIGHTS
    return struct.pack("=Qi", allowed, fd)


def create_ruleset(abi: int, rules: list[tuple[int, int]]) -> int:
    """A ruleset descriptor for `rules`: (O_PATH fd of a file or folder, allowed rights).

    Every filesystem right the ABI knows is handled (so denied unless a rule grants it), TCP
    bind and connect too (ABI 4: no rule grants them), and from ABI 6 signals and abstract
    unix sockets are scoped to the domain. Rights the ABI does not know are dropped; rights
    not valid on a file are dropped for file fds. The descriptor (close-on-exec) can restrict
    any number of processes: a forking parent builds it once and each child only calls
    `restrict_self`.
    """
    attr = ruleset_attr(abi)
    buf = ctypes.create_string_buffer(attr, len(attr))
    ruleset = _check(
        _syscall(
            ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET),
            buf,
            ctypes.c_size_t(len(attr)),
            ctypes.c_uint32(0),
        ),
        "landlock_create_ruleset",
    )
    try:
        for fd, rights in rules:
            rule = ctypes.create_string_buffer(path_rule(abi, fd, rights), 12)
            _check(
                _syscall(
                    ctypes.c_long(SYS_LANDLOCK_ADD_RULE),
                    ctypes.c_int(ruleset),
                    ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH),
                    rule,
                    ctypes.c_uint32(0),
                ),
                "landlock_add_rule",
            )
    except BaseException:
        os.close(ruleset)
        raise
    return ruleset


def restrict_self(ruleset: int) -> None:
    """Enter the domain of `ruleset` (needs PR_SET_NO_NEW_PRIVS or CAP_SYS_ADMIN first)."""
    _check(
        _syscall(
            ctypes.c_long(SYS_LANDLOCK_RESTRICT_SELF),
            ctypes.c_int(ruleset),
            ctypes.c_uint32(0),
        ),
        "landlock_restrict_self",
    )


def restrict(abi: int, rules: list[tuple[int, int]]) -> None:
    """Restrict this process to `rules`: (O_PATH fd of a file or folder, allowed rights).

    Needs PR_SET_NO_NEW_PRIVS (or CAP_SYS_ADMIN) first. See `create_ruleset`.
    """
    ruleset = create_ruleset(abi, rules)
    try:
        restrict_self(ruleset)
    finally:
        os.close(ruleset)
