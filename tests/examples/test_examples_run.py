"""Every example runs, as the demo runs it, and does what its docstring promises."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

import counter  # noqa: E402
import curve_fit  # noqa: E402
import fizzbuzz  # noqa: E402

import symbiont  # noqa: E402
from symbiont.models import MutationModel, ScriptedModel  # noqa: E402
from symbiont.testing import reset  # noqa: E402


@pytest.fixture
def runtime():
    rt = symbiont.Runtime(store=False)
    yield rt
    rt.close()
    reset(counter.step, fizzbuzz.fizzbuzz, curve_fit.predict)


def test_counter_keeps_its_state_while_step_is_swapped(runtime) -> None:
    # With this seed the first evolve call uses its 20 attempts (about 0.85 s on a quiet
    # machine) and the second accepts at once; the loop starts no evolve call after its
    # deadline, so the deadline leaves room for a slow first call on a loaded machine (it
    # took 1.01 s once while a model server ran alongside, and a 1 s deadline failed).
    result = counter.main(
        runtime=runtime, model=MutationModel(seed=1), seconds=3.0, evolve_every=0.2, quiet=True
    )
    reports = result["reports"]
    assert any(r.accepted for r in reports), [r.summary() for r in reports]
    incs = result["increments"]
    assert incs[0] == 1  # the default body ran first
    final = incs[-1]
    assert 5 <= final <= 20 and incs[-2] == final  # then the evolved constant
    # the state was never reset: the counter is the sum of every increment observed
    assert result["state"]["counter"] == sum(incs)
    assert result["active"] == next(r.accepted.number for r in reports if r.accepted)


def test_fizzbuzz_failing_report_is_fed_back_until_all_pass(runtime) -> None:
    wrong = fizzbuzz.fizzbuzz.symbiont.active.source.replace('"Buzz"', '"Bzz"')
    right = (
        "def fizzbuzz(n: int) -> str:\n"
        "    if n % 15 == 0:\n        return 'FizzBuzz'\n"
        "    if n % 3 == 0:\n        return 'Fizz'\n"
        "    if n % 5 == 0:\n        return 'Buzz'\n"
        "    return str(n)\n"
    )
    model = ScriptedModel([f"```python\n{wrong}```", f"```python\n{right}```"])
    report = fizzbuzz.main(runtime=runtime, model=model)
    assert [a.stage for a in report.attempts] == ["evaluate", "promote"]
    second_prompt = model.calls[1][-1]["content"]
    assert "fizzbuzz(5) returned 'Bzz', expected 'Buzz'" in second_prompt
    assert "fizzbuzz(15) returned 'Fizz', expected 'FizzBuzz'" in second_prompt
    assert [fizzbuzz.fizzbuzz(n) for n in (3, 5, 15, 7)] == ["Fizz", "Buzz", "FizzBuzz", "7"]


def test_fizzbuzz_offline_proposer_finds_the_fix(runtime) -> None:
    report = fizzbuzz.main(runtime=runtime, model=MutationModel(seed=2), attempts=80)
    assert report.ok, report.summary()
    assert fizzbuzz.fizzbuzz(30) == "FizzBuzz"


def test_curve_fit_score_improves_across_revisions(runtime) -> None:
    # 80 attempts: what `symbiont demo curve_fit` gives the offline proposer, which moves a
    # constant a little at a time (slope 1.0 to about 3.2)
    report = curve_fit.main(runtime=runtime, model=MutationModel(seed=3), attempts=80)
    scores = [a.score for a in report.attempts if a.accepted]
    assert len(scores) >= 2, report.summary()
    assert report.baseline_score is not None
    assert scores == sorted(scores, reverse=True)  # each accepted revision is better
    assert scores[-1] < report.baseline_score / 5
    assert curve_fit.mse(curve_fit.predict).value == pytest.approx(scores[-1])
