"""Stage 5: type check in the module's context, errors mapped to the candidate's lines."""

from __future__ import annotations

import pipeline_broken_module as broken
import pipeline_targets as pt
import pytest
from pipeline_pkg import report

from symbiont.pipeline import Target, typecheck
from symbiont.pipeline.typecheck import find_ty, module_with_candidate, mypy_available

needs_ty = pytest.mark.skipif(find_ty() is None, reason="ty is not installed")


def test_module_with_candidate_replaces_the_span() -> None:
    module = "a = 1\n@dec\ndef f():\n    pass\nb = 2\n"
    combined, offset = module_with_candidate(module, (2, 4), "def f():\n    return 1\n")
    assert combined == "a = 1\ndef f():\n    return 1\nb = 2\n"
    assert offset == 1


@needs_ty
@pytest.mark.parametrize("checker", ["ty", "ty-cli"])
def test_type_error_is_mapped_to_candidate_lines(checker: str) -> None:
    target = Target.from_function(pt.step)
    src = (
        "def _bump(x: int) -> int:\n    return x + 1\n\n"
        "def step(state: State, k: int = 3) -> State:\n"
        "    return State(_bump(state.name), state.name)\n"
    )
    (d,) = typecheck(src, target, checker)
    assert d.stage == "typecheck" and d.kind == "invalid-argument-type"
    assert (d.line, d.col) == (5, 24)
    assert d.excerpt is not None
    caret_line = d.excerpt.splitlines()[-1]
    assert caret_line.index("^") - caret_line.index("|") - 1 == 24
    if checker == "ty":  # the server reports the whole range: `state.name`
        assert caret_line.count("^") == len("state.name")


@needs_ty
def test_module_names_are_visible_and_good_code_passes() -> None:
    target = Target.from_function(pt.scale)
    src = (
        "def scale(xs: List[int], factor: Optional[float] = None, *, clamp: bool = False)"
        " -> list[float]:\n"
        "    f = float(SCALE) if factor is None else factor\n"
        "    return [math.floor(x * f) * 1.0 + helper_double(0) for x in xs]\n"
    )
    assert typecheck(src, target, "ty") == []


@needs_ty
def test_relative_imports_resolve_in_a_package() -> None:
    target = Target.from_function(report.describe)
    ok = "def describe(distance: float) -> str:\n    return units.meters(distance)\n"
    assert typecheck(ok, target, "ty") == []
    bad = "def describe(distance: float) -> str:\n    return meters('far')\n"
    (d,) = typecheck(bad, target, "ty")
    assert d.kind == "invalid-argument-type" and (d.line, d.col) == (2, 19)


@needs_ty
def test_errors_of_the_unmodified_module_are_not_blamed_on_the_candidate() -> None:
    target = Target.from_function(broken.value)
    # repeats the module's unresolved import: the same error as the module's own
    src = (
        "import not_a_real_module_for_symbiont_tests as missing\n\n"
        "def value() -> int:\n    return missing.VALUE + 1\n"
    )
    assert typecheck(src, target, "ty") == []
    (d,) = typecheck("def value() -> int:\n    return WRONG + 'x'\n", target, "ty")
    assert d.line == 2


@needs_ty
def test_copied_decorator_and_future_import_do_not_cause_errors() -> None:
    target = Target.from_function(pt.step)
    src = (
        "from __future__ import annotations\n\n@symbiont_unknown.evolvable\n"
        "def step(state: State, k: int = 3) -> State:\n    return state\n"
    )
    assert typecheck(src, target, "ty") == []


def test_no_module_source_skips_the_check() -> None:
    import dataclasses

    target = dataclasses.replace(Target.from_function(pt.step), module_source=None)
    assert typecheck("def step(state, k=3):\n    return 1 + ''\n", target, "auto") == []


@pytest.mark.slow
@pytest.mark.skipif(not mypy_available(), reason="mypy is not installed")
def test_mypy_fallback() -> None:
    target = Target.from_function(pt.area)
    (d,) = typecheck("def area(r: float) -> float:\n    return 'x'\n", target, "mypy")
    assert d.stage == "typecheck" and d.line == 2 and d.kind == "return-value"
