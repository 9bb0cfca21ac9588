"""Numba backend for evolvable kernels: `@symbiont.evolvable(native=True)`.

The declared function and every candidate are compiled with `numba.njit` in nopython mode
with an explicit signature derived from the annotations (see `_signature`: `int`, `float`,
`bool`, NumPy scalars, `Annotated[npt.NDArray[np.float64], 2]` for a 2-D array).

The swap. The decorator returns a `NativeFunction` (`_entry`): a `functools.partial` subclass
around the active revision's Numba dispatcher, so a call from Python goes from partial's C call
straight into the dispatcher's (no Python frame). The declared function object stays the
evolvable's `handle.fn`: its `__code__` is a trampoline, `def f(a, b): return
_f__sym_native_<key>(a, b)`, naming the revision's dispatcher by a per-revision module global
(as helpers get; with scalars only it calls the compiled entry point, see
`_kernel.bound_names`); checks and metrics in trials call it. Wherever that code is swapped
(promotion, rollback, a candidate installed for a trial), `NativeFunction.follow()` then
switches the partial to the dispatcher the trampoline names: one C call, atomic under the
GIL; a call in progress finishes on the kernel it started with. Machine code takes
`fn.symbiont.native` (the current dispatcher) into its own `njit` code, or calls the
evolvable by name from `njit` code (the kernel active when that code compiles).

The `native` pipeline stage (`_stage`) compiles each candidate in a trial child first;
`_kernel` compiles in the host through Numba's on-disk cache, keyed by the body's source
hash; `time_kernel` measures a kernel for metrics.
"""

from __future__ import annotations

from typing import Any

from symbiont.native._entry import NativeFunction
from symbiont.native._kernel import Kernel, cache_dir, compile_kernel, kernel_key
from symbiont.native._signature import SUPPORTED, Dims, NativeSpec, native_spec
from symbiont.native._stage import native_diagnostic, native_stage
from symbiont.native._timing import KernelTiming, time_kernel

__all__ = [
    "SUPPORTED",
    "Dims",
    "Kernel",
    "KernelTiming",
    "NativeFunction",
    "NativeSpec",
    "cache_dir",
    "compile_kernel",
    "declare",
    "kernel_key",
    "native_diagnostic",
    "native_spec",
    "native_stage",
    "run_native_stage",
    "time_kernel",
]


def _require_numba() -> None:
    try:
        import numba  # noqa: F401
    except ImportError as exc:
        from symbiont.errors import DeclarationError

        raise DeclarationError(
            "@evolvable(native=True) needs Numba: pip install 'symbiont[native]'"
        ) from exc


def declare(handle: Any) -> None:
    """Make a just-declared evolvable native: derive its signature (refusing what Numba
    cannot type), compile the declared body (through the disk cache) and install it as
    revision 0's kernel behind the trampoline."""
    from symbiont.native._kernel import bound_names, entry_point, trampoline_code

    _require_numba()
    fn = handle.fn
    spec = native_spec(fn)
    rev0 = handle.revisions[0]
    kernel = compile_kernel(rev0.source, spec, fn.__globals__)
    names = bound_names(spec, kernel.key)
    fn.__globals__[names[0]] = kernel.dispatcher
    if len(names) > 1:
        fn.__globals__[names[1]] = entry_point(kernel.dispatcher)
    handle.native_spec = spec
    rev0.code = trampoline_code(spec, names, fn.__code__.co_filename)
    rev0.helper_names = names
    rev0.helpers_code = None  # bound above; revision 0 never needs binding again
    rev0.metrics["native_compile_s"] = kernel.compile_s
    handle.install(rev0.code, None, ())
    handle._owned_names.update(names)
    handle.native_entry = NativeFunction.for_handle(handle)  # what the decorator returns


def current_dispatcher(handle: Any) -> Any:
    """The Numba dispatcher the evolvable's active revision calls."""
    names = handle.active.helper_names
    return handle.fn.__globals__[names[0]]


def _handle_of(target: Any) -> Any:
    """The evolvable a pipeline target is for: by its module name, or (while the module is
    still being imported, its name not bound yet: a revision resumed at declaration) by the
    declared code object among the registered evolvables."""
    fn = target.globals.get(target.signature.name)
    handle = getattr(fn, "symbiont", None)
    if handle is not None:
        return handle
    from symbiont.evolvable import registered

    return next((h for h in registered() if h.declared_code is target.declared_code), None)


def run_native_stage(candidate: Any, target: Any) -> tuple[Any, list[Any], dict[str, float]] | None:
    """The pipeline's hook: None for a Python evolvable, else what `native_stage` returns."""
    handle = _handle_of(target)
    spec = getattr(handle, "native_spec", None)
    if spec is None:
        return None
    opts = handle.options
    return native_stage(candidate, target, spec, timeout_s=opts.timeout_s, trial=opts.trial)
