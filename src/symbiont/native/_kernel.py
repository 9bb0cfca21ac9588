"""Compiling one body of a native evolvable with Numba, and caching it on disk.

A body (the declared one or a candidate, with any helpers it defines) is compiled as its own
little module: its source is written to `<cache>/k_<key>.py` (content-addressed, never
rewritten), executed in a snapshot of the defining module's globals, its helpers wrapped with
`numba.njit` and the target with `numba.njit(<explicit signature>, cache=True)`. Numba's own
cache then keys the machine code on that file and the bytecode, so the same body in a later
process (a resumed revision, a restarted program) loads instead of compiling.

`key` hashes the source, the signature, Numba's version and the values of the simple
constants (int, float, bool, complex, str) of the module that the body reads: Numba freezes
globals into the machine code, so a changed constant is a different kernel.

Where the cache directory cannot be written (a confined trial child may not write at all),
the body is compiled in memory under a pseudo filename registered in `linecache`.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import linecache
import os
import sys
import tempfile
import threading
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from symbiont import pyast
from symbiont.native._entry import NativeFunction
from symbiont.native._signature import NativeSpec

_CACHE_ENV = "SYMBIONT_NATIVE_CACHE"
_writable: dict[tuple[int, str], bool] = {}  # (pid, dir): a confined child is another pid


_cache_dir: Path | None = None


def cache_dir() -> Path:
    """Where native kernels are cached: $SYMBIONT_NATIVE_CACHE or ~/.cache/symbiont/native.

    Resolved once, in the host: a trial child inherits the answer (its environment is
    scrubbed, so it could not find the same directory itself)."""
    global _cache_dir
    if _cache_dir is None:
        env = os.environ.get(_CACHE_ENV)
        if env:
            _cache_dir = Path(env)
        else:
            base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
            _cache_dir = Path(base) / "symbiont" / "native"
    return _cache_dir


def _can_write(directory: Path) -> bool:
    """Whether this process may write the cache (probed once per process and directory)."""
    key = (os.getpid(), str(directory))
    known = _writable.get(key)
    if known is not None:
        return known
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
        ok = True
    except (OSError, RuntimeError):  # RuntimeError: no home directory to be found
        ok = False
    _writable[key] = ok
    return ok


def _constants(source: str, module_globals: dict[str, Any]) -> str:
    try:
        names = {n.id for n in ast.walk(pyast.parse(source)) if isinstance(n, ast.Name)}
    except SyntaxError:
        return ""
    simple = (int, float, bool, complex, str)
    return repr(
        sorted(
            (n, repr(module_globals[n]))
            for n in names
            if n in module_globals and type(module_globals[n]) in simple
        )
    )


def kernel_key(source: str, spec: NativeSpec, module_globals: dict[str, Any]) -> str:
    import numba

    text = "\0".join(
        (source, spec.name, spec.text, numba.__version__, _constants(source, module_globals))
    )
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass(frozen=True, slots=True)
class Kernel:
    dispatcher: Any  # numba.core.registry.CPUDispatcher
    key: str
    compile_s: float  # wall time of njit(...), a cache load included
    cache_hit: bool  # loaded from the on-disk cache (no compilation)
    on_disk: bool  # compiled with the on-disk cache (False: in memory only)


def _native_globals(module_globals: dict[str, Any]) -> dict[str, Any]:
    """A snapshot of the module's globals where other native evolvables are their kernels
    (Numba cannot call a Python function from machine code, it can call a dispatcher)."""
    ns = dict(module_globals)
    for name, value in module_globals.items():
        evolvable = isinstance(value, types.FunctionType | NativeFunction)
        handle = getattr(value, "symbiont", None) if evolvable else None
        if getattr(handle, "native_spec", None) is not None:
            ns[name] = handle.native
    return ns


def compile_kernel(
    source: str, spec: NativeSpec, module_globals: dict[str, Any], *, disk: bool = True
) -> Kernel:
    """Compile `source` (the target def and any helpers) to a Numba dispatcher.

    Raises Numba's errors as they are (`native_diagnostic` turns them into a Diagnostic) and
    SyntaxError/NameError for a body that does not even define the target.
    """
    import numba

    key = kernel_key(source, spec, module_globals)
    on_disk = disk and _can_write(cache_dir())
    if on_disk:
        path = cache_dir() / f"k_{key}.py"
        if not path.exists():
            tmp = cache_dir() / f".k_{key}.{os.getpid()}.{threading.get_ident()}.tmp"
            tmp.write_text(source)
            os.replace(tmp, path)  # atomic: a reader never sees half a file
        filename = str(path)
    else:
        filename = f"<symbiont-native {key}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    # A real module in sys.modules: Numba finds a kernel's globals (and rebuilds a cached
    # kernel's environment) by importing the function's module by name.
    module = types.ModuleType(f"symbiont_native_{key}")
    module.__file__ = filename
    ns = module.__dict__
    ns.update({k: v for k, v in _native_globals(module_globals).items() if not k.startswith("__")})
    ns["__builtins__"] = module_globals.get("__builtins__", builtins)
    sys.modules[module.__name__] = module
    exec(compile(source, filename, "exec"), ns)
    target = ns.get(spec.name)
    if not isinstance(target, types.FunctionType):
        raise NameError(f"the body does not define `{spec.name}`")
    for name, value in list(ns.items()):
        if (
            isinstance(value, types.FunctionType)
            and value is not target
            and value.__code__.co_filename == filename
        ):
            ns[name] = numba.njit(cache=on_disk)(value)  # helpers: compiled when the target is
    started = time.perf_counter()
    # No lock of ours: Numba serialises compilation itself, and a lock held by another thread
    # when a trial forks would stay held in the child.
    dispatcher = numba.njit(spec.signature, cache=on_disk)(target)
    elapsed = time.perf_counter() - started
    hits = sum(dispatcher.stats.cache_hits.values()) if on_disk else 0
    return Kernel(dispatcher, key, elapsed, hits > 0, on_disk)


def _index_dirs() -> list[Path]:
    """Where Numba keeps the index of a kernel compiled from `cache_dir()`: under
    $NUMBA_CACHE_DIR when that is set (Numba tries it first), else next to the source."""
    from numba.core import config
    from numba.core.caching import UserProvidedCacheLocator

    dirs = [cache_dir() / "__pycache__"]
    if config.CACHE_DIR:
        subpath = UserProvidedCacheLocator.get_suitable_cache_subpath(str(cache_dir() / "k.py"))
        dirs.insert(0, Path(config.CACHE_DIR) / subpath)
    return dirs


def is_cached(source: str, spec: NativeSpec, module_globals: dict[str, Any]) -> bool:
    """Whether a kernel for this body was compiled and saved on disk before (its Numba
    index file exists), so the trial compile can be skipped."""
    key = kernel_key(source, spec, module_globals)
    try:
        return any(any(d.glob(f"k_{key}.{spec.name}-*.nbi")) for d in _index_dirs())
    except OSError:
        return False


# -- the live function's side: trampoline and binder ---------------------------------------


def bound_names(spec: NativeSpec, key: str) -> tuple[str, ...]:
    """The module-level names a revision's kernel is bound under (per revision, like helpers):
    the dispatcher, and for a signature of scalars only, its compiled entry point too.

    A dispatcher resolves the argument types on every call; with scalars only there is one
    overload whose entry point unboxes the numbers itself (converting as the dispatcher
    would, except that a numeric string is accepted where the dispatcher raises TypeError),
    so the trampoline calls it directly (see `trampoline_code` for `bool`). With an array
    argument it calls the dispatcher: the entry point does not check an array's dimensions,
    dtype, layout or writability, and checking them in Python costs more than the
    dispatcher's resolution (benchmarks/bench_native.py --instructions)."""
    dispatcher = f"_{spec.name}__sym_native_{key[:12]}"
    return (dispatcher, f"{dispatcher}_entry") if spec.scalars_only else (dispatcher,)


def entry_point(dispatcher: Any) -> Any:
    """The compiled entry point of a dispatcher's one (explicit) signature."""
    (signature,) = dispatcher.signatures
    return dispatcher.overloads[signature].entry_point


def trampoline_dispatcher(spec: NativeSpec, code: types.CodeType) -> str:
    """The module-level name of the dispatcher a trampoline (`trampoline_code`) calls; a
    scalar trampoline may name only the entry point, `<dispatcher name>_entry`."""
    prefix = f"_{spec.name}__sym_native_"
    name = next((n for n in code.co_names if n.startswith(prefix)), None)
    if name is None:
        raise LookupError(f"{code.co_name}'s code is not a native trampoline for {spec.name}")
    return name.removesuffix("_entry")


def _bool_params(spec: NativeSpec) -> list[str]:
    from numba import types as nt

    return [p for p, t in zip(spec.params, spec.signature.args, strict=True) if t == nt.boolean]


def trampoline_code(spec: NativeSpec, names: tuple[str, ...], filename: str) -> types.CodeType:
    """The code object the evolvable runs: one call of the revision's kernel, by its name.

    With scalars only it calls the entry point (`names[1]`). The entry point takes any
    object's truth value for a `bool` parameter where the dispatcher raises TypeError, so a
    `bool` argument that is not `True` or `False` (an identity test, a few nanoseconds) goes
    to the dispatcher (`names[0]`), which accepts `np.bool_` and refuses the rest."""
    args = ", ".join(spec.params)
    if len(names) == 1:  # an array argument: the dispatcher checks it
        body = f"    return {names[0]}({args})\n"
    elif flags := _bool_params(spec):
        exact = " and ".join(f"({p} is True or {p} is False)" for p in flags)
        body = (
            f"    if {exact}:\n        return {names[1]}({args})\n    return {names[0]}({args})\n"
        )
    else:
        body = f"    return {names[1]}({args})\n"
    src = f"def {spec.name}({args}):\n{body}"
    module = compile(src, filename, "exec")
    code = next(c for c in module.co_consts if isinstance(c, types.CodeType))
    return code


def binder_code(
    source: str, spec: NativeSpec, names: tuple[str, ...], filename: str
) -> types.CodeType:
    """Module-level code that compiles the kernel and binds `names` when executed (in a
    trial child: in memory; at promotion in the host: through the disk cache)."""
    kernel_module = "__import__('symbiont.native._kernel', fromlist=['_'])"
    src = f"{names[0]} = {kernel_module}.bind({source!r}, {spec.name!r}, globals())\n"
    if len(names) > 1:
        src += f"{names[1]} = {kernel_module}.entry_point({names[0]})\n"
    return compile(src, filename, "exec")


def bind(source: str, name: str, module_globals: dict[str, Any]) -> Any:
    """Called by binder code: the dispatcher for `source` in the evolvable `name`'s module."""
    from symbiont.evolvable import registered

    fn = module_globals.get(name)
    handle = getattr(fn, "symbiont", None) or next(  # not bound yet: resumed at declaration
        h for h in registered() if h.fn.__globals__ is module_globals and h.name == name
    )
    spec = handle.native_spec
    return compile_kernel(source, spec, module_globals).dispatcher
