"""The seccomp program the confined trial installs, read by a small classic-BPF interpreter.

The bucketed layout (the trial's) must answer every system call exactly as the linear one
(the process tier's) does; the interpreter runs both over every number and a spread of
first arguments. Written from the kernel's description of classic BPF, not from the
builder, so a wrong jump offset or bucket bound shows up as a different answer.
"""

from __future__ import annotations

import struct

import pytest

from symbiont import trial as trial_mod
from symbiont.sandbox import _confine, _seccomp

ALLOW, KILL = 0x7FFF0000, 0x80000000
EPERM_RET = 0x00050000 | 1
ENOSYS_RET = 0x00050000 | 38
PID = 4242
ARCH = "x86_64"
TRIAL_OPTIONS = {
    "extra_denied": ("chmod", "fchmodat", "shmget", "semop", "utimensat"),
    "unix_socketpair": True,
    "denied_prctl": (1, 4),
}


def run_bpf(program: bytes, nr: int, arg0: int, arch: int) -> int:
    """Classic BPF as seccomp runs it: LD W ABS, JEQ/JGE/JSET K, RET K (all the builder uses)."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, arg0, 0, 0, 0, 0, 0)  # struct seccomp_data
    ins = [struct.unpack_from("=HBBI", program, i) for i in range(0, len(program), 8)]
    pc, acc = 0, 0
    for _ in range(10_000):
        code, jt, jf, k = ins[pc]
        if code == 0x20:  # BPF_LD | BPF_W | BPF_ABS
            acc = struct.unpack_from("=I", data, k)[0]
            pc += 1
        elif code in (0x15, 0x35, 0x45):  # JEQ, JGE, JSET with K
            taken = {0x15: acc == k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += 1 + (jt if taken else jf)
        elif code == 0x06:  # RET K
            return k
        else:
            raise AssertionError(f"unexpected instruction {code:#x} at {pc}")
    raise AssertionError("the program did not return")


ARGS = [0, 1, 2, PID, PID + 1, 0x00010000, 0x40000000 | 0x00010000, 0x00010F00, 0xFFFFFFFF]


# What a confined trial really installs: runs of consecutive numbers (System V IPC, chmod and
# chown, the xattr calls) that the bucketed layout tests as ranges.
FULL_TRIAL_OPTIONS = {**TRIAL_OPTIONS, "extra_denied": trial_mod._TRIAL_DENIED}


@pytest.mark.parametrize("options", [{}, TRIAL_OPTIONS, FULL_TRIAL_OPTIONS])
def test_bucketed_layout_answers_like_the_linear_one(options: dict) -> None:
    linear = _seccomp.build_filter(PID, ARCH, **options)
    bucketed = _seccomp.build_filter(PID, ARCH, bucketed=True, **options)
    audit = _seccomp.AUDIT_ARCH[ARCH]
    for nr in range(0, 600):
        for arg0 in ARGS:
            assert run_bpf(bucketed, nr, arg0, audit) == run_bpf(linear, nr, arg0, audit), (
                nr,
                arg0,
            )
    assert run_bpf(bucketed, 0x40000000 | 1, 0, audit) == EPERM_RET  # x32
    assert run_bpf(bucketed, 0, 0, 0x40000003) == KILL  # another architecture


def test_trial_program_denies_and_allows_what_it_should() -> None:
    program = _confine.seccomp_program(**TRIAL_OPTIONS, bucketed=True)
    code = program.for_pid(PID)
    audit = _seccomp.AUDIT_ARCH[ARCH]
    nr = _seccomp.SYSCALLS[ARCH] | _seccomp.EXTRA_SYSCALLS[ARCH]
    if _seccomp.machine() != ARCH:
        pytest.skip("the program is built for this machine's architecture")

    def answer(name: str, arg0: int = 0) -> int:
        return run_bpf(code, nr[name], arg0, audit)

    assert answer("kill", PID) == ALLOW and answer("kill", PID + 1) == EPERM_RET
    assert answer("tgkill", PID) == ALLOW and answer("tgkill", 1) == EPERM_RET
    assert answer("socket", 1) == EPERM_RET and answer("socket", 2) == EPERM_RET
    assert answer("socketpair", 1) == ALLOW and answer("socketpair", 2) == EPERM_RET
    assert answer("clone", 0x00010000 | 0x00000F00) == ALLOW  # a thread
    assert answer("clone", 0x00000011) == EPERM_RET  # fork-like
    assert answer("clone3") == ENOSYS_RET
    for name in ("fork", "vfork", "execve", "ptrace", "process_vm_writev", "chmod", "shmget"):
        assert answer(name) == EPERM_RET, name
    assert answer("prctl", 1) == EPERM_RET and answer("prctl", 15) == ALLOW  # PR_SET_NAME
    assert run_bpf(code, 0, 0, audit) == ALLOW  # read
    assert run_bpf(code, 1, 0, audit) == ALLOW  # write
