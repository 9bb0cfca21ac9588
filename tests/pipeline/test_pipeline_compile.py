"""Stage 6: code objects that can replace the declared one, helpers that may be installed."""

from __future__ import annotations

import ast
import dataclasses
import linecache
import math
import re
import traceback

import pipeline_targets as pt
import pytest

from symbiont.errors import StageError
from symbiont.pipeline import Target, compile_candidate
from symbiont.pipeline.signature import find_target


def _compile(fn, src: str, **changes):
    target = dataclasses.replace(Target.from_function(fn), **changes)
    tree = ast.parse(src)
    (node,) = find_target(tree, fn.__name__)
    return compile_candidate(tree, node, src, target), target


def _refused(fn, src: str, **changes):
    with pytest.raises(StageError) as info:
        _compile(fn, src, **changes)
    assert all(d.stage == "compile" for d in info.value.diagnostics)
    return info.value.diagnostics


def test_code_swaps_in_and_helpers_run_in_module_globals() -> None:
    src = (
        "import math\n"
        "OFFSET_FOR_TEST = 10\n\n"
        "def _area_helper_for_test(r: float) -> float:\n"
        "    return math.pi * r * r + OFFSET_FOR_TEST\n\n"
        "def area(r: float) -> float:\n"
        "    return _area_helper_for_test(r)\n"
    )
    cand, _ = _compile(pt.area, src)
    written = ("math", "OFFSET_FOR_TEST", "_area_helper_for_test")
    # each bound under a per-revision name: the written name, a marker and 8 hex digits
    assert len(cand.helper_names) == 3
    for name, bound in zip(written, cand.helper_names, strict=True):
        assert re.fullmatch(re.escape(name) + r"__sym_[0-9a-f]{8}", bound)
    assert cand.function_source.startswith("def area(") and "OFFSET" not in cand.function_source
    original = pt.area.__code__
    before = set(pt.__dict__)
    try:
        exec(cand.helpers_code, pt.area.__globals__)
        assert set(pt.__dict__) - before == set(cand.helper_names)
        assert "OFFSET_FOR_TEST" not in pt.__dict__
        pt.area.__code__ = cand.code
        assert pt.area(1.0) == pytest.approx(math.pi + 10)
        helper = pt.__dict__[cand.helper_names[2]]
        assert helper.__name__ == helper.__qualname__ == "_area_helper_for_test"
    finally:
        pt.area.__code__ = original
        for name in cand.helper_names:
            pt.__dict__.pop(name, None)


def test_tracebacks_show_candidate_lines() -> None:
    src = "def area(r: float) -> float:\n    x = 1\n    return r / 0\n"
    cand, _ = _compile(pt.area, src)
    assert cand.helpers_code is None and cand.helper_names == ()
    assert linecache.getline(cand.filename, 3) == "    return r / 0\n"
    original = pt.area.__code__
    pt.area.__code__ = cand.code
    try:
        with pytest.raises(ZeroDivisionError) as info:
            pt.area(1.0)
    finally:
        pt.area.__code__ = original
    text = "".join(traceback.format_exception(info.value))
    assert cand.filename in text and "return r / 0" in text


def test_copied_decorator_is_stripped() -> None:
    src = "@symbiont.evolvable\ndef step(state: State, k: int = 3) -> State:\n    return state\n"
    cand, _ = _compile(pt.step, src)
    assert cand.code.co_firstlineno == 2
    assert cand.function_source.startswith("def step")


def test_generator_mismatch_is_refused() -> None:
    (d,) = _refused(pt.area, "def area(r: float) -> float:\n    yield r\n")
    assert d.kind == "function_kind" and d.line == 1 and "generator" in d.message
    (d,) = _refused(pt.numbers, "def numbers(n: int) -> tp.Iterator[int]:\n    return iter([])\n")
    assert d.kind == "function_kind"


def test_async_generator_vs_coroutine_is_refused() -> None:
    (d,) = _refused(pt.fetch, "async def fetch(n: int) -> int:\n    yield n\n")
    assert d.kind == "function_kind" and "async generator" in d.message


def test_closure_declared_code_is_refused() -> None:
    def outer():
        y = 1

        def area(r: float) -> float:
            return r + y

        return area

    (d,) = _refused(
        pt.area, "def area(r: float) -> float:\n    return r\n", declared_code=outer().__code__
    )
    assert d.kind == "closure" and "closure" in d.message


def test_helper_overwriting_a_module_global_is_refused() -> None:
    src = "def helper_double(x: int) -> int:\n    return 0\n\ndef area(r: float) -> float:\n    return r\n"
    (d,) = _refused(pt.area, src)
    assert d.kind == "overwrite" and d.line == 1 and "`helper_double`" in d.message


def test_a_helper_name_of_an_earlier_revision_is_free_for_the_next_one() -> None:
    template = "def _h(x: float) -> float:\n    return {n}\n\ndef area(r: float) -> float:\n    return _h(r)\n"
    first, _ = _compile(pt.area, template.format(n=1))
    try:
        exec(first.helpers_code, pt.area.__globals__)  # as a promotion does
        second, _ = _compile(pt.area, template.format(n=2))
        assert "_h" not in pt.__dict__
        assert first.helper_names != second.helper_names
    finally:
        for name in first.helper_names:
            pt.__dict__.pop(name, None)


def test_reimporting_the_same_object_is_fine_but_rebinding_is_not() -> None:
    ok = "import math\nfrom typing import List\ndef area(r: float) -> float:\n    return r\n"
    cand, _ = _compile(pt.area, ok)
    assert {n.split("__sym_")[0] for n in cand.helper_names} == {"math", "List"}
    (d,) = _refused(pt.area, "import cmath as math\ndef area(r: float) -> float:\n    return r\n")
    assert d.kind == "overwrite" and "`math`" in d.message


def test_helper_rebinding_the_target_name_is_refused() -> None:
    src = "def area(r: float) -> float:\n    return r\narea_alias = 1\n"
    cand, _ = _compile(pt.area, src)  # a new name is fine
    (bound,) = cand.helper_names
    assert bound.startswith("area_alias__sym_")
    src = "def area(r: float) -> float:\n    return r\nfor area in []:\n    pass\n"
    with pytest.raises(StageError):
        _compile(pt.area, src)


def test_content_hash_ignores_formatting_and_comments() -> None:
    a, _ = _compile(pt.area, "def area(r: float) -> float:\n    return r  # note\n")
    b, _ = _compile(pt.area, "def area(r:float)->float:\n\n    return (r)\n")
    c, _ = _compile(pt.area, "def area(r: float) -> float:\n    return -r\n")
    assert a.content_hash == b.content_hash != c.content_hash
