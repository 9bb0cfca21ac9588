"""Imports of modules that are not installed: a diagnostic before any trial.

A model that writes `from sympy import symbols` in a program without sympy passes every
static stage and fails only in the trial, with an ImportError the model reads as a bug in its
code. This check looks each imported top-level module up with `importlib.util.find_spec`,
which asks the import system's finders where the module would come from without importing
(running) it, and reports the ones nobody can find.

An import from the function's own module (`from curve_fit import curve_fit` in
`curve_fit.py`, which a small model writes when the task names the module) is reported too:
the module's names are the candidate's globals already, and the trial would fail on it with
an ImportError or a circular import that says nothing useful.

Relative imports are left alone (the candidate is compiled in its module's package, where
they are the compile stage's concern), and so are modules the policy denies: the policy
stage reports those with its own reason.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from collections.abc import Sequence

from symbiont.diagnostics import Diagnostic
from symbiont.pipeline._util import node_diagnostic, walk
from symbiont.pipeline.policy import Policy


def is_installed(module: str) -> bool:
    """Whether the top-level package of `module` can be imported here (nothing is imported)."""
    top = module.split(".")[0]
    if not top:
        return True
    if top in sys.modules:
        return True
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):  # a broken finder or a malformed name: not importable
        return False


def missing_imports(
    tree: ast.Module,
    source: str = "",
    *,
    policy: Policy | None = None,
    nodes: Sequence[ast.AST] | None = None,
) -> list[Diagnostic]:
    """A `policy`/`missing_module` diagnostic for each import of a module not installed.
    `nodes`: `walk(tree)`, when the caller has it already."""
    lines = source.splitlines()
    out: list[Diagnostic] = []
    reported: set[str] = set()
    for node in walk(tree) if nodes is None else nodes:
        if isinstance(node, ast.Import):
            modules = [
                (alias.name, f"import {alias.name}", [alias.asname or alias.name])
                for alias in node.names
            ]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = ", ".join(a.name for a in node.names)
            bound = [a.asname or a.name for a in node.names if a.name != "*"]
            modules = [(node.module, f"from {node.module} import {names}", bound)]
        else:
            continue
        for module, spelled, bound in modules:
            top = module.split(".")[0]
            if top in reported or (policy is not None and policy.denies_module(module)):
                continue
            if is_installed(top):
                continue
            reported.add(top)
            out.append(
                node_diagnostic(
                    "policy",
                    "missing_module",
                    f"`{spelled}`: the module `{top}` is not installed in this program's "
                    "environment; do without it" + _unavailable(bound, top),
                    # a small model drops the import and still calls the name (NameError)
                    source,
                    node,
                    lines=lines,
                )
            )
    out.sort(key=lambda d: (d.line or 0, d.col or 0))
    return out


def _unavailable(bound: list[str], top: str) -> str:
    """What the refused import would have named, so the model does not call it anyway."""
    names = [n for n in bound if n != top]
    if not names:
        return ""
    listed = ", ".join(f"`{n}`" for n in names[:4])
    return f"; {listed} will not exist either, so write that part yourself in plain Python"


def own_module_imports(
    tree: ast.Module, source: str, own: set[str], *, nodes: Sequence[ast.AST] | None = None
) -> list[Diagnostic]:
    """A `policy`/`own_module` diagnostic for each import of the candidate's own module
    (`own`: the names it goes by, such as its `__name__` and its file's stem). `nodes`:
    `walk(tree)`, when the caller has it already."""
    lines = source.splitlines()
    out: list[Diagnostic] = []
    for node in walk(tree) if nodes is None else nodes:
        if isinstance(node, ast.Import):
            hits = [a.name for a in node.names if a.name in own]
            spelled = f"import {', '.join(a.name for a in node.names)}"
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in own:
            hits = [node.module or ""]
            spelled = f"from {node.module} import {', '.join(a.name for a in node.names)}"
        else:
            continue
        for module in hits:
            out.append(
                node_diagnostic(
                    "policy",
                    "own_module",
                    f"`{spelled}`: `{module}` is the module your function lives in, so do not "
                    "import it: the names of it you may use are yours already, without an "
                    "import; remove the import",
                    source,
                    node,
                    lines=lines,
                )
            )
    return out
