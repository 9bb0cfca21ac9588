"""A function's identity across runs: the key its lineage is stored under.

The key is `module.qualname`, where *module* must not depend on how the program was
launched. An imported module keeps its import name. Code running as `__main__` (or under
runpy's `<run_path>`) gets a name from, in order:

1. the module spec (`python -m pkg.mod`, `runpy.run_module`, `python -m cProfile -m pkg.mod`
   all set `__spec__.name = "pkg.mod"`);
2. the file the function was compiled from, as the dotted name it would be imported under:
   its stem, prefixed by the enclosing regular packages (folders with `__init__.py`).
   `python script.py`, `python -m cProfile script.py`, `python -m trace --count script.py`
   and `runpy.run_path("script.py")` all give `script`; `python pkg/mod.py` gives `pkg.mod`,
   the same as `python -m pkg.mod` and `import pkg.mod`.

The file comes from the function's code object, not from `sys.modules["__main__"]`: under
a launcher such as cProfile that module is the launcher itself. A function with no source
file (exec, a REPL) keeps its module name as it is.
"""

from __future__ import annotations

import types
from pathlib import Path

_RUN_AS_SCRIPT = ("__main__", "<run_path>")


def module_key(fn: types.FunctionType, code: types.CodeType | None = None) -> str:
    """The launch-independent module part of `fn`'s key (see the module docstring).

    `code` is the declared code object (after a promotion `fn.__code__` is a candidate's).
    """
    name = str(getattr(fn, "__module__", "") or "")
    if name and name not in _RUN_AS_SCRIPT and not name.startswith("<"):
        return name
    spec = fn.__globals__.get("__spec__")
    spec_name = getattr(spec, "name", None)
    if isinstance(spec_name, str) and spec_name and spec_name not in _RUN_AS_SCRIPT:
        return spec_name
    filename = (code or fn.__code__).co_filename
    from_file = module_name_of_file(filename)
    return from_file or name or "__main__"


def module_name_of_file(filename: str) -> str | None:
    """The dotted name a source file is imported under; None if it is not a file on disk."""
    if not filename or filename.startswith("<"):
        return None
    path = Path(filename)
    try:
        path = path.resolve()
        if not path.is_file():
            return None
    except OSError:
        return None
    parts = [] if path.stem == "__init__" else [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file() and folder.name.isidentifier():
        parts.insert(0, folder.name)
        if folder.parent == folder:
            break
        folder = folder.parent
    return ".".join(parts) or None


def function_key(fn: types.FunctionType, qualname: str, code: types.CodeType | None = None) -> str:
    """`module.qualname` with the launch-independent module name."""
    return f"{module_key(fn, code)}.{qualname}"
