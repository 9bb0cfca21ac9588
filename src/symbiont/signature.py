"""The declared signature of an evolvable function: capture it, render it for prompts, hash it.

Annotations and defaults are kept as *source text* (from the function's AST), because that is
what the model sees and writes back; `symbiont.pipeline.signature` compares a candidate's
text against it after normalisation.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import textwrap
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from symbiont import pyast
from symbiont.errors import DeclarationError

# inspect.Parameter kinds, by name, in declaration order
KINDS = (
    "POSITIONAL_ONLY",
    "POSITIONAL_OR_KEYWORD",
    "VAR_POSITIONAL",
    "KEYWORD_ONLY",
    "VAR_KEYWORD",
)


@dataclass(frozen=True, slots=True)
class DeclaredParam:
    name: str
    kind: str  # one of KINDS
    annotation: str | None  # source text, e.g. "list[int]"
    default: str | None  # source text of the default, e.g. "None"; None if no default


@dataclass(frozen=True, slots=True)
class DeclaredSignature:
    name: str
    qualname: str
    module: str
    params: tuple[DeclaredParam, ...]
    returns: str | None
    docstring: str | None
    is_async: bool = False

    @property
    def key(self) -> str:
        """Identity of the function across runs: `module.qualname`."""
        return f"{self.module}.{self.qualname}"

    def render(self, *, with_docstring: bool = True) -> str:
        """The `def` line (and docstring) as a model should reproduce it."""
        head = f"{'async ' if self.is_async else ''}def {self.name}({render_params(self.params)})"
        if self.returns is not None:
            head += f" -> {self.returns}"
        head += ":"
        if with_docstring and self.docstring:
            doc = self.docstring.replace('"""', r"\"\"\"")
            body = textwrap.indent(
                f'"""{doc}"""' if "\n" not in doc else f'"""\n{doc}\n"""', "    "
            )
            return f"{head}\n{body}"
        return head

    def fingerprint(self) -> str:
        """Hash of everything that makes a body interchangeable (not the docstring)."""
        payload = {
            "name": self.name,
            "qualname": self.qualname,
            "module": self.module,
            "params": [asdict(p) for p in self.params],
            "returns": self.returns,
            "is_async": self.is_async,
        }
        blob = json.dumps(payload, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def render_params(params: tuple[DeclaredParam, ...]) -> str:
    out: list[str] = []
    seen_kw_marker = False
    for i, p in enumerate(params):
        if p.kind == "KEYWORD_ONLY" and not seen_kw_marker:
            if not any(q.kind == "VAR_POSITIONAL" for q in params):
                out.append("*")
            seen_kw_marker = True
        prefix = "*" if p.kind == "VAR_POSITIONAL" else "**" if p.kind == "VAR_KEYWORD" else ""
        if p.kind == "VAR_POSITIONAL":
            seen_kw_marker = True
        text = prefix + p.name
        if p.annotation is not None:
            text += f": {p.annotation}"
        if p.default is not None:
            text += f" = {p.default}" if p.annotation is not None else f"={p.default}"
        out.append(text)
        nxt = params[i + 1] if i + 1 < len(params) else None
        if p.kind == "POSITIONAL_ONLY" and (nxt is None or nxt.kind != "POSITIONAL_ONLY"):
            out.append("/")
    return ", ".join(out)


def expression_text(node: ast.expr) -> str:
    """`ast.unparse(node)`, with a bare name (most annotations: `int`, `str`) read directly
    rather than through the unparser (a few microseconds each, per candidate)."""
    return node.id if type(node) is ast.Name else ast.unparse(node)


def params_from_ast(args: ast.arguments) -> tuple[DeclaredParam, ...]:
    """Parameters of a parsed `def`, with annotations and defaults as source text."""

    def ann(a: ast.arg) -> str | None:
        return expression_text(a.annotation) if a.annotation is not None else None

    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += list(args.defaults)
    params: list[DeclaredParam] = []
    for i, a in enumerate(positional):
        kind = "POSITIONAL_ONLY" if i < len(args.posonlyargs) else "POSITIONAL_OR_KEYWORD"
        d = defaults[i]
        params.append(DeclaredParam(a.arg, kind, ann(a), ast.unparse(d) if d is not None else None))
    if args.vararg is not None:
        params.append(DeclaredParam(args.vararg.arg, "VAR_POSITIONAL", ann(args.vararg), None))
    for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        params.append(
            DeclaredParam(a.arg, "KEYWORD_ONLY", ann(a), ast.unparse(d) if d is not None else None)
        )
    if args.kwarg is not None:
        params.append(DeclaredParam(args.kwarg.arg, "VAR_KEYWORD", ann(args.kwarg), None))
    return tuple(params)


def function_def_of(fn: Callable[..., Any]) -> tuple[ast.FunctionDef | ast.AsyncFunctionDef, str]:
    """The parsed `def` of `fn` and its dedented source. Raises DeclarationError if unavailable."""
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as exc:
        raise DeclarationError(
            f"cannot read the source of {fn!r}: @evolvable needs a function defined in a "
            "source file (not in a REPL, exec or a compiled extension)"
        ) from exc
    tree = pyast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == fn.__name__:
            return node, source
    raise DeclarationError(f"cannot find 'def {fn.__name__}' in the source of {fn!r}")


def head_of(source: str, name: str) -> str | None:
    """The `def` line(s) of the top-level function `name` in `source` and its docstring,
    verbatim (same quotes, line breaks and indentation), or None when they cannot be cut out
    cleanly (a syntax error, no such function, a body on the `def` line).

    A model told to reproduce the function's head copies this text; taking it from the
    revision it is shown keeps both in one layout.
    """
    try:
        tree = pyast.parse(textwrap.dedent(source))
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    node = None
    for stmt in tree.body:  # the last definition is the one in effect
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) and stmt.name == name:
            node = stmt
    if node is None or not node.body:
        return None
    lines = textwrap.dedent(source).splitlines()
    first = node.body[0]
    if first.lineno == node.lineno:  # `def f(x): return x`
        return None
    has_doc = (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    )
    if has_doc:
        end = int(first.end_lineno or first.lineno)
        rest = lines[end - 1][int(first.end_col_offset or 0) :].strip()
        if rest and not rest.startswith("#"):  # `"""doc"""; x = 1`
            return None
        if len(node.body) > 1 and node.body[1].lineno == end:
            return None
        head = lines[node.lineno - 1 : end]
    else:
        head = lines[node.lineno - 1 : first.lineno - 1]
        while head and (not head[-1].strip() or head[-1].lstrip().startswith("#")):
            head.pop()
    return "\n".join(head) or None


def module_name(fn: Callable[..., Any]) -> str:
    """The module's name, with `__main__` replaced by the script's file name, so a function
    keeps one identity whether its file is run as a script or imported."""
    from symbiont._identity import module_key

    # The key's module part: launch-independent (`python -m cProfile script.py` gives the
    # script's name, not cProfile's). The declared code's file is what identifies the
    # script, and `__file__` in its globals names the same file after a promotion.
    code = fn.__code__
    file = fn.__globals__.get("__file__")
    if code.co_filename.startswith("<") and isinstance(file, str):
        code = code.replace(co_filename=file)
    return module_key(fn, code)


def declared_signature(fn: Callable[..., Any]) -> DeclaredSignature:
    """Capture the declared signature of a plain module-level function."""
    node, _ = function_def_of(fn)
    return DeclaredSignature(
        name=fn.__name__,
        qualname=fn.__qualname__,
        module=module_name(fn),
        params=params_from_ast(node.args),
        returns=ast.unparse(node.returns) if node.returns is not None else None,
        docstring=inspect.getdoc(fn),
        is_async=isinstance(node, ast.AsyncFunctionDef),
    )
