"""The head the model must reproduce (`def` line and docstring, verbatim), and which of the
program's names a function's code uses."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import prompts_targets as t

import symbiont
from symbiont.models import ScriptedModel
from symbiont.prompting import function_head, offered_names
from symbiont.signature import head_of
from symbiont.testing import reset

FUNC = '''\
@decorated
def f(
    x: int,
    y: int = 2,
) -> int:
    """First line.

        Indented on purpose.
    """
    return x + y
'''


def test_a_multiline_def_and_docstring_are_cut_out_verbatim() -> None:
    lines = FUNC.splitlines()
    assert head_of(FUNC, "f") == "\n".join(lines[1:9])


@pytest.mark.parametrize(
    ("source", "head"),
    [
        ("def f(x):\n    # note\n\n    return x\n", "def f(x):"),
        ("def f(x):\n    '''one'''\n    return x\n", "def f(x):\n    '''one'''"),
        ("def g():\n    pass\n\ndef f(x):\n    return x\n", "def f(x):"),
        ("class C:\n    def f(self):\n        pass\n", None),  # not a top-level function
        ("def f(x): return x\n", None),  # body on the def line
        ('def f(x):\n    """doc"""; return x\n', None),
        ("def f(x:\n", None),  # not Python
        ("    def f(x):\n        return x\n", "def f(x):"),  # indented: dedented first
    ],
)
def test_heads_of_other_layouts(source: str, head: str | None) -> None:
    assert head_of(source, "f") == head


@pytest.fixture
def runtime() -> Iterator[symbiont.Runtime]:
    rt = symbiont.Runtime(store=False)
    yield rt
    rt.close()
    reset(t.shout)


def test_the_head_follows_the_active_revision_after_a_promotion(
    runtime: symbiont.Runtime,
) -> None:
    promoted = 'def shout(text: str) -> str:\n    """\n    Upper-case text.\n    """\n    return text.upper()\n'
    runtime.evolve_sync(t.shout, ScriptedModel([f"```python\n{promoted}```"]), check=t.check_shout)
    assert t.shout.symbiont.active.number > 0
    assert (
        function_head(t.shout.symbiont)
        == 'def shout(text: str) -> str:\n    """\n    Upper-case text.\n    """'
    )


def test_names_used_through_attributes_annotations_and_closures() -> None:
    # leaky reads os.sep and sys.maxsize (denied), math.floor, SECRET_TOKEN, BIG, LIMIT,
    # clamp, and has Point and Vector in its signature.
    assert set(offered_names(t.leaky.symbiont)) == {
        "math",
        "Point",
        "Vector",
        "SECRET_TOKEN",
        "BIG",
        "LIMIT",
        "clamp",
    }
    assert offered_names(t.answer.symbiont) == []  # its `expected` is a local


def test_harness_objects_are_never_offered_even_when_mentioned() -> None:
    h = t.leaky.symbiont
    assert "LIMIT" in offered_names(h)
    assert "LIMIT" not in offered_names(h, context={"LIMIT": 10})  # shown with its value
    mentioned = offered_names(h, prompt="Keep Point and check_scaled and expected in mind.")
    assert "check_scaled" not in mentioned and "expected" not in mentioned  # functions
    assert "clamp" not in offered_names(h, harness=[t.clamp])
