"""Two more small-model habits the pipeline repairs without adding code of its own: a reply
that is the function's body only (the declared head is put over it), and a `def` line that
leaves out the annotations (the declared one is put back). Anything else that differs from
the declared signature keeps its diagnostic."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

import fizzbuzz

from symbiont.pipeline import PipelineConfig, Target, run_pipeline

NO_TC = PipelineConfig(typecheck=False)
TARGET = Target.from_function(fizzbuzz.fizzbuzz)
BODY = 'if n % 15 == 0:\n    return "FizzBuzz"\nif n % 3 == 0:\n    return "Fizz"\nreturn str(n)\n'


def _run(result, n: int) -> str:
    return type(fizzbuzz.fizzbuzz)(result.candidate.code, dict(fizzbuzz.__dict__), "fizzbuzz")(n)


@pytest.mark.parametrize("indent", ["", "    ", "  "])
def test_a_body_only_reply_gets_the_declared_head(indent: str) -> None:
    body = "".join(indent + line for line in BODY.splitlines(keepends=True))
    result = run_pipeline(f"```python\n{body}```", TARGET, NO_TC)
    assert result.ok, [d.message for d in result.diagnostics]
    assert result.candidate.source.startswith("def fizzbuzz(n: int) -> str:\n")
    assert [_run(result, n) for n in (15, 9, 7)] == ["FizzBuzz", "Fizz", "7"]
    assert any("body only" in note for note in result.notes)


def test_a_body_that_does_not_parse_even_under_the_head_keeps_its_own_error() -> None:
    result = run_pipeline("```python\nreturn str(n\n```", TARGET, NO_TC)
    assert not result.ok and result.stage == "parse"


def test_a_function_under_another_name_is_not_wrapped() -> None:
    result = run_pipeline(
        "```python\ndef fizz(n: int) -> str:\n    return str(n)\n```", TARGET, NO_TC
    )
    assert not result.ok and result.stage == "signature"
    assert result.diagnostics[0].kind == "name"


def test_missing_annotations_are_put_back_as_declared() -> None:
    reply = '```python\ndef fizzbuzz(n):\n    """Mine."""\n    return "Fizz" if n % 3 == 0 else str(n)\n```'
    result = run_pipeline(reply, TARGET, NO_TC)
    assert result.ok, [d.message for d in result.diagnostics]
    assert result.candidate.source.startswith('def fizzbuzz(n: int) -> str:\n    """Mine."""')
    assert [_run(result, n) for n in (3, 4)] == ["Fizz", "4"]


@pytest.mark.parametrize(
    "head",
    [
        "def fizzbuzz(n: float):",  # a different annotation is the model's statement
        "def fizzbuzz(x):",  # a different parameter
        "def fizzbuzz(n, k=1):",  # an extra one
        "async def fizzbuzz(n):",
    ],
)
def test_other_differences_keep_their_signature_diagnostic(head: str) -> None:
    result = run_pipeline(f"```python\n{head}\n    return str(n)\n```", TARGET, NO_TC)
    assert not result.ok and result.stage == "signature"


# -- Qwen2.5-Coder-0.5B's fizzbuzz replies, byte for byte (make bench-real-model) ---------------

HEAD = (
    'def fizzbuzz(n: int) -> str:\n    """""Return "Fizz" for multiples of 3, "Buzz" for '
    'multiples of 5, "FizzBuzz" for multiples\n    of both, and the number itself as text '
    'otherwise.""" if n == 0:\n'
)
RUN_ON_REPLIES = [
    # attempt 6: five quotes, and the body's first line run onto the docstring's last line
    "```python\nfrom typing import *\nimport sys\n\n"
    + HEAD
    + '        return "Fizz"\n    elif n % 3 == 0:\n        return "Fizz"\n    elif n % 5 == 0:\n'
    '        return "Buzz"\n    else:\n        return str(n)\n```',
    # attempt 7: the same, four quotes, with the body at five spaces
    "```python\nfrom typing import *\nimport sys\n\n"
    + HEAD.replace('"""""', '""""')
    + '         return "Fizz"\n     elif n % 3 == 0:\n         return "Fizz"\n     elif n % 5 == '
    '0:\n         return "Buzz"\n     else:\n         return str(n)\n```',
]


@pytest.mark.parametrize("reply", RUN_ON_REPLIES, ids=["five-quotes", "four-quotes-body-at-5"])
def test_code_run_onto_the_docstring_and_an_unused_refused_import_are_repaired(
    reply: str,
) -> None:
    result = run_pipeline(reply, TARGET, NO_TC)
    assert result.ok, [d.message for d in result.diagnostics]
    source = result.candidate.source
    assert "import sys" not in source and "import *" not in source
    # the model's logic, as written (0 -> Fizz, 15 -> Fizz: its own bugs)
    assert [_run(result, n) for n in (0, 3, 5, 15, 7)] == ["Fizz", "Fizz", "Buzz", "Fizz", "7"]


def test_an_import_the_function_uses_is_kept_and_judged() -> None:
    reply = (
        "```python\nimport sys\n\ndef fizzbuzz(n: int) -> str:\n    return str(sys.maxsize)\n```"
    )
    result = run_pipeline(reply, TARGET, NO_TC)
    assert not result.ok and result.stage == "policy"
    assert "sys" in result.diagnostics[0].message


def test_an_unused_helper_after_the_function_is_cut_with_the_demo() -> None:
    # attempt 10: a `main()` after the function, called only under `__main__`
    reply = (
        '```python\ndef fizzbuzz(n: int) -> str:\n    """Say it."""\n'
        "    return 'FizzBuzz' if n % 15 == 0 else str(n)\n\n"
        "def main():\n    print(fizzbuzz(15))\n\n"
        'if __name__ == "__main__":\n    main()\n```'
    )
    result = run_pipeline(reply, TARGET, NO_TC)
    assert result.ok, [d.message for d in result.diagnostics]
    assert "main" not in result.candidate.source
    assert _run(result, 30) == "FizzBuzz"
