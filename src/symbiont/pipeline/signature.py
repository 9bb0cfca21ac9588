"""Stage 3, signature: the candidate defines the declared function, with the same signature.

Compared: the name, sync/async, each parameter's name, kind and default, each annotation
and the return annotation. Annotations are compared after normalisation, so spellings that
mean the same type are equal: `List[int]` ≡ `list[int]`, `Optional[X]` ≡ `X | None`,
`Union[A, B]` ≡ `A | B` (in any order), `"State"` ≡ `State`, `typing.Any` ≡ `Any`.
Helpers (functions, classes, constants, imports) beside the target are allowed. A copied
`@evolvable` decorator on the target is accepted (it is stripped at compile time); any
other decorator would change what the function is, so it is refused.

`check_signature` returns the target's `def` node or raises `StageError` naming exactly
what differs, each diagnostic with the expected `def` line in its detail.
"""

from __future__ import annotations

import ast
import types
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from symbiont import pyast
from symbiont.diagnostics import Diagnostic
from symbiont.errors import StageError
from symbiont.pipeline._util import node_diagnostic
from symbiont.signature import (
    DeclaredParam,
    DeclaredSignature,
    expression_text,
    params_from_ast,
)

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef

# Modules whose prefix is dropped: `typing.List` is `List`, `collections.abc.Callable` is
# `Callable`.
_TYPING_MODULES = frozenset(
    {"typing", "typing_extensions", "collections.abc", "collections", "builtins"}
)
_ALIASES = {
    "List": "list",
    "Dict": "dict",
    "Set": "set",
    "FrozenSet": "frozenset",
    "Tuple": "tuple",
    "Type": "type",
    "Text": "str",
    "Deque": "deque",
    "DefaultDict": "defaultdict",
    "NoneType": "None",
}
_EVOLVABLE_DECORATORS = frozenset({"evolvable", "symbiont.evolvable"})
_KIND_WORDS = {
    "POSITIONAL_ONLY": "positional-only",
    "POSITIONAL_OR_KEYWORD": "positional-or-keyword",
    "VAR_POSITIONAL": "*args",
    "KEYWORD_ONLY": "keyword-only",
    "VAR_KEYWORD": "**kwargs",
}


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base is not None else None
    return None


class _Normaliser(ast.NodeTransformer):
    def __init__(self, typing_aliases: frozenset[str]) -> None:
        self.prefixes = _TYPING_MODULES | typing_aliases

    def _strip(self, node: ast.expr) -> ast.expr:
        dotted = _dotted(node)
        if dotted is not None and "." in dotted:
            prefix, _, last = dotted.rpartition(".")
            if prefix in self.prefixes:
                return ast.Name(_ALIASES.get(last, last))
        if isinstance(node, ast.Name) and node.id in _ALIASES:
            return ast.Name(_ALIASES[node.id])
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.expr:
        stripped = self._strip(node)
        return stripped if stripped is not node else node

    def visit_Name(self, node: ast.Name) -> ast.expr:
        return self._strip(node)

    def visit_Constant(self, node: ast.Constant) -> ast.expr:
        if isinstance(node.value, str):  # a forward reference: "State"
            try:
                inner = pyast.parse(node.value.strip(), mode="eval").body
            except SyntaxError:
                return node
            return self.visit(inner)
        return node

    def visit_Subscript(self, node: ast.Subscript) -> ast.expr:
        base = self._strip(node.value)
        name = base.id if isinstance(base, ast.Name) else None
        if name == "Literal":  # its strings are values, not forward references
            return ast.Subscript(base, node.slice)
        slice_ = self.visit(node.slice)
        if name == "Optional":
            return _union([slice_, ast.Constant(None)])
        if name == "Union":
            members = slice_.elts if isinstance(slice_, ast.Tuple) else [slice_]
            return _union(members)
        return ast.Subscript(base, slice_)

    def visit_BinOp(self, node: ast.BinOp) -> ast.expr:
        if isinstance(node.op, ast.BitOr):
            return _union([self.visit(node.left), self.visit(node.right)])
        return self.generic_visit(node)


def _flatten(members: Iterable[ast.expr]) -> list[ast.expr]:
    out: list[ast.expr] = []
    for m in members:
        if isinstance(m, ast.BinOp) and isinstance(m.op, ast.BitOr):
            out += _flatten([m.left, m.right])
        else:
            out.append(m)
    return out


def _union(members: Iterable[ast.expr]) -> ast.expr:
    unique = {ast.unparse(m): m for m in _flatten(members)}
    ordered = [unique[k] for k in sorted(unique)]
    result = ordered[0]
    for m in ordered[1:]:
        result = ast.BinOp(result, ast.BitOr(), m)
    return result


@lru_cache(maxsize=4096)
def normalise_annotation(
    text: str | None, typing_aliases: frozenset[str] = frozenset()
) -> str | None:
    """Canonical text of an annotation: equal for spellings of the same type.

    `typing_aliases` are extra names bound to the `typing` module in the target module
    (`import typing as tp` makes `tp.List` mean `list`).
    """
    if text is None:
        return None
    try:
        tree = pyast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        return " ".join(text.split())
    tree = _Normaliser(typing_aliases).visit(tree)
    return ast.unparse(ast.fix_missing_locations(tree))


@lru_cache(maxsize=1024)
def _normalise_default(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return ast.unparse(pyast.parse(text.strip(), mode="eval"))
    except SyntaxError:
        return text.strip()


def typing_aliases_in(globals_: Mapping[str, Any] | None) -> frozenset[str]:
    """Names in a module's globals that are bound to typing-like modules."""
    if not globals_:
        return frozenset()
    return frozenset(
        name
        for name, value in globals_.items()
        if isinstance(value, types.ModuleType) and value.__name__ in _TYPING_MODULES
    )


def is_evolvable_decorator(node: ast.expr) -> bool:
    target = node.func if isinstance(node, ast.Call) else node
    dotted = _dotted(target)
    return dotted is not None and (dotted in _EVOLVABLE_DECORATORS or dotted.endswith(".evolvable"))


def find_target(tree: ast.Module, name: str) -> list[FunctionNode]:
    """Top-level definitions of `name`, in order."""
    return [
        n
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == name
    ]


def check_signature(
    tree: ast.Module,
    declared: DeclaredSignature,
    source: str = "",
    *,
    typing_aliases: frozenset[str] = frozenset(),
) -> FunctionNode:
    """The candidate's `def` of the declared function; raise `StageError` if it differs.

    `source` is the candidate's text (for caret excerpts); `typing_aliases` see
    `normalise_annotation`.
    """

    def diag(kind: str, message: str, node: ast.AST | None) -> Diagnostic:
        detail = f"expected:\n    {declared.render(with_docstring=False)}"
        return node_diagnostic("signature", kind, message, source, node, detail=detail)

    found = find_target(tree, declared.name)
    if not found:
        raise StageError([_missing(tree, declared, diag)])
    if len(found) > 1:
        raise StageError(
            [
                diag(
                    "duplicate",
                    f"`{declared.name}` is defined {len(found)} times; define it exactly once",
                    found[1],
                )
            ]
        )
    node = found[0]
    problems: list[Diagnostic] = []
    is_async = isinstance(node, ast.AsyncFunctionDef)
    if is_async != declared.is_async:
        want = "`async def`" if declared.is_async else "a plain `def` (not `async def`)"
        problems.append(diag("async", f"`{declared.name}` must be {want}", node))
    for dec in node.decorator_list:
        if not is_evolvable_decorator(dec):
            problems.append(
                diag(
                    "decorator",
                    f"remove the decorator `@{ast.unparse(dec)}` from `{declared.name}`: the "
                    "function is swapped in as it is written, without decorators",
                    dec,
                )
            )
    problems += _compare_params(node, declared, diag, typing_aliases)
    got_ret = normalise_annotation(
        expression_text(node.returns) if node.returns else None, typing_aliases
    )
    want_ret = normalise_annotation(declared.returns, typing_aliases)
    if got_ret != want_ret:
        where: ast.AST = node.returns if node.returns is not None else node
        if declared.returns is None:
            msg = f"`{declared.name}` declares no return annotation; remove `-> {ast.unparse(node.returns)}`"  # type: ignore[arg-type]
        elif node.returns is None:
            msg = f"the return annotation is missing: it must be `-> {declared.returns}`"
        else:
            msg = (
                f"the return annotation is `-> {ast.unparse(node.returns)}`, "
                f"it must be `-> {declared.returns}`"
            )
        problems.append(diag("returns", msg, where))
    if problems:
        raise StageError(problems)
    return node


def restore_annotations(
    tree: ast.Module, source: str, declared: DeclaredSignature, aliases: frozenset[str]
) -> str | None:
    """`source` with the declared `def` line in place of the candidate's, when the two differ
    only in annotations the candidate left out (`def fizzbuzz(n):` for
    `def fizzbuzz(n: int) -> str:`, a small model's habit); None otherwise.

    Parameters, their kinds and defaults must be the declared ones, and every annotation
    the candidate does write must match: only what is missing is filled in."""
    found = find_target(tree, declared.name)
    if len(found) != 1:
        return None
    node = found[0]
    if isinstance(node, ast.AsyncFunctionDef) != declared.is_async or not node.body:
        return None
    got = params_from_ast(node.args)
    if [(p.name, p.kind) for p in got] != [(p.name, p.kind) for p in declared.params]:
        return None
    for w, g in zip(declared.params, got, strict=True):
        if _normalise_default(w.default) != _normalise_default(g.default):
            return None
        if g.annotation is not None and normalise_annotation(
            g.annotation, aliases
        ) != normalise_annotation(w.annotation, aliases):
            return None
    if node.returns is not None and normalise_annotation(
        ast.unparse(node.returns), aliases
    ) != normalise_annotation(declared.returns, aliases):
        return None
    first, body = node.lineno, node.body[0].lineno
    if body <= first:
        return None  # `def f(n): return n` on one line: nothing to replace cleanly
    lines = source.splitlines(keepends=True)
    head = declared.render(with_docstring=False).rstrip("\n") + "\n"
    return "".join(lines[: first - 1]) + head + "".join(lines[body - 1 :])


def _missing(tree: ast.Module, declared: DeclaredSignature, diag: Any) -> Diagnostic:
    name = declared.name
    for node in ast.walk(tree):  # defined, but not at the top level (in a class or function)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return diag(
                "missing",
                f"`{name}` is defined inside another block; define it at the top level of "
                "your code, not in a class or another function",
                node,
            )
    others = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    if len(others) == 1:
        return diag(
            "name",
            f"your function is named `{others[0].name}`; it must be named `{name}`",
            others[0],
        )
    return diag("missing", f"your code does not define the function `{name}`", None)


def _compare_params(
    node: FunctionNode, declared: DeclaredSignature, diag: Any, aliases: frozenset[str]
) -> list[Diagnostic]:
    got = params_from_ast(node.args)
    arg_nodes = _arg_nodes(node.args)
    want = declared.params
    problems: list[Diagnostic] = []
    want_names = [p.name for p in want]
    got_names = [p.name for p in got]
    if want_names != got_names:
        missing = [n for n in want_names if n not in got_names]
        extra = [n for n in got_names if n not in want_names]
        parts = []
        if missing:
            parts.append("missing " + ", ".join(f"`{n}`" for n in missing))
        if extra:
            parts.append("unexpected " + ", ".join(f"`{n}`" for n in extra))
        if not parts:
            parts.append(f"in the wrong order ({', '.join(got_names)})")
        where = arg_nodes.get(extra[0]) if extra else node
        problems.append(
            diag(
                "params",
                "the parameters differ: "
                + "; ".join(parts)
                + f". They must be exactly ({', '.join(want_names) or 'none'})",
                where,
            )
        )
        return problems
    for w, g in zip(want, got, strict=True):
        a = arg_nodes.get(g.name)
        problems += _compare_param(w, g, a, diag, aliases)
    return problems


def _compare_param(
    w: DeclaredParam, g: DeclaredParam, a: ast.arg | None, diag: Any, aliases: frozenset[str]
) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    if w.kind != g.kind:
        out.append(
            diag(
                "param_kind",
                f"parameter `{w.name}` is {_KIND_WORDS[g.kind]}; it must be {_KIND_WORDS[w.kind]}",
                a,
            )
        )
    if _normalise_default(w.default) != _normalise_default(g.default):
        if w.default is None:
            msg = f"parameter `{w.name}` must have no default (remove `= {g.default}`)"
        elif g.default is None:
            msg = f"parameter `{w.name}` must have the default `= {w.default}`"
        else:
            msg = f"parameter `{w.name}` has the default `{g.default}`; it must be `{w.default}`"
        out.append(diag("default", msg, a))
    if normalise_annotation(w.annotation, aliases) != normalise_annotation(g.annotation, aliases):
        where = a.annotation if a is not None and a.annotation is not None else a
        if w.annotation is None:
            msg = f"parameter `{w.name}` is declared without annotation; remove `: {g.annotation}`"
        elif g.annotation is None:
            msg = f"parameter `{w.name}` needs the annotation `: {w.annotation}`"
        else:
            msg = f"parameter `{w.name}` is annotated `{g.annotation}`; it must be `{w.annotation}`"
        out.append(diag("annotation", msg, where))
    return out


def _arg_nodes(args: ast.arguments) -> dict[str, ast.arg]:
    nodes = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    if args.vararg is not None:
        nodes.append(args.vararg)
    if args.kwarg is not None:
        nodes.append(args.kwarg)
    return {a.arg: a for a in nodes}
