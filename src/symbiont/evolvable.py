"""`@evolvable`: declare a typed function whose body a model may rewrite while the program runs.

The decorator returns the *same* function object. Promotion swaps `fn.__code__` in place, so
every caller — including ones that did `from module import fn` long ago — runs the new body
at its next call, and a call costs exactly what a plain call costs: there is no wrapper.
A call already running when the swap happens keeps its frame, and so its code object: it
finishes entirely on the old body. (A native evolvable returns a callable that calls its
machine code without a Python frame; promotion swaps that too: see symbiont.native.)
"""

from __future__ import annotations

import ast
import bisect
import contextlib
import hashlib
import inspect
import threading
import time
import types
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, overload

from symbiont import pyast
from symbiont.diagnostics import Diagnostic
from symbiont.errors import DeclarationError, RevisionError
from symbiont.signature import DeclaredSignature, declared_signature, function_def_of

F = TypeVar("F", bound=Callable[..., Any])
# "confined" (the default): a forked child that confines itself before the candidate runs
# (no descriptors, environment, network, writes, signals or new processes; see trial.py).
# "fork": the same fork with the host's full authority, for trusted code only.
# "inprocess": no isolation at all, for trusted and very fast evaluations.
TrialMode = Literal["confined", "fork", "inprocess"]


def _number(revision: Revision) -> int:
    return revision.number


@dataclass(frozen=True, slots=True)
class EvolvableOptions:
    timeout_s: float = 10.0  # wall-clock limit of one trial
    memory_mb: int | None = 1024  # extra memory a trial may use
    typecheck: bool = True  # run the static type check stage
    policy: Any = None  # a symbiont.pipeline.Policy; None: the default policy
    trial: TrialMode = "confined"  # "fork" / "inprocess" only for trusted code
    native: bool = False  # compile every body with Numba (symbiont.native)


@dataclass(slots=True)
class Revision:
    """One candidate body, accepted or not. Revision 0 is the declared default body."""

    number: int
    source: str  # the candidate's code (target def plus any helpers); "" if none was found
    parents: tuple[int, ...] = ()
    origin: str = "model"  # default | model | mutation | manual
    model: str | None = None
    status: str = "accepted"  # accepted | rejected
    stage: str = "promote"  # the stage it reached (accepted) or failed at (rejected)
    diagnostics: tuple[Diagnostic, ...] = ()
    score: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    content_hash: str = ""
    reply: str = ""
    created_at: float = field(default_factory=time.time)
    activated_at: float | None = None
    # What promotion needs; None for rejected revisions and for ones loaded from the store
    # that have not been compiled in this process yet.
    code: types.CodeType | None = None
    helpers_code: types.CodeType | None = None
    helper_names: tuple[str, ...] = ()

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"


def content_hash(source: str) -> str:
    """Hash of a source with formatting and comments normalised away (via the AST)."""
    try:
        # a pseudo filename whose SyntaxWarnings the pipeline keeps off stderr
        tree: ast.Module | None = pyast.parse(source, "<candidate>")
    except (SyntaxError, ValueError):
        tree = None
    return tree_hash(tree, source)


def tree_hash(tree: ast.Module | None, source: str, shape: Counter[str] | None = None) -> str:
    """`content_hash(source)` from `tree`, the source's parse when the caller has it (None:
    the source does not parse, and its stripped text is hashed). Every content hash of the
    project (revisions, pipeline candidates, search fingerprints) is this one, so they
    agree. `shape`, when given, counts the node types met (see `dump_tree`)."""
    text = dump_tree(tree, shape) if tree is not None else source.strip()
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


_AST = ast.AST
_DUMP_FIELDS: dict[type, tuple[tuple[str, bool], ...]] = {}


def dump_tree(node: ast.AST, shape: Counter[str] | None = None) -> str:
    """`ast.dump(node)` as CPython 3.11 writes it (field names, no positions, no indent),
    about three times faster, whichever Python runs it, so hashes do not change with the
    interpreter (3.13's `ast.dump` leaves out empty lists). As that `ast.dump` does, it
    leaves out a field that is missing, or None where the node class's default is None.
    `shape`, when given, counts the node types met (a search's structural feature)."""
    cls = type(node)
    fields = _DUMP_FIELDS.get(cls)
    if fields is None:
        fields = _DUMP_FIELDS[cls] = tuple(
            (name, getattr(cls, name, ...) is None) for name in cls._fields
        )
    if shape is not None:
        shape[cls.__name__] += 1
    if not fields:
        return cls.__name__ + "()"
    parts = []
    for name, optional in fields:
        try:
            value = getattr(node, name)
        except AttributeError:
            continue
        if value is None and optional:
            continue
        if isinstance(value, _AST):
            parts.append(name + "=" + dump_tree(value, shape))
        elif isinstance(value, list):
            items = [dump_tree(x, shape) if isinstance(x, _AST) else repr(x) for x in value]
            parts.append(name + "=[" + ", ".join(items) + "]")
        else:
            parts.append(name + "=" + repr(value))
    return cls.__name__ + "(" + ", ".join(parts) + ")"


class Evolvable:
    """The handle of one evolvable function: its declaration, revisions and active body.

    Reach it as `fn.symbiont` or `symbiont.handle(fn)`.
    """

    def __init__(self, fn: types.FunctionType, options: EvolvableOptions) -> None:
        self.fn = fn
        self.options = options
        self.signature: DeclaredSignature = declared_signature(fn)
        node, source = function_def_of(fn)
        _refuse_decorators_above(fn, node)
        # The default body without its decorators: what the model is shown as revision 0.
        lines = source.splitlines()
        default_source = "\n".join(lines[node.lineno - 1 : node.end_lineno]) + "\n"
        self.declared_code: types.CodeType = fn.__code__
        self.revisions: list[Revision] = [
            Revision(
                number=0,
                source=default_source,
                origin="default",
                status="accepted",
                stage="promote",
                content_hash=content_hash(default_source),
                code=fn.__code__,
                activated_at=time.time(),
            )
        ]
        self._active = 0
        self._previous: list[int] = []  # activation history, for rollback()
        self._owned_names: set[str] = set()  # module globals installed by revisions' helpers
        self._lock = threading.RLock()
        self.failures: list[Failure] = []
        self.native_spec: Any = None  # a symbiont.native.NativeSpec for a native evolvable
        self.native_entry: Any = None  # what callers of a native evolvable hold (NativeFunction)

    # -- identity -------------------------------------------------------------------------
    @property
    def key(self) -> str:
        """Identity across runs, `module.qualname`, the same however the program was launched
        (`python script.py`, `python -m cProfile script.py`, `python -m pkg.mod`, runpy):
        see `symbiont._identity`. Computed once."""
        key = self.__dict__.get("_key")
        if key is None:
            from symbiont._identity import function_key

            code = getattr(self, "declared_code", None)
            key = self.__dict__["_key"] = function_key(self.fn, self.signature.qualname, code)
        return key

    @property
    def name(self) -> str:
        return self.signature.name

    @property
    def native(self) -> Any:
        """The active revision's Numba dispatcher (native evolvables only), for machine code
        that calls the kernel from its own `njit` loops without the Python hop."""
        if self.native_spec is None:
            raise DeclarationError(f"{self.key} is not native: declare it @evolvable(native=True)")
        from symbiont.native import current_dispatcher

        return current_dispatcher(self)

    @property
    def owned_names(self) -> frozenset[str]:
        return frozenset(self._owned_names)

    def __repr__(self) -> str:
        return f"<Evolvable {self.key} active=r{self._active} revisions={len(self.revisions)}>"

    # -- revisions ------------------------------------------------------------------------
    @property
    def active(self) -> Revision:
        return self.revision(self._active)

    def revision(self, number: int) -> Revision:
        revisions = self.revisions
        # Kept in number order (`add_revision`): a binary search, not a scan per lookup (a
        # search looks up the active revision for every candidate, among thousands).
        i = bisect.bisect_left(revisions, number, key=_number)
        if i < len(revisions) and revisions[i].number == number:
            return revisions[i]
        for rev in revisions:  # a list someone reordered by hand
            if rev.number == number:
                return rev
        known = ", ".join(str(r.number) for r in self.revisions)
        raise RevisionError(f"{self.key} has no revision {number} (known: {known})")

    def add_revision(self, revision: Revision) -> Revision:
        with self._lock:
            last = self.revisions[-1].number if self.revisions else revision.number
            self.revisions.append(revision)
            if revision.number < last:  # usually the newest: no sort
                self.revisions.sort(key=_number)
        return revision

    def next_number(self) -> int:
        return max(r.number for r in self.revisions) + 1

    def renumber(self, numbers: dict[int, int]) -> None:
        """Give revisions the numbers the store gave them (`numbers`: old -> new, each
        revision mapped once): a search numbers its candidates before the store commits
        them, and another process adding to the lineage meanwhile moves them on."""
        with self._lock:
            for rev in self.revisions:
                rev.number = numbers.get(rev.number, rev.number)
                rev.parents = tuple(numbers.get(p, p) for p in rev.parents)
            self._active = numbers.get(self._active, self._active)
            self._previous = [numbers.get(n, n) for n in self._previous]
            self.revisions.sort(key=_number)

    def activate(self, revision: int | Revision) -> Revision:
        """Make `revision` the live body. Accepted revisions only."""
        rev = revision if isinstance(revision, Revision) else self.revision(revision)
        if not rev.accepted:
            raise RevisionError(
                f"{self.key} revision {rev.number} was rejected at the {rev.stage} stage and "
                "cannot be activated"
            )
        if rev.code is None:
            self._compile_stored(rev)
        with self._lock:
            if rev.number != self._active:
                self._previous.append(self._active)
            self._swap(rev)
            self._active = rev.number
            rev.activated_at = time.time()
        return rev

    def rollback(self) -> Revision:
        """Re-activate the previously active revision (revision 0 if there is none)."""
        with self._lock:
            target = self._previous.pop() if self._previous else 0
            rev = self.revision(target)
            if rev.code is None:
                self._compile_stored(rev)
            self._swap(rev)
            self._active = rev.number
            rev.activated_at = time.time()
            return rev

    def install(
        self,
        code: types.CodeType,
        helpers_code: types.CodeType | None,
        helper_names: tuple[str, ...],
    ) -> None:
        """Swap a compiled body into the live function: bind its helpers, then switch the code.

        The helpers come from the compile stage: definitions only (the policy stage refused
        anything else), each bound under its revision's own name (`_h` -> `_h__sym_<digest>`),
        so executing them binds new names and changes nothing a running call can see. Helpers
        already bound in this process (re-activating a revision) are not executed again. Then
        `fn.__code__ = code` is the single, atomic switch: a call already running keeps its
        code object and finds its own revision's helpers, which stay bound for the life of the
        process (a call of any earlier revision may still be running; they are small).
        """
        with self._lock:
            if helpers_code is not None and not self._bound(helper_names):
                exec(helpers_code, self.fn.__globals__)
                self._owned_names.update(helper_names)
            self.fn.__code__ = code
            if self.native_entry is not None:  # a native evolvable: switch what callers hold
                self.native_entry.follow()

    def _bound(self, names: tuple[str, ...]) -> bool:
        g = self.fn.__globals__
        return bool(names) and all(n in self._owned_names and n in g for n in names)

    def _swap(self, rev: Revision) -> None:
        assert rev.code is not None
        self.install(rev.code, rev.helpers_code, rev.helper_names)

    def _compile_stored(self, rev: Revision) -> None:
        """Compile a revision that came from the store (its code object is not in memory)."""
        from symbiont.pipeline import PipelineConfig, Target, run_pipeline

        target = Target.from_function(self.fn, owned_names=self.owned_names)
        result = run_pipeline(
            f"```python\n{rev.source}\n```",
            _with_declared_code(target, self.declared_code),
            PipelineConfig(typecheck=False, policy=_policy(self.options)),
        )
        if result.candidate is None:
            raise RevisionError(
                f"{self.key} revision {rev.number} was not installed (none of it was executed): "
                f"it fails the {result.stage} stage against the current module and "
                "declaration:\n" + "\n".join(d.render() for d in result.diagnostics)
            )
        rev.code = result.candidate.code
        rev.helpers_code = result.candidate.helpers_code
        rev.helper_names = result.candidate.helper_names

    # -- failures in the live process -----------------------------------------------------
    def owns_frame_code(self, code: types.CodeType) -> bool:
        return any(r.code is code for r in self.revisions)


@dataclass(frozen=True, slots=True)
class Failure:
    """An exception the live function raised (any revision, the declared body r0 included)."""

    revision: int
    diagnostic: Diagnostic
    at: float
    args: str = ""  # bounded repr of the call's arguments when it raised ("" if unknown)
    traceback: str = ""  # the formatted traceback, bounded
    function: str = ""  # the function's key


def _policy(options: EvolvableOptions) -> Any:
    from symbiont.pipeline import DEFAULT_POLICY

    return options.policy if options.policy is not None else DEFAULT_POLICY


def _with_declared_code(target: Any, code: types.CodeType) -> Any:
    """The pipeline checks replaceability against the *declared* code object."""
    import dataclasses

    return dataclasses.replace(target, declared_code=code)


# -- the decorator ----------------------------------------------------------------------------

_REGISTRY: dict[str, Evolvable] = {}
_REGISTRY_LOCK = threading.Lock()
_on_register: list[Callable[[Evolvable], None]] = []


_ONLY_DECORATOR = (
    "@evolvable swaps the code of the function object itself, so it must be the only decorator"
)
_CACHING = ("cache", "memo")


def _spelled_decorator(node: ast.expr) -> str:
    return "@" + ast.unparse(node)


def _is_evolvable_decorator(node: ast.expr) -> bool:
    target = node.func if isinstance(node, ast.Call) else node
    while isinstance(target, ast.Attribute):
        if target.attr == "evolvable":
            return True
        target = target.value
    return isinstance(target, ast.Name) and target.id == "evolvable"


def _decorators_around(
    node: ast.FunctionDef | ast.AsyncFunctionDef,
) -> tuple[list[ast.expr], list[ast.expr]]:
    """The decorators written above and below `@evolvable` (both empty if it is not written)."""
    decorators = node.decorator_list
    at = next((i for i, d in enumerate(decorators) if _is_evolvable_decorator(d)), None)
    if at is None:
        return [], []
    return decorators[:at], decorators[at + 1 :]


def _refuse_decorators_above(
    fn: types.FunctionType, node: ast.FunctionDef | ast.AsyncFunctionDef
) -> None:
    """A decorator above `@evolvable` receives the evolvable function and may cache, wrap or
    replace it; the swap would then not reach (all) callers. Refuse it, saying why."""
    above, _ = _decorators_around(node)
    if not above:
        return
    dec = above[-1]  # the one applied right after @evolvable
    spelled = _spelled_decorator(dec)
    if any(word in spelled.lower() for word in _CACHING):
        why = (
            "it caches results: after a swap it would keep answering with results an earlier "
            "revision computed, and the calls it answers never reach the evolved body"
        )
        advice = "cache inside the function body if you need to, or around its call sites"
    else:
        why = (
            "it receives the evolvable function and may wrap or replace it, and then the "
            "module's name (and every caller) would hold the wrapper, not the function that "
            "evolves"
        )
        call = ast.unparse(dec)
        advice = f"if it only registers the function, apply it after the definition: `{call}({fn.__name__})`"
    raise DeclarationError(
        f"`{spelled}` above @evolvable on `{fn.__qualname__}` is not supported: {why}. "
        f"{_ONLY_DECORATOR}; {advice}."
    )


def _refuse_wrapper(fn: Any) -> None:
    """A decorator *below* `@evolvable` already replaced the function by a wrapper (it has
    `__wrapped__`, as `functools.wraps` and `lru_cache` set): say which one, not "closure"."""
    try:
        inner = inspect.unwrap(fn)
    except ValueError:  # a __wrapped__ cycle
        return
    if inner is fn:
        return
    below: list[ast.expr] = []
    if isinstance(inner, types.FunctionType):
        with contextlib.suppress(DeclarationError):  # no source: name no decorator
            _, below = _decorators_around(function_def_of(inner)[0])
    named = ", ".join(f"`{_spelled_decorator(d)}`" for d in below) or "a decorator"
    caching = any(word in named.lower() for word in _CACHING) or "cache" in type(fn).__name__
    why = (
        " (a cache in front of it would also keep answering with an earlier revision's results)"
        if caching
        else ""
    )
    raise DeclarationError(
        f"@evolvable received a {type(fn).__name__} wrapping "
        f"`{getattr(inner, '__qualname__', inner)}`: {named} below @evolvable replaced the "
        f"function before @evolvable saw it. {_ONLY_DECORATOR}{why}; remove {named}, or call "
        "the decorated function from a separate evolvable one."
    )


def _refuse(fn: Any) -> None:
    supported = "plain functions defined at the top level of a module"
    if not isinstance(fn, staticmethod | classmethod) and getattr(fn, "__wrapped__", None):
        _refuse_wrapper(fn)
    if isinstance(fn, staticmethod | classmethod):
        raise DeclarationError(f"@evolvable supports {supported}, not methods ({fn!r})")
    if isinstance(fn, types.BuiltinFunctionType | types.BuiltinMethodType):
        raise DeclarationError(f"@evolvable supports {supported}, not builtins ({fn!r})")
    if inspect.ismethod(fn):
        raise DeclarationError(f"@evolvable supports {supported}, not bound methods ({fn!r})")
    if not isinstance(fn, types.FunctionType):
        raise DeclarationError(f"@evolvable supports {supported}; got {type(fn).__name__} {fn!r}")
    if fn.__name__ == "<lambda>":
        raise DeclarationError(f"@evolvable supports {supported}, not lambdas")
    parent = fn.__qualname__.rpartition(".")[0]
    if parent and not parent.endswith("<locals>"):
        raise DeclarationError(
            f"@evolvable supports {supported}, not methods ({fn.__qualname__}); "
            "evolve a module-level function and call it from the method"
        )
    if parent or fn.__closure__:
        raise DeclarationError(
            f"@evolvable supports {supported}, not nested functions or closures "
            f"({fn.__qualname__}); move it to module level and pass what it needs as arguments "
            "(if a decorator below @evolvable returned it, remove that decorator: "
            f"{_ONLY_DECORATOR})"
        )


def _declare(fn: Any, options: EvolvableOptions) -> Any:
    _refuse(fn)
    handle = Evolvable(fn, options)
    if options.native:
        from symbiont.native import declare

        declare(handle)
    fn.symbiont = handle  # an attribute in fn.__dict__: nothing on the call path
    with _REGISTRY_LOCK:
        _REGISTRY[handle.key] = handle
        hooks = list(_on_register)
    for hook in hooks:
        hook(handle)
    # A native evolvable's callers hold a C-level callable around its kernel (symbiont.native)
    return fn if handle.native_entry is None else handle.native_entry


@overload
def evolvable(fn: F, /) -> F: ...
@overload
def evolvable(
    *,
    timeout: float = ...,
    memory_mb: int | None = ...,
    typecheck: bool = ...,
    policy: Any = ...,
    trial: TrialMode = ...,
    native: bool = ...,
    backend: Literal["python", "numba"] = ...,
) -> Callable[[F], F]: ...
def evolvable(
    fn: Any = None,
    /,
    *,
    timeout: float = 10.0,
    memory_mb: int | None = 1024,
    typecheck: bool = True,
    policy: Any = None,
    trial: TrialMode = "confined",
    native: bool = False,
    backend: Literal["python", "numba"] = "python",
) -> Any:
    """Declare `fn` evolvable: its signature and docstring are the spec, its body the default.

    Use bare (`@evolvable`) or with options (`@evolvable(timeout=2, typecheck=False)`).
    `native=True` (or `backend="numba"`) compiles the declared body and every candidate with
    Numba in nopython mode, with a signature derived from the annotations (symbiont.native).
    """
    if backend not in ("python", "numba"):
        raise DeclarationError(
            f"backend must be 'python' (the default) or 'numba', not {backend!r}"
        )
    if trial not in ("confined", "fork", "inprocess"):
        raise DeclarationError(
            f"trial must be 'confined' (the default), 'fork' or 'inprocess', not {trial!r}"
        )
    options = EvolvableOptions(
        timeout_s=timeout,
        memory_mb=memory_mb,
        typecheck=typecheck,
        policy=policy,
        trial=trial,
        native=native or backend == "numba",
    )
    if fn is None:
        return lambda f: _declare(f, options)
    return _declare(fn, options)


def handle(fn: Callable[..., Any]) -> Evolvable:
    """The `Evolvable` behind a decorated function (clear error if it is not one)."""
    h = getattr(fn, "symbiont", None)
    if not isinstance(h, Evolvable):
        raise DeclarationError(
            f"{getattr(fn, '__qualname__', fn)!r} is not evolvable: decorate it with "
            "@symbiont.evolvable"
        )
    return h


def registered() -> list[Evolvable]:
    with _REGISTRY_LOCK:
        return list(_REGISTRY.values())


def on_register(hook: Callable[[Evolvable], None]) -> Callable[[], None]:
    """Call `hook` for every evolvable declared from now on; returns an unsubscribe function."""
    with _REGISTRY_LOCK:
        _on_register.append(hook)

    def unsubscribe() -> None:
        with _REGISTRY_LOCK:
            if hook in _on_register:
                _on_register.remove(hook)

    return unsubscribe
