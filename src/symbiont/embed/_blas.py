"""One BLAS thread for one small query.

Embedding a single query is a handful of small matrix products. OpenBLAS still splits each
over all its threads, and when the cores are busy (other work, other processes) the threads
wait for each other: the query got 4x slower under contention. Batches (indexing) keep every
thread; a single query runs on one.

How: numpy's bundled OpenBLAS exports `openblas_set_num_threads_local(n)`, which sets the
thread count and returns the previous one. Despite its name the setting is process-wide
(measured: a product on another thread also runs single-threaded meanwhile), so the blocks
are counted: the first one in sets 1 thread, the last one out restores the count it found.
A batch that runs on another thread during a query is single-threaded for that moment only.
The library is found among the shared objects this process has loaded (numpy loaded it on
import), so no new dependency is needed. Where that is not possible (another BLAS, another
OS), `threadpoolctl` is used when installed; otherwise nothing changes.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["openblas_library", "single_blas_thread"]

log = logging.getLogger("symbiont.embed")

_lock = threading.Lock()
_resolved = False
_set_local: Callable[[int], int] | None = None
_active = 0  # blocks inside `single_blas_thread` right now
_restore_to = 0  # the thread count found by the first of them


def openblas_library() -> Path | None:
    """The OpenBLAS shared object loaded in this process (numpy's), if any (Linux)."""
    import numpy  # noqa: F401  (loads the BLAS it is built against)

    maps = Path("/proc/self/maps")
    if not maps.exists():
        return None
    with contextlib.suppress(OSError):
        for line in maps.read_text().splitlines():
            path = line.split()[-1] if line.split() else ""
            if "openblas" in Path(path).name.lower() and ".so" in path:
                return Path(path)
    return None


def _resolve() -> Callable[[int], int] | None:
    global _resolved, _set_local
    if _resolved:
        return _set_local
    with _lock:
        if _resolved:
            return _set_local
        _resolved = True
        path = openblas_library()
        if path is not None:
            try:
                fn = ctypes.CDLL(str(path)).openblas_set_num_threads_local
            except (OSError, AttributeError) as exc:
                log.debug("no per-thread OpenBLAS thread setting in %s: %s", path, exc)
            else:
                fn.argtypes = [ctypes.c_int]
                fn.restype = ctypes.c_int
                _set_local = fn
        return _set_local


@contextlib.contextmanager
def single_blas_thread() -> Iterator[None]:
    """BLAS calls inside the block use one thread (see the module docstring)."""
    global _active, _restore_to
    set_threads = _resolve()
    if set_threads is not None:
        with _lock:
            if _active == 0:
                _restore_to = set_threads(1)
            _active += 1
        try:
            yield
        finally:
            with _lock:
                _active -= 1
                if _active == 0:
                    set_threads(_restore_to)
        return
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-not-found]
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
