"""Native evolvables through the pipeline and the evolve loop, with real Numba."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from native_targets import weighted_sum

import symbiont
from symbiont.evolvable import Revision
from symbiont.models import ScriptedModel
from symbiont.pipeline import PipelineConfig, Target, run_pipeline
from symbiont.testing import reset


def fenced(code: str) -> str:
    return f"```python\n{code.strip()}\n```\n"


TYPING_ERROR = """
def weighted_sum(xs: Vector, bias: float) -> float:
    total = bias
    label = "sum"
    total = total + label
    return total
"""

HANGS = """
def weighted_sum(xs: Vector, bias: float) -> float:
    total = bias
    while total == total:
        total += 0.0
    return total
"""

VECTORISED = """
def weighted_sum(xs: Vector, bias: float) -> float:
    return bias + WEIGHT * _plain_sum(xs)


def _plain_sum(xs: Vector) -> float:
    s = 0.0
    for x in xs:
        s += x
    return s
"""


def check_weighted_sum(fn) -> None:
    xs = np.array([1.0, -2.0, 0.25, 8.0])
    # expected: 2 * (1 - 2 + 0.25 + 8) + 3 = 17.5
    assert fn(xs, 3.0) == pytest.approx(17.5), f"weighted_sum returned {fn(xs, 3.0)}"
    assert fn(np.zeros(0), -1.0) == -1.0


@pytest.fixture
def runtime():
    rt = symbiont.Runtime(store=False)
    yield rt
    rt.close()
    reset(weighted_sum)


def last_user_messages(model: ScriptedModel) -> list[str]:
    return [[m for m in call if m["role"] == "user"][-1]["content"] for call in model.calls]


def test_a_typing_error_is_a_native_diagnostic_with_the_candidate_line() -> None:
    target = Target.from_function(weighted_sum)
    result = run_pipeline(fenced(TYPING_ERROR), target, PipelineConfig(typecheck=False))
    assert result.candidate is None and result.stage == "native"
    (diag,) = result.diagnostics
    assert diag.stage == "native" and diag.kind == "typing"
    assert diag.line == 4  # `total = total + label` (line 1 is the def)
    assert "total + label" in (diag.excerpt or "")
    assert ">>> add(float64, Literal[str](sum))" in diag.message
    assert "candidate implementations" not in diag.message  # cut to what a model can act on
    assert len(diag.message) < 900
    assert result.timings["native"] > 0


def test_evolve_end_to_end_typing_error_hang_then_accepted(runtime) -> None:
    before = weighted_sum.symbiont.native
    model = ScriptedModel([fenced(TYPING_ERROR), fenced(HANGS), fenced(VECTORISED)])
    report = runtime.evolve_sync(
        weighted_sum, model, check=check_weighted_sum, typecheck=False, timeout=6
    )
    stages = [a.stage for a in report.attempts]
    assert stages == ["native", "trial", "promote"], report.summary()
    # the typing error went back to the model with its line
    prompts = last_user_messages(model)
    assert "Numba could not compile" in prompts[1] and "line 4" in prompts[1]
    # the hanging kernel compiled, ran in the trial child and was killed there
    assert report.attempts[1].diagnostics[0].kind == "timeout"
    assert "did not finish within 6 s" in prompts[2]
    # accepted: the same function object now calls the new kernel
    accepted = report.attempts[2]
    assert accepted.timings["native_compile"] > 0  # compile time recorded per candidate
    xs = np.arange(5.0)
    assert weighted_sum(xs, 1.0) == pytest.approx(1.0 + 2 * 10.0)
    after = weighted_sum.symbiont.native
    assert after is not before and after.py_func.__code__.co_filename.endswith(".py")
    assert after(xs, 0.0) == pytest.approx(20.0)
    # rollback returns to the declared kernel without compiling anything again
    weighted_sum.symbiont.rollback()
    assert weighted_sum.symbiont.native is before


def _promote(source: str, fn=weighted_sum) -> Revision:
    """Run a candidate through the pipeline (native stage included) and make it active."""
    h = fn.symbiont
    target = Target.from_function(fn, owned_names=h.owned_names)
    result = run_pipeline(fenced(source), target, PipelineConfig(typecheck=False))
    assert result.candidate is not None, result.diagnostics
    c = result.candidate
    rev = Revision(
        number=h.next_number(),
        source=c.source,
        code=c.code,
        helpers_code=c.helpers_code,
        helper_names=c.helper_names,
    )
    h.add_revision(rev)
    return h.activate(rev)


MARKED = """
def weighted_sum(xs: Vector, bias: float) -> float:
    total = bias + 1000.0
    for i in range(xs.shape[0]):
        total += WEIGHT * xs[i]
    return total
"""


def test_eight_threads_calling_during_swaps_always_get_a_whole_kernels_answer(runtime) -> None:
    h = weighted_sum.symbiont
    marked = _promote(MARKED)
    h.activate(0)
    xs = np.arange(100.0)
    plain = 2 * xs.sum()  # the declared body's answer for bias 0; MARKED adds 1000
    allowed = {plain, plain + 1000.0}
    stop = threading.Event()
    seen: list[set[float]] = [set() for _ in range(8)]
    errors: list[BaseException] = []
    calls = [0] * 8  # calls made by each thread (each writes only its own slot)

    def caller(index: int) -> None:
        out = seen[index]
        try:
            while not stop.is_set():
                out.add(weighted_sum(xs, 0.0))
                calls[index] += 1
        except BaseException as exc:  # pragma: no cover - a failure is what is tested
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    try:
        for i in range(60):
            h.activate(marked.number if i % 2 == 0 else 0)
            # promotion is done: from here every call sees this revision's kernel
            assert weighted_sum(xs, 0.0) == plain + (1000.0 if i % 2 == 0 else 0.0)
            # let the callers make some calls on this revision before the next swap
            until = sum(calls) + 16
            while sum(calls) < until:
                time.sleep(0.0001)
    finally:
        stop.set()
        for th in threads:
            th.join()
    assert not errors
    results = set().union(*seen)
    assert results <= allowed, results - allowed
    assert results == allowed  # both kernels answered while swapping
    # no call compiled anything: each revision's dispatcher still has its one signature
    for rev in (h.revision(0), marked):
        kernel = weighted_sum.__globals__[rev.helper_names[0]]
        assert len(kernel.signatures) == 1 and not kernel._can_compile


# 300 chained branches: Numba's compile time grows much faster than the source (about 15 s
# on the development machine), far over halve's 3 s limit.
STALLS_WHILE_COMPILING = (
    "def halve(x: float) -> float:\n"
    + "".join(f"    if x > {i}.5:\n        x = x * 1.0001 + {i}.0\n" for i in range(300))
    + "    return x / 2.0\n"
)


def test_a_candidate_that_never_finishes_compiling_only_costs_the_child() -> None:
    from native_targets import halve

    h = halve.symbiont
    target = Target.from_function(halve, owned_names=h.owned_names)
    result = run_pipeline(fenced(STALLS_WHILE_COMPILING), target, PipelineConfig(typecheck=False))
    assert result.candidate is None and result.stage == "native"
    (diag,) = result.diagnostics
    assert diag.kind == "timeout" and "did not finish compiling within 3 s" in diag.message
    assert halve(3.0) == 1.5 and h.active.number == 0  # the host never ran it
    assert h.owned_names == frozenset(h.revisions[0].helper_names)  # nothing new bound


READS_THE_CRASHING_GLOBAL = """
def halve(x: float) -> float:
    return x / CRASHES_THE_COMPILER
"""


def test_a_candidate_that_crashes_the_compiler_only_kills_the_child() -> None:
    from native_targets import halve

    h = halve.symbiont
    target = Target.from_function(halve, owned_names=h.owned_names)
    result = run_pipeline(
        fenced(READS_THE_CRASHING_GLOBAL), target, PipelineConfig(typecheck=False)
    )
    assert result.candidate is None and result.stage == "native"
    (diag,) = result.diagnostics
    assert diag.kind == "crash" and "SIGABRT" in diag.message, diag.message
    assert "the Numba compile did not complete" in diag.message
    assert halve(3.0) == 1.5 and h.active.number == 0  # the host is alive and unchanged
    assert h.owned_names == frozenset(h.revisions[0].helper_names)


def test_callers_hold_one_c_level_callable_that_follows_promotion_and_rollback(runtime) -> None:
    import native_targets

    from symbiont.native import NativeFunction

    h = weighted_sum.symbiont
    held = native_targets.weighted_sum  # what `from native_targets import weighted_sum` got
    assert isinstance(held, NativeFunction) and held is weighted_sum
    assert held.func is h.native  # it calls the active dispatcher, no Python frame between
    declared = h.native
    xs = np.arange(4.0)
    marked = _promote(MARKED)
    assert held.func is h.native is not declared
    assert held(xs, 0.0) == 1012.0 and held(xs, bias=1.0) == 1013.0  # keywords, as njit
    h.rollback()
    assert held.func is declared and held(xs, 0.0) == 12.0
    h.activate(marked)
    assert held(xs, 0.0) == 1012.0
    h.activate(0)
    assert native_targets.weighted_sum is held  # the same object all along


PLUS_TWO = """
def step(x: float) -> float:
    return x + 2.0
"""


def test_a_call_in_progress_finishes_on_the_old_kernel_and_the_next_call_runs_the_new() -> None:
    """The swap happens while `step` is running (its kernel calls back into Python through
    `numba.objmode`): that call still returns the declared kernel's answer."""
    from native_targets import IN_CALL, step

    h = step.symbiont
    rev = _promote(PLUS_TWO, fn=step)
    h.activate(0)
    try:
        IN_CALL.append(lambda: h.activate(rev))
        assert step(1.0) == 2.0  # started on r0 (x + 1), promoted in the middle
        assert not IN_CALL and h.active is rev
        assert step(1.0) == 3.0  # the next call: the new kernel
    finally:
        IN_CALL.clear()
        h.activate(0)
        h.revisions.remove(rev)
        h._previous.clear()


def test_a_candidate_installed_for_a_trial_is_what_the_module_name_calls(runtime) -> None:
    """A check or metric may call the evolvable by its module name rather than through
    the function it is given: in the trial it must reach the candidate's kernel too."""
    import native_targets

    from symbiont.search.evaluator import install_candidate, set_code

    h = weighted_sum.symbiont
    result = run_pipeline(
        fenced(MARKED),
        Target.from_function(weighted_sum, owned_names=h.owned_names),
        PipelineConfig(typecheck=False),
    )
    assert result.candidate is not None, result.diagnostics
    xs = np.arange(4.0)
    previous = install_candidate(h.fn, result.candidate)
    try:
        assert native_targets.weighted_sum(xs, 0.0) == 1012.0
        assert h.fn(xs, 0.0) == 1012.0
    finally:
        set_code(h.fn, previous)
    assert native_targets.weighted_sum(xs, 0.0) == 12.0 and h.active.number == 0
