"""Evolvable functions the search tests drive."""

from __future__ import annotations

import symbiont


@symbiont.evolvable(timeout=5.0, typecheck=False)
def peak(x: float) -> float:
    """A value to maximise at x = 3: candidates change the constants."""
    return -((x - 1.0) ** 2)


@symbiont.evolvable(timeout=2.0, typecheck=False)
def work(n: int) -> int:
    """Return n + 1."""
    return n


def score_peak(fn) -> float:
    return float(fn(3.0))


def score_work(fn) -> float:
    return 1.0 if fn(4) == 5 else 0.0


def score_peak_slowly(fn) -> float:
    import time

    time.sleep(0.05)  # slow enough for a test to kill the search in the middle
    return float(fn(3.0))


def score_work_or_fail_hard(fn) -> float:
    """`score_work`, but a candidate answering -11 for 4 makes the trial process die of
    SIGSEGV, one answering -3 makes it exit on the spot, and one answering -7 leaves a
    thread running in it (the harness, not the candidate, does it: the policy keeps `os`
    and `threading` from candidates)."""
    import os
    import signal
    import threading
    import time

    value = fn(4)
    if value == -7:
        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
    if value == -11:
        os.kill(os.getpid(), signal.SIGSEGV)
    if value == -3:
        os._exit(3)
    return 1.0 if value == 5 else 0.0


def must_be_confined(fn) -> None:
    """A check that fails unless it runs confined: no environment, no new sockets."""
    import os
    import socket

    assert not os.environ, f"the environment is visible: {sorted(os.environ)[:3]}"
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
    except OSError:
        return
    raise AssertionError("a socket could be opened")


_SEEN: list[int] = []


def score_and_remember(fn) -> float:
    """Scores like `score_work`, and says how many candidates this process scored before
    (a list in the module: what one candidate leaves behind for the next)."""
    _SEEN.append(1)
    return (1.0 if fn(4) == 5 else 0.0) + len(_SEEN) / 1000
