"""The whole pipeline: run_pipeline end to end, and never an exception on any input."""

from __future__ import annotations

import pipeline_targets as pt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symbiont.pipeline import PipelineConfig, PipelineResult, Target, run_pipeline

GOOD = "def step(state: State, k: int = 3) -> State:\n    return State(state.count + 2 * k, state.name)\n"
NO_TC = PipelineConfig(typecheck=False)


def test_good_reply_compiles_and_runs() -> None:
    target = Target.from_function(pt.step)
    result = run_pipeline(f"Here:\n```python\n{GOOD}```", target, NO_TC)
    assert result.ok and result.stage == "compile" and result.diagnostics == []
    assert set(result.timings) == {"extract", "parse", "signature", "policy", "compile", "total"}
    cand = result.candidate
    assert cand is not None and cand.source == GOOD
    fn = type(pt.step)(cand.code, pt.step.__globals__, "step", pt.step.__defaults__)
    assert fn(pt.State(1)).count == 7


@pytest.mark.parametrize(
    ("reply", "stage", "kind"),
    [
        ("no code here", "extract", "no_code"),
        (
            "```python\ndef step(state: State, k: int = 3) -> State:\n    return (\n```",
            "parse",
            "syntax",
        ),
        (
            "```python\ndef step(state: State) -> State:\n    return state\n```",
            "signature",
            "params",
        ),
        (  # an import nothing uses is removed; one the function uses is judged
            "```python\nimport os\n"
            "def step(state: State, k: int = 3) -> State:\n"
            "    return State(os.getpid(), state.name)\n```",
            "policy",
            "denied_import",
        ),
        (
            "```python\ndef step(state: State, k: int = 3) -> State:\n    yield state\n```",
            "compile",
            "function_kind",
        ),
    ],
)
def test_each_stage_reports_its_failure(reply: str, stage: str, kind: str) -> None:
    result = run_pipeline(reply, Target.from_function(pt.step), NO_TC)
    assert not result.ok and result.candidate is None
    assert result.stage == stage
    assert result.diagnostics[0].stage == stage and result.diagnostics[0].kind == kind


def test_type_error_fails_at_typecheck() -> None:
    from symbiont.pipeline.typecheck import find_ty

    if find_ty() is None:
        pytest.skip("ty is not installed")
    bad = GOOD.replace("2 * k", "'2' * k")
    result = run_pipeline(f"```python\n{bad}```", Target.from_function(pt.step))
    assert result.stage == "typecheck" and result.diagnostics[0].line == 2
    ok = run_pipeline(f"```python\n{GOOD}```", Target.from_function(pt.step))
    assert ok.ok and "typecheck" in ok.timings


def test_target_from_a_swapped_function_still_reads_the_declaration() -> None:
    target = Target.from_function(pt.step)
    cand = run_pipeline(GOOD, target, NO_TC).candidate
    assert cand is not None
    original = pt.step.__code__
    pt.step.__code__ = cand.code
    try:
        again = Target.from_function(pt.step)
    finally:
        pt.step.__code__ = original
    assert again.signature == target.signature
    assert again.function_span == target.function_span


def _mangle(text: str, cut: int, junk: str, indent: int) -> str:
    cut = cut % (len(text) + 1)
    return " " * indent + text[:cut] + junk + text[cut:]


TEMPLATES = [
    f"```python\n{GOOD}```",
    f"Sure!\n```py\n{GOOD}```\nand\n```python\nimport os\n```",
    GOOD,
    "```python\n@symbiont.evolvable\n" + GOOD,
]

_target = Target.from_function(pt.step)


def _check(result: PipelineResult) -> None:
    assert isinstance(result, PipelineResult)
    assert result.ok == (result.candidate is not None)
    if not result.ok:
        assert result.diagnostics and result.stage == result.diagnostics[0].stage
        for d in result.diagnostics:
            d.render()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_random_text_never_raises(reply: str) -> None:
    _check(run_pipeline(reply, _target, NO_TC))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(TEMPLATES),
    st.integers(min_value=0, max_value=400),
    st.sampled_from(
        [
            "",
            "\x00",
            "```",
            "\n```python\n",
            "\t",
            "\ufeff",
            "\ud800",
            "é" * 3,
            "\r",
            "(" * 300,
            "    " * 200,
            "def step(",
            "<think>",
            "\\",
            "'''",
            "\n\n\n",
        ]
    ),
    st.integers(min_value=0, max_value=2000),
)
def test_mangled_replies_never_raise(template: str, cut: int, junk: str, indent: int) -> None:
    _check(run_pipeline(_mangle(template, cut, junk, indent), _target, NO_TC))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(TEMPLATES),
    st.integers(min_value=0, max_value=300),
    st.sampled_from(["", "x", " + 'a'", "\n    return 1\n", "\x00"]),
)
def test_mangled_replies_with_typecheck_never_raise(template: str, cut: int, junk: str) -> None:
    _check(run_pipeline(_mangle(template, cut, junk, 0), _target))


def test_huge_reply_is_handled() -> None:
    _check(run_pipeline("```python\n" + "x = 1\n" * 20000 + GOOD + "```", _target, NO_TC))
