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
import enum
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from symbiont.diagnostics import Diagnostic
from symbiont.pipeline._util import node_diagnostic, walk


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


def _bound_in_candidate(nodes: Sequence[ast.AST]) -> set[str]:
    """Every name the candidate binds anywhere (a cheap, scope-blind over-approximation);
    `nodes`: every node of its tree (`walk`)."""
    names: set[str] = set()
    for node in nodes:
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


def denied_global(value: Any, policy: Policy) -> str | None:
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
    nodes: Sequence[ast.AST] | None = None,
) -> list[Diagnostic]:
    """Diagnostics for every denied import and name use in `tree` (empty: allowed).
    `nodes`: `walk(tree)`, when the caller has it already."""
    if nodes is None:
        nodes = walk(tree)
    lines = source.splitlines()
    out: list[Diagnostic] = []

    def report(kind: str, message: str, node: ast.AST) -> None:
        out.append(node_diagnostic("policy", kind, message, source, node, lines=lines))

    bound: set[str] | None = None  # worked out when a name the module binds is used
    for node in nodes:
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
            elif module_globals and node.id in module_globals:
                if bound is None:
                    bound = _bound_in_candidate(nodes)
                if node.id in bound:
                    continue  # the candidate's own name, not the module's
                why = denied_global(module_globals[node.id], policy)
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


# -- the module level: definitions only -------------------------------------------------------
#
# A candidate's module level is executed in the live module when it is promoted (and again at
# every resume), so it may only *define* things. Allowed, precisely:
#
# - `import m`, `import m as a`, `from m import x` (the denied-import rules above apply; not
#   `from m import *`, which binds names nobody can see);
# - `def` / `async def` / `class`, with call-free default values, annotations and class bases,
#   no class keywords but literal ones (never `metaclass=`), and only the decorators listed in
#   `SAFE_DECORATORS` (a decorator is a call made when the helper is defined);
#   a class body holds the same kinds of statements, plus `pass` and docstrings;
# - `NAME = value` / `NAME: type = value` binding names (the compile stage checks that they are
#   *new*), where `value` is a *definition-time-safe expression*: literals, names the candidate
#   bound above, builtins, and module globals that are modules, classes, functions or plain
#   immutable values (numbers, strings, bytes, None, tuples and frozensets of them), enum
#   members and typing objects (`Optional`, `List`, a `TypeVar`), combined
#   with operators, subscripts, attribute reads, comprehensions, f-strings and lambdas, and no
#   call, `await`, `yield` or `:=` anywhere (a lambda's body runs later and is not checked);
#   a name defined nowhere yet is refused too (the module level runs top to bottom);
# - docstrings and `pass`.
#
# Anything else runs code at promotion: a call (`DATA.clear()`), an assignment into an existing
# object (`DATA[0] = 1`, `obj.x = 1`), `del`, `global`, augmented assignment, `if`, `for`,
# `while`, `with`, `try`, `match`, `raise`, `assert`. Each is a `policy/module_level`
# diagnostic; reading a live module object (a list, a config instance) at definition time is
# one too, since its `__getitem__` or `__add__` is host code.

SAFE_DECORATORS = frozenset(
    {
        "builtins.staticmethod",
        "builtins.classmethod",
        "builtins.property",
        "functools.cache",
        "functools.lru_cache",
        "functools.cached_property",
        "functools.total_ordering",
        "functools.singledispatch",
        "dataclasses.dataclass",
        "typing.overload",
        "typing.final",
        "typing.runtime_checkable",
        "typing_extensions.overload",
        "typing_extensions.final",
        "typing_extensions.runtime_checkable",
        "abc.abstractmethod",
        "enum.unique",
        "contextlib.contextmanager",
        "contextlib.asynccontextmanager",
    }
)
_PROPERTY_PARTS = frozenset({"setter", "getter", "deleter"})
_PLAIN_VALUES = (int, float, complex, str, bytes, bool, type(None), type(Ellipsis))
_DEFINE_ONLY = (
    "the module level may only define things (def, class, import, NEW_NAME = literal value); "
)
_STATEMENT_WORDS: dict[type[ast.AST], str] = {
    ast.Expr: "an expression statement",
    ast.AugAssign: "an augmented assignment",
    ast.Delete: "`del`",
    ast.Global: "`global`",
    ast.Nonlocal: "`nonlocal`",
    ast.If: "`if`",
    ast.For: "a `for` loop",
    ast.AsyncFor: "an `async for` loop",
    ast.While: "a `while` loop",
    ast.With: "`with`",
    ast.AsyncWith: "`async with`",
    ast.Try: "`try`",
    ast.Match: "`match`",
    ast.Raise: "`raise`",
    ast.Assert: "`assert`",
    ast.Return: "`return`",
    ast.TryStar: "`try`",
}


_CALL_HINTS = {
    "float": "write `math.inf` or the number itself, or convert inside the function",
    "compile": "call `re.search(pattern, text)` inside the function instead (`re` caches "
    "compiled patterns)",
    "TypeVar": "annotate with concrete types instead of a type variable",
    "frozenset": "use a set or tuple literal (`{'a', 'b'}`, `('a', 'b')`)",
}


def _plain_value(value: Any, depth: int = 0) -> bool:
    if isinstance(value, _PLAIN_VALUES):
        return True
    if isinstance(value, tuple | frozenset) and depth < 4:
        return all(_plain_value(v, depth + 1) for v in value)
    return False


_TYPING_MODULES = frozenset({"typing", "typing_extensions", "types"})


def _definition_safe_global(value: Any) -> bool:
    """Module globals a definition-time expression may read: nothing with host behaviour
    (modules, classes, functions, plain immutable values, enum members, and the typing
    objects annotations are made of: `Optional`, `List`, a `TypeVar`, `list[int]`)."""
    return (
        isinstance(value, types.ModuleType | type | types.FunctionType | types.BuiltinFunctionType)
        or _plain_value(value)
        or isinstance(value, enum.Enum)
        or type(value).__module__ in _TYPING_MODULES
    )


def _dotted(node: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _qualified(value: Any) -> str | None:
    if isinstance(value, types.ModuleType):
        return value.__name__
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str):
        return f"{module}.{qualname}"
    return None


class _ModuleLevel:
    """One pass over a candidate's module level (linear in its size)."""

    def __init__(
        self,
        source: str,
        module_globals: Mapping[str, Any],
        target_name: str | None,
        lazy_annotations: bool,
    ) -> None:
        self.source = source
        self.target_name = target_name
        self.lazy_annotations = lazy_annotations
        self.lines = source.splitlines()
        self.globals = module_globals
        self.bound: set[str] = set()  # names the candidate bound so far (module and class level)
        self.imported: dict[str, str] = {}  # local name -> qualified module or object name
        self.out: list[Diagnostic] = []

    def report(self, message: str, node: ast.AST) -> None:
        self.out.append(
            node_diagnostic("policy", "module_level", message, self.source, node, lines=self.lines)
        )

    def spelled(self, node: ast.AST) -> str:
        text = ast.unparse(node)
        first = text.splitlines()[0] if text else text
        return first if len(first) <= 60 else first[:57] + "..."

    # -- statements -----------------------------------------------------------------------
    def body(self, stmts: list[ast.stmt], in_class: str | None = None) -> None:
        for stmt in stmts:
            self.statement(stmt, in_class)

    def statement(self, stmt: ast.stmt, in_class: str | None) -> None:
        if isinstance(stmt, ast.Import | ast.ImportFrom) and in_class is None:
            self.imports(stmt)
        elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            self.function(stmt, in_class)
        elif isinstance(stmt, ast.ClassDef):
            self.klass(stmt, in_class)
        elif isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                self.target(target, stmt)
            self.expression(stmt.value, stmt)
        elif isinstance(stmt, ast.AnnAssign):
            self.target(stmt.target, stmt)
            if not self.lazy_annotations:
                self.expression(stmt.annotation, stmt, what="the annotation")
            if stmt.value is not None:
                self.expression(stmt.value, stmt)
        elif isinstance(stmt, ast.Pass) or (
            isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
        ):
            pass  # docstrings, `...`, `pass`
        else:
            self.refuse_statement(stmt)

    def refuse_statement(self, stmt: ast.stmt) -> None:
        what = _STATEMENT_WORDS.get(type(stmt), f"`{type(stmt).__name__}`")
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            message = (
                f"`{self.spelled(stmt.value)}` at the module level would run in the live "
                "program when your code is installed; "
                + _DEFINE_ONLY
                + "move the call into the function that needs it"
            )
        elif isinstance(stmt, ast.AugAssign | ast.Delete | ast.Global):
            message = (
                f"{what} at the module level (`{self.spelled(stmt)}`) would change the live "
                "module when your code is installed; "
                + _DEFINE_ONLY
                + "do it inside the function, on its own values"
            )
        elif isinstance(stmt, ast.Import | ast.ImportFrom):
            message = "imports belong at the module level, not inside a class body"
        else:
            message = (
                f"{what} at the module level would run when your code is installed in the "
                "live program; " + _DEFINE_ONLY + "put the logic inside a function"
            )
        self.report(message, stmt)

    def imports(self, stmt: ast.Import | ast.ImportFrom) -> None:
        for alias in stmt.names:
            if alias.name == "*":
                self.report(
                    "`from ... import *` binds names nobody can see; import the names you use",
                    stmt,
                )
                continue
            if isinstance(stmt, ast.Import):
                local = alias.asname or alias.name.split(".")[0]
                qualified = alias.name if alias.asname else alias.name.split(".")[0]
            else:
                base = "." * stmt.level + (stmt.module or "")
                local, qualified = alias.asname or alias.name, f"{base}.{alias.name}"
            self.imported[local] = qualified
            self.bound.add(local)

    def function(self, node: ast.FunctionDef | ast.AsyncFunctionDef, in_class: str | None) -> None:
        self.bound.add(node.name)
        if in_class is None and node.name == self.target_name:
            return  # only its code object is taken: defaults and annotations stay the declared ones
        self.decorators(node, in_class)
        args = node.args
        for default in [*args.defaults, *(d for d in args.kw_defaults if d is not None)]:
            self.expression(default, default, what="a default value")
        if self.lazy_annotations:
            return
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if arg is not None and arg.annotation is not None:
                self.expression(arg.annotation, arg.annotation, what="an annotation")
        if node.returns is not None:
            self.expression(node.returns, node.returns, what="an annotation")

    def klass(self, node: ast.ClassDef, in_class: str | None) -> None:
        self.decorators(node, in_class)
        for base in node.bases:
            self.expression(base, base, what="a base class")
        for keyword in node.keywords:
            if keyword.arg == "metaclass" or keyword.arg is None:
                self.report(
                    f"`{self.spelled(keyword)}` runs a metaclass when the class is defined; "
                    "write a plain class (or a dataclass)",
                    keyword.value,
                )
            else:
                self.expression(keyword.value, keyword.value, what="a class keyword")
        self.bound.add(node.name)
        self.body(node.body, in_class=node.name)

    def decorators(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, in_class: str | None
    ) -> None:
        for dec in node.decorator_list:
            func = dec.func if isinstance(dec, ast.Call) else dec
            dotted = _dotted(func)
            if dotted is not None and self.safe_decorator(dotted):
                if isinstance(dec, ast.Call):
                    for arg in [*dec.args, *(k.value for k in dec.keywords)]:
                        self.expression(arg, arg, what="a decorator argument")
                continue
            self.report(
                f"the decorator `@{self.spelled(dec)}` runs code when `{node.name}` is defined "
                "in the live module; remove it (decorators allowed on helpers: "
                "@staticmethod, @classmethod, @property, @dataclass, @functools.cache, "
                "@functools.lru_cache, @functools.total_ordering, @typing.overload, "
                "@abc.abstractmethod, @enum.unique, @contextlib.contextmanager)",
                dec,
            )

    def safe_decorator(self, dotted: str) -> bool:
        head, _, rest = dotted.partition(".")
        if rest in _PROPERTY_PARTS and head in self.bound:
            return True  # `@value.setter` on a property the class defined above
        if head in self.imported:
            qualified = self.imported[head]
        elif head in self.globals:
            qualified = _qualified(self.globals[head]) or ""
        elif hasattr(builtins, head):
            qualified = f"builtins.{head}"
        else:
            return False
        return (f"{qualified}.{rest}" if rest else qualified) in SAFE_DECORATORS

    def target(self, node: ast.expr, stmt: ast.stmt) -> None:
        if isinstance(node, ast.Name):
            self.bound.add(node.id)
        elif isinstance(node, ast.Tuple | ast.List):
            for elt in node.elts:
                self.target(elt.value if isinstance(elt, ast.Starred) else elt, stmt)
        else:
            self.report(
                f"`{self.spelled(stmt)}` assigns into an object that already exists in the "
                "live module; " + _DEFINE_ONLY + "change values inside the function instead",
                node,
            )

    # -- expressions ----------------------------------------------------------------------
    def expression(self, expr: ast.expr, at: ast.AST, what: str = "the value") -> None:
        if isinstance(expr, ast.Constant):
            return  # the common cases, without walking: literals ...
        if isinstance(expr, ast.Name) and (
            expr.id in self.bound
            or (expr.id in self.globals and _definition_safe_global(self.globals[expr.id]))
            or (expr.id not in self.globals and hasattr(builtins, expr.id))
        ):
            return  # ... and plain names (`int`, a class, the candidate's own constant)
        local: set[str] = set()  # comprehension variables
        for sub in ast.walk(expr):
            if isinstance(sub, ast.comprehension):
                local.update(n.id for n in ast.walk(sub.target) if isinstance(n, ast.Name))
            elif isinstance(sub, ast.Lambda):
                a = sub.args
                local.update(x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs])
                local.update(x.arg for x in (a.vararg, a.kwarg) if x is not None)
        lambda_bodies = {id(sub.body) for sub in ast.walk(expr) if isinstance(sub, ast.Lambda)}
        stack: list[ast.AST] = [expr]
        while stack:
            sub = stack.pop()
            if id(sub) in lambda_bodies:
                continue  # runs when called, not when defined
            if isinstance(sub, ast.Call):
                self.report(
                    f"{what} `{self.spelled(expr)}` calls `{self.spelled(sub.func)}` when your "
                    "code is installed in the live module; "
                    + _DEFINE_ONLY
                    + _CALL_HINTS.get(
                        self.spelled(sub.func).rpartition(".")[2],
                        "compute it inside a function (or write the value out as a literal)",
                    ),
                    sub,
                )
                return
            if isinstance(sub, ast.Await | ast.Yield | ast.YieldFrom | ast.NamedExpr):
                self.report(
                    f"{what} `{self.spelled(expr)}` cannot be evaluated at the module level; "
                    + _DEFINE_ONLY,
                    sub,
                )
                return
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load):
                name = sub.id
                if name in local or name in self.bound:
                    pass  # the candidate's own
                elif name not in self.globals:
                    if not hasattr(builtins, name):
                        self.report(
                            f"{what} `{self.spelled(expr)}` uses `{name}`, which is not defined "
                            "at that point: the module level runs top to bottom, so define "
                            f"`{name}` above it (or use it only inside a function)",
                            sub,
                        )
                        return
                elif not _definition_safe_global(self.globals[name]):
                    self.report(
                        f"{what} `{self.spelled(expr)}` reads the module's live object "
                        f"`{name}` ({type(self.globals[name]).__name__}) when your code is "
                        "installed; read it inside the function instead",
                        sub,
                    )
                    return
            stack.extend(ast.iter_child_nodes(sub))


def check_module_level(
    tree: ast.Module,
    source: str = "",
    *,
    module_globals: Mapping[str, Any] | None = None,
    target_name: str | None = None,
    lazy_annotations: bool = False,
) -> list[Diagnostic]:
    """`policy/module_level` diagnostics for a module level that does more than define names.

    Function bodies are not examined (they run when called). Of the target `def` (named
    `target_name`) only the code object is used, so its decorators (the signature stage's
    business), defaults and annotations are not examined either. `lazy_annotations`: the
    candidate is compiled with `from __future__ import annotations`, so annotations are not
    evaluated. See the rules above `SAFE_DECORATORS`.
    """
    lazy = lazy_annotations or any(
        isinstance(s, ast.ImportFrom)
        and s.module == "__future__"
        and any(a.name == "annotations" for a in s.names)
        for s in tree.body
    )
    checker = _ModuleLevel(source, module_globals or {}, target_name, lazy)
    checker.body(tree.body)
    return checker.out
