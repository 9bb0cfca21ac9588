"""A failing check's report says where the function returned the values it quotes
(`symbiont.returns`): the line of the function, not the checker's frames."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))

import fizzbuzz
import prompts_targets as t

import symbiont
from symbiont import returns
from symbiont.models import ScriptedModel
from symbiont.testing import reset

SHOUT_DEF = "def shout(text: str) -> str:"


@pytest.fixture
def runtime() -> Iterator[symbiont.Runtime]:
    rt = symbiont.Runtime(store=False)
    yield rt
    rt.close()
    reset(t.shout, fizzbuzz.fizzbuzz)


@symbiont.evolvable(timeout=2.0, typecheck=False, trial="inprocess")
def shout_here(text: str) -> str:
    """Upper-case text."""
    return text.lower()


def fenced(code: str) -> str:
    return f"```python\n{code.strip()}\n```"


def test_the_first_prompt_says_which_line_returned_the_wrong_text(
    runtime: symbiont.Runtime,
) -> None:
    model = ScriptedModel(["no code"])
    fizzbuzz.main(runtime=runtime, model=model, attempts=1)
    task = model.calls[0][1]["content"]
    # the declared body checks 3 before 15: 15, 30 and 45 come back from the Fizz line
    assert "Where your function returned those values:" in task
    for n in (15, 30, 45):
        assert f"fizzbuzz({n}) returned 'Fizz' at `return \"Fizz\"`" in task
    assert "check_fizzbuzz" not in task and "expected(" not in task  # no checker frames


def test_a_candidate_s_correction_names_its_own_line(runtime: symbiont.Runtime) -> None:
    wrong = (
        f'{SHOUT_DEF}\n    """Upper-case text."""\n    if text.isalpha():\n'
        "        return text.title()\n    return text.upper()\n"
    )
    right = f'{SHOUT_DEF}\n    """Upper-case text."""\n    return text.upper()\n'
    model = ScriptedModel([fenced(wrong), fenced(right)])
    report = runtime.evolve_sync(t.shout, model, check=t.check_shout, attempts=2)
    assert report.accepted is not None
    correction = model.calls[1][-1]["content"]
    assert "shout('abc') returned 'Abc', expected 'ABC'" in correction  # the check's message
    assert "shout('abc') returned 'Abc' at `return text.title()`" in correction
    assert correction.count("expected 'ABC'") == 1  # the message is not repeated


def test_nothing_is_added_for_a_call_that_raised_or_a_check_that_quotes_no_call(
    runtime: symbiont.Runtime,
) -> None:
    def raises(fn: object) -> None:
        try:
            fn("abc")  # type: ignore[operator]
        except ValueError:
            raise AssertionError("shout('abc') raised ValueError") from None

    def vague(fn: object) -> None:
        assert fn("abc") == "ABC", "wrong"  # type: ignore[operator]

    bad = f'{SHOUT_DEF}\n    """Upper-case text."""\n    raise ValueError(text)\n'
    model = ScriptedModel([fenced(bad), "no code"])
    runtime.evolve_sync(t.shout, model, check=raises, attempts=2)
    assert returns.HEAD not in model.calls[1][-1]["content"]  # not "returned None"
    model = ScriptedModel(["no code"])
    runtime.evolve_sync(t.shout, model, check=vague, attempts=1)
    assert "[evaluate/check_failed] AssertionError: wrong" in model.calls[0][1]["content"]
    assert returns.HEAD not in model.calls[0][1]["content"]


def test_the_check_runs_once_in_the_live_process(runtime: symbiont.Runtime) -> None:
    """In-process trials have no isolation: the check is never run a second time there."""
    runs: list[int] = []

    def counted(fn: object) -> None:
        runs.append(1)
        t.check_shout(fn)

    model = ScriptedModel(["no code"])
    runtime.evolve_sync(shout_here, model, check=counted, attempts=1)
    assert len(runs) == 1
    assert "shout('abc') returned 'abc', expected 'ABC'" in model.calls[0][1]["content"]
    assert returns.HEAD not in model.calls[0][1]["content"]


def test_a_flaky_check_that_passes_the_second_time_adds_nothing() -> None:
    def shout(text: str) -> str:
        return text.lower()

    runs: list[int] = []

    def flaky(fn: object) -> None:
        runs.append(1)
        assert len(runs) > 1, f"shout('abc') returned {fn('abc')!r}"  # type: ignore[operator]

    with pytest.raises(AssertionError):  # the first run, the caller's: it fails
        flaky(shout)
    assert returns.where_returned(shout, flaky, "shout('abc') returned 'abc'") is None
    assert len(runs) == 2  # where_returned ran it once more, and it passed


def test_the_profile_hook_is_put_back_and_calls_are_bounded() -> None:
    def double(x: int) -> int:
        return x * 2

    def many(fn: object) -> None:
        for i in range(returns.MAX_CALLS + 500):
            fn(i)  # type: ignore[operator]
        raise AssertionError("double(1) returned 2, double(3000) returned 6000")

    seen: list[str] = []

    def theirs(frame: object, event: str, arg: object) -> None:
        seen.append(event)

    sys.setprofile(theirs)
    try:
        where = returns.where_returned(double, many, "double(1) returned 2, double(3000)")
        assert sys.getprofile() is theirs
    finally:
        sys.setprofile(None)
    assert where is not None
    assert "double(1) returned 2 at `return x * 2`" in where
    assert "double(3000)" not in where  # beyond the calls noted


def test_a_hostile_return_value_cannot_flood_or_break_the_report(
    runtime: symbiont.Runtime,
) -> None:
    """The report shows the candidate's return value, so it calls that value's `__repr__`:
    one that returns 10 MB, and one that raises, still leave a short report, and the host
    (the test's process) is untouched: the second run of the check is in the trial."""

    def check(fn: object) -> None:  # quotes the call, never repr()s the value itself
        assert fn("abc") == "ABC", "shout('abc') returned the wrong text"  # type: ignore[operator]

    flood = (
        "class Loud(str):\n    def __repr__(self) -> str:\n        return 'X' * 10_000_000\n\n\n"
        f'{SHOUT_DEF}\n    """Upper-case text."""\n    return Loud(text)\n'
    )
    broken = (
        "class Odd(str):\n    def __repr__(self) -> str:\n        raise RuntimeError('no')\n\n\n"
        f'{SHOUT_DEF}\n    """Upper-case text."""\n    return Odd(text)\n'
    )
    model = ScriptedModel([fenced(flood), fenced(broken), "no code"])
    report = runtime.evolve_sync(t.shout, model, check=check, attempts=3)
    flooded, odd = (model.calls[k][-1]["content"] for k in (1, 2))
    for correction in (flooded, odd):
        assert "[evaluate/check_failed]" in correction, correction[:500]
        assert returns.HEAD in correction
        (line,) = [x for x in correction.splitlines() if x.startswith("  shout('abc') returned ")]
        assert len(line) < 200, line[:300]
    assert "XXXX" in flooded and "X" * 100 not in flooded
    assert "Odd" in odd and "instance" in odd  # reprlib's stand-in for a repr that raised
    assert [a.stage for a in report.attempts][:2] == ["evaluate", "evaluate"]
    assert t.shout("abc") == "abc"  # the host's function: still the declared body
