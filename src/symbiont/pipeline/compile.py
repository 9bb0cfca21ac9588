"""Stage 6, compile: code objects ready to be swapped into the live function.

The target `def` is compiled alone (its `@evolvable` decorator stripped) and its code object
fished out of the module code's constants; everything else in the candidate (imports, helper
functions and classes, constants) becomes `helpers_code`, module-level code to be exec'd in
the module's globals at promote time. Both use one pseudo filename, registered in
`linecache`, so tracebacks show the candidate's own lines.

Refused with a `compile/*` diagnostic, never an exception:

- a code object that cannot replace the declared one: different free variables (closure
  cells), or a generator / coroutine / async generator where the declaration is not one
  (or the reverse);
- helpers that would overwrite a module global the candidate does not own (one installed by
  an earlier revision's helpers is fine, and so is an import that rebinds a name to the very
  same object, like `import math` in a module that imported `math`).
"""

from __future__ import annotations
import __future__

import ast
import copy
import hashlib
import inspect
import linecache
import sys
import types
from collections.abc import Iterable
from dataclasses import dataclass

from symbiont.diagnostics import Diagnostic
from symbiont.errors import StageError
from symbiont.pipeline._target import Target
from symbiont.pipeline._util import node_diagnostic
from symbiont.pipeline.parse import syntax_diagnostic

_KIND_FLAGS = {
    inspect.CO_GENERATOR: "a generator (it uses `yield`)",
    inspect.CO_COROUTINE: "a coroutine (`async def` without `yield`)",
    inspect.CO_ASYNC_GENERATOR: "an async generator (`async def` with `yield`)",
}
_MISSING = object()


@dataclass(frozen=True)
class Candidate:
    """A candidate that passed every stage, ready to be promoted."""

    source: str  # the extracted candidate, whole (target def + helpers)
    function_source: str  # just the target def
    code: types.CodeType  # the target function's code object
    helpers_code: types.CodeType | None  # module-level code of everything else
    helper_names: tuple[str, ...]  # names that helpers_code binds
    filename: str  # pseudo filename, registered in linecache
    content_hash: str  # sha256 of the normalised source (duplicate detection)


def content_hash(tree: ast.Module | None, source: str) -> str:
    """Hash of a source with formatting and comments normalised away (via the AST).

    Same algorithm as `symbiont.evolvable.content_hash`, so the two agree.
    """
    text = ast.dump(tree) if tree is not None else source.strip()
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def pseudo_filename(target: Target, digest: str) -> str:
    return f"<symbiont {target.signature.key} {digest[:8]}>"


def register_source(filename: str, source: str) -> None:
    """Make `source` what tracebacks and `inspect` show for `filename` (mtime None: kept)."""
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)


def bound_names(body: Iterable[ast.stmt]) -> tuple[str, ...]:
    """Names module-level statements bind in the module's globals, in first-bound order."""
    names: dict[str, None] = {}

    def targets(node: ast.AST) -> None:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store | ast.Del):
                names.setdefault(sub.id)
            elif isinstance(sub, ast.Starred):
                continue

    def visit(stmt: ast.stmt) -> None:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.setdefault(stmt.name)
        elif isinstance(stmt, ast.Import | ast.ImportFrom):
            for alias in stmt.names:
                if alias.name != "*":
                    names.setdefault(alias.asname or alias.name.split(".")[0])
        elif isinstance(stmt, ast.Assign):
            for t in stmt.targets:
                targets(t)
        elif isinstance(stmt, ast.AnnAssign | ast.AugAssign | ast.For | ast.AsyncFor):
            targets(stmt.target)
        elif isinstance(stmt, ast.With | ast.AsyncWith):
            for item in stmt.items:
                if item.optional_vars is not None:
                    targets(item.optional_vars)
        elif isinstance(stmt, ast.Try):
            for h in stmt.handlers:
                if h.name:
                    names.setdefault(h.name)
        for field in ("body", "orelse", "finalbody"):
            for child in getattr(stmt, field, ()) or ():
                if isinstance(child, ast.stmt) and not isinstance(
                    stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
                ):
                    visit(child)
        for h in getattr(stmt, "handlers", ()) or ():
            for child in h.body:
                visit(child)
        # walrus at module level binds too
        if not isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            for sub in ast.walk(stmt):
                if isinstance(sub, ast.NamedExpr) and isinstance(sub.target, ast.Name):
                    names.setdefault(sub.target.id)

    for stmt in body:
        visit(stmt)
    return tuple(names)


def _same_import(stmt: ast.stmt, name: str, existing: object) -> bool:
    """Whether an import statement rebinds `name` to exactly the object it already has."""
    if isinstance(stmt, ast.Import):
        for alias in stmt.names:
            bound = alias.asname or alias.name.split(".")[0]
            if bound == name:
                module = alias.name if alias.asname else alias.name.split(".")[0]
                return sys.modules.get(module, _MISSING) is existing
    if isinstance(stmt, ast.ImportFrom) and stmt.level == 0 and stmt.module:
        for alias in stmt.names:
            if (alias.asname or alias.name) == name:
                module = sys.modules.get(stmt.module)
                value = getattr(module, alias.name, _MISSING) if module is not None else _MISSING
                if value is _MISSING:
                    value = sys.modules.get(f"{stmt.module}.{alias.name}", _MISSING)
                return value is existing
    return False


def _flags_for(target: Target) -> int:
    flags = 0
    if target.declared_code.co_flags & __future__.annotations.compiler_flag:
        flags |= __future__.annotations.compiler_flag
    return flags


def _kind(code: types.CodeType) -> str:
    for flag, words in _KIND_FLAGS.items():
        if code.co_flags & flag:
            return words
    return "a plain function"


def compile_candidate(
    tree: ast.Module,
    node: ast.FunctionDef | ast.AsyncFunctionDef,
    source: str,
    target: Target,
) -> Candidate:
    """Compile a checked candidate; raise `StageError` with `compile/*` diagnostics."""
    digest = content_hash(tree, source)
    filename = pseudo_filename(target, digest)
    lines = source.splitlines()
    flags = _flags_for(target)
    futures = [s for s in tree.body if isinstance(s, ast.ImportFrom) and s.module == "__future__"]
    func = copy.copy(node)
    func.decorator_list = []
    try:
        module_code = compile(
            ast.Module(body=[*futures, func], type_ignores=[]),
            filename,
            "exec",
            flags=flags,
            dont_inherit=True,
        )
    except SyntaxError as exc:
        raise StageError([_as_compile(syntax_diagnostic(exc, source))]) from None
    code = next(
        (
            c
            for c in module_code.co_consts
            if isinstance(c, types.CodeType) and c.co_name == node.name
        ),
        None,
    )
    if code is None:  # cannot happen for a parsed def; say so rather than crash
        raise StageError([Diagnostic("compile", "internal", f"no code object for `{node.name}`")])
    problems = _replaceability(code, target, source, node, lines)

    helper_body = [s for s in tree.body if s is not node and s not in futures]
    helper_names = bound_names(helper_body)
    problems += _overwrites(helper_body, helper_names, target, source, lines)
    if problems:
        raise StageError(problems)
    helpers_code = None
    if helper_body:
        try:
            helpers_code = compile(
                ast.Module(body=[*futures, *helper_body], type_ignores=[]),
                filename,
                "exec",
                flags=flags,
                dont_inherit=True,
            )
        except SyntaxError as exc:
            raise StageError([_as_compile(syntax_diagnostic(exc, source))]) from None
    # the def alone, from its `def` line (a copied decorator is not part of it)
    function_source = "\n".join(lines[node.lineno - 1 : node.end_lineno]) + "\n"
    register_source(filename, source)
    return Candidate(
        source=source,
        function_source=function_source,
        code=code,
        helpers_code=helpers_code,
        helper_names=helper_names,
        filename=filename,
        content_hash=digest,
    )


def _as_compile(d: Diagnostic) -> Diagnostic:
    return Diagnostic("compile", d.kind, d.message, d.line, d.col, d.excerpt, d.detail)


def _replaceability(
    code: types.CodeType,
    target: Target,
    source: str,
    node: ast.AST,
    lines: list[str],
) -> list[Diagnostic]:
    declared = target.declared_code
    out: list[Diagnostic] = []
    if code.co_freevars != declared.co_freevars:
        if declared.co_freevars:
            msg = (
                f"the declared function is a closure over {', '.join(declared.co_freevars)}; "
                "a candidate can only replace a plain module-level function"
            )
        else:
            msg = (
                "the function needs closure cells ("
                + ", ".join(code.co_freevars)
                + "); write a plain top-level function that uses module globals or arguments"
            )
        out.append(node_diagnostic("compile", "closure", msg, source, node, lines=lines))
    mask = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR
    if code.co_flags & mask != declared.co_flags & mask:
        out.append(
            node_diagnostic(
                "compile",
                "function_kind",
                f"`{target.signature.name}` is declared as {_kind(declared)}, but yours is "
                f"{_kind(code)}; it must stay {_kind(declared).split(' (')[0]}",
                source,
                node,
                lines=lines,
            )
        )
    return out


def _overwrites(
    body: list[ast.stmt],
    names: tuple[str, ...],
    target: Target,
    source: str,
    lines: list[str],
) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    g = target.globals
    for name in names:
        stmt = next((s for s in body if name in bound_names([s])), None)
        if name == target.signature.name:
            out.append(
                node_diagnostic(
                    "compile",
                    "overwrite",
                    f"your helper code rebinds `{name}`, the function being evolved; "
                    "leave that name to the function",
                    source,
                    stmt,
                    lines=lines,
                )
            )
            continue
        if name not in g or name in target.owned_names:
            continue
        if stmt is not None and _same_import(stmt, name, g[name]):
            continue
        out.append(
            node_diagnostic(
                "compile",
                "overwrite",
                f"your helper `{name}` would replace the module's existing `{name}`; use the "
                f"existing one or give yours a new name (for example `_{name}_2`)",
                source,
                stmt,
                lines=lines,
            )
        )
    return out
