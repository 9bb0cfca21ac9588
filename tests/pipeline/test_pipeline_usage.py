"""A demonstration after the function is cut before the policy stage (usage.py).

The replies below are Qwen2.5-Coder-0.5B's, byte for byte, from `make bench-real-model`:
it appended example usage (an `assert` calling the function, `DATA = [...]` and a `print`)
below the function; the policy refused the module level, and it sent the same
demonstration again with the next function, attempt after attempt.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

import counter
import curve_fit

from symbiont.pipeline import PipelineConfig, Target, run_pipeline

NO_TC = PipelineConfig(typecheck=False)

COUNTER_REPLY = (
    '```python\ndef step(state: dict[str, int]) -> None:\n    """Advance state["counter"] by '
    'one step."""\n    state["counter"] += 1\n    if state["counter"] < 5 or state["counter"] > '
    '20:\n        state["counter"] = 5\n\n# Check the increment is 1 and expected a constant '
    'between 5 and 20\nassert step({"counter": 0}) == 1, "increment is 1, expected a constant '
    'between 5 and 20"\n```'
)
CURVE_REPLY = (
    '```python\nimport numpy as np\n\ndef predict(x: float) -> float:\n    """Predict y for x: '
    'a straight line fitted to DATA."""\n    # Assuming DATA is a list of tuples (x, y)\n    data '
    "= DATA\n    n = len(data)\n    y_pred = []\n    \n    # Calculate the mean squared error\n"
    "    for i in range(n):\n        x_i, y_i = data[i]\n        y_pred.append((x_i - 1.0 * x + "
    "0.0) ** 2)\n    \n    return np.mean(y_pred)\n\n# Example usage:\nDATA = [(0.5, 2.3), "
    "(1.0, 4.0)]\nprint(predict(0))  # Output: 0\n```"
)


def _function(result, module):
    """The candidate installed as promotion does: its helpers bound, then the function."""
    name = "step" if module is counter else "predict"
    namespace = dict(module.__dict__)
    if result.candidate.helpers_code is not None:
        exec(result.candidate.helpers_code, namespace)
    return type(getattr(module, name))(result.candidate.code, namespace, name)


def test_an_assert_calling_the_function_is_cut_and_the_function_kept() -> None:
    result = run_pipeline(COUNTER_REPLY, Target.from_function(counter.step), NO_TC)
    assert result.ok, [d.message for d in result.diagnostics]
    assert "assert" not in result.candidate.source
    assert "# Check the increment" not in result.candidate.source
    assert result.notes and "lines 7-8" in result.notes[0]
    state = {"counter": 0}
    _function(result, counter)(state)
    assert state == {"counter": 5}  # the model's body, as written


def test_example_data_that_rebinds_the_programs_name_and_a_print_are_cut() -> None:
    pytest.importorskip("numpy")
    before = list(curve_fit.DATA)
    result = run_pipeline(CURVE_REPLY, Target.from_function(curve_fit.predict), NO_TC)
    assert result.ok, [d.message for d in result.diagnostics]
    source = result.candidate.source
    assert "print(" not in source and "DATA = [(0.5" not in source
    assert "import numpy as np" in source  # an import above the function stays
    assert "Example usage" not in source
    # installed, the function reads the program's DATA, which is untouched
    assert before == curve_fit.DATA
    expected = sum((xi - 2.0) ** 2 for xi, _ in before) / len(before)
    assert _function(result, curve_fit)(2.0) == pytest.approx(expected)


def test_a_constant_the_function_needs_is_not_cut_even_when_computed() -> None:
    # `TABLE = build()` below the function is code at the module level: the policy judges it
    # (and refuses it), instead of the function failing later on a missing name.
    reply = (
        "def step(state: dict[str, int]) -> None:\n"
        '    """Advance state["counter"] by a fixed step."""\n'
        "    state['counter'] += TABLE[0]\n\n"
        "TABLE = sorted([7, 9])\n"
    )
    result = run_pipeline(reply, Target.from_function(counter.step), NO_TC)
    assert not result.ok and result.stage == "policy"
    assert result.diagnostics[0].kind == "module_level"


def test_code_above_the_function_is_not_cut() -> None:
    reply = (
        "print('installing')\n\n"
        "def step(state: dict[str, int]) -> None:\n"
        '    """Advance state["counter"] by a fixed step."""\n'
        "    state['counter'] += 7\n"
    )
    result = run_pipeline(reply, Target.from_function(counter.step), NO_TC)
    assert not result.ok and result.stage == "policy"
    assert result.diagnostics[0].line == 1


@pytest.mark.parametrize(
    "tail",
    [
        "if __name__ == '__main__':\n    s = {'counter': 0}\n    step(s)\n    print(s)\n",
        "for _ in range(3):\n    step({'counter': 0})\n",
        "result = step({'counter': 0})\n",
        "counter_state = {'counter': 0}\nstep(counter_state)\n",
        "try:\n    step({})\nexcept KeyError:\n    pass\n",
    ],
)
def test_every_kind_of_demonstration_is_cut(tail: str) -> None:
    reply = (
        "def step(state: dict[str, int]) -> None:\n"
        '    """Advance state["counter"] by a fixed step."""\n'
        "    state['counter'] += 7\n\n" + tail
    )
    result = run_pipeline(reply, Target.from_function(counter.step), NO_TC)
    assert result.ok, [d.message for d in result.diagnostics]
    assert result.candidate.source.rstrip().endswith("state['counter'] += 7")


def test_a_statement_sharing_a_line_with_a_definition_is_left_to_the_policy() -> None:
    reply = (
        "def step(state: dict[str, int]) -> None:\n"
        '    """Advance state["counter"] by a fixed step."""\n'
        "    state['counter'] += LIMIT\n\n"
        "LIMIT = 7; print(LIMIT)\n"
    )
    result = run_pipeline(reply, Target.from_function(counter.step), NO_TC)
    assert not result.ok and result.stage == "policy"


def test_a_hostile_tail_never_runs() -> None:
    # Cutting only removes code: whatever the tail would do is gone, not run.
    marker = Path("/tmp/symbiont-usage-tail-ran")
    marker.unlink(missing_ok=True)
    reply = (
        "def step(state: dict[str, int]) -> None:\n"
        '    """Advance state["counter"] by a fixed step."""\n'
        "    state['counter'] += 7\n\n"
        f"__builtins__['open']({str(marker)!r}, 'w').write('x')\n"
    )
    result = run_pipeline(reply, Target.from_function(counter.step), NO_TC)
    assert result.ok
    assert "open" not in result.candidate.source
    state = {"counter": 0}
    _function(result, counter)(state)  # installed and called: the tail is not there to run
    assert state == {"counter": 7}
    assert not marker.exists()


def test_a_docstring_indented_like_a_comment_below_it_is_still_reindented() -> None:
    # Qwen's reply: a five-space docstring, then a five-space comment, then the code at four.
    reply = (
        "def predict(x: float) -> float:\n"
        '     """Predict y for x: a straight line fitted to DATA."""\n'
        "     # Assuming the DATA is a list of tuples (x, y)\n"
        "    return 2.0 * x\n"
    )
    result = run_pipeline(reply, Target.from_function(curve_fit.predict), NO_TC)
    assert result.ok, [d.message for d in result.diagnostics]
    assert _function(result, curve_fit)(3.0) == 6.0


# -- `from M import *` ---------------------------------------------------------------------------

STAR_REPLY = (  # Qwen2.5-Coder-0.5B, counter attempt 8, byte for byte
    "```python\nfrom typing import *\nfrom collections import *\n\ndef step(state: dict[str, "
    'int]) -> None:\n    """Advance state[\'counter\'] by one step."""\n    state[\'counter\'] '
    "+= 1\n```"
)


def test_star_imports_of_loaded_modules_become_imports_of_the_names_used() -> None:
    result = run_pipeline(STAR_REPLY, Target.from_function(counter.step), NO_TC)
    assert result.ok, [d.message for d in result.diagnostics]
    assert "import *" not in result.candidate.source
    reply = STAR_REPLY.replace("+= 1", "+= len(OrderedDict(a=1, b=2)) * 4")
    result = run_pipeline(reply, Target.from_function(counter.step), NO_TC)
    assert result.ok, [d.message for d in result.diagnostics]
    assert "from collections import OrderedDict" in result.candidate.source
    state = {"counter": 0}
    _function(result, counter)(state)
    assert state == {"counter": 8}


def test_a_star_import_of_a_refused_module_is_still_refused_by_the_policy() -> None:
    reply = (
        "from os import *\n\n"
        "def step(state: dict[str, int]) -> None:\n"
        '    """Advance state["counter"] by a fixed step."""\n'
        "    system('touch /tmp/symbiont-star-os')\n"
    )
    result = run_pipeline(reply, Target.from_function(counter.step), NO_TC)
    assert not result.ok and result.stage == "policy"
    assert "os" in result.diagnostics[0].message


def test_a_star_import_of_a_module_not_loaded_is_left_to_the_policy() -> None:
    name = "symbiont_never_imported_module_xyz"
    assert name not in sys.modules
    reply = (
        f"from {name} import *\n\n"
        "def step(state: dict[str, int]) -> None:\n"
        '    """Advance state["counter"] by a fixed step."""\n'
        "    state['counter'] += 7\n"
    )
    result = run_pipeline(reply, Target.from_function(counter.step), NO_TC)
    assert not result.ok and result.stage == "policy"
    assert name not in sys.modules  # nothing was imported to find its names


# -- a tail that is not Python -------------------------------------------------------------------

import fizzbuzz  # noqa: E402

FIZZ_BODY = (
    '    if n % 3 == 0:\n        return "Fizz"\n    elif n % 15 == 0:\n        return "FizzBuzz"\n'
    '    if n % 5 == 0:\n        return "Buzz"\n    return str(n)\n\n# Test cases\n'
    "assert fizzbuzz(15) == 'Fizz', expected 'FizzBuzz'\n"
    "assert fizzbuzz(30) == 'Fizz', expected 'FizzBuzz'\n"
    "assert fizzbuzz(45) == 'Fizz', expected 'FizzBuzz'\n"
)
# Qwen2.5-Coder-0.5B, fizzbuzz attempts 5 and 6: tests that are not Python after the function,
# the second also with its docstring at five spaces
FIZZ_REPLIES = [
    '```python\ndef fizzbuzz(n: int) -> str:\n    """Return "Fizz" for multiples of 3, "Buzz" for '
    'multiples of 5, "FizzBuzz" for multiples\n    of both, and the number itself as text '
    'otherwise."""\n' + FIZZ_BODY + "```",
    '```python\ndef fizzbuzz(n: int) -> str:\n     """Return "Fizz" for multiples of 3, "Buzz" '
    'for multiples of 5, "FizzBuzz" for multiples\n    of both, and the number itself as text '
    'otherwise."""\n' + FIZZ_BODY,
]


@pytest.mark.parametrize("reply", FIZZ_REPLIES, ids=["tail", "tail-and-head"])
def test_tests_that_are_not_python_after_the_function_are_cut(reply: str) -> None:
    result = run_pipeline(reply, Target.from_function(fizzbuzz.fizzbuzz), NO_TC)
    assert result.ok, [d.message for d in result.diagnostics]
    assert "assert" not in result.candidate.source
    namespace = dict(fizzbuzz.__dict__)
    fn = type(fizzbuzz.fizzbuzz)(result.candidate.code, namespace, "fizzbuzz")
    # the model's own function, bug included (15 is caught by `% 3` first)
    assert [fn(n) for n in (3, 5, 15, 7)] == ["Fizz", "Buzz", "Fizz", "7"]


def test_a_function_that_is_itself_broken_keeps_its_own_error() -> None:
    reply = FIZZ_REPLIES[0].replace('        return "Buzz"', '        return "Buzz" +')
    result = run_pipeline(reply, Target.from_function(fizzbuzz.fizzbuzz), NO_TC)
    assert not result.ok and result.stage == "parse"
    assert result.diagnostics[0].line == 9  # the model's own broken line, as it sent it


def test_helpers_after_the_function_survive_the_cut() -> None:
    reply = (
        "```python\ndef fizzbuzz(\n    n: int,\n) -> str:\n"
        '    """Say it."""\n'
        "    return _word(n)\n\n"
        "print(fizzbuzz(3)) ; expected 'Fizz'\n\n"
        "def _word(n: int) -> str:\n"
        "    return 'FizzBuzz' if n % 15 == 0 else 'Fizz' if n % 3 == 0 else "
        "'Buzz' if n % 5 == 0 else str(n)\n```"
    )
    result = run_pipeline(reply, Target.from_function(fizzbuzz.fizzbuzz), NO_TC)
    assert result.ok, [d.message for d in result.diagnostics]
    assert "print" not in result.candidate.source and "def _word" in result.candidate.source


# -- an import of the function's own module ----------------------------------------------------

SELF_IMPORT_REPLY = (  # Qwen2.5-Coder-0.5B, curve_fit attempt 2, byte for byte
    '```python\n\nfrom curve_fit import curve_fit\n\ndef predict(x: float) -> float:\n    """'
    'Predict y for x: a straight line fitted to DATA."""\n    popt, pcov = curve_fit(lambda t: '
    "1.0 * t + 0.0, range(5), [4], method='newton')\n    return popt[0]\n\n```"
)


def test_an_import_of_the_functions_own_module_is_named_before_any_trial() -> None:
    result = run_pipeline(SELF_IMPORT_REPLY, Target.from_function(curve_fit.predict), NO_TC)
    assert not result.ok and result.stage == "policy"
    (diag,) = result.diagnostics
    assert diag.kind == "own_module" and diag.line == 1
    assert "module your function lives in" in diag.message


def test_a_value_computed_by_calling_the_function_is_a_demonstration_even_if_read() -> None:
    # Qwen2.5-Coder-0.5B, curve_fit: the function reads `slope`, which only the demo binds
    reply = (
        '```python\ndef predict(x: float) -> float:\n    """Predict y for x: a straight line '
        'fitted to DATA."""\n    return slope * x + intercept\n\n# Example usage\n'
        "DATA = [(1.2, -0.5), (2.3, 0.8), (4.1, 2.2)]\nslope, intercept = predict(2.1)\n"
        'print(f"Slope: {slope}, Intercept: {intercept}")\n```'
    )
    result = run_pipeline(reply, Target.from_function(curve_fit.predict), NO_TC)
    assert result.ok, [d.message for d in result.diagnostics]
    assert "predict(2.1)" not in result.candidate.source
    with pytest.raises(NameError):  # the model's own mistake, left for the trial to report
        _function(result, curve_fit)(1.0)


def test_example_data_above_the_function_that_rebinds_the_programs_name_is_cut() -> None:
    # Qwen2.5-Coder-0.5B, curve_fit: its own three points as DATA, above the function
    reply = (
        "```python\nfrom typing import List\n\nDATA = [(1.0, 2.0), (2.0, 3.0), (3.0, 4.0)]\n\n"
        'def predict(x: float) -> float:\n    """Predict y for x: a straight line fitted to '
        'DATA."""\n    return 3.0 * x - 1.0 + 0.0 * len(DATA)\n```'
    )
    result = run_pipeline(reply, Target.from_function(curve_fit.predict), NO_TC)
    assert result.ok, [d.message for d in result.diagnostics]
    assert "(1.0, 2.0)" not in result.candidate.source
    assert _function(result, curve_fit)(2.0) == 5.0


def test_a_name_an_earlier_revision_installed_may_be_bound_again() -> None:
    reply = (
        "```python\nDATA = [(1.0, 2.0)]\n\n"
        'def predict(x: float) -> float:\n    """Predict."""\n    return x\n```'
    )
    target = Target.from_function(curve_fit.predict, owned_names=frozenset({"DATA"}))
    result = run_pipeline(reply, target, NO_TC)
    assert "(1.0, 2.0)" in (result.candidate.source if result.ok else reply)
    assert not any("example usage" in n for n in result.notes)
