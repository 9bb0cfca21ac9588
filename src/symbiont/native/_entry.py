"""What callers of a native evolvable hold: a C-level callable whose kernel is swapped in place.

Why not the function object. Calling a Python function always runs a frame of its own, and a
frame in front of Numba's dispatcher cost ≈ 630 instructions per call (1.19× a plain `njit`
call for a 3-element `dot3`; benchmarks/bench_native.py --instructions). So
`@evolvable(native=True)` returns a `NativeFunction` instead: a `functools.partial` subclass
with no bound arguments whose target (`partial.func`) is the active revision's Numba
dispatcher. CPython calls it through partial's C `tp_call`, which hands the argument tuple
straight to the dispatcher's C `tp_call`: no Python frame, ≈ 1.05× a plain `njit` call.

The swap. `follow()` replaces the target with `partial.__setstate__`: one C call that, under
the GIL, stores the new target and releases the partial's reference to the old one. No
Python code runs inside it (the old target stays referenced: by its revision's module global
and by `_held`, so dropping the partial's reference frees nothing and runs no finaliser),
so no other thread can run between "old" and "new": a call sees one whole kernel or the
other. A call already in progress holds the old dispatcher (partial passes it on as
borrowed, which `_held` keeps valid) and finishes on the old machine code. The target is
always the revision's dispatcher, with compilation disabled (an explicit signature): a call,
during a swap or not, never compiles; it converts or refuses arguments exactly as a plain
`njit` function with that signature does (keyword arguments included).

The evolvable machinery keeps working on `handle.fn`, the declared Python function whose
`__code__` is the revision's trampoline (checks and metrics in trials call it); `follow()`
reads the kernel the current trampoline names, so wherever `fn.__code__` is swapped
(promotion, rollback, a candidate installed in a trial) `follow()` after it makes callers of
the module-level name see the same kernel.
"""

from __future__ import annotations

import functools
import types
from typing import Any

if functools.partial.__module__ != "functools" or not isinstance(
    functools.partial.__setstate__, types.MethodDescriptorType
):  # pragma: no cover - CPython always has the C partial; another interpreter may not
    raise ImportError("symbiont.native needs CPython's C functools.partial")


class NativeFunction(functools.partial):  # type: ignore[type-arg]
    """A native evolvable as its callers hold it. Call it like the declared function;
    `fn.symbiont` is its Evolvable, `fn.symbiont.native` (and `fn.func`) the active
    revision's Numba dispatcher.

    Function-like attributes (`__name__`, `__qualname__`, `__module__`, `__doc__`,
    `__wrapped__`, and `__code__`/`__globals__`/`__defaults__`/`__annotations__` of the
    declared function) make `inspect.signature` and `Target.from_function` work on it; it
    pickles by reference, like a function."""

    @classmethod
    def for_handle(cls, handle: Any) -> NativeFunction:
        """The callable for a just-declared native evolvable, on its active kernel."""
        self = cls(_current_dispatcher(handle))
        fn = handle.fn
        self.__dict__.update(
            symbiont=handle,
            __name__=fn.__name__,
            __qualname__=fn.__qualname__,
            __module__=fn.__module__,
            __doc__=fn.__doc__,
            __wrapped__=fn,
            _held=[self.func],
        )
        return self

    def follow(self) -> None:
        """Switch to the kernel that `handle.fn`'s current code calls (atomically: see the
        module docstring). Callers of the evolvable see it from their next call."""
        target = _current_dispatcher(self.symbiont)
        held: list[Any] = self._held
        if not any(t is target for t in held):
            held.append(target)  # before the swap: the partial never holds the only reference
        self.__setstate__((target, (), None, self.__dict__))

    # -- function-like ---------------------------------------------------------------------
    @property
    def __code__(self) -> types.CodeType:  # type: ignore[override]
        return self.__wrapped__.__code__  # type: ignore[no-any-return]

    @property
    def __globals__(self) -> dict[str, Any]:
        return self.__wrapped__.__globals__  # type: ignore[no-any-return]

    @property
    def __defaults__(self) -> tuple[Any, ...] | None:
        return self.__wrapped__.__defaults__  # type: ignore[no-any-return]

    @property
    def __kwdefaults__(self) -> dict[str, Any] | None:
        return self.__wrapped__.__kwdefaults__  # type: ignore[no-any-return]

    @property
    def __annotations__(self) -> dict[str, Any]:  # type: ignore[override]
        return self.__wrapped__.__annotations__  # type: ignore[no-any-return]

    @property
    def _numba_type_(self) -> Any:
        """Numba types this object as the active dispatcher, so `njit` code may call the
        evolvable by name (the kernel active when that code compiles, as for
        `fn.symbiont.native`)."""
        return self.func._numba_type_

    def __reduce__(self) -> str:
        return self.__qualname__  # pickled by reference: the module's name for it

    def __repr__(self) -> str:
        handle = self.symbiont
        return f"<native evolvable {handle.key} r{handle.active.number}>"


def _current_dispatcher(handle: Any) -> Any:
    """The dispatcher the trampoline in `handle.fn.__code__` calls."""
    from symbiont.native._kernel import trampoline_dispatcher

    fn = handle.fn
    return fn.__globals__[trampoline_dispatcher(handle.native_spec, fn.__code__)]
