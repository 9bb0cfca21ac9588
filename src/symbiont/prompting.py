"""The prompt builder: what the model is shown about the function it writes.

The first request of an evolve run is a system message (the rules, naming what the policy
denies) and one user message: the task, the function's head (its `def` line and docstring,
verbatim from the active revision, so the model copies one layout), the active revision, the
names of the program the function's code uses, any context the caller passed explicitly,
and recent live failures. `symbiont prompts FUNC` prints exactly this.

What is never shown:

- values of the module's constants: a name is listed with its kind and type or signature
  (`DATA: list[tuple[float, float]]`, `def clamp(x: float, lo: float = ...) -> float`);
  values reach the model only through `context=`;
- names the evolvable does not use: the program's harness (`main`, the check and metric
  functions, an answer key such as fizzbuzz's `expected`) is not the model's to call or
  rewrite. Offered are the globals the active revision's code loads and the types in its
  signature, plus data and types the docstring or the task mention by name;
- names the policy denies (a module global bound to `os`, `sys`, `eval`, ...);
- anything past the size cap: every part is cut with a visible note until the messages fit.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from symbiont import feedback, pyast, returns
from symbiont.models.base import Message
from symbiont.pipeline.policy import (
    DEFAULT_POLICY,
    Policy,
    denied_global,  # what the policy denies
)
from symbiont.signature import DeclaredParam, head_of, render_params

if TYPE_CHECKING:
    from symbiont.diagnostics import Diagnostic
    from symbiont.evolvable import Evolvable

# What `context=` accepts: name → value (each rendered as `name = repr(value)`), or free text.
Context = Mapping[str, object] | str | None

DEFAULT_MAX_PROMPT_CHARS = 12_000  # system + first user message; about 3k tokens
MIN_PROMPT_CHARS = 2_000  # the rules, the task's fixed text and the def line fit in this
MAX_NAMES = 30  # names listed in the context section
MAX_NAME_LINE = 240  # characters per listed name
MAX_CONTEXT_VALUE = 2_000  # characters per value passed in `context=`
MAX_LIVE_FAILURES = 5

_IDENTIFIER = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


# -- the seam used by the evolve loop ---------------------------------------------------------


def first_messages(
    handle: Evolvable,
    prompt: str,
    failures: Sequence[Any] = (),
    *,
    context: Context = None,
    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS,
    harness: Iterable[object] = (),
    active_failure: Diagnostic | None = None,
    show_active: bool = True,
) -> list[Message]:
    """The system message and the task message that open a conversation about `handle`.

    `failures` are `symbiont.evolvable.Failure`s of the live function (the last few are
    shown); `context` is what the caller chose to show (see `Context`); `harness` are
    objects never to offer even when named (pass the run's check and metric);
    `active_failure` is how the active revision fails the run's check, shown with it;
    `show_active=False` leaves the active body out (the model is to write the function
    afresh). The messages together hold at most `max_prompt_chars` characters.
    """
    if max_prompt_chars < MIN_PROMPT_CHARS:
        raise ValueError(
            f"max_prompt_chars must be at least {MIN_PROMPT_CHARS:,} (the rules and the "
            f"function's head must fit), not {max_prompt_chars:,}"
        )
    system = feedback.system_prompt(policy_of(handle))
    active = handle.active
    parts = {
        "prompt": prompt.strip() or "Improve this function.",
        "head": function_head(handle),
        "active_source": active.source.rstrip() if show_active else "",
        "names": _names_section(handle, prompt=prompt, context=context, harness=harness),
        "context": _explicit_section(context),
        "failures": _active_failure_section(handle, active_failure)
        + _failures_section(handle, failures),
    }
    budget = max_prompt_chars - len(system) - len(_task(handle, dict.fromkeys(parts, "")))
    _fit(parts, budget, max_prompt_chars)
    task = _task(handle, parts)
    if len(system) + len(task) > max_prompt_chars:  # the fixed text alone is over the cap
        note = _note(len(task), max_prompt_chars, code=False)  # the longest it can be
        keep = max(0, max_prompt_chars - len(system) - len(note))
        task = task[:keep] + _note(len(task) - keep, max_prompt_chars, code=False)
    return [{"role": "system", "content": system}, {"role": "user", "content": task}]


def render_context(
    handle: Evolvable,
    context: Context = None,
    *,
    prompt: str = "",
    harness: Iterable[object] = (),
) -> str:
    """The context part of the task message: the program's names `handle`'s code may use
    (kinds and signatures, no values), then what the caller passed as `context`."""
    return _names_section(
        handle, prompt=prompt, context=context, harness=harness
    ) + _explicit_section(context)


def function_head(handle: Evolvable) -> str:
    """The `def` line and docstring the model must start its reply with: verbatim from the
    active revision (the layout the model sees there), else the declared signature."""
    return head_of(handle.active.source, handle.name) or handle.signature.render()


def offered_names(
    handle: Evolvable,
    *,
    prompt: str = "",
    context: Context = None,
    harness: Iterable[object] = (),
) -> list[str]:
    """The module globals the first prompt offers, in the order it lists them."""
    return [name for name, _ in _offered(handle, prompt, context, harness)]


def sources_for_hints(handle: Evolvable) -> list[str]:
    """The active revision's source and up to four other accepted ones, best score first
    (for models that take hints, such as the offline mutation proposer)."""
    active = handle.active
    others = [r for r in handle.revisions if r.accepted and r.number != active.number and r.source]
    others.sort(key=lambda r: (r.score is None, -(r.score or 0.0)))
    return [active.source, *[r.source for r in others[:4]]]


def policy_of(handle: Evolvable) -> Policy:
    policy = handle.options.policy
    return policy if isinstance(policy, Policy) else DEFAULT_POLICY


# -- the task message -------------------------------------------------------------------------


def _task(handle: Evolvable, parts: Mapping[str, str]) -> str:
    active = handle.active
    score = f", score {active.score:.6g}" if active.score is not None else ""
    return feedback.TASK.format(
        prompt=parts["prompt"],
        name=handle.name,
        module=handle.signature.module,
        head=parts["head"],
        active=feedback.ACTIVE.format(
            number=active.number,
            score=score,
            source=parts["active_source"],
            artifacts=feedback.active_artifacts(active.artifacts),
        )
        if parts["active_source"]
        else "",
        context=parts["names"] + parts["context"],
        failures=parts["failures"],
    )


# Which parts give way first when the message is over its cap, and whether each sits inside
# a ```python block (there the note is a comment, so the block still parses).
_CUT_ORDER = ("context", "failures", "names", "prompt", "active_source", "head")
_IN_CODE = frozenset({"active_source", "head"})


def _fit(parts: dict[str, str], budget: int, cap: int) -> None:
    """Shorten `parts` in `_CUT_ORDER` until they hold at most `budget` characters, each
    cut part ending with a note saying how much was cut and why."""
    over = sum(len(v) for v in parts.values()) - budget
    for key in _CUT_ORDER:
        if over <= 0:
            return
        text = parts[key]
        if not text:
            continue
        note = _note(len(text), cap, code=key in _IN_CODE)  # the longest note it can get
        keep = max(0, len(text) - over - len(note))
        line_end = text.rfind("\n", 0, keep)
        if line_end > keep // 2:  # cut at a line end where that loses little
            keep = line_end
        parts[key] = text[:keep] + _note(len(text) - keep, cap, code=key in _IN_CODE)
        over -= len(text) - len(parts[key])


def _note(cut: int, cap: int, *, code: bool) -> str:
    text = feedback.TRUNCATED.format(cut=f"{cut:,}", cap=f"{cap:,}")
    return "\n" + ("# " + text if code else text) + "\n"


def _active_failure_section(handle: Evolvable, failure: Diagnostic | None) -> str:
    if failure is None:
        return ""
    # Not the checker's frames (its answer key, perhaps): the message, and where the
    # function returned the values it quotes (`symbiont.returns`), when known.
    failure = dataclasses.replace(failure, detail=returns.section(failure.detail))
    return feedback.ACTIVE_FAILS.format(number=handle.active.number, failure=failure.render())


def _failures_section(handle: Evolvable, failures: Sequence[Any]) -> str:
    """The live function's recent exceptions, with the frames of its own code only (those of
    the program that called it are the program's business, not the model's)."""
    if not failures:
        return ""
    own = {(handle.declared_code.co_filename, handle.name)}
    shown = []
    for failure in list(failures)[-MAX_LIVE_FAILURES:]:
        diag = failure.diagnostic
        if diag.detail:
            detail = feedback.candidate_frames_only(diag.detail, functions=own)
            diag = dataclasses.replace(diag, detail=detail or None)
        shown.append(diag.render())
    return feedback.LIVE_FAILURES.format(failures="\n\n".join(shown))


def _explicit_section(context: Context) -> str:
    """What the caller passed as `context=`: free text as given, or `name = repr(value)`."""
    if context is None:
        return ""
    if isinstance(context, str):
        text = context.strip()
    elif isinstance(context, Mapping):
        text = "\n".join(f"{name} = {_bounded_repr(value)}" for name, value in context.items())
    else:
        raise TypeError(
            "context must be a dict of name → value or a str, not " + type(context).__name__
        )
    return feedback.EXPLICIT_CONTEXT.format(context=text) if text else ""


def _bounded_repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not stop the run
        return f"<{type(value).__name__}: repr failed with {type(exc).__name__}>"
    if len(text) > MAX_CONTEXT_VALUE:
        cut = len(text) - MAX_CONTEXT_VALUE
        text = text[:MAX_CONTEXT_VALUE] + f" [... {cut:,} characters cut]"
    return text


# -- which names are offered ------------------------------------------------------------------


def _names_section(
    handle: Evolvable, *, prompt: str, context: Context, harness: Iterable[object]
) -> str:
    offered = _offered(handle, prompt, context, harness)
    lines = [_safe_describe(name, value, handle) for name, value in offered[:MAX_NAMES]]
    if len(offered) > MAX_NAMES:
        lines.append(f"- (and {len(offered) - MAX_NAMES} more not listed)")
    return feedback.CONTEXT.format(names="\n".join(lines)) if lines else ""


def _offered(
    handle: Evolvable, prompt: str, context: Context, harness: Iterable[object]
) -> list[tuple[str, object]]:
    """(name, value) of each module global the prompt offers, in order of first use."""
    g = handle.fn.__globals__
    policy = policy_of(handle)
    excluded_ids = {id(handle.fn), *(id(h) for h in harness if h is not None)}
    given = set(context) if isinstance(context, Mapping) else set()
    own, used = _names_used(handle.active.source)
    for name in _signature_names(handle):
        used.setdefault(name)
    mentioned = _IDENTIFIER.findall(f"{handle.signature.docstring or ''}\n{prompt}")
    out: list[tuple[str, object]] = []
    seen: set[str] = set()
    for name in [*used, *mentioned]:
        if name in own or name in given or name in handle.owned_names or name not in g:
            continue
        value = g[name]
        if id(value) in excluded_ids or name in seen:
            continue
        if name not in used and (name.startswith("_") or not _is_data_or_type(value)):
            continue  # a mention offers data and types, never functions or modules
        if denied_global(value, policy) is not None:
            continue
        seen.add(name)
        out.append((name, value))
    return out


def _is_data_or_type(value: object) -> bool:
    if isinstance(value, types.ModuleType):
        return False
    return _is_type(value) or not callable(value)


def _names_used(source: str) -> tuple[set[str], dict[str, None]]:
    """The names `source` binds at its top level, and the names its code loads from the
    module's globals (in order of first use): every name a scope loads that neither it nor an
    enclosing function binds. Scope-aware enough that a local called `expected` does not
    offer the module's `expected`."""
    try:
        tree = pyast.parse(source)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return set(), {}
    own = _bindings(tree.body)
    used: dict[str, None] = {}
    _collect_loads(tree.body, frozenset(), used)
    return own, {name: None for name in used if name not in own}


def _signature_names(handle: Evolvable) -> list[str]:
    """Names in the declared signature's annotations (string annotations included)."""
    sig = handle.signature
    texts = [p.annotation for p in sig.params if p.annotation] + [sig.returns or ""]
    found: dict[str, None] = {}
    while texts:
        text = texts.pop(0)
        try:
            expr = pyast.parse(text, mode="eval")
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(expr):
            if isinstance(node, ast.Name):
                found.setdefault(node.id)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                texts.append(node.value)  # "Vector" in list["Vector"]
    return list(found)


def _scope_nodes(nodes: Iterable[ast.AST]) -> Iterable[ast.AST]:
    """Every node of one scope: nested functions, lambdas and classes are yielded, not
    entered."""
    stack = list(nodes)[::-1]
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, _SCOPES):
            stack.extend(list(ast.iter_child_nodes(node))[::-1])


def _bindings(nodes: Iterable[ast.AST]) -> set[str]:
    """Names one scope binds (minus those it declares `global`)."""
    bound: set[str] = set()
    declared_global: set[str] = set()
    for node in _scope_nodes(nodes):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
        elif isinstance(node, ast.Global):
            declared_global.update(node.names)
    return bound - declared_global


def _collect_loads(
    nodes: Sequence[ast.AST], enclosing: frozenset[str], out: dict[str, None]
) -> None:
    visible = enclosing | _bindings(nodes)
    for node in _scope_nodes(nodes):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            if node.id not in visible:
                out.setdefault(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            args = node.args
            every = [*args.posonlyargs, *args.args, *args.kwonlyargs]
            every += [a for a in (args.vararg, args.kwarg) if a is not None]
            # Decorators, defaults and annotations are evaluated where the def stands.
            outer: list[ast.AST] = [*args.defaults, *(d for d in args.kw_defaults if d)]
            outer += [a.annotation for a in every if a.annotation is not None]
            if not isinstance(node, ast.Lambda):
                outer += node.decorator_list
                outer += [node.returns] if node.returns is not None else []
            _collect_loads(outer, visible, out)
            body: list[ast.AST] = list(node.body) if isinstance(node.body, list) else [node.body]
            _collect_loads(body, visible | {a.arg for a in every}, out)
        elif isinstance(node, ast.ClassDef):
            _collect_loads(
                [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)],
                visible,
                out,
            )
            _collect_loads(list(node.body), visible, out)


# -- how a name is described ------------------------------------------------------------------


def _safe_describe(name: str, value: object, handle: Evolvable) -> str:
    try:
        return _describe(name, value, handle)
    except Exception:  # an odd object (a failing __repr__ or signature) is still named
        return f"- {name}"


def _describe(name: str, value: object, handle: Evolvable) -> str:
    """One line: the name's kind and type or signature, never a constant's value."""
    home = getattr(handle.fn, "__module__", None)
    origin = getattr(value, "__module__", None)
    elsewhere = f"  (from {origin})" if isinstance(origin, str) and origin != home else ""
    if isinstance(value, types.ModuleType):
        real = value.__name__
        text = f"import {real}" if real == name else f"import {real} as {name}"
    elif isinstance(value, type):
        text = f"class {name}{_signature_text(value)}{elsewhere}"
    elif _is_type(value):
        spelled = _annotation_text(value)
        text = (
            f"{name}: type{elsewhere}"
            if spelled.rsplit(".", 1)[-1] == name
            else f"{name} = {spelled}  (a type)"
        )
    elif callable(value) and _is_function(value):
        prefix = "async def" if inspect.iscoroutinefunction(value) else "def"
        text = f"{prefix} {name}{_signature_text(value)}{elsewhere}"
    else:
        annotations = handle.fn.__globals__.get("__annotations__", {})
        declared = annotations.get(name) if isinstance(annotations, dict) else None
        kind = _annotation_text(declared) if declared is not None else type(value).__qualname__
        text = f"{name}: {kind}"
    if len(text) > MAX_NAME_LINE:
        text = text[: MAX_NAME_LINE - 3] + "..."
    return "- " + text


def _is_function(value: object) -> bool:
    return isinstance(
        value,
        types.FunctionType | types.BuiltinFunctionType | types.MethodType | types.BuiltinMethodType,
    )


def _is_type(value: object) -> bool:
    """A type alias, generic alias, union, type variable or typing special form."""
    if isinstance(value, type):
        return True
    if isinstance(value, types.GenericAlias | types.UnionType | typing.TypeVar):
        return True
    if typing.get_origin(value) is not None:
        return True
    return getattr(type(value), "__module__", None) == "typing"


def _signature_text(value: Any) -> str:
    """`(x: int, y: str = ...) -> bool`: annotations kept, default values elided."""
    try:
        sig = inspect.signature(value)
    except (TypeError, ValueError):
        return "" if isinstance(value, type) else "(...)"
    params = tuple(
        DeclaredParam(
            p.name,
            p.kind.name,
            None if p.annotation is p.empty else _annotation_text(p.annotation),
            None if p.default is p.empty else "...",
        )
        for p in sig.parameters.values()
    )
    text = f"({render_params(params)})"
    if sig.return_annotation is not sig.empty and not isinstance(value, type):
        text += f" -> {_annotation_text(sig.return_annotation)}"
    return text


def _annotation_text(annotation: object) -> str:
    if isinstance(annotation, str):
        return annotation
    return inspect.formatannotation(annotation)
