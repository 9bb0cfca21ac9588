"""The evolve loop end to end: scripted replies through every stage, feedback, promotion."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import evolve_targets as t

import symbiont
from symbiont.errors import TransientModelError
from symbiont.models import ScriptedModel


def fenced(code: str) -> str:
    return f"Here you go:\n```python\n{code.strip()}\n```\n"


GOOD = """
def triple(x: int) -> int:
    return x * SCALE
"""


def check_triple(fn) -> None:
    for x in (0, 1, 5, -4):
        assert fn(x) == 3 * x, f"triple({x}) returned {fn(x)!r}, expected {3 * x}"


@pytest.fixture
def runtime():
    rt = symbiont.Runtime(store=False)
    yield rt
    rt.close()
    for fn in (t.triple, t.objective, t.fragile):
        h = fn.symbiont
        h.activate(0)
        del h.revisions[1:]
        h._previous.clear()
        h.failures.clear()


def user_messages(model: ScriptedModel) -> list[str]:
    """The last user message of every call the model received."""
    out = []
    for call in model.calls:
        msgs = [m for m in call if m["role"] == "user"]
        out.append(msgs[-1]["content"])
    return out


def test_each_stage_rejects_and_its_diagnostic_becomes_the_next_prompt(runtime) -> None:
    replies = [
        "I think you should multiply by three.",  # no code
        fenced("def triple(x: int) -> int:\n    return x *\n"),  # syntax
        fenced("def triple(x: str) -> int:\n    return 3\n"),  # signature
        fenced("import os\ndef triple(x: int) -> int:\n    return int(os.getpid())\n"),  # policy
        fenced("def triple(x: int) -> int:\n    return 'three'\n"),  # type error
        fenced("def triple(x: int) -> int:\n    return [][x]\n"),  # exception in the trial
        fenced("def triple(x: int) -> int:\n    return x + x\n"),  # wrong: check fails
        fenced(GOOD),
    ]
    model = ScriptedModel(replies)
    report = runtime.evolve_sync(t.triple, model, prompt="multiply by three", check=check_triple)
    stages = [a.stage for a in report.attempts]
    assert stages == [
        "extract",
        "parse",
        "signature",
        "policy",
        "typecheck",
        "trial",
        "evaluate",
        "promote",
    ]
    assert report.ok and report.accepted is not None
    assert t.triple(7) == 21  # live, same function object
    assert t.triple.symbiont.active.number == report.accepted.number
    prompts = user_messages(model)
    assert "multiply by three" in prompts[0] and "def triple(x: int) -> int:" in prompts[0]
    # each correction names its problem
    assert "could not find Python code" in prompts[1]
    assert "not valid Python" in prompts[2]
    assert "does not match the declared signature" in prompts[3]
    assert "os" in prompts[4] and "does not allow" in prompts[4]
    assert "type checker" in prompts[5]
    assert "IndexError" in prompts[6]
    assert "triple(1) returned 2, expected 3" in prompts[7]
    # every candidate was recorded, accepted or not, with its parent
    revs = t.triple.symbiont.revisions
    assert [r.status for r in revs].count("rejected") == 7
    assert all(r.parents == (0,) for r in revs[1:])


def test_hang_in_a_candidate_is_a_timeout_and_the_loop_goes_on(runtime) -> None:
    model = ScriptedModel(
        [
            fenced("def triple(x: int) -> int:\n    while True:\n        pass\n"),
            fenced(GOOD),
        ]
    )
    report = runtime.evolve_sync(t.triple, model, check=check_triple, timeout=0.5)
    assert report.attempts[0].stage == "trial"
    assert report.attempts[0].diagnostics[0].kind == "timeout"
    assert report.ok
    assert "did not finish within 0.5 s" in user_messages(model)[1]


def test_metric_rejects_worse_and_promotes_better(runtime) -> None:
    model = ScriptedModel(
        [
            fenced("def objective(x: float) -> float:\n    return (x - 30.0) ** 2\n"),  # worse
            fenced("def objective(x: float) -> float:\n    return (x - 2.0) ** 2\n"),  # better
            fenced(
                "def objective(x: float) -> float:\n    return (x - 1.0) ** 2\n"
            ),  # better still
        ]
    )
    report = runtime.evolve_sync(
        t.objective, model, metric=lambda fn: fn(0.0), direction="minimize", attempts=3
    )
    assert report.baseline_score == 100.0
    assert [a.accepted for a in report.attempts] == [False, True, True]
    assert report.attempts[0].diagnostics[0].kind == "worse_score"
    assert [a.score for a in report.attempts] == [900.0, 4.0, 1.0]
    assert t.objective(0.0) == 1.0
    assert "worse than the active revision's 100" in user_messages(model)[1]


def test_a_repeated_rejected_candidate_resets_the_conversation(runtime) -> None:
    bad = fenced("def triple(x: int) -> int:\n    return x + 1\n")
    model = ScriptedModel([bad, bad, fenced(GOOD)])
    report = runtime.evolve_sync(t.triple, model, check=check_triple)
    assert report.attempts[1].repeated
    assert report.attempts[1].diagnostics[0].kind == "repeat"
    third_call = model.calls[2]
    # history reset: system + the task with the note, not the whole conversation
    assert [m["role"] for m in third_call] == ["system", "user"]
    assert "Do not repeat it" in third_call[-1]["content"]
    assert "return x + 1" not in third_call[-1]["content"]
    assert report.ok


def test_transient_errors_are_retried_without_using_attempts(runtime) -> None:
    model = ScriptedModel([TransientModelError("429 slow down", retry_after=0.01), fenced(GOOD)])
    report = runtime.evolve_sync(t.triple, model, check=check_triple, attempts=1)
    assert report.ok
    assert report.attempts[0].retries == 1


def test_live_failures_are_fed_into_the_next_evolve(runtime) -> None:
    with pytest.raises(ZeroDivisionError), runtime.capture_failures():
        t.fragile(0)
    model = ScriptedModel(
        [fenced("def fragile(x: int) -> int:\n    return 100 // x if x else 0\n")]
    )
    report = runtime.evolve_sync(t.fragile, model, check=lambda fn: fn(0) == 0)
    first_prompt = user_messages(model)[0]
    assert "ZeroDivisionError" in first_prompt and "live program" in first_prompt
    assert report.ok
    assert t.fragile(0) == 0
    assert runtime.take_failures(t.fragile) == []


def test_evolve_refuses_bad_arguments(runtime) -> None:
    with pytest.raises(ValueError, match="needs a check, a metric"):
        runtime.evolve_sync(t.triple, ScriptedModel([]))
    with pytest.raises(symbiont.DeclarationError, match="not evolvable"):
        runtime.evolve_sync(len, ScriptedModel([]), check=check_triple)
