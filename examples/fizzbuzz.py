"""A failing test report goes back to the model until every case passes.

The default body has the classic bug (the "FizzBuzz" case is checked too late). The check
raises an AssertionError listing the failing inputs; that report is the next prompt.

    python examples/fizzbuzz.py
"""

from __future__ import annotations

from collections.abc import Callable

import symbiont

PROMPT = (
    "Fix `fizzbuzz` so that every case of its docstring passes. The cases that fail now are "
    "listed below with the text it returned: find the condition that gives that text, and "
    "change the conditions or their order."
)


@symbiont.evolvable(timeout=2.0)
def fizzbuzz(n: int) -> str:
    """Return "Fizz" for multiples of 3, "Buzz" for multiples of 5, "FizzBuzz" for multiples
    of both, and the number itself as text otherwise."""
    if n % 3 == 0:
        return "Fizz"
    if n % 15 == 0:
        return "FizzBuzz"
    if n % 5 == 0:
        return "Buzz"
    return str(n)


def expected(n: int) -> str:
    return "FizzBuzz" if n % 15 == 0 else "Fizz" if n % 3 == 0 else "Buzz" if n % 5 == 0 else str(n)


def check_fizzbuzz(fn: Callable[[int], str]) -> None:
    failing = [(n, fn(n), expected(n)) for n in range(1, 46) if fn(n) != expected(n)]
    if failing:
        lines = "\n".join(
            f"  fizzbuzz({n}) returned {got!r}, expected {want!r}" for n, got, want in failing[:8]
        )
        raise AssertionError(f"{len(failing)} of 45 cases fail:\n{lines}")


def main(
    *,
    runtime: symbiont.Runtime | None = None,
    model: object | None = None,
    attempts: int = 20,
    on_attempt: object | None = None,
) -> symbiont.EvolveReport:
    own = runtime is None
    rt = runtime or symbiont.Runtime()
    try:
        return rt.evolve_sync(
            fizzbuzz,
            model,  # type: ignore[arg-type]
            prompt=PROMPT,
            check=check_fizzbuzz,
            attempts=attempts,
            on_attempt=on_attempt,  # type: ignore[arg-type]
        )
    finally:
        if own:
            rt.close()


if __name__ == "__main__":
    print(main().summary())
    print([fizzbuzz(n) for n in range(1, 16)])
