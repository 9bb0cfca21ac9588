"""Corrections a small model can follow: each restates the function to write, and a failed
check shows its message and the candidate's own frames, never the checker's code."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import prompts_targets as t

import symbiont
from symbiont import feedback
from symbiont.diagnostics import Diagnostic
from symbiont.models import ScriptedModel
from symbiont.testing import reset
from symbiont.trial import exception_diagnostic

SHOUT_DEF = "def shout(text: str) -> str:"


@pytest.fixture
def runtime() -> Iterator[symbiont.Runtime]:
    rt = symbiont.Runtime(store=False)
    yield rt
    rt.close()
    reset(t.shout)


def fenced(code: str) -> str:
    return f"```python\n{code.strip()}\n```"


def answer_to(model: ScriptedModel, call: int, marker: str) -> str:
    """The user message of request `call` that carries `marker` (our answer to a reply)."""
    found = [
        m["content"] for m in model.calls[call] if m["role"] == "user" and marker in m["content"]
    ]
    assert found, [m["content"][:200] for m in model.calls[call]]
    return found[-1]


def test_the_parse_correction_restates_the_function(runtime: symbiont.Runtime) -> None:
    broken = f"{SHOUT_DEF}\n    a = 1\n    b = 2\n    c = 3\n    return text.upper(\n"
    model = ScriptedModel([fenced(broken), fenced(f"{SHOUT_DEF}\n    return text.upper()")])
    report = runtime.evolve_sync(t.shout, model, check=t.check_shout)
    assert [a.stage for a in report.attempts] == ["parse", "promote"]
    correction = answer_to(model, 1, "[parse/")
    assert f"```python\n{SHOUT_DEF}" in correction  # the head to start the reply with
    assert "`shout`" in correction


def test_a_failed_check_shows_its_message_not_the_checkers_frames(
    runtime: symbiont.Runtime,
) -> None:
    wrong = fenced(f"{SHOUT_DEF}\n    return text + '!'")
    model = ScriptedModel([wrong, fenced(f"{SHOUT_DEF}\n    return text.upper()")])
    report = runtime.evolve_sync(t.shout, model, check=t.check_shout)
    assert [a.stage for a in report.attempts] == ["evaluate", "promote"]
    correction = answer_to(model, 1, "returned")
    assert "shout('abc') returned 'abc!', expected 'ABC'" in correction
    assert "check_shout" not in correction
    assert "prompts_targets.py" not in correction
    assert 'got = fn("abc")' not in correction
    assert f"```python\n{SHOUT_DEF}" in correction


def _checker(fn: object) -> None:
    value = fn(3)  # type: ignore[operator]
    assert value == 7, f"f(3) returned {value}, expected 7"


def test_candidate_frames_stay_and_checker_frames_go() -> None:
    candidate = compile(
        "def f(x):\n    return helper(x)\n\ndef helper(x):\n    return [x][x]\n",
        "<symbiont mod.f 0123abcd>",
        "exec",
    )
    namespace: dict[str, object] = {}
    exec(candidate, namespace)
    with pytest.raises(IndexError) as caught:
        _checker(namespace["f"])
    diag = exception_diagnostic(caught.value, frame_prefix=None, stage="evaluate")
    assert "_checker" in (diag.detail or "")  # what the trial reports today
    text = feedback.correction([diag], name="f", def_line="def f(x):")
    assert "IndexError" in text
    assert 'File "<symbiont mod.f 0123abcd>", line 5, in helper' in text
    assert 'File "<symbiont mod.f 0123abcd>", line 2, in f' in text
    assert "_checker" not in text and "value = fn(3)" not in text
    assert __file__ not in text


def test_an_assertion_with_a_multiline_message_keeps_every_line() -> None:
    def check(fn: object) -> None:
        raise AssertionError("2 of 45 cases fail:\n  f(3) returned 'x'\n  f(5) returned 'y'")

    with pytest.raises(AssertionError) as caught:
        check(None)
    diag = exception_diagnostic(caught.value, frame_prefix=None, stage="evaluate")
    diag = Diagnostic("evaluate", "check_failed", diag.message, detail=diag.detail)
    text = feedback.correction([diag], name="f", def_line="def f(x):")
    assert "  f(3) returned 'x'" in text and "  f(5) returned 'y'" in text
    assert "raise AssertionError" not in text


@pytest.mark.parametrize("key", sorted(feedback.CORRECTIONS))
def test_every_correction_restates_the_function(key: str) -> None:
    head = 'def area(w: float, h: float) -> float:\n    """Width times height."""'
    diag = Diagnostic("trial" if key not in ("extract", "parse") else key, key, "it went wrong")
    text = feedback.correction([diag], name="area", def_line=head, timeout_s=2.0)
    assert f"```python\n{head}\n```" in text
    assert "`area`" in text
    assert "it went wrong" in text


def test_a_correction_shows_helper_names_as_the_model_wrote_them() -> None:
    # A trial traceback names the per-revision binding of a helper the candidate defined;
    # the model wrote `_scale` and must read `_scale`, not an internal name it never saw.
    diag = Diagnostic(
        "trial",
        "exception",
        "NameError: name '_offset__sym_0badc0de' is not defined",
        detail='  File "<symbiont m.f rev3>", line 2, in _scale__sym_0badc0de\n',
    )
    text = feedback.correction([diag], name="f", def_line="def f(x: int) -> int:")
    assert "__sym_" not in text
    assert "name '_offset' is not defined" in text
    assert "in _scale" in text


def test_a_tie_is_not_called_worse() -> None:
    """Qwen2.5-Coder-0.5B sent y = 1.0 * x + 0.0 back with a range check and was told it
    scored 44.6051, "worse than" the active revision's 44.6051."""
    tie = Diagnostic("evaluate", "worse_score", "score 44.6051 vs. active r0 44.6051 (minimize)")
    args = {"name": "predict", "def_line": "def predict(x: float) -> float:"}
    same = feedback.correction([tie], score=44.6051, active_score=44.6051, **args)
    assert "scores 44.6051 (maximize), the same as the active revision's 44.6051" in same
    assert "worse than" not in same
    worse = feedback.correction([tie], score=50.0, active_score=44.6051, **args)
    assert "scores 50 (maximize), worse than the active revision's 44.6051" in worse
