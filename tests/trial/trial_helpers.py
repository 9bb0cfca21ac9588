"""Shared by the trial tests: candidates compiled the way the pipeline compiles them."""

from __future__ import annotations

import linecache
import os
from typing import Any


def make_candidate(source: str, name: str, filename: str = "<symbiont test rev1>") -> Any:
    """Compile `source` under a pseudo file name whose lines are in linecache, as the
    pipeline does, and return the function `name` it defines."""
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace: dict[str, Any] = {}
    exec(compile(source, filename, "exec"), namespace)
    return namespace[name]


def open_fds() -> set[int]:
    return {int(n) for n in os.listdir("/proc/self/fd")}


def is_gone(pid: int) -> bool:
    """True once `pid` is neither running nor a zombie child of ours."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our unreaped child: fine, look at /proc
    else:
        return False  # still our child (a zombie or running): not reaped by the runner
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")  # reparented and dead, waiting for init to reap it


def my_children() -> list[int]:
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == me:
            found.append(int(entry))
    return found
