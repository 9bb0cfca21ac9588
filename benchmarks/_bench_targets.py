"""Functions the benchmarks evolve (a real module file, so source and type checks work)."""

from __future__ import annotations

import symbiont


def plain_add(a: int, b: int) -> int:
    return a + b


@symbiont.evolvable(typecheck=False)
def evolved_add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def swap_source_code():  # the code object of a candidate body, as the pipeline compiles one
    ns: dict = {}
    exec(
        compile(
            "def evolved_add(a: int, b: int) -> int:\n    return a + b\n",
            "<symbiont bench>",
            "exec",
        ),
        ns,
    )
    return ns["evolved_add"].__code__
