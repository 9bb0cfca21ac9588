"""A head copied with its whitespace changed is put back as given (what a 0.5B model does).

The reply below is Qwen2.5-Coder-0.5B's first fizzbuzz answer, byte for byte: the code is
right, but the docstring it was told to repeat verbatim came back indented by five spaces
over a body indented by four, and Python refuses the whole function.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

import fizzbuzz as fb

from symbiont.pipeline import PipelineConfig, Target, run_pipeline
from symbiont.pipeline.parse import restore_head

QWEN_REPLY = (
    '```python\ndef fizzbuzz(n: int) -> str:\n     """Return "Fizz" for multiples of 3, "Buzz" '
    'for multiples of 5, "FizzBuzz" for multiples\n    of both, and the number itself as text '
    'otherwise."""\n    if n % 15 == 0:\n        return "FizzBuzz"\n    if n % 3 == 0:\n'
    '        return "Fizz"\n    if n % 5 == 0:\n        return "Buzz"\n    return str(n)\n```'
)
NO_TC = PipelineConfig(typecheck=False)


def _call(result, n: int) -> str:
    fn = type(fb.fizzbuzz)(result.candidate.code, fb.fizzbuzz.__globals__, "fizzbuzz")
    return fn(n)


def test_a_reindented_docstring_is_put_back_and_the_code_compiles() -> None:
    result = run_pipeline(QWEN_REPLY, Target.from_function(fb.fizzbuzz), NO_TC)
    assert result.ok, [d.message for d in result.diagnostics]
    assert [_call(result, n) for n in (3, 5, 15, 7)] == ["Fizz", "Buzz", "FizzBuzz", "7"]
    # the stored source is the repaired text, with the head exactly as declared
    assert '\n    """Return "Fizz" for multiples of 3' in result.candidate.source
    assert '\n     """' not in result.candidate.source


def test_a_body_that_is_really_broken_keeps_its_own_error() -> None:
    broken = QWEN_REPLY.replace("    return str(n)", "   return str(n)")  # 3 spaces
    result = run_pipeline(broken, Target.from_function(fb.fizzbuzz), NO_TC)
    assert not result.ok and result.stage == "parse"
    (diag,) = result.diagnostics
    assert diag.kind == "indentation"
    # the model is told about its own text as it sent it (Python trips where the body
    # dedents below the five-space docstring, line 4), not about the repaired text (whose
    # error would be the three-space `return` on line 11)
    assert diag.line == 4
    assert "if n % 15 == 0:" in (diag.excerpt or "")


def test_a_changed_docstring_is_not_replaced() -> None:
    # The model may write its own docstring; only a copy of the given head is restored.
    source = 'def fizzbuzz(n: int) -> str:\n     """Say fizz."""\n    return str(n)\n'
    head = 'def fizzbuzz(n: int) -> str:\n    """Return fizz."""'
    assert restore_head(source, "fizzbuzz", [head]) is None


def test_only_the_named_function_at_module_level_is_touched() -> None:
    head = 'def f(x: int) -> int:\n    """Twice x."""'
    source = (
        'def g(x: int) -> int:\n     """Twice x."""\n    return x\n\n'
        'def f(x: int) -> int:\n      """Twice x."""\n    return 2 * x\n'
    )
    fixed = restore_head(source, "f", [head])
    assert fixed is not None
    assert fixed.endswith('def f(x: int) -> int:\n    """Twice x."""\n    return 2 * x\n')
    assert fixed.startswith('def g(x: int) -> int:\n     """Twice x."""')


# The same model's second answer: a docstring of its own, opened at five spaces over a body
# at four. Only the docstring's first line takes part in indentation.
QWEN_OWN_DOCSTRING = (
    '```python\ndef fizzbuzz(n: int) -> str:\n     """Return \'Fizz\' if n is divisible by 3 '
    "or 5 (or both), otherwise return 'Buzz'.\n      If n is not divisible by any of these, "
    'return the string representation of n.\n    """\n    if n % 3 == 0 and n % 5 == 0:\n'
    '        return "FizzBuzz"\n    elif n % 3 == 0:\n        return "Fizz"\n'
    '    elif n % 5 == 0:\n        return "Buzz"\n    else:\n        return str(n)\n```'
)


def test_a_docstring_of_its_own_indented_unlike_the_body_is_aligned() -> None:
    result = run_pipeline(QWEN_OWN_DOCSTRING, Target.from_function(fb.fizzbuzz), NO_TC)
    assert result.ok, [d.message for d in result.diagnostics]
    assert [_call(result, n) for n in (9, 10, 30, 8)] == ["Fizz", "Buzz", "FizzBuzz", "8"]
    # the docstring's text is the model's, untouched but for its first line's indent
    assert "\n      If n is not divisible by any of these" in result.candidate.source
    assert '\n    """Return \'Fizz\' if n is divisible' in result.candidate.source


def test_an_unterminated_docstring_is_left_to_the_model() -> None:
    # Its third answer opened with four quotes and never closed the string: no repair.
    reply = '```python\ndef fizzbuzz(n: int) -> str:\n     """"\n     return str(n)\n```'
    result = run_pipeline(reply, Target.from_function(fb.fizzbuzz), NO_TC)
    assert not result.ok and result.stage == "parse"
    assert result.diagnostics[0].kind == "syntax"
