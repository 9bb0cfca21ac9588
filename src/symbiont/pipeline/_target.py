"""What the pipeline needs to know about the function being evolved (`Target`)."""

from __future__ import annotations

import ast
import linecache
import sys
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from symbiont import pyast
from symbiont.signature import DeclaredSignature, declared_signature, module_name, params_from_ast

_TREES: dict[str, ast.Module | None] = {}
_TREES_LOCK = threading.Lock()


def parsed_module(source: str) -> ast.Module | None:
    """The module source's AST, cached by text (a module is parsed once per process)."""
    tree = _TREES.get(source, False)
    if tree is not False:
        return tree  # type: ignore[return-value]
    try:
        parsed: ast.Module | None = pyast.parse(source)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        parsed = None
    with _TREES_LOCK:
        if len(_TREES) > 64:
            _TREES.clear()
        _TREES[source] = parsed
    return parsed


def function_node(tree: ast.Module, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The module-level `def name` that is in effect (the last one, as at run time)."""
    found = None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            found = node
    return found


def span_of(node: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[int, int]:
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return first, int(node.end_lineno or node.lineno)


@dataclass(frozen=True)
class Target:
    """The evolvable as the pipeline sees it.

    `declared_code` is the code object a candidate must be able to replace; `globals` is the
    defining module's namespace (helpers land there at promote time); `module_source`,
    `module_path` and `function_span` (1-based first..last line of the `def`, decorators
    included) place the candidate in its module for the type check; `owned_names` are
    module globals that earlier revisions' helpers installed and a new helper may replace.
    """

    signature: DeclaredSignature
    globals: dict[str, Any]
    declared_code: types.CodeType
    module_source: str | None
    module_path: str | None
    function_span: tuple[int, int] | None
    owned_names: frozenset[str] = frozenset()

    @classmethod
    def from_function(
        cls, fn: Callable[..., Any], owned_names: frozenset[str] = frozenset()
    ) -> Target:
        """Build a target from a live function.

        The signature and span come from the module's source file (not from `fn.__code__`,
        which after a promotion points at a candidate), so this also works on a function
        whose body has already been swapped.
        """
        g: dict[str, Any] = fn.__globals__  # type: ignore[attr-defined]
        module = sys.modules.get(getattr(fn, "__module__", "") or "")
        # Under a launcher (`python -m cProfile script.py`) sys.modules["__main__"] is the
        # launcher, not the script: trust the module only when its namespace is fn's.
        if module is not None and getattr(module, "__dict__", None) is g:
            path = getattr(module, "__file__", None) or g.get("__file__")
        else:
            path = g.get("__file__")
        source: str | None = None
        if isinstance(path, str):
            lines = linecache.getlines(path, g)
            source = "".join(lines) if lines else None
        node = None
        if source is not None:
            tree = parsed_module(source)
            node = function_node(tree, fn.__name__) if tree is not None else None
        if node is not None:
            signature = DeclaredSignature(
                name=fn.__name__,
                qualname=fn.__qualname__,
                module=module_name(fn),
                params=params_from_ast(node.args),
                returns=ast.unparse(node.returns) if node.returns is not None else None,
                docstring=ast.get_docstring(node),
                is_async=isinstance(node, ast.AsyncFunctionDef),
            )
            span: tuple[int, int] | None = span_of(node)
        else:
            signature = declared_signature(fn)
            span = None
            source = None if node is None else source
        return cls(
            signature=signature,
            globals=g,
            declared_code=fn.__code__,  # type: ignore[attr-defined]
            module_source=source,
            module_path=path if isinstance(path, str) else None,
            function_span=span,
            owned_names=frozenset(owned_names),
        )
