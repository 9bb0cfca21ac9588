"""In-process trials and `exception_diagnostic` on its own."""

from __future__ import annotations

import sys
import time
from typing import Any

import pytest
from trial_helpers import make_candidate

from symbiont.trial import TrialLimits, exception_diagnostic, run_inprocess

STATE: dict[str, int] = {"n": 0}


def test_inprocess_value_round_trips_through_json() -> None:
    result = run_inprocess(lambda: {"pair": (1, 2), "s": "é"})
    assert result.ok and result.diagnostic is None
    assert result.value == {"pair": [1, 2], "s": "é"}  # same types as a forked trial
    assert result.mode == "inprocess"
    assert (result.stdout_tail, result.stderr_tail) == ("", "")


def test_inprocess_has_no_isolation() -> None:
    def job() -> int:
        STATE["n"] += 1
        return STATE["n"]

    before = STATE["n"]
    assert run_inprocess(job).value == before + 1
    assert STATE["n"] == before + 1  # documented: mutations stay


def test_inprocess_exception_becomes_diagnostic_with_candidate_line() -> None:
    fn = make_candidate(
        "def f(d):\n    x = 1\n    return d['missing'] + x\n", "f", "<symbiont ip.f rev4>"
    )
    result = run_inprocess(lambda: fn({}))
    assert not result.ok and result.value is None
    diag = result.diagnostic
    assert diag is not None
    assert (diag.stage, diag.kind, diag.line) == ("trial", "exception", 3)
    assert diag.message == "KeyError: 'missing'"


@pytest.mark.parametrize(
    ("job", "kind"),
    [
        (lambda: sys.exit(2), "exit"),
        (lambda: (_ for _ in ()).throw(MemoryError("fake")), "memory"),
    ],
)
def test_inprocess_special_exceptions(job: Any, kind: str) -> None:
    result = run_inprocess(job)
    assert result.diagnostic is not None and result.diagnostic.kind == kind


def test_inprocess_recursion() -> None:
    rec = make_candidate("def r(n):\n    return r(n + 1)\n", "r", "<symbiont ip.r rev1>")
    diag = run_inprocess(lambda: rec(0)).diagnostic
    assert diag is not None and diag.kind == "recursion" and diag.line == 2


def test_inprocess_invalid_result() -> None:
    diag = run_inprocess(lambda: {"s": {1}}).diagnostic
    assert diag is not None and diag.kind == "invalid_result"
    diag = run_inprocess(lambda: "x" * 100, TrialLimits(max_result_bytes=50)).diagnostic
    assert diag is not None and diag.kind == "invalid_result"


def test_inprocess_overrun_is_reported_after_the_fact() -> None:
    result = run_inprocess(lambda: time.sleep(0.15) or 1, TrialLimits(timeout_s=0.05))
    assert result.diagnostic is not None and result.diagnostic.kind == "timeout"
    assert "cannot be stopped" in result.diagnostic.message
    assert result.duration_s >= 0.15


def test_inprocess_keyboard_interrupt_propagates() -> None:
    def job() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_inprocess(job)


# -- exception_diagnostic --------------------------------------------------------------------


def _raise_from(fn: Any, *args: Any) -> BaseException:
    try:
        fn(*args)
    except BaseException as exc:
        return exc
    raise AssertionError("did not raise")


def test_diagnostic_caret_under_the_failing_expression() -> None:
    src = "def g(items):\n    first = items[0]\n    return first.upper() + items[5]\n"
    g = make_candidate(src, "g", "<symbiont diag.g rev1>")
    diag = exception_diagnostic(_raise_from(g, ["a"]))
    assert diag.message == "IndexError: list index out of range"
    assert diag.line == 3
    assert diag.excerpt is not None
    lines = diag.excerpt.splitlines()
    code_line, caret_line = lines[-2], lines[-1]
    start = caret_line.index("^")
    width = caret_line.count("^")
    assert code_line[start : start + width] == "items[5]"


def test_diagnostic_prefix_selects_frames_and_stage_is_kept() -> None:
    inner = make_candidate(
        "def inner():\n    raise ValueError('bad')\n", "inner", "<symbiont a rev1>"
    )
    outer_src = "def outer(f):\n    return f()\n"
    outer = make_candidate(outer_src, "outer", "<symbiont b rev1>")
    exc = _raise_from(outer, inner)
    only_b = exception_diagnostic(exc, frame_prefix="<symbiont b", stage="evaluate")
    assert only_b.stage == "evaluate"
    assert only_b.line == 2
    assert only_b.detail is not None
    assert "<symbiont b rev1>" in only_b.detail and "<symbiont a rev1>" not in only_b.detail
    both = exception_diagnostic(exc)
    assert both.detail is not None
    assert "<symbiont b rev1>" in both.detail and "<symbiont a rev1>" in both.detail
    assert both.line == 2  # innermost candidate frame: inner's raise on its line 2


def test_diagnostic_without_prefix_keeps_innermost_frames() -> None:
    def a() -> None:
        b()

    def b() -> None:
        c()

    def c() -> None:
        d()

    def d() -> None:
        assert 1 + 1 == 3, "arithmetic is broken"

    diag = exception_diagnostic(_raise_from(a), frame_prefix=None)
    assert diag.line is None
    assert diag.message.startswith("AssertionError: arithmetic is broken")
    assert diag.detail is not None
    assert "in d" in diag.detail and "in c" in diag.detail and "in a\n" not in diag.detail
    assert 'assert 1 + 1 == 3, "arithmetic is broken"' in diag.detail


def test_diagnostic_mentions_the_cause_and_survives_a_broken_str() -> None:
    class Weird(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str for you")

    def chained() -> None:
        try:
            {}["k"]
        except KeyError as exc:
            raise Weird() from exc

    diag = exception_diagnostic(_raise_from(chained))
    assert diag.message.startswith("Weird: <str() of the exception failed>")
    assert diag.detail is not None
    assert "raised from KeyError: 'k'" in diag.detail


def test_diagnostic_of_exception_without_traceback() -> None:
    diag = exception_diagnostic(ValueError("never raised"))
    assert diag.kind == "exception"
    assert diag.message == "ValueError: never raised"
    assert diag.detail == "ValueError: never raised"


def test_diagnostic_truncates_huge_messages() -> None:
    diag = exception_diagnostic(
        _raise_from(lambda: (_ for _ in ()).throw(ValueError("v" * 100_000)))
    )
    assert len(diag.message) <= 1000
    assert diag.detail is not None and len(diag.detail) < 5000
