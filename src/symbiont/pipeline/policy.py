"""Stage 4, policy: a configurable guard against denied imports and names.

This is a *guardrail for the model*, not a security boundary: it keeps a well-meaning model
from reaching for `os.system`, `eval` or threads in code that will be swapped into a live
program, and tells it so in words it can act on. Python offers endless ways around a static
check (`getattr(__builtins__, ...)`, object graph walks); isolation comes from the trial
process and the sandbox tiers, never from this stage.

Aliases are resolved: `import os as o` and `from os import system` are denied imports of
`os`, submodules count as their package (`os.path`), and a name the *module* already binds
to a denied module or function (the module did `import os`, or `run = subprocess.run`) is
reported where the candidate uses it, unless the candidate binds that name itself.
`check_policy` returns the diagnostics (empty when the candidate is allowed).
"""

from __future__ import annotations

import ast
import builtins
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from symbiont.diagnostics import Diagnostic
from symbiont.pipeline._util import node_diagnostic


@dataclass(frozen=True)
class Policy:
    """Denied top-level modules (their submodules too) and denied builtin names."""

    denied_imports: frozenset[str]
    denied_names: frozenset[str]

    def denies_module(self, module: str) -> str | None:
        """The denied module that `module` is or belongs to, if any."""
        for denied in self.denied_imports:
            if module == denied or module.startswith(denied + "."):
                return denied
        return None

    def extend(
        self,
        *,
        imports: set[str] | frozenset[str] = frozenset(),
        names: set[str] | frozenset[str] = frozenset(),
    ) -> Policy:
        return Policy(self.denied_imports | imports, self.denied_names | names)

    def allow(
        self,
        *,
        imports: set[str] | frozenset[str] = frozenset(),
        names: set[str] | frozenset[str] = frozenset(),
    ) -> Policy:
        return Policy(self.denied_imports - imports, self.denied_names - names)


DEFAULT_POLICY = Policy(
    denied_imports=frozenset(
        {
            "os",
            "sys",
            "subprocess",
            "socket",
            "ctypes",
            "importlib",
            "multiprocessing",
            "threading",
            "signal",
            "shutil",
            "builtins",
        }
    ),
    denied_names=frozenset(
        {"eval", "exec", "compile", "open", "__import__", "globals", "breakpoint"}
    ),
)

# C modules that implement a denied module (what `__module__` says of their functions).
_IMPLEMENTED_BY = {
    "posix": "os",
    "nt": "os",
    "posixpath": "os",
    "ntpath": "os",
    "_socket": "socket",
    "_thread": "threading",
    "_signal": "signal",
    "_ctypes": "ctypes",
    "_posixsubprocess": "subprocess",
    "_multiprocessing": "multiprocessing",
    "_imp": "importlib",
}


def _bound_in_candidate(tree: ast.Module) -> set[str]:
    """Every name the candidate binds anywhere (a cheap, scope-blind over-approximation)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
        elif (isinstance(node, ast.ExceptHandler) and node.name) or (
            isinstance(node, ast.MatchAs | ast.MatchStar) and node.name
        ):
            names.add(node.name)
    return names


def _denied_global(value: Any, policy: Policy) -> str | None:
    """Why a module global counts as denied: the denied module or name it is."""
    if isinstance(value, types.ModuleType):
        return policy.denies_module(value.__name__)
    for name in policy.denied_names:
        if getattr(builtins, name, None) is value and value is not None:
            return name
    module = getattr(value, "__module__", None)
    if isinstance(module, str) and callable(value) and module != "builtins":
        module = _IMPLEMENTED_BY.get(module.split(".")[0], module)
        return policy.denies_module(module)
    return None


def check_policy(
    tree: ast.Module,
    policy: Policy = DEFAULT_POLICY,
    source: str = "",
    *,
    module_globals: Mapping[str, Any] | None = None,
) -> list[Diagnostic]:
    """Diagnostics for every denied import and name use in `tree` (empty: allowed)."""
    lines = source.splitlines()
    out: list[Diagnostic] = []

    def report(kind: str, message: str, node: ast.AST) -> None:
        out.append(node_diagnostic("policy", kind, message, source, node, lines=lines))

    bound = _bound_in_candidate(tree) if module_globals else set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                denied = policy.denies_module(alias.name)
                if denied:
                    spelled = alias.name + (f" as {alias.asname}" if alias.asname else "")
                    report(
                        "denied_import",
                        f"`import {spelled}` imports `{denied}`, which is not allowed here; "
                        "do without it",
                        node,
                    )
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                denied = policy.denies_module(node.module)
                if denied:
                    names = ", ".join(a.name for a in node.names)
                    report(
                        "denied_import",
                        f"`from {node.module} import {names}` imports from `{denied}`, which "
                        "is not allowed here; do without it",
                        node,
                    )
                    continue
                for alias in node.names:  # from importlib import ... / from builtins import eval
                    full = f"{node.module}.{alias.name}"
                    sub = policy.denies_module(full)
                    if sub:
                        report("denied_import", f"`{full}` is not allowed here", node)
                    elif (
                        node.module in ("builtins", "__builtin__")
                        and alias.name in policy.denied_names
                    ):
                        report("denied_name", f"`{alias.name}` is not allowed here", node)
        elif isinstance(node, ast.Name):
            if node.id in policy.denied_names:
                report(
                    "denied_name",
                    f"`{node.id}` is not allowed here; "
                    + _NAME_HINTS.get(node.id, "do without it"),
                    node,
                )
            elif module_globals and node.id not in bound and node.id in module_globals:
                why = _denied_global(module_globals[node.id], policy)
                if why:
                    what = (
                        f"the module's `{node.id}` is `{why}`"
                        if why in policy.denied_names
                        else f"the module's `{node.id}` comes from `{why}`"
                    )
                    report("denied_name", f"{what}, which is not allowed here; do without it", node)
    out.sort(key=lambda d: (d.line or 0, d.col or 0))
    return out


_NAME_HINTS = {
    "eval": "compute the value directly (ast.literal_eval for literals)",
    "exec": "write the code out instead of executing strings",
    "compile": "write the code out instead of compiling strings",
    "open": "work on the values you are given, not on files",
    "__import__": "use the names the module already imports",
    "globals": "pass what you need as arguments or use the module's names directly",
    "breakpoint": "remove the debugging call",
}
