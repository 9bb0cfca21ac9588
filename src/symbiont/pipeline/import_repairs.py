"""Imports in a candidate that only get in the way: star imports and unused imports.

**Star imports.** `from typing import *`, rewritten as an import of the names it uses.

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

**Unused imports.** A small model opens its reply with imports it never uses (`import sys`,
`import numpy as np`, `from typing import *`), and a refused or missing module among them
sinks a function that never needed it: Qwen2.5-Coder-0.5B sent `import sys` with a fizzbuzz
that did not use it, and again after the refusal. A module-level import none of whose names
the candidate reads is removed (`from __future__` imports stay). Removing an import only
removes what importing would have done.
"""

from __future__ import annotations

import ast
import builtins
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from symbiont.pipeline._util import walk


def _bound_anywhere(nodes: Sequence[ast.AST]) -> set[str]:
    """Every name the candidate binds: definitions, parameters, assignments, imports
    (`nodes`: every node of its tree)."""
    bound: set[str] = set()
    for node in nodes:
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
    tree: ast.Module,
    source: str,
    module_globals: Mapping[str, Any],
    *,
    nodes: Sequence[ast.AST] | None = None,
) -> tuple[str, list[str]] | None:
    """`source` with each resolvable module-level `from M import *` replaced by an import of
    the names the candidate uses from M, and a note per rewrite; None when nothing changed.
    `nodes`: `walk(tree)`, when the caller has it already."""
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
    if nodes is None:
        nodes = walk(tree)
    read = {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    free = read - _bound_anywhere(nodes) - set(dir(builtins)) - set(module_globals)
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


def drop_unused_imports(
    tree: ast.Module, source: str, *, nodes: Sequence[ast.AST] | None = None
) -> tuple[str, list[str]] | None:
    """`source` without the module-level imports whose names the candidate never reads, and
    a note per import removed; None when every import is used (or one shares its line).
    `nodes`: `walk(tree)`, when the caller has it already."""
    if not any(isinstance(s, ast.Import | ast.ImportFrom) for s in tree.body):
        return None  # the usual case: nothing to look for
    if nodes is None:
        nodes = walk(tree)
    read = {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    # names read in annotations written as strings, and in `__all__`-like string lists, are
    # not seen; a string annotation naming an import keeps it
    read |= {
        n.value
        for n in nodes
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.isidentifier()
    }
    unused = [
        s
        for s in tree.body
        if isinstance(s, ast.Import | ast.ImportFrom)
        and not (isinstance(s, ast.ImportFrom) and s.module == "__future__")
        and not any(a.name == "*" for a in s.names)
        and all((a.asname or a.name).split(".")[0] not in read for a in s.names)
    ]
    if not unused:
        return None
    others = [s for s in tree.body if not any(s is u for u in unused)]
    taken = {n for s in others for n in range(s.lineno, (s.end_lineno or s.lineno) + 1)}
    cut: set[int] = set()
    notes: list[str] = []
    for stmt in unused:
        span = set(range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))
        if span & taken:
            continue
        cut |= span
        notes.append(f"`{ast.unparse(stmt)}` was removed (nothing uses it)")
    if not cut:
        return None
    lines = source.splitlines(keepends=True)
    return "".join(line for n, line in enumerate(lines, 1) if n not in cut), notes
