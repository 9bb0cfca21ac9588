"""Evolvable functions the UI tests evolve with scripted replies, in a process of their own.

    python tests/ui/ui_targets.py STORE approx greet peak  # fill a store for the pages
    python tests/ui/ui_targets.py STORE countdown       # a later evolve, for the live page
    python tests/ui/ui_targets.py STORE serve           # runtime.serve_ui() in this process

Each named function is evolved by the real runtime (pipeline, forked trial, store) with a
`ScriptedModel`. `greet`'s replies carry `<script>` in the reply text, in the source and
(through the check's message) in the diagnostics: the UI must show all of it as text.
"""

from __future__ import annotations

import sys

import symbiont
from symbiont.models import ScriptedModel

SCRIPT_REPLY = "Sure! <script>alert('reply')</script> I cannot write code today."
SCRIPT_RETURN = "<script>alert('xss')</script>"


@symbiont.evolvable(timeout=5.0, typecheck=False)
def approx(x: float) -> float:
    """Return a value close to 3.5 * x."""
    return x


@symbiont.evolvable(timeout=5.0, typecheck=False)
def greet(name: str) -> str:
    """Return a greeting for name: 'Hello, NAME!'."""
    return "hi"


@symbiont.evolvable(timeout=5.0, typecheck=False)
def countdown(n: int) -> list[int]:
    """Return n, n-1, ..., 1."""
    return []


@symbiont.evolvable(timeout=5.0, typecheck=False)
def peak(x: float) -> float:
    """A value to maximise at x = 3: candidates change the constants."""
    return -((x - 1.0) ** 2)


def fenced(code: str) -> str:
    return f"Here you go:\n```python\n{code.strip()}\n```\n"


def _approx_metric(fn: object) -> float:
    return -abs(fn(2.0) - 7.0)  # type: ignore[operator]


def _check_greet(fn: object) -> None:
    value = fn("Ada")  # type: ignore[operator]
    assert value == "Hello, Ada!", f"greet('Ada') returned {value!r}, expected 'Hello, Ada!'"


def _check_countdown(fn: object) -> None:
    value = fn(3)  # type: ignore[operator]
    assert value == [3, 2, 1], f"countdown(3) returned {value!r}"


def evolve(runtime: symbiont.Runtime, name: str) -> None:
    if name == "approx":
        body = "def approx(x: float) -> float:\n    return {}\n"
        replies = [
            fenced(body.format("2.0 * x")),  # score -3: better than -5, accepted
            fenced(body.format("3.0 * x")),  # -1: accepted
            fenced(body.format("10.0 * x")),  # -13: worse, rejected
            fenced("def approx(x: float) -> float:\n    return x *\n"),  # syntax error
            fenced(body.format("3.5 * x")),  # 0: accepted
        ]
        runtime.evolve_sync(
            approx,
            ScriptedModel(replies),
            prompt="get closer to 3.5 * x",
            metric=_approx_metric,
            attempts=len(replies),
            stop_on_accept=False,
        )
    elif name == "greet":
        replies = [
            SCRIPT_REPLY,
            fenced(f"def greet(name: str) -> str:\n    return {SCRIPT_RETURN!r}\n"),
            fenced("def greet(name: str) -> str:\n    return 'Hello, ' + name + '!'\n"),
        ]
        runtime.evolve_sync(greet, ScriptedModel(replies), check=_check_greet, attempts=3)
    elif name == "countdown":
        replies = [
            fenced("def countdown(n: int) -> list[int]:\n    return list(range(n))\n"),
            fenced("def countdown(n: int) -> list[int]:\n    return list(range(n, 0, -1))\n"),
        ]
        runtime.evolve_sync(countdown, ScriptedModel(replies), check=_check_countdown, attempts=2)
    elif name == "peak":  # a population search with the offline mutation proposer
        from symbiont.models.mutation import MutationModel
        from symbiont.search import Budget

        runtime.search_sync(
            peak,
            MutationModel(seed=7),
            metric=lambda fn: float(fn(3.0)),
            budget=Budget(evaluations=16),
            islands=2,
            migration_interval=4,
        )
    else:
        raise SystemExit(f"unknown function {name!r}")


def serve(store: str) -> int:
    """`runtime.serve_ui(actions=True)` in this process. Each stdin line: "evolve NAME"
    evolves NAME here (with the UI serving meanwhile), anything else prints approx(2.0)."""
    with symbiont.Runtime(store=store) as runtime:
        ui = runtime.serve_ui(actions=True)
        print(f"url {ui.url}", flush=True)
        for line in sys.stdin:
            words = line.split()
            if words[:1] == ["evolve"]:
                evolve(runtime, words[1])
                print(f"evolved {words[1]}", flush=True)
            else:
                print(f"approx(2.0) = {approx(2.0)}", flush=True)
        ui.stop()
    return 0


def main(argv: list[str]) -> int:
    store, *names = argv
    if names == ["serve"]:
        return serve(store)
    with symbiont.Runtime(store=store) as runtime:
        for name in names:
            evolve(runtime, name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
