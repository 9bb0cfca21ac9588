"""Helpers shared by the store tests (a uniquely named module, so imports cannot clash)."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable, Sequence

from symbiont.store import RevisionRecord

MakeRev = Callable[..., RevisionRecord]


def source_hash(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def start_together(procs: Sequence[subprocess.Popen[str]]) -> None:
    """Wait until every child printed "ready", then send each a line at once ("go")."""
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
