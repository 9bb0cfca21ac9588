"""The live program the hostile trial candidates attack (tests/security/test_trial_attacks.py)."""

from __future__ import annotations

import symbiont

# Parent memory the candidates try to overwrite through /proc/<ppid>/mem, process_vm_writev
# and ptrace; a test checks it afterwards.
MARKER_TEXT = b"parent-memory-intact-7c1e04"
MARKER = bytearray(MARKER_TEXT)


@symbiont.evolvable(timeout=5.0, typecheck=False)
def victim(x: int) -> int:
    """Return x plus one."""
    return x + 1


def check_victim(fn: object) -> None:
    assert fn(1) == 2  # type: ignore[operator]
