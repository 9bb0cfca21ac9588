"""What the two Ray users share: `search.executors.RayExecutor` (a search's trials) and
`sandbox.ray_tier.RaySandbox` (capability runs) both send one JSON text to a Ray task and
wait for one JSON text back, and both must turn every way that can go wrong into an answer
in bounded time, never a hang.

The task is a streaming generator: it yields `STARTED` once its work is about to begin
(after imports and preparation on the worker), then its report. So the two waits are bounded
apart: how long a task may take to start (a busy cluster, a worker's start, imports), and how
long the work may run once started (its own limit plus a grace). A task past either is
cancelled with `force=True`, which kills its worker. Ray is imported only when called for.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

INSTALL_HINT = "pip install 'symbiont[ray]'"
STARTED = "started"


def import_ray(who: str, error: type[Exception]) -> Any:
    """The `ray` module, or `error` saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise error(f"{who} needs Ray, which is not installed ({exc}): {INSTALL_HINT}") from None
    return ray


def connect(ray: Any, address: str | None, init_options: dict[str, Any], error: type) -> bool:
    """Connect to the cluster unless this process already is; True when it connected now."""
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, **{"log_to_driver": False, **init_options})
    except Exception as exc:  # ConnectionError, a bad address, ...
        where = "a local Ray cluster" if address is None else repr(address)
        raise error(f"could not connect to {where}: {type(exc).__name__}: {exc}") from None
    return True


@dataclass(frozen=True, slots=True)
class Outcome:
    """The task's report (`text`), or why there is none: `kind` (timeout, unavailable,
    crash, memory, exit) and a message."""

    text: str | None
    kind: str = ""
    message: str = ""


def collect(
    ray: Any, stream: Any, *, start_timeout_s: float, run_s: float, grace_s: float, what: str
) -> Outcome:
    """Wait for the report of a task started with `.remote()` on a streaming generator.

    `run_s` is the work's own limit; it may take `grace_s` longer before it is cancelled.
    `what` names the work in messages ("the trial", "the capability")."""
    text: Any = None
    for phase, wait_s in (("start", start_timeout_s), ("run", run_s + grace_s)):
        ready, _ = ray.wait([stream], timeout=wait_s)
        if not ready:
            with contextlib.suppress(Exception):
                ray.cancel(stream, force=True)  # kills the worker running it
            if phase == "start":
                return Outcome(
                    None,
                    "unavailable",
                    f"the Ray task did not start within {wait_s:g} s (a busy cluster, or "
                    "resources it does not have); it was cancelled",
                )
            return Outcome(
                None,
                "timeout",
                f"{what} did not finish within {run_s:g} s (+{grace_s:g} s) and its Ray task "
                "was cancelled",
            )
        try:
            text = ray.get(next(stream))
        except StopIteration:
            return Outcome(None, "exit", "the Ray task ended without reporting a result")
        except ray.exceptions.OutOfMemoryError as exc:
            return Outcome(None, "memory", f"Ray's memory monitor killed the worker: {exc}")
        except ray.exceptions.RayTaskError as exc:  # the task's own code failed
            return Outcome(None, "exit", f"the Ray task failed before reporting a result: {exc}")
        except ray.exceptions.RayError as exc:  # WorkerCrashedError, NodeDiedError, ...
            first = (str(exc).strip().splitlines() or [""])[0]
            return Outcome(
                None,
                "crash",
                f"the Ray worker running {what} died ({type(exc).__name__})"
                + (f": {first}" if first else ""),
            )
        if text != STARTED:
            break
    if not isinstance(text, str):
        return Outcome(None, "exit", "the Ray task reported no text")
    return Outcome(text)
