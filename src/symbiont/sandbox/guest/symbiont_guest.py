"""The guest side of the wasm sandbox: runs inside CPython compiled to WebAssembly.

componentize-py snapshots this module after import (so everything imported here is
already loaded in every fresh instance, for free). The host calls the exported `run`
once per instance — possibly after `prepare` with the same source, which only compiles
it; the capability reaches the outside world only through the `host` import, wrapped
here as the module `symbiont.host`.

This file is compiled into the runner component; it is never imported by the host.
Keep it dependency-free (standard library and the generated bindings only).
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import linecache
import sys
import time
import traceback
import types

import wit_world
from componentize_py_types import Err
from wit_world.imports import host as _host_import

# Standard-library modules preloaded into the snapshot. componentize-py only bundles what
# is imported at build time (its stdlib files are not there at run time), so this list is
# the standard library a capability can use; importing them costs nothing at run time.
PRELOADED = [
    "abc",
    "argparse",
    "array",
    "ast",
    "base64",
    "binascii",
    "bisect",
    "calendar",
    "cmath",
    "codecs",
    "collections",
    "collections.abc",
    "colorsys",
    "contextlib",
    "copy",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "difflib",
    "email.utils",
    "enum",
    "errno",
    "fnmatch",
    "fractions",
    "functools",
    "gettext",
    "graphlib",
    "gzip",
    "hashlib",
    "heapq",
    "hmac",
    "html",
    "html.entities",
    "html.parser",
    "io",
    "ipaddress",
    "itertools",
    "json",
    "keyword",
    "locale",
    "math",
    "numbers",
    "operator",
    "os",
    "os.path",
    "pathlib",
    "pprint",
    "queue",
    "random",
    "re",
    "reprlib",
    "secrets",
    "shlex",
    "statistics",
    "string",
    "struct",
    "textwrap",
    "time",
    "timeit",
    "tomllib",
    "types",
    "typing",
    "unicodedata",
    "urllib.parse",
    "uuid",
    "warnings",
    "weakref",
    "xml.etree.ElementTree",
    "zlib",
]


def _preload() -> None:
    import importlib

    for name in PRELOADED:
        # A module missing from this CPython build: capabilities get "unavailable".
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


_preload()


CAPABILITY_FILE = "<capability>"


# ---------------------------------------------------------------------------------------
# symbiont.host: the only way out of the sandbox
# ---------------------------------------------------------------------------------------


class HostError(OSError):
    """A host function failed (not found, too large, timeout, I/O, invalid arguments)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __str__(self) -> str:
        return self.message


class HostDenied(HostError, PermissionError):
    """A host function refused the call: the capability lacks the permission."""


MAX_HOST_ARGS = 64 * 1024 * 1024  # the host refuses larger arguments before copying them


def _call(name: str, **args: object) -> object:
    payload = json.dumps(args)
    if len(payload) > MAX_HOST_ARGS:
        raise HostError("too_large", f"the arguments of {name} exceed {MAX_HOST_ARGS} bytes")
    reply = json.loads(_host_import.call(name, payload))
    if "error" in reply:
        err = reply["error"]
        kind = str(err.get("kind", "io"))
        message = str(err.get("message", ""))
        if kind == "denied":
            raise HostDenied(kind, message)
        raise HostError(kind, message)
    return reply.get("ok")


def http_get(url: str) -> str:
    """GET `url` (allowlisted hosts only); returns the response body as text."""
    return _call("http_get", url=url)  # type: ignore[return-value]


def read_file(path: str) -> str:
    """Read a text file inside the capability's data folder."""
    return _call("read_file", path=path)  # type: ignore[return-value]


def write_file(path: str, content: str) -> None:
    """Write (atomically) a text file inside the capability's data folder."""
    _call("write_file", path=path, content=content)


def list_files(path: str = ".") -> list[str]:
    """List the files of a folder inside the capability's data folder."""
    return _call("list_files", path=path)  # type: ignore[return-value]


def now_ms() -> int:
    """Milliseconds since the Unix epoch, from the host's clock."""
    return _call("now_ms")  # type: ignore[return-value]


def log(message: str) -> None:
    """Append a line to the call's log (captured into the result)."""
    _call("log", message=str(message))


def _install_host_module() -> None:
    pkg = types.ModuleType("symbiont")
    pkg.__path__ = []  # a package, so `import symbiont.host` works
    mod = types.ModuleType("symbiont.host")
    mod.__doc__ = "Host functions: the only way out of the wasm sandbox."
    for fn in (http_get, read_file, write_file, list_files, now_ms, log):
        setattr(mod, fn.__name__, fn)
    mod.HostError = HostError  # type: ignore[attr-defined]
    mod.HostDenied = HostDenied  # type: ignore[attr-defined]
    pkg.host = mod  # type: ignore[attr-defined]
    sys.modules["symbiont"] = pkg
    sys.modules["symbiont.host"] = mod


_install_host_module()


def _sleep(seconds: float, /) -> None:
    """`time.sleep`, served by the host, which sleeps no longer than the call has left.

    The real WASI sleep blocks inside the host, where the epoch deadline cannot interrupt
    it; the host's sleep ends at the call's deadline, and the guest traps as soon as it
    runs again.
    """
    if isinstance(seconds, (str, bytes, bytearray)) or not hasattr(seconds, "__float__"):
        raise TypeError(f"'{type(seconds).__name__}' object cannot be interpreted as a number")
    value = float(seconds)
    if value != value:
        raise ValueError("Invalid value NaN (not a number)")
    if value < 0:
        raise ValueError("sleep length must be non-negative")
    if value > 0:
        _host_import.call("sleep", repr(value))


def _no_select(*args: object, **kwargs: object) -> object:
    raise OSError(38, "select and poll are not available in the wasm sandbox (no sockets or pipes)")


def _no_new_builtin(spec: object = None, *args: object, **kwargs: object) -> object:
    name = getattr(spec, "name", None)
    raise ModuleNotFoundError(
        f"module {name!r} cannot be loaded in the wasm sandbox (no fresh copies of "
        "built-in modules)",
        name=name if isinstance(name, str) else None,
    )


# Built-in modules not loaded ahead: importing them pulls in Python packages (asyncio,
# socket, subprocess) the sandbox has never offered.
_NOT_PRELOADED = frozenset({"_asyncio"})


def _fence_blocking_waits() -> None:
    """Leave no blocking host wait reachable from Python (run once, before the snapshot).

    The waits that block inside the host (WASI `poll_oneoff`) are `time.sleep` and the
    `select` module (sockets cannot be created; timed lock waits return at once in this
    single-threaded build). `time.sleep` becomes the host's bounded sleep, `select`/`poll`
    raise. The originals are dropped, not kept in a closure, and no fresh copy of a
    built-in module can be made (`_imp.create_builtin` & co. are replaced), so Python code
    has no path back to them: every built-in module is imported here instead.
    """
    import _imp
    import gc
    import select

    before = set(sys.modules)
    for name in sys.builtin_module_names:
        if name not in sys.modules and name not in _NOT_PRELOADED:
            with contextlib.suppress(Exception):
                __import__(name)
    for name in set(sys.modules) - before:  # Python modules those imports pulled in
        if name not in sys.builtin_module_names:
            del sys.modules[name]
    time.sleep = _sleep
    select.select = _no_select
    select.poll = _no_select
    selectors = sys.modules.get("selectors")  # keeps its own references to both
    if selectors is not None:
        for cls_name, attr in (("SelectSelector", "_select"), ("PollSelector", "_selector_cls")):
            cls = getattr(selectors, cls_name, None)
            if cls is not None and attr in vars(cls):
                setattr(cls, attr, staticmethod(_no_select))
    for name in ("create_builtin", "exec_builtin", "create_dynamic", "exec_dynamic"):
        if hasattr(_imp, name):
            setattr(_imp, name, _no_new_builtin)
    gc.collect()
    leftovers = [
        obj
        for obj in gc.get_objects()
        if type(obj).__name__ == "builtin_function_or_method"
        and getattr(obj, "__name__", "") in ("sleep", "select", "poll", "create_builtin")
        and getattr(obj, "__self__", None) in (time, select, _imp)
    ]
    if leftovers:  # fail the build rather than ship a runner that can block the host
        holders = [
            (type(ref).__name__, str(ref)[:300])
            for obj in leftovers
            for ref in gc.get_referrers(obj)
        ]
        raise RuntimeError(f"blocking built-ins still reachable: {leftovers!r} from {holders}")


# ---------------------------------------------------------------------------------------
# Running a capability
# ---------------------------------------------------------------------------------------


class _Failure(Exception):
    def __init__(self, kind: str, message: str, tb: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.tb = tb


def _trimmed_traceback(exc: BaseException) -> str:
    """The traceback with only the capability's own frames (file "<capability>")."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == CAPABILITY_FILE]
    parts: list[str] = []
    if frames:
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_list(frames))
    parts.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(parts).rstrip("\n")


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _missing_module(exc: BaseException) -> str | None:
    """The top-level name of a module this build lacks, if `exc` is about one."""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return exc.name.split(".")[0]
    return None


def _classify(exc: BaseException) -> _Failure:
    tb = _trimmed_traceback(exc)
    if isinstance(exc, MemoryError):
        return _Failure("memory", "the capability ran out of memory (MemoryError)", tb)
    if isinstance(exc, RecursionError):
        return _Failure(
            "exception",
            f"RecursionError: recursion too deep ({exc}); the capability recursed "
            "past the interpreter's limit",
            tb,
        )
    if isinstance(exc, HostDenied):
        return _Failure("denied", f"a host function refused the call: {exc.message}", tb)
    if isinstance(exc, PermissionError):  # e.g. a socket: WASI refuses all network use
        return _Failure("denied", f"a forbidden operation was refused: {_describe(exc)}", tb)
    missing = _missing_module(exc)
    if missing is not None:
        if missing in sys.stdlib_module_names:
            what = f"the standard-library module {missing!r} is not available in the wasm sandbox"
        else:
            what = (
                f"module {missing!r} is not available in the wasm sandbox, which has pure "
                "Python and (most of) the standard library only"
            )
        return _Failure(
            "unavailable",
            f"{what}; run this capability with the process tier (tier='process'), which "
            "has the host's installed packages, including native extensions such as numpy",
            tb,
        )
    return _Failure("exception", _describe(exc), tb)


# What `json.dumps(result, allow_nan=False, ensure_ascii=False)` builds on every call.
_ENCODER = json.JSONEncoder(allow_nan=False, ensure_ascii=False)


# Set by `prepare` (the host calls it on a pooled instance before the call that will use
# it): the code object of the source the next `run` is expected to get. Only ever the
# compiled form of that same source (compiling runs none of its code), taken at most once.
_prepared: tuple[str, types.CodeType] | None = None


def _compile(source: str) -> types.CodeType:
    global _prepared
    prepared, _prepared = _prepared, None
    if prepared is not None and prepared[0] == source:
        return prepared[1]
    return compile(source, CAPABILITY_FILE, "exec")


def _run(source: str, entry: str, input_json: str) -> str:
    try:
        args = json.loads(input_json)
    except ValueError as exc:
        raise _Failure("invalid_output", f"the input is not JSON: {exc}") from None
    lines = source.splitlines(keepends=True)
    linecache.cache[CAPABILITY_FILE] = (len(source), None, lines, CAPABILITY_FILE)
    namespace: dict[str, object] = {"__name__": "capability", "__builtins__": builtins}
    try:
        code = _compile(source)
        exec(code, namespace)
        fn = namespace.get(entry)
        if not callable(fn):
            raise _Failure("exception", f"the source defines no callable named {entry!r}")
        if isinstance(args, dict):
            result = fn(**args)
        elif isinstance(args, list):
            result = fn(*args)
        else:
            result = fn(args)
    except _Failure:
        raise
    except BaseException as exc:
        raise _classify(exc) from None
    try:
        return _ENCODER.encode(result)
    except (TypeError, ValueError, RecursionError) as exc:
        raise _Failure(
            "invalid_output",
            f"the result is not JSON-serialisable ({type(result).__name__}): {exc}",
        ) from None


def _flush_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a capability may have replaced or closed it
            stream.flush()


class WitWorld(wit_world.WitWorld):
    def run(self, source: str, entry: str, input: str) -> str:
        try:
            try:
                return _run(source, entry, input)
            finally:
                _flush_output()
        except _Failure as f:
            failure = f
        except MemoryError:
            failure = _Failure("memory", "the runner ran out of memory (MemoryError)")
        except BaseException as exc:
            failure = _Failure("exception", f"runner error: {_describe(exc)}")
        payload = {"kind": failure.kind, "message": failure.message, "traceback": failure.tb}
        raise Err(json.dumps(payload))

    def prepare(self, source: str) -> bool:
        global _prepared
        _prepared = None
        try:
            _prepared = (source, compile(source, CAPABILITY_FILE, "exec"))
        except BaseException:  # the call itself will compile again and report it
            return False
        return True


def _buffer_output() -> None:
    """Block-buffer stdout/stderr: each flush is one host call, so a chatty capability
    costs 64 KiB chunks, not one host call per line. Flushed after every run."""
    for name, fd in (("stdout", 1), ("stderr", 2)):
        raw = io.FileIO(fd, "w", closefd=False)
        stream = io.TextIOWrapper(
            io.BufferedWriter(raw, buffer_size=64 * 1024), encoding="utf-8", errors="replace"
        )
        setattr(sys, name, stream)


_buffer_output()


def _warm_interpreter() -> None:
    """Run the call path a few times at build time, before the snapshot is taken.

    CPython specialises ("quickens") the bytecode of functions that run more than once
    and fills lazy caches (type attribute cache, interned strings, encoder objects); done
    here, all of that is part of the snapshot instead of being redone — and written into
    copy-on-write pages — in every fresh instance. Only this module's own trusted sample
    runs; no capability ever has. The sample's `linecache` entry is removed afterwards.
    """
    sample = (
        "def _sample(a, b, *, c=None):\n"
        "    items = [a, b, {'k': [1, 2.5, None, True, 'x']}]\n"
        "    try:\n"
        "        int('x')\n"
        "    except ValueError as exc:\n"
        "        items.append(str(exc))\n"
        "    return {'items': items, 'n': len(items), 's': f'{a}-{b}', 'c': c}\n"
    )
    world = WitWorld()
    for i in range(12):
        if i % 2:
            world.prepare(sample)
        world.run(sample, "_sample", '{"a": 1, "b": "two", "c": [3]}')
        with contextlib.suppress(Err):
            world.run("def _f(x):\n    return x\n", "_missing", "[1]")
    linecache.cache.pop(CAPABILITY_FILE, None)
    global _prepared
    _prepared = None


def _finish_snapshot() -> None:
    """Last step at build time, just before componentize-py snapshots the interpreter.

    Clears `os.environ` (whatever the build process had must not be baked into the cached
    component; at run time the host gives the guest no environment at all), then moves
    everything loaded so far out of the cyclic GC's view: otherwise the first collection
    in every fresh instance walks (and page-faults in) the whole preloaded library, ~10 ms.
    """
    import gc
    import os

    os.environ.clear()
    gc.collect()
    gc.freeze()


_warm_interpreter()
_fence_blocking_waits()
_finish_snapshot()
