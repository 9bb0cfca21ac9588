"""A reply that is an earlier one once the pipeline's repairs are done is a repeat.

Qwen2.5-Coder-0.5B re-sends its idea with the layout changed: the docstring indented by
five spaces, opened with five quotes, an unused `import numpy as np` put on top. The
pipeline repairs each of those, so the function judged is the one already rejected; before,
only the reply as written was compared, and the same function was tried again and again
(three trials of one wrong least-squares line in a real `curve_fit` run). The replies below
are the model's own, byte for byte, from that run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
sys.path.insert(0, str(Path(__file__).parent))

import curve_fit

import symbiont
from symbiont.models import ScriptedModel
from symbiont.testing import reset

# The first reply: a wrong slope computed from DATA (it scores far worse than y = x).
FIRST = (
    "```python\ndef predict(x: float) -> float:\n"
    '    """Predict y for x: a straight line fitted to DATA."""\n'
    "    # Calculate the mean squared error of the prediction on DATA\n"
    "    mean_squared_error = sum((x - y) ** 2 for x, y in DATA) / len(DATA)\n    \n"
    "    # Find the slope and intercept of the straight line using the equation y = mx + b\n"
    "    m = mean_squared_error / len(DATA)\n    b = -m * len(DATA)\n    \n"
    "    # Return the predicted value by adding the intercept to the slope\n"
    "    return b + m*x\n\n"
    "# Data points in DATA lie near a straight line, so give the line a better slope and "
    "intercept (plain Python, no libraries).\n```"
)
# The same function with its docstring indented by five spaces (the layout repair puts the
# declared head back).
RESPACED = (
    "```python\ndef predict(x: float) -> float:\n"
    '     """Predict y for x: a straight line fitted to DATA."""\n'
    "    # Calculate the mean squared error of the prediction on DATA\n"
    "    mean_squared_error = sum((x - y) ** 2 for x, y in DATA) / len(DATA)\n    \n"
    "    # Find the slope and intercept of the straight line using the equation y = mx + b\n"
    "    m = mean_squared_error / len(DATA)\n    b = -m * len(DATA)\n    \n"
    "    # Return the predicted value by adding the intercept to the slope\n"
    "    return b + m*x\n```"
)
# ... and with an unused `import numpy as np` on top and five opening quotes.
NUMPY_ON_TOP = (
    "```python\nimport numpy as np\n\ndef predict(x: float) -> float:\n"
    '    """""Predict y for x: a straight line fitted to DATA."""\n'
    "    # Calculate the mean squared error of the prediction on DATA\n"
    "    mean_squared_error = sum((x - y) ** 2 for x, y in DATA) / len(DATA)\n    \n"
    "    # Find the slope and intercept of the straight line using the equation y = mx + b\n"
    "    m = mean_squared_error / len(DATA)\n    b = -m * len(DATA)\n    \n"
    "    # Return the predicted value by adding the intercept to the slope\n"
    "    return b + m*x\n\n"
    "# Data points in DATA lie near a straight line, so give the line a better slope and "
    "intercept (plain Python, no libraries)."
)
# A refused import (scipy is not installed), then the same with the layout broken.
SCIPY = (
    "```python\nimport numpy as np\nfrom scipy.optimize import curve_fit\n\n"
    "def predict(x: float) -> float:\n"
    '    """Predict y for x: a straight line fitted to DATA."""\n'
    "    mean_squared_error = sum((x - y) ** 2 for x, y in DATA) / len(DATA)\n"
    "    popt, pcov = curve_fit(lambda t, m, b: t**2 + m*t + b, x, mean_squared_error)\n"
    "    return popt[0] + popt[1]*x\n```"
)
SCIPY_RESPACED = (
    "```python\nimport numpy as np\nfrom scipy.optimize import curve_fit\n\n"
    "def predict(x: float) -> float:\n"
    '     """"Predict y for x: a straight line fitted to DATA."""\n'
    "     # Calculate the mean squared error of the prediction on DATA\n"
    "    mean_squared_error = sum((x - y) ** 2 for x, y in DATA) / len(DATA)\n"
    "    popt, pcov = curve_fit(lambda t, m, b: t**2 + m*t + b, x, mean_squared_error)\n"
    "    return popt[0] + popt[1]*x\n```"
)
BETTER = (
    "```python\ndef predict(x: float) -> float:\n"
    '    """Predict y for x: a straight line fitted to DATA."""\n'
    "    return 3.0 * x - 1.0\n```"
)


@pytest.fixture
def runtime():
    rt = symbiont.Runtime(store=False)
    yield rt
    rt.close()
    reset(curve_fit.predict)


def test_the_same_function_laid_out_differently_is_a_repeat_not_a_second_trial(
    runtime,
) -> None:
    model = ScriptedModel([FIRST, RESPACED, NUMPY_ON_TOP, SCIPY, SCIPY_RESPACED, BETTER])
    report = runtime.evolve_sync(
        curve_fit.predict,
        model,
        prompt=curve_fit.PROMPT,
        metric=curve_fit.mse,
        direction="minimize",
        accept="better",
        attempts=6,
    )
    stages = [a.stage for a in report.attempts]
    assert stages == ["evaluate", "model", "model", "policy", "model", "promote"], stages
    assert [a.repeated for a in report.attempts] == [False, True, True, False, True, False]
    first_rev = report.attempts[0].revision
    for i in (1, 2):
        message = report.attempts[i].diagnostics[0].message
        assert f"already tried as r{first_rev}" in message and "rejected at evaluate" in message
    assert "rejected at policy" in report.attempts[4].diagnostics[0].message
    assert report.attempts[-1].accepted
    # a repeat starts the conversation afresh and says so
    after_repeat = model.calls[2]
    assert [m["role"] for m in after_repeat] == ["system", "user"]
    assert "Do not repeat it" in after_repeat[-1]["content"]


def test_a_different_function_after_a_repair_is_judged_not_called_a_repeat(runtime) -> None:
    # the same layout fault, but another slope: it must reach the metric
    other = RESPACED.replace("b = -m * len(DATA)", "b = 0.0")
    model = ScriptedModel([FIRST, other])
    report = runtime.evolve_sync(
        curve_fit.predict,
        model,
        metric=curve_fit.mse,
        direction="minimize",
        accept="better",
        attempts=2,
    )
    assert [a.repeated for a in report.attempts] == [False, False]
    assert report.attempts[1].stage in ("evaluate", "promote")  # the metric judged it
    assert report.attempts[1].score is not None
    assert report.attempts[1].score != report.attempts[0].score
