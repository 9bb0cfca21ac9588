"""Declaring native evolvables: signatures from annotations, refusals, the live kernel."""

from __future__ import annotations

from typing import Annotated

import numba
import numpy as np
import numpy.typing as npt
import pytest
from native_targets import count_above, weighted_sum

import symbiont
from symbiont.errors import DeclarationError
from symbiont.native import Dims, native_spec


def takes_all_kinds(
    a: int, b: float, c: bool, grid: Annotated[npt.NDArray[np.float64], 2], d: np.int32
) -> float:
    return 0.0


def c_layout(m: Annotated[npt.NDArray[np.float32], Dims(3, "C")]) -> None:
    return None


def test_signature_derived_from_annotations() -> None:
    from numba import types as nt
    from numba.core.typing import signature

    assert native_spec(takes_all_kinds).signature == signature(
        nt.float64, nt.int64, nt.float64, nt.boolean, nt.float64[:, :], nt.int32
    )
    assert native_spec(takes_all_kinds).text == (
        "(int64, float64, bool, array(float64, 2d, A), int32) -> float64"
    )
    assert native_spec(c_layout).text == "(array(float32, 3d, C),) -> none"


def takes_str(name: str) -> int:
    return 0


def takes_dimensionless(xs: npt.NDArray[np.float64]) -> float:
    return 0.0


def takes_list(xs: list[int]) -> int:
    return 0


def takes_star(*xs: float) -> float:
    return 0.0


def no_return_type(x: int):  # type: ignore[no-untyped-def]
    return x


@pytest.mark.parametrize(
    ("fn", "says"),
    [
        (takes_str, "parameter `name` (str)"),
        (takes_dimensionless, "needs its number of dimensions"),
        (takes_list, "parameter `xs`"),
        (takes_star, "no *args"),
        (no_return_type, "declare the return type"),
    ],
)
def test_an_annotation_numba_cannot_type_is_refused_at_declaration(fn, says: str) -> None:
    with pytest.raises(DeclarationError) as info:
        symbiont.evolvable(native=True)(fn)
    message = str(info.value)
    assert says in message
    if fn is not takes_star:
        assert "Supported: int, float, bool" in message and "Annotated[npt.NDArray" in message
    assert not hasattr(fn, "symbiont")  # nothing was declared


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(DeclarationError, match=r"'python'.*'numba'"):
        symbiont.evolvable(backend="cython")(takes_str)  # type: ignore[call-overload]


def test_declared_body_runs_as_machine_code_behind_the_same_function() -> None:
    xs = np.array([1.0, 2.5, -4.0])
    assert weighted_sum(xs, 0.5) == pytest.approx(0.5 + 2 * (1.0 + 2.5 - 4.0))
    assert count_above(xs, 1.0, True) == 1 and count_above(xs, 1.0, False) == 2
    kernel = weighted_sum.symbiont.native
    assert isinstance(kernel, numba.core.registry.CPUDispatcher)
    assert kernel(xs, 0.0) == pytest.approx(-1.0)
    # the declared signature is the only one: nothing is compiled lazily for other types
    assert len(kernel.signatures) == 1
    with pytest.raises(TypeError):
        kernel(np.array([1, 2]), 0.0)  # an int64 array is not float64[:]


def test_a_native_caller_uses_the_dispatcher_in_its_own_njit_loop() -> None:
    kernel = weighted_sum.symbiont.native

    @numba.njit
    def many(rows: np.ndarray) -> float:
        acc = 0.0
        for r in range(rows.shape[0]):
            acc += kernel(rows[r], 1.0)
        return acc

    rows = np.ones((3, 4))
    assert many(rows) == pytest.approx(3 * (1.0 + 2 * 4.0))


def test_python_evolvable_has_no_native_kernel() -> None:
    from native_targets import plain_double

    assert plain_double(4) == 8
    with pytest.raises(DeclarationError, match="not native"):
        _ = plain_double.symbiont.native


def test_scalar_kernel_swaps_and_refuses_what_its_dispatcher_refuses() -> None:
    from native_targets import clamp

    from symbiont.evolvable import Revision
    from symbiont.pipeline import PipelineConfig, Target, run_pipeline

    assert (clamp(5.0, 0.0, 1.0), clamp(-2, 0, 1), clamp(0.25, 0.0, 1.0)) == (1.0, 0.0, 0.25)
    with pytest.raises(TypeError):
        clamp(None, 0.0, 1.0)  # type: ignore[arg-type]
    h = clamp.symbiont
    assert isinstance(h.native, numba.core.registry.CPUDispatcher)  # the dispatcher, always
    assert h.native(3.0, 0.0, 2.0) == 2.0
    reply = "```python\ndef clamp(x: float, lo: float, hi: float) -> float:\n    return min(max(x, lo), hi) * 10.0\n```"
    result = run_pipeline(
        reply,
        Target.from_function(clamp, owned_names=h.owned_names),
        PipelineConfig(typecheck=False),
    )
    c = result.candidate
    assert c is not None, result.diagnostics
    rev = h.add_revision(
        Revision(
            h.next_number(),
            c.source,
            code=c.code,
            helpers_code=c.helpers_code,
            helper_names=c.helper_names,
        )
    )
    try:
        h.activate(rev)
        assert clamp(5.0, 0.0, 1.0) == 10.0 and h.native(0.5, 0.0, 1.0) == 5.0
    finally:
        h.activate(0)
        h.revisions.remove(rev)
    assert clamp(5.0, 0.0, 1.0) == 1.0


def test_a_bool_argument_is_checked_like_the_dispatcher_checks_it() -> None:
    """The entry point would take any object's truth value for a `bool`; the declared
    function's trampoline (what checks in a trial call) sends anything but True/False to
    the dispatcher, so the evolvable, its trampoline and the dispatcher accept and refuse
    alike."""
    from native_targets import pick

    kernel, trampoline = pick.symbiont.native, pick.symbiont.fn
    for flag in (True, False, np.bool_(True), np.bool_(False), 1, 0, 2.5):
        expected = 1.0 if flag else 2.0
        assert (
            pick(flag, 1.0, 2.0) == trampoline(flag, 1.0, 2.0) == kernel(flag, 1.0, 2.0) == expected
        )
    for wrong in (None, "yes", (1,)):
        for call in (kernel, pick, trampoline):
            with pytest.raises(TypeError):
                call(wrong, 1.0, 2.0)


def test_the_evolvable_is_function_like_and_callable_by_name_from_njit_code() -> None:
    import inspect
    import pickle

    xs = np.array([1.0, 2.0])
    assert weighted_sum.__name__ == "weighted_sum" and "WEIGHT" in weighted_sum.__doc__
    assert list(inspect.signature(weighted_sum).parameters) == ["xs", "bias"]
    assert pickle.loads(pickle.dumps(weighted_sum)) is weighted_sum  # by reference

    @numba.njit
    def twice(v: np.ndarray) -> float:
        return weighted_sum(v, 0.0) * 2.0  # the active kernel, frozen when this compiles

    assert twice(xs) == 12.0
    # converted and refused like a plain njit function: an int for a float, not a string
    assert weighted_sum(xs, 1) == 7.0
    with pytest.raises(TypeError):
        weighted_sum(xs, "1.0")  # type: ignore[arg-type]
