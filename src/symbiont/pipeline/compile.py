"""Stage 6, compile: code objects ready to be swapped into the live function.

The target `def` is compiled alone (its `@evolvable` decorator stripped) and its code object
fished out of the module code's constants; everything else in the candidate (imports, helper
functions and classes, constants) becomes `helpers_code`, module-level code to be exec'd in
the module's globals at promote time. Both use one pseudo filename, registered in
`linecache`, so tracebacks show the candidate's own lines.

Per-revision names. Every name the candidate binds at its module level is bound, and looked
up, as `<name>__sym_<8 hex digits of the source's hash>` (`namespaced`): revision 7's `_helper`
and revision 8's `_helper` are two module globals, so a call still running revision 7 keeps
calling revision 7's helpers after the swap, and `fn.__code__ = code` is the single atomic
switch between revisions. The rename is deterministic per source (resume recompiles the stored
source to the same names), the stored and shown source is the model's, functions and classes
keep their written `__name__` and `__qualname__` (tracebacks read as written), and
`original_names` turns per-revision names in a message back into the written ones.
`helpers_code` is definitions only (the policy stage's `check_module_level` refused anything
else); docstrings and module-level annotations are left out of it, so running it binds names
and touches nothing else of the module.

Refused with a `compile/*` diagnostic, never an exception:

- a code object that cannot replace the declared one: different free variables (closure
  cells), or a generator / coroutine / async generator where the declaration is not one
  (or the reverse);
- a module-level name that the module already has (`overwrite`): the candidate may only bind
  new names, except an import that binds a name to the very same object, like `import math`
  in a module that imported `math`.

Linear in the size of the candidate: 10,000 helpers cost about twice Python's own `compile()`
of them, which is most of it (benchmarks/bench_pipeline.py).
"""

from __future__ import annotations
import __future__

import ast
import copy
import dis
import functools
import hashlib
import inspect
import linecache
import re
import sys
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from symbiont import pyast
from symbiont.diagnostics import Diagnostic
from symbiont.errors import StageError
from symbiont.evolvable import tree_hash
from symbiont.pipeline._target import Target
from symbiont.pipeline._util import node_diagnostic
from symbiont.pipeline.parse import quiet_syntax_warnings, syntax_diagnostic

_KIND_FLAGS = {
    inspect.CO_GENERATOR: "a generator (it uses `yield`)",
    inspect.CO_COROUTINE: "a coroutine (`async def` without `yield`)",
    inspect.CO_ASYNC_GENERATOR: "an async generator (`async def` with `yield`)",
}
_MISSING = object()


@dataclass(frozen=True)
class Candidate:
    """A candidate that passed every stage, ready to be promoted."""

    source: str  # the extracted candidate, whole (target def + helpers), as the model wrote it
    function_source: str  # just the target def
    code: types.CodeType  # the target function's code object
    helpers_code: types.CodeType | None  # module-level code of everything else
    helper_names: tuple[str, ...]  # the per-revision names that helpers_code binds
    filename: str  # pseudo filename, registered in linecache

    @functools.cached_property
    def content_hash(self) -> str:
        """sha256 of the normalised source (duplicate detection); computed when asked, as it
        costs a walk over the whole tree."""
        return tree_hash(parse_quietly(self.source), self.source)


def parse_quietly(source: str) -> ast.Module | None:
    quiet_syntax_warnings()
    try:
        return pyast.parse(source, "<candidate>")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None


def source_digest(source: str) -> str:
    """What names a candidate's pseudo file and per-revision names: a hash of its text
    (deterministic per source, and cheap at any size)."""
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()[:16]


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


def namespaced(name: str, digest: str) -> str:
    """The name a candidate's module-level `name` is bound under in the live module."""
    return f"{name}{REVISION_SUFFIX}{digest[:8]}"


REVISION_SUFFIX = "__sym_"
_SUFFIX_RE = re.compile(re.escape(REVISION_SUFFIX) + "[0-9a-f]{8}")


def original_names(text: str) -> str:
    """`text` (a message, a traceback) with per-revision helper names shown as written."""
    return _SUFFIX_RE.sub("", text) if REVISION_SUFFIX in text else text


def compile_candidate(
    tree: ast.Module,
    node: ast.FunctionDef | ast.AsyncFunctionDef,
    source: str,
    target: Target,
    *,
    module_code: types.CodeType | None = None,
    nodes: Sequence[ast.AST] | None = None,
) -> Candidate:
    """Compile a checked candidate; raise `StageError` with `compile/*` diagnostics.

    Every name the candidate binds at its module level (helpers, classes, constants, imports)
    is bound, and referred to, under a per-revision name (`_helper` -> `_helper__sym_<digest>`,
    see `namespaced`), so revisions never share a helper binding and the swap of
    `fn.__code__` is the one switch between them. The rename is done on the compiled code's
    global-name operations (the compiler has resolved scopes already; one pass over the
    bytecode), with the same rename on the syntax tree as the fallback. `tree` is not
    modified; `Candidate.source` is the model's text, and functions and classes keep the
    names written (`__name__`, `__qualname__`, tracebacks). Linear in the candidate's size.

    `module_code`: `compile(tree, "<candidate>", "exec", dont_inherit=True)`, when the parse
    stage made it (`parse.parse_and_compile`). A candidate that is the target's `def` alone
    and undecorated is that module's one function: its code object is taken from it (under
    the candidate's own filename; see `_reusable`) instead of compiling the tree again.
    `nodes`: every node of `tree` (`ast.walk`'s), when the caller has walked it already.
    """
    digest = source_digest(source)
    filename = pseudo_filename(target, digest)
    lines = source.splitlines()
    flags = _flags_for(target)
    futures = [s for s in tree.body if isinstance(s, ast.ImportFrom) and s.module == "__future__"]
    helper_body = [s for s in tree.body if s is not node and not _is_future(s)]
    binders = _binders(helper_body, source)
    problems = _overwrites(binders, target, source, lines)
    mapping = {n: namespaced(n, digest) for n in binders if n != target.signature.name}

    helpers = _binding_only(helper_body, mapping)
    try:
        if module_code is not None and _reusable(tree, node, flags, nodes):
            code = _target_code(module_code, node)
            code = _as_compiled(code, filename, code.co_flags | flags)
        else:
            func = copy.copy(node)
            func.decorator_list = []
            code = _target_code(_compile_module([*futures, func], filename, flags, source), node)
        helpers_code = None
        if helpers:
            helpers_code = _compile_module([*futures, *helpers], filename, flags, source)
            helpers_code = _namespace_code(helpers_code, mapping, "module")
        code = _namespace_code(code, mapping, "function")
    except _TooWide:  # a rename the bytecode has no room for: rename the tree instead
        code, helpers_code = _compile_renamed_tree(
            source, tree, node, futures, mapping, flags, filename
        )
    problems = _replaceability(code, target, source, node, lines) + problems
    if problems:
        raise StageError(problems)
    # the def alone, from its `def` line (a copied decorator is not part of it)
    function_source = "\n".join(lines[node.lineno - 1 : node.end_lineno]) + "\n"
    register_source(filename, source)
    return Candidate(
        source=source,
        function_source=function_source,
        code=code,
        helpers_code=helpers_code,
        helper_names=tuple(mapping.values()) if helpers_code is not None else (),
        filename=filename,
    )


def _reusable(
    tree: ast.Module, node: ast.AST, flags: int, nodes: Sequence[ast.AST] | None = None
) -> bool:
    """Whether the function's code in the module code the parse stage compiled (no flags)
    is the code this stage would compile, but for its filename and `flags`: the module is
    the target's `def` alone, undecorated, and, when `flags` has a `__future__` feature,
    nothing inside the function is annotated (PEP 563 changes how a nested annotation
    compiles; everything else only gets the feature's bit in `co_flags`). `nodes`: every
    node of `tree`, when walked already; the function's own parameters and return
    annotation are then left out, as they are not inside it."""
    if len(tree.body) != 1 or tree.body[0] is not node or getattr(node, "decorator_list", None):
        return False
    if not flags:
        return True
    own: set[int] = set()
    if nodes is None:
        nodes = [sub for stmt in getattr(node, "body", ()) for sub in ast.walk(stmt)]
    else:
        args = node.args  # type: ignore[attr-defined]
        own = {id(a) for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
        own.update(id(a) for a in (args.vararg, args.kwarg) if a is not None)
        own.add(id(node))
    return not any(
        isinstance(sub, ast.AnnAssign)
        or (isinstance(sub, ast.arg) and sub.annotation is not None and id(sub) not in own)
        or (
            isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef)
            and sub.returns is not None
            and id(sub) not in own
        )
        for sub in nodes
    )


def _as_compiled(code: types.CodeType, filename: str, flags: int) -> types.CodeType:
    """`code` and the code objects nested in it as compiled under `filename`, with
    `flags` (a `__future__` feature's bit) in their `co_flags`."""
    extra = flags & ~code.co_flags
    consts = tuple(
        _as_compiled(c, filename, c.co_flags | extra) if isinstance(c, types.CodeType) else c
        for c in code.co_consts
    )
    return code.replace(co_filename=filename, co_flags=flags, co_consts=consts)


def _is_future(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__"


def _binders(body: list[ast.stmt], source: str) -> dict[str, ast.stmt]:
    """Each module-level name the statements bind, with the first statement binding it."""
    out: dict[str, ast.stmt] = {}
    walrus = ":=" in source  # else no statement can hide a binding in an expression
    for stmt in body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            out.setdefault(stmt.name, stmt)
        elif (
            not walrus
            and isinstance(stmt, ast.Assign)
            and all(isinstance(t, ast.Name) for t in stmt.targets)
        ):
            for t in stmt.targets:
                out.setdefault(t.id, stmt)  # type: ignore[attr-defined]
        else:
            for name in bound_names([stmt]):
                out.setdefault(name, stmt)
    return out


def _target_code(module_code: types.CodeType, node: ast.AST) -> types.CodeType:
    name = getattr(node, "name", "")
    for c in module_code.co_consts:
        if isinstance(c, types.CodeType) and c.co_name == name:
            return c
    # cannot happen for a parsed def; say so rather than crash
    raise StageError([Diagnostic("compile", "internal", f"no code object for `{name}`")])


def _compile_renamed_tree(
    source: str,
    tree: ast.Module,
    node: ast.FunctionDef | ast.AsyncFunctionDef,
    futures: list[ast.stmt],
    mapping: dict[str, str],
    flags: int,
    filename: str,
) -> tuple[types.CodeType, types.CodeType | None]:
    """The fallback: rename on a fresh copy of the tree, compile, restore the written names
    where they name things (`__name__`, `__qualname__`)."""
    index = next(i for i, s in enumerate(tree.body) if s is node)
    work = parse_quietly(source)
    assert work is not None  # it parsed once already
    _rename_module(work, mapping)
    func = copy.copy(work.body[index])
    assert isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef)
    func.decorator_list = []
    back = {new: old for old, new in mapping.items()}
    n_futures = len(futures)
    work_futures = [s for s in work.body if _is_future(s)][:n_futures]
    code = _target_code(_compile_module([*work_futures, func], filename, flags, source), node)
    helpers = _binding_only(
        [s for i, s in enumerate(work.body) if i != index and not _is_future(s)], {}
    )
    helpers_code = None
    if helpers:
        helpers_code = _compile_module([*work_futures, *helpers], filename, flags, source)
        helpers_code = _restore_names(helpers_code, back)
    return _restore_names(code, back), helpers_code


def _compile_module(body: list[ast.stmt], filename: str, flags: int, source: str) -> types.CodeType:
    quiet_syntax_warnings()
    try:
        code = pyast.compile_tree(
            ast.Module(body=body, type_ignores=[]), filename, "exec", flags=flags, dont_inherit=True
        )
    except SyntaxError as exc:
        raise StageError([_as_compile(syntax_diagnostic(exc, source))]) from None
    return code


def _restore_names(code: types.CodeType, back: dict[str, str]) -> types.CodeType:
    """`code` with per-revision names turned back into the written ones where they are *names
    of things* (code names, qualified names, the class-name constants `__build_class__` and
    `__qualname__` use), so `__name__`, reprs and tracebacks read as the model wrote them.
    Global lookups (`co_names`) keep the per-revision names."""
    consts = tuple(
        _restore_names(c, back)
        if isinstance(c, types.CodeType)
        else back.get(c, c)
        if type(c) is str
        else c
        for c in code.co_consts
    )
    return code.replace(
        co_consts=consts,
        co_name=back.get(code.co_name, code.co_name),
        co_qualname=".".join(back.get(p, p) for p in code.co_qualname.split(".")),
    )


def _binding_only(body: list[ast.stmt], mapping: dict[str, str]) -> list[ast.stmt]:
    """The helper statements as they are executed in the live module (new nodes where they
    differ; the caller's tree is left alone): without docstrings (a leading string would
    become the module's `__doc__`), module-level annotations dropped (`X: int = 1` would write
    into the module's `__annotations__`), and imports bound under their per-revision names
    with `as` (an import names the module and the binding with one string, which the
    bytecode rename could not tell apart)."""
    out: list[ast.stmt] = []
    for stmt in body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue
        if isinstance(stmt, ast.AnnAssign):
            if stmt.value is None or not stmt.simple:
                continue
            stmt = ast.copy_location(ast.Assign(targets=[stmt.target], value=stmt.value), stmt)
        elif isinstance(stmt, ast.Import) and mapping:
            names = [
                # `import a.b` binds `a` but imports `a.b`: two strings, renamed in the bytecode
                a if a.asname is None and "." in a.name else _renamed_alias(a, mapping)[0]
                for a in stmt.names
            ]
            stmt = ast.copy_location(ast.Import(names=names), stmt)
        elif isinstance(stmt, ast.ImportFrom) and mapping:
            names = [
                ast.copy_location(ast.alias(a.name, mapping.get(a.asname or a.name, a.asname)), a)
                for a in stmt.names
            ]
            stmt = ast.copy_location(ast.ImportFrom(stmt.module, names, stmt.level), stmt)
        out.append(stmt)
    return out


# -- per-revision names in the bytecode ---------------------------------------------------------
#
# The compiler has already resolved every name's scope: a module-level name is read and written
# with *_NAME operations in module code, *_GLOBAL ones in functions (comprehensions, lambdas and
# `global` declarations included). A class body uses *_NAME for its own attributes and for
# globals alike, so there only loads of names the class body does not bind are renamed. The
# same string can also be an attribute or module name (`x.K`, `import K`) in one code object;
# then the renamed operations get a new entry in `co_names`, if its index fits the operation's
# argument bytes (the code's length, jumps and line table must not move), else `_TooWide`.

_OP = dis.opmap
_NAME_OPS = frozenset(_OP[n] for n in ("LOAD_NAME", "STORE_NAME", "DELETE_NAME") if n in _OP)
_GLOBAL_OPS = frozenset(
    _OP[n] for n in ("LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL") if n in _OP
)
_OTHER_NAME_OPS = frozenset(
    _OP[n]
    for n in (
        "LOAD_ATTR", "STORE_ATTR", "DELETE_ATTR", "LOAD_METHOD", "IMPORT_NAME", "IMPORT_FROM",
        "LOAD_SUPER_ATTR",
    )
    if n in _OP
)  # fmt: skip
_KNOWN_NAME_OPS = _NAME_OPS | _GLOBAL_OPS | _OTHER_NAME_OPS
_NAME_OP_BYTES = re.compile(b"[" + b"".join(re.escape(bytes([op])) for op in dis.hasname) + b"]")
_SHIFT = {_OP["LOAD_GLOBAL"]: 1}  # the name index sits above low flag bits (3.11+)
if sys.version_info >= (3, 12):
    _SHIFT[_OP["LOAD_ATTR"]] = 1
    _SHIFT[_OP["LOAD_SUPER_ATTR"]] = 2
_LOAD_NAME = _OP["LOAD_NAME"]
_EXTENDED_ARG = dis.EXTENDED_ARG
_FUNCTION_CODE = inspect.CO_NEWLOCALS


class _TooWide(Exception):
    """The bytecode rename cannot be done in place (see above)."""


def _namespace_code(code: types.CodeType, mapping: dict[str, str], kind: str) -> types.CodeType:
    """`code` (and the code nested in it) with module-level names renamed per `mapping`.

    `kind` is "module" (the helpers' module code), "function" or "class" (a class body).
    """
    if not mapping:
        return code
    consts = tuple(
        _namespace_code(c, mapping, "function" if c.co_flags & _FUNCTION_CODE else "class")
        if isinstance(c, types.CodeType)
        else c
        for c in code.co_consts
    )
    raw = code.co_code
    names = list(code.co_names)
    # (first byte incl. EXTENDED_ARG prefixes, byte of the op, op, whole argument); the regex
    # finds candidate bytes at C speed, an even offset makes one an operation (code units are
    # two bytes: operation, argument)
    found: list[tuple[int, int, int, int]] = []
    for match in _NAME_OP_BYTES.finditer(raw):
        at = match.start()
        if at % 2:
            continue
        op = raw[at]
        if op not in _KNOWN_NAME_OPS:
            raise _TooWide  # an operation this rename does not know: use the tree
        first, arg, shift = at, raw[at + 1], 8
        while first >= 2 and raw[first - 2] == _EXTENDED_ARG:
            first -= 2
            arg |= raw[first + 1] << shift
            shift += 8
        found.append((first, at, op, arg))

    class_own = (
        {names[arg] for _, _, op, arg in found if op in _NAME_OPS and op != _LOAD_NAME}
        if kind == "class"
        else set()
    )
    renamed: list[tuple[int, int, int, int, str]] = []
    kept: set[int] = set()
    for first, at, op, arg in found:
        index = arg >> _SHIFT.get(op, 0)
        name = names[index]
        rename = name in mapping and (
            op in _GLOBAL_OPS
            or (
                op in _NAME_OPS
                and (kind != "class" or (op == _LOAD_NAME and name not in class_own))
            )
        )
        if rename:
            renamed.append((first, at, op, arg, mapping[name]))
        else:
            kept.add(index)
    if not renamed:
        return code.replace(co_consts=consts) if consts != code.co_consts else code

    out = bytearray(raw)
    for first, at, op, arg, new in renamed:
        shift = _SHIFT.get(op, 0)
        index = arg >> shift
        if index not in kept:
            names[index] = new  # every use of this entry is renamed: rename the entry
            continue
        new_index = _index_of(names, new)
        new_arg = (new_index << shift) | (arg & ((1 << shift) - 1))
        width = (at - first) // 2 + 1  # argument bytes available
        if new_arg >= 1 << (8 * width):
            raise _TooWide
        for k in range(width):
            out[first + 2 * k + 1] = (new_arg >> (8 * (width - 1 - k))) & 0xFF
    return code.replace(co_code=bytes(out), co_names=tuple(names), co_consts=consts)


def _index_of(names: list[str], name: str) -> int:
    try:
        return names.index(name)
    except ValueError:
        names.append(name)
        return len(names) - 1


# -- per-revision names on the syntax tree (the fallback) ---------------------------------------


@dataclass
class _Scope:
    kind: str  # module | function | class
    local: set[str]
    declared_global: set[str]


_NEW_SCOPE = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Lambda,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
)


def _args_of(args: ast.arguments) -> set[str]:
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    return {a.arg for a in every if a is not None}


def _bindings(nodes: Iterable[ast.AST]) -> tuple[set[str], set[str]]:
    """Names bound in one scope (not in nested ones) and names it declares `global`."""
    local: set[str] = set()
    declared: set[str] = set()
    stack = list(nodes)
    while stack:
        n = stack.pop()
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            local.add(n.name)
            stack.extend(n.decorator_list)
            if isinstance(n, ast.ClassDef):
                stack.extend([*n.bases, *n.keywords])
            else:
                stack.extend(_evaluated_by_def(n.args, n.returns))
            continue
        if isinstance(n, ast.Lambda):
            stack.extend(_evaluated_by_def(n.args, None))
            continue
        if isinstance(n, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
            stack.append(n.generators[0].iter)
            # `:=` inside a comprehension binds in the enclosing scope
            local.update(
                s.target.id
                for s in ast.walk(n)
                if isinstance(s, ast.NamedExpr) and isinstance(s.target, ast.Name)
            )
            continue
        if isinstance(n, ast.Global):
            declared.update(n.names)
        elif isinstance(n, ast.Nonlocal):
            local.update(n.names)
        elif isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
            local.add(n.id)
        elif isinstance(n, ast.alias):
            local.add((n.asname or n.name).split(".")[0])
        elif isinstance(n, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and n.name:
            local.add(n.name)
        elif isinstance(n, ast.MatchMapping) and n.rest:
            local.add(n.rest)
        stack.extend(ast.iter_child_nodes(n))
    return local - declared, declared


def _evaluated_by_def(args: ast.arguments, returns: ast.expr | None) -> list[ast.expr]:
    """What a `def` or `lambda` evaluates in the scope around it."""
    out: list[ast.expr] = [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    out += [a.annotation for a in every if a is not None and a.annotation is not None]
    if returns is not None:
        out.append(returns)
    return out


class _Renamer:
    """Rewrite references to the candidate's module-level names, scope by scope (one pass)."""

    def __init__(self, mapping: dict[str, str]) -> None:
        self.mapping = mapping

    def is_global(self, name: str, scopes: list[_Scope]) -> bool:
        innermost = scopes[-1]
        for scope in reversed(scopes):
            if scope.kind == "module" or name in scope.declared_global:
                return True
            if scope.kind == "class" and scope is not innermost:
                continue  # a class body's names are not visible in the functions inside it
            if name in scope.local:
                return False
        return True

    def rename(self, name: str, scopes: list[_Scope]) -> str:
        if name in self.mapping and self.is_global(name, scopes):
            return self.mapping[name]
        return name

    def visit(self, node: ast.AST, scopes: list[_Scope]) -> None:
        stack: list[ast.AST] = [node]
        while stack:
            n = stack.pop()
            if isinstance(n, _NEW_SCOPE):
                self.scope(n, scopes)
                continue
            if isinstance(n, ast.Name):
                n.id = self.rename(n.id, scopes)
            elif isinstance(n, ast.Global):
                n.names = [self.mapping.get(x, x) for x in n.names]
            stack.extend(ast.iter_child_nodes(n))

    def scope(self, n: ast.AST, scopes: list[_Scope]) -> None:
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            n.name = self.rename(n.name, scopes)
            for outer in n.decorator_list:
                self.visit(outer, scopes)
        if isinstance(n, ast.ClassDef):
            for outer in [*n.bases, *n.keywords]:
                self.visit(outer, scopes)
            local, declared = _bindings(n.body)
            inner = [*scopes, _Scope("class", local, declared)]
            for stmt in n.body:
                self.visit(stmt, inner)
        elif isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            for outer in _evaluated_by_def(n.args, getattr(n, "returns", None)):
                self.visit(outer, scopes)
            body = n.body if isinstance(n.body, list) else [n.body]
            local, declared = _bindings(body)
            inner = [*scopes, _Scope("function", local | _args_of(n.args), declared)]
            for stmt in body:
                self.visit(stmt, inner)
        elif isinstance(n, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
            first, *rest = n.generators
            self.visit(first.iter, scopes)
            local = {
                t.id for g in n.generators for t in ast.walk(g.target) if isinstance(t, ast.Name)
            }
            inner = [*scopes, _Scope("function", local, set())]
            parts: list[ast.AST] = [first.target, *first.ifs, *rest]
            parts += [n.key, n.value] if isinstance(n, ast.DictComp) else [n.elt]
            for part in parts:
                self.visit(part, inner)


def _rename_module(tree: ast.Module, mapping: dict[str, str]) -> None:
    """Rename, in place, the module-level names of `mapping` wherever they refer to the
    module global (not where a parameter or local of the same name shadows them)."""
    module = [_Scope("module", set(), set())]
    renamer = _Renamer(mapping)
    for stmt in tree.body:
        if isinstance(stmt, ast.Import):
            stmt.names = [a for alias in stmt.names for a in _renamed_alias(alias, mapping)]
        elif isinstance(stmt, ast.ImportFrom) and stmt.module != "__future__":
            for alias in stmt.names:
                alias.asname = mapping.get(alias.asname or alias.name, alias.asname)
        else:
            renamer.visit(stmt, module)


def _renamed_alias(alias: ast.alias, mapping: dict[str, str]) -> list[ast.alias]:
    """`import a as x`, `import a` -> bound under the per-revision name; `import a.b` (which
    binds `a`) -> `import a.b as <new a>_a_b, a as <new a>`."""
    local = alias.asname or alias.name.split(".")[0]
    new = mapping.get(local, local)
    if alias.asname or "." not in alias.name:
        return [ast.copy_location(ast.alias(alias.name, new), alias)]
    loaded = ast.alias(alias.name, f"{new}_{alias.name.replace('.', '_')}")
    return [ast.copy_location(loaded, alias), ast.copy_location(ast.alias(local, new), alias)]


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
    binders: dict[str, ast.stmt],
    target: Target,
    source: str,
    lines: list[str],
) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    g = target.globals
    for name, stmt in binders.items():
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
                f"your code binds `{name}`, but the module already has a `{name}`; the module "
                "level may only bind new names: use the existing one, or give yours a new "
                f"name (for example `_{name}_2`)",
                source,
                stmt,
                lines=lines,
            )
        )
    return out
