"""Per-revision names (issue 9, item 3): the compile stage binds a candidate's module-level
names under names of their own, keeps the model's names where people and models read them
(`__name__`, reprs, tracebacks, the stored source), and keeps Python's scoping intact."""

from __future__ import annotations

import ast
import dataclasses
import sys
import traceback
import types

import pipeline_targets as pt
import pytest

from symbiont.pipeline import Target, compile_candidate, original_names
from symbiont.pipeline import compile as compile_stage
from symbiont.pipeline.signature import find_target

# Every scoping rule a rename could get wrong, each contributing a distinct power of ten.
SCOPES = """\
import collections.abc
from math import floor as fl

K = 1
_SEEN = [K]

def _param_shadows(K: float) -> float:
    return K  # the parameter, not the module's K

def _local_shadows() -> int:
    K = 100
    return K

def _declared_global() -> int:
    global K
    return K * 1000

class _Box:
    K = 10_000  # class-level K: the class body sees it, its methods do not
    TWICE = K * 2
    def method(self) -> int:
        return K * 100_000

def _closure() -> int:
    K = 1_000_000
    def inner() -> int:
        return K
    return inner()

def area(r: float) -> float:
    comprehension = sum(K for _ in range(10))  # the module's K, ten times
    shadowed = [K for K in (0,)][0]  # the comprehension variable
    is_mapping = isinstance({}, collections.abc.Mapping)
    return (
        _param_shadows(r) + _local_shadows() + _declared_global() + _Box.K + _Box.TWICE
        + _Box().method() + _closure() + comprehension + shadowed + fl(0.5) + is_mapping
        + (lambda K: K)(10_000_000) + len(_SEEN)
    )
"""


def _compile(fn, src: str):
    target = Target.from_function(fn)
    tree = ast.parse(src)
    (node,) = find_target(tree, fn.__name__)
    return compile_candidate(tree, node, src, target)


@pytest.fixture(params=["bytecode", "tree"])
def installed(request, monkeypatch):
    """Install candidates into pipeline_targets as a promotion does; undo afterwards.

    Run once with the rename done on the bytecode (the normal path) and once with the rename
    done on the syntax tree (the fallback when the bytecode has no room for it)."""
    if request.param == "tree":

        def no_room(*args, **kwargs):
            raise compile_stage._TooWide

        monkeypatch.setattr(compile_stage, "_namespace_code", no_room)
    original = pt.area.__code__
    names: list[str] = []

    def install(src: str):
        cand = _compile(pt.area, src)
        if cand.helpers_code is not None:
            exec(cand.helpers_code, pt.__dict__)
            names.extend(cand.helper_names)
        pt.area.__code__ = cand.code
        return cand

    yield install
    pt.area.__code__ = original
    for name in names:
        pt.__dict__.pop(name, None)


def test_renamed_code_computes_what_the_written_code_computes(installed) -> None:
    reference: dict[str, object] = {"__name__": "reference"}
    exec(compile(SCOPES, "<reference>", "exec"), reference)  # the model's code, as written
    expected = reference["area"](1.0)  # type: ignore[operator]
    before = dict(pt.__dict__)
    installed(SCOPES)
    assert pt.area(1.0) == expected
    assert "K" not in pt.__dict__ and "_Box" not in pt.__dict__  # nothing bound as written
    assert all(pt.__dict__[k] is v for k, v in before.items() if k != "area")


def test_a_rename_the_bytecode_has_no_room_for_falls_back_and_still_computes_the_same(
    installed,
) -> None:
    # `K` is both a global and an attribute in `_many`, whose 300 other names push the index of
    # a new `co_names` entry past what LOAD_GLOBAL's one argument byte can address.
    attrs = " + ".join(f"o.a{i}" for i in range(300))
    src = (
        "K = 7\n\n"
        "def _many(o: object) -> float:\n"
        f"    return K + o.K + ({attrs}) * 0\n\n"
        "def area(r: float) -> float:\n"
        "    class O:\n"
        "        def __getattr__(self, name: str) -> int:\n"
        "            return 1\n"
        "    return _many(O())\n"
    )
    reference: dict[str, object] = {}
    exec(compile(src, "<reference>", "exec"), reference)
    installed(src)
    assert pt.area(1.0) == reference["area"](1.0) == 8  # type: ignore[operator]


def test_functions_and_classes_keep_the_names_the_model_wrote(installed) -> None:
    cand = installed(SCOPES)
    objects = {name.split("__sym_")[0]: pt.__dict__[name] for name in cand.helper_names}
    box = objects["_Box"]
    assert isinstance(box, type) and box.__name__ == box.__qualname__ == "_Box"
    assert box.method.__qualname__ == "_Box.method"
    assert objects["_closure"].__name__ == "_closure"
    assert "_Box object" in repr(box())


def test_tracebacks_show_the_written_names_and_lines(installed) -> None:
    src = (
        "def _explode(x: float) -> float:\n"
        "    return x / 0\n\n"
        "def area(r: float) -> float:\n"
        "    return _explode(r)\n"
    )
    cand = installed(src)
    with pytest.raises(ZeroDivisionError) as info:
        pt.area(1.0)
    text = "".join(traceback.format_exception(info.value))
    assert f'File "{cand.filename}", line 2, in _explode' in text
    assert "return _explode(r)" in text  # the source lines are the model's own
    assert "__sym_" not in text


def test_messages_naming_a_per_revision_name_can_be_shown_as_written(installed) -> None:
    src = "A = B\nB = 1\n\ndef area(r: float) -> float:\n    return r\n"
    cand = _compile(pt.area, src)
    with pytest.raises(NameError) as info:
        exec(cand.helpers_code, dict(pt.__dict__))
    assert "__sym_" in str(info.value)
    assert original_names(str(info.value)) == "name 'B' is not defined"


def test_the_same_helper_in_two_revisions_is_bound_twice_apart(installed) -> None:
    one = installed(
        "def _h() -> float:\n    return 1.0\n\ndef area(r: float) -> float:\n    return _h()\n"
    )
    old_code = pt.area.__code__
    two = installed(
        "def _h() -> float:\n    return 2.0\n\ndef area(r: float) -> float:\n    return _h()\n"
    )
    assert set(one.helper_names).isdisjoint(two.helper_names)
    assert pt.area(0) == 2.0
    assert types.FunctionType(old_code, pt.__dict__)(0) == 1.0  # revision 1 still whole


def test_the_rewrite_is_deterministic_and_the_source_is_the_models() -> None:
    a = _compile(pt.area, SCOPES)
    b = _compile(pt.area, SCOPES)
    assert a.helper_names == b.helper_names and a.source == SCOPES
    assert a.code.co_code == b.code.co_code and a.code.co_names == b.code.co_names


def test_the_callers_tree_is_left_as_the_model_wrote_it() -> None:
    tree = ast.parse(SCOPES)
    dumped = ast.dump(tree)
    (node,) = find_target(tree, "area")
    compile_candidate(tree, node, SCOPES, Target.from_function(pt.area))
    assert ast.dump(tree) == dumped


def _python_calls(fn) -> int:
    calls = 0

    def count(frame, event, arg):
        nonlocal calls
        if event == "call":
            calls += 1

    sys.setprofile(count)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls


def test_compile_work_grows_linearly_with_the_number_of_helpers() -> None:
    """Counted in Python calls, not timed: 4x the helpers must cost about 4x, not 16x."""

    def candidate(n: int) -> tuple[ast.Module, ast.FunctionDef, str, Target]:
        helpers = "".join(
            f"def _h{i}(x: float) -> float:\n    return x + {i}\n\n" for i in range(n)
        )
        src = helpers + "def area(r: float) -> float:\n    return _h0(r)\n"
        tree = ast.parse(src)
        (node,) = find_target(tree, "area")
        return tree, node, src, dataclasses.replace(Target.from_function(pt.area))

    small, large = candidate(150), candidate(600)
    ratio = _python_calls(lambda: compile_candidate(*large)) / _python_calls(
        lambda: compile_candidate(*small)
    )
    assert ratio < 6, f"compile work grew {ratio:.1f}x for 4x the helpers"
