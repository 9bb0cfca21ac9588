"""The explicit Numba signature of a native evolvable, derived from its annotations.

Supported annotations (anything else is refused at declaration, naming these):

- scalars: `int` (int64), `float` (float64), `bool` (boolean), `complex` (complex128), and
  the NumPy scalar types `np.int8` … `np.int64`, `np.uint8` … `np.uint64`, `np.float32`,
  `np.float64`, `np.complex64`, `np.complex128`, `np.bool_`;
- arrays: `Annotated[npt.NDArray[np.float64], 2]` — the dtype inside `NDArray[...]`, the
  number of dimensions as the `Annotated` metadata (an int, or `Dims(2, "C")` to require a
  C-contiguous array; the default layout "A" accepts any strided array);
- the return annotation may also be `None` (a kernel that fills an output array).

`Annotated` keeps the annotation an ordinary, type-checker-clean NumPy type: the dimensions
are metadata only Numba reads.
"""

from __future__ import annotations

import inspect
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from symbiont.errors import DeclarationError

Layout = Literal["A", "C", "F"]


@dataclass(frozen=True, slots=True)
class Dims:
    """Array dimensions (and layout) for `Annotated[npt.NDArray[dtype], Dims(2, "C")]`."""

    ndim: int
    layout: Layout = "A"

    def __post_init__(self) -> None:
        if not (isinstance(self.ndim, int) and 1 <= self.ndim <= 32):
            raise DeclarationError(f"Dims.ndim must be an int from 1 to 32, not {self.ndim!r}")
        if self.layout not in ("A", "C", "F"):
            raise DeclarationError(f"Dims.layout must be 'A', 'C' or 'F', not {self.layout!r}")


SUPPORTED = (
    "int, float, bool, complex, NumPy scalar types (np.float64, np.int32, np.bool_, ...), "
    "arrays as Annotated[npt.NDArray[np.float64], <ndim>] (or Dims(ndim, 'C') for a "
    "C-contiguous array), and None as the return type"
)


@dataclass(frozen=True, slots=True)
class NativeSpec:
    """What the native backend needs to compile any body of one evolvable."""

    name: str
    params: tuple[str, ...]  # positional-or-keyword parameter names, in order
    signature: Any  # numba.core.typing.templates.Signature
    text: str  # the signature as Numba prints it, e.g. "(array(float64, 2d, A), int64) -> float64"
    scalars_only: bool = False  # no array argument (the trampoline may call the entry point)


def _scalar_types() -> dict[Any, Any]:
    import numpy as np
    from numba import types as nt

    return {
        int: nt.int64,
        float: nt.float64,
        bool: nt.boolean,
        complex: nt.complex128,
        np.int8: nt.int8,
        np.int16: nt.int16,
        np.int32: nt.int32,
        np.int64: nt.int64,
        np.uint8: nt.uint8,
        np.uint16: nt.uint16,
        np.uint32: nt.uint32,
        np.uint64: nt.uint64,
        np.float32: nt.float32,
        np.float64: nt.float64,
        np.complex64: nt.complex64,
        np.complex128: nt.complex128,
        np.bool_: nt.boolean,
    }


def _refuse(fn_name: str, where: str, annotation: Any, why: str) -> DeclarationError:
    shown = annotation if isinstance(annotation, str) else _spell(annotation)
    return DeclarationError(
        f"@evolvable(native=True) on `{fn_name}`: the annotation of {where} ({shown}) cannot be "
        f"given to Numba: {why}. Supported: {SUPPORTED}."
    )


def _spell(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__qualname__
    return repr(annotation).replace("typing.", "")


def _array_dtype(array_type: Any) -> Any:
    """The dtype `np.float64` of `npt.NDArray[np.float64]` (= ndarray[Any, dtype[float64]])."""
    import numpy as np

    if typing.get_origin(array_type) is not np.ndarray:
        return None
    args = typing.get_args(array_type)
    if len(args) != 2:
        return None
    dtype_alias = args[1]
    if typing.get_origin(dtype_alias) is not np.dtype:
        return None
    (dtype,) = typing.get_args(dtype_alias) or (None,)
    return dtype


def numba_type(annotation: Any, fn_name: str, where: str) -> Any:
    """The Numba type for one resolved annotation; DeclarationError naming what is supported."""
    import numpy as np
    from numba import types as nt

    scalars = _scalar_types()
    if annotation is None or annotation is type(None):
        if where == "the return value":
            return nt.none
        raise _refuse(fn_name, where, annotation, "a parameter cannot be None")
    if annotation is inspect.Parameter.empty:
        raise _refuse(fn_name, where, "missing", "every parameter and the return need a type")
    if typing.get_origin(annotation) is Annotated:
        base, *meta = typing.get_args(annotation)
        dtype = _array_dtype(base)
        if dtype is None:
            raise _refuse(fn_name, where, annotation, "only NDArray types take dimensions")
        dims = next((m for m in meta if isinstance(m, Dims | int) and m is not True), None)
        if dims is None:
            raise _refuse(fn_name, where, annotation, "say how many dimensions, e.g. `, 2]`")
        dims = Dims(dims) if isinstance(dims, int) else dims
        element = scalars.get(dtype)
        if element is None or dtype in (int, float, bool, complex):
            raise _refuse(
                fn_name,
                where,
                annotation,
                f"the dtype {_spell(dtype)} is not a fixed "
                "NumPy scalar type (use np.float64, np.int64, ...)",
            )
        return nt.Array(element, dims.ndim, dims.layout)
    if _array_dtype(annotation) is not None or annotation is np.ndarray:
        raise _refuse(
            fn_name,
            where,
            annotation,
            "an array needs its number of dimensions: write "
            "Annotated[npt.NDArray[np.float64], 1] (1-D) or ..., 2] (2-D)",
        )
    try:
        found = scalars.get(annotation)
    except TypeError:  # an unhashable annotation
        found = None
    if found is None:
        raise _refuse(fn_name, where, annotation, "Numba has no explicit type for it")
    return found


def native_spec(fn: types.FunctionType) -> NativeSpec:
    """The explicit signature of `fn`, or DeclarationError saying what is not supported."""
    from numba import types as nt
    from numba.core.typing import signature

    name = fn.__name__
    sig = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:  # an annotation that does not even evaluate
        raise DeclarationError(
            f"@evolvable(native=True) on `{name}`: its annotations cannot be evaluated "
            f"({type(exc).__name__}: {exc}). Supported: {SUPPORTED}."
        ) from exc
    params: list[str] = []
    arg_types = []
    for p in sig.parameters.values():
        if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            raise DeclarationError(
                f"@evolvable(native=True) on `{name}`: parameter `{p.name}` is {p.kind.description};"
                " a Numba signature has positional parameters only (no *args, **kwargs or "
                "keyword-only parameters)"
            )
        annotation = hints.get(p.name, inspect.Parameter.empty)
        arg_types.append(numba_type(annotation, name, f"parameter `{p.name}`"))
        params.append(p.name)
    if "return" not in hints:
        raise _refuse(name, "the return value", "missing", "declare the return type")
    ret = numba_type(hints["return"], name, "the return value")
    nsig = signature(ret, *arg_types)
    text = f"({', '.join(str(t) for t in arg_types)}{',' if len(arg_types) == 1 else ''}) -> {ret}"
    scalars_only = not any(isinstance(t, nt.Array) for t in arg_types)
    return NativeSpec(name, tuple(params), nsig, text, scalars_only)
