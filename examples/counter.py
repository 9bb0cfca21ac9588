"""Quick start: a loop keeps running while a model rewrites the function it calls.

The loop calls `step(state)` over and over; every few seconds a background thread asks the
model for a body that adds the same number from 5 to 20 to the counter on every call.
Candidates are checked in a forked child, the accepted one is swapped into `step` in place, and the loop —
which never stopped — picks it up at its next call. The state survives every swap.

    python examples/counter.py            # offline mutation proposer unless a model is configured
    SYMBIONT_MODEL=gpt-4o-mini python examples/counter.py
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import symbiont

PROMPT = (
    "Make step add more than 1 to state['counter']: change the number given to `increment` "
    "to a whole number from 5 to 20 of your choice and keep the rest as it is (the same "
    "number on every call, not random). The counter's value itself has no limit."
)


@symbiont.evolvable(timeout=2.0)
def step(state: dict[str, int]) -> None:
    """Advance state["counter"] by a fixed step."""
    increment = 1
    state["counter"] += increment


def check_step(fn: Callable[[dict[str, int]], None]) -> None:
    """The increment must be the same constant every call, between 5 and 20."""
    state = {"counter": 0}
    fn(state)
    first = state["counter"]
    fn(state)
    second = state["counter"] - first
    assert first == second, (
        f"step added {first} on the first call and {second} on the second; it must add the "
        "same number every time"
    )
    assert 5 <= first <= 20, (
        f"step added {first} to state['counter']; it must add a fixed number from 5 to 20 "
        "on every call"
    )


def main(
    *,
    runtime: symbiont.Runtime | None = None,
    model: object | None = None,
    seconds: float = 6.0,
    evolve_every: float = 2.0,
    attempts: int = 20,
    on_attempt: object | None = None,
    quiet: bool = False,
) -> dict[str, object]:
    """Run the loop for `seconds`, evolving `step` every `evolve_every` seconds until one
    candidate is accepted. Returns what happened (for the tests and the demo)."""
    own_runtime = runtime is None
    rt = runtime or symbiont.Runtime()
    state = {"counter": 0}
    reports: list[symbiont.EvolveReport] = []
    increments: list[int] = []

    def evolve() -> None:
        reports.append(
            rt.evolve_sync(
                step,
                model,
                prompt=PROMPT,
                check=check_step,
                attempts=attempts,
                on_attempt=on_attempt,
            )  # type: ignore[arg-type]
        )

    evolver: threading.Thread | None = None
    last_evolve = time.monotonic() - evolve_every  # evolve once right away
    deadline = time.monotonic() + seconds
    calls_since_accepted = 0
    try:
        # Run to the deadline and until the evolve thread is done; after an acceptance, a
        # few more calls, so the loop shows the new body even when it came at the very end.
        while (
            time.monotonic() < deadline
            or (evolver is not None and evolver.is_alive())
            or (any(r.accepted for r in reports) and calls_since_accepted < 3)
        ):
            before = state["counter"]
            step(state)  # a plain call: no wrapper, whatever revision is active
            increments.append(state["counter"] - before)
            accepted = any(r.accepted for r in reports)
            calls_since_accepted = calls_since_accepted + 1 if accepted else 0
            if (
                not accepted
                and (evolver is None or not evolver.is_alive())
                and time.monotonic() - last_evolve >= evolve_every
                and time.monotonic() < deadline
            ):
                last_evolve = time.monotonic()
                evolver = threading.Thread(target=evolve, name="symbiont-evolve", daemon=True)
                evolver.start()
            if not quiet and len(increments) % 20 == 0:
                print(f"counter: {state['counter']} (r{step.symbiont.active.number} active)")
            time.sleep(0.02)
    finally:
        if own_runtime:
            rt.close()
    return {
        "state": state,
        "reports": reports,
        "increments": increments,
        "active": step.symbiont.active.number,
    }


if __name__ == "__main__":
    result = main()
    for report in result["reports"]:  # type: ignore[attr-defined]
        print(report.summary())
    print(f"final counter {result['state']}, active revision r{result['active']}")
