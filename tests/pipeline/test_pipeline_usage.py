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
