"""`from typing import *` in a candidate: rewritten as an import of the names it uses.

Small models open a reply with `from typing import *` (Qwen2.5-Coder-0.5B did in three of
ten counter attempts, and sent it again after the refusal). A star import binds names no
reader can see, and the compile stage cannot give it per-revision names, so the policy
refuses it. But the intent is plain, and so are the names: the ones the candidate reads and
does not define itself, that the module exports. So `from M import *` becomes
`from M import a, b` with exactly those names (or goes, when the candidate uses none of them).

Only a module the program has already imported is resolved (its names are read from
`sys.modules`; nothing is imported here, so no module code runs). Any other star import, a
relative one, or one sharing its line with other code is left as written, and the policy
refuses it as before. The rewritten import is an ordinary import, checked by the policy like
any other.
"""

from __future__ import annotations

import ast
import builtins
import sys
from collections.abc import Mapping
from typing import Any


def _bound_anywhere(tree: ast.Module) -> set[str]:
    """Every name the candidate binds: definitions, parameters, assignments, imports."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.add(node.id)
        elif isinstance(node, ast.alias) and node.name != "*":
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound


def _exported(module: Any) -> set[str]:
    names = getattr(module, "__all__", None)
    if isinstance(names, list | tuple) and all(isinstance(n, str) for n in names):
        return set(names)
    return {n for n in dir(module) if not n.startswith("_")}


def resolve_star_imports(
    tree: ast.Module, source: str, module_globals: Mapping[str, Any]
) -> tuple[str, list[str]] | None:
    """`source` with each resolvable module-level `from M import *` replaced by an import of
    the names the candidate uses from M, and a note per rewrite; None when nothing changed."""
    stars = [
        s
        for s in tree.body
        if isinstance(s, ast.ImportFrom)
        and s.level == 0
        and s.module is not None
        and any(a.name == "*" for a in s.names)
    ]
    if not stars:
        return None
    lines = source.splitlines(keepends=True)
    shared = {s.lineno for s in tree.body if not any(s is star for star in stars)} | {
        s.end_lineno for s in tree.body if not any(s is star for star in stars)
    }
    read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    free = read - _bound_anywhere(tree) - set(dir(builtins)) - set(module_globals)
    notes: list[str] = []
    for star in reversed(stars):  # as in Python, a later star import wins a name
        module = sys.modules.get(star.module or "")
        if module is None or star.lineno != star.end_lineno or star.lineno in shared:
            continue
        taken = sorted(free & _exported(module))
        free -= set(taken)
        line = lines[star.lineno - 1]
        ending = "\n" if line.endswith("\n") else ""
        if taken:
            lines[star.lineno - 1] = f"from {star.module} import {', '.join(taken)}{ending}"
            notes.append(f"`from {star.module} import *` became an import of {', '.join(taken)}")
        else:
            lines[star.lineno - 1] = ending
            notes.append(f"`from {star.module} import *` was removed (none of its names is used)")
    if not notes:
        return None
    return "".join(lines), notes[::-1]
