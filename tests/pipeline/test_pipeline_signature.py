"""Stage 3: the candidate's def matches the declared signature (after normalisation)."""

from __future__ import annotations

import ast

import pipeline_targets as pt
import pytest

from symbiont.errors import StageError
from symbiont.pipeline import Target, check_signature, normalise_annotation
from symbiont.pipeline.signature import typing_aliases_in


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("List[int]", "list[int]"),
        ("typing.List[int]", "list[int]"),
        ("Optional[int]", "int | None"),
        ("Optional[int]", "None | int"),
        ("Union[int, str]", "str | int"),
        ("Union[int, Optional[str]]", "int | str | None"),
        ("'State'", "State"),
        ("Dict[str, 'List[int]']", "dict[str, list[int]]"),
        ("typing.Any", "Any"),
        ("collections.abc.Callable[[int], str]", "Callable[[int], str]"),
        ("Tuple[int, ...]", "tuple[int, ...]"),
    ],
)
def test_equivalent_annotations(a: str, b: str) -> None:
    assert normalise_annotation(a) == normalise_annotation(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("list[int]", "list[str]"),
        ("int | None", "int"),
        ("Literal['a']", "Literal['b']"),
        ("float", "int"),
    ],
)
def test_different_annotations(a: str, b: str) -> None:
    assert normalise_annotation(a) != normalise_annotation(b)


def test_module_alias_of_typing() -> None:
    aliases = typing_aliases_in(pt.__dict__)
    assert "tp" in aliases
    assert normalise_annotation("tp.Dict[str, int]", aliases) == normalise_annotation(
        "dict[str, int]"
    )


def _check(target_fn, src: str):
    target = Target.from_function(target_fn)
    return check_signature(
        ast.parse(src), target.signature, src, typing_aliases=typing_aliases_in(target.globals)
    )


def _fails(target_fn, src: str):
    with pytest.raises(StageError) as info:
        _check(target_fn, src)
    for d in info.value.diagnostics:
        assert d.stage == "signature"
        assert d.detail is not None and "def " in d.detail
    return info.value.diagnostics


def test_matching_signature_with_other_spellings_and_helpers() -> None:
    src = (
        "import math\n\ndef _h() -> int:\n    return 1\n\n"
        "def scale(xs: list[int], factor: 'float | None' = None, *, clamp: bool = False)"
        " -> List[float]:\n    return []\n\nclass Extra:\n    pass\n"
    )
    node = _check(pt.scale, src)
    assert node.name == "scale" and node.lineno == 6


def test_copied_evolvable_decorator_is_accepted() -> None:
    src = "@symbiont.evolvable(timeout=1)\ndef step(state: State, k: int = 3) -> State:\n    return state\n"
    assert _check(pt.step, src).name == "step"


def test_other_decorator_is_refused_with_a_caret() -> None:
    src = "@functools.cache\ndef step(state: State, k: int = 3) -> State:\n    return state\n"
    (d,) = _fails(pt.step, src)
    assert d.kind == "decorator" and d.line == 1 and d.col == 2
    assert "functools.cache" in d.message


def test_wrong_name() -> None:
    (d,) = _fails(pt.step, "def stepper(state: State, k: int = 3) -> State:\n    return state\n")
    assert d.kind == "name" and "`stepper`" in d.message and "`step`" in d.message
    assert "def step(state: State, k: int = 3) -> State:" in (d.detail or "")


def test_missing_and_nested() -> None:
    (d,) = _fails(pt.step, "x = 1\n")
    assert d.kind == "missing"
    (d,) = _fails(pt.step, "class A:\n    def step(self, state, k=3):\n        pass\n")
    assert d.kind == "missing" and "top level" in d.message and d.line == 2


def test_defined_twice() -> None:
    one = "def step(state: State, k: int = 3) -> State:\n    return state\n"
    (d,) = _fails(pt.step, one + one)
    assert d.kind == "duplicate" and d.line == 3


def test_parameter_names_differ() -> None:
    (d,) = _fails(pt.step, "def step(state: State, n: int = 3) -> State:\n    return state\n")
    assert d.kind == "params" and "`k`" in d.message and "`n`" in d.message
    assert d.line == 1 and d.col == 24


def test_default_annotation_and_return_each_reported() -> None:
    diags = _fails(pt.step, "def step(state: int, k: int = 4) -> int:\n    return state\n")
    kinds = {d.kind: d for d in diags}
    assert set(kinds) == {"annotation", "default", "returns"}
    assert kinds["annotation"].col == 17 and "`State`" in kinds["annotation"].message
    assert "`3`" in kinds["default"].message
    assert kinds["returns"].col == 37


def test_kind_mismatch() -> None:
    src = "def shapes(a: int, b: dict[str, int], *args: int, c: int = 1, **kw: str) -> tuple[int, ...]:\n    return ()\n"
    (d,) = _fails(pt.shapes, src)
    assert d.kind == "param_kind" and "positional-only" in d.message


def test_async_mismatch() -> None:
    (d,) = _fails(pt.fetch, "def fetch(n: int) -> int:\n    return n\n")
    assert d.kind == "async" and "async def" in d.message
