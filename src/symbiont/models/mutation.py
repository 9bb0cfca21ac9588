"""`MutationModel`: an offline proposer that needs no language model at all.

It rewrites the active revision's syntax tree the way genetic programming does — perturbs
numeric constants, swaps arithmetic and comparison operators, flips boolean logic,
duplicates, deletes and reorders statements, and crosses two revisions over — and answers
in the format a real model would (a sentence and a fenced ```python block), so the rest of
the evolve loop cannot tell the difference. It is the default when no model is configured,
which makes the demo and the examples work with no network.

Guarantees:
- only the target function's *body* changes; everything before it (decorators, the `def`
  line, parameters, annotations, the docstring) and everything after it is copied verbatim;
- every proposal parses and compiles;
- no proposal repeats one made before, nor any revision it was shown (hashes are kept);
- the same seed and the same inputs give the same proposals.

Inputs come from `hints` — `target` (the function's name), `avoid` (sources never to
propose, such as revisions rejected in earlier runs) and `sources` (the active
revision's source first, then other revisions usable as crossover parents) — or, without
hints, from the last fenced Python block in the conversation that defines a function.
"""

from __future__ import annotations

import ast
import asyncio
import copy
import hashlib
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from symbiont import pyast
from symbiont.errors import ModelError
from symbiont.models.base import Message, ModelReply, Usage

__all__ = ["KINDS", "MutationModel"]

# Mutation kinds and how often each is tried (where applicable). Constants dominate: on
# numeric tasks tuning a number is most often what makes progress.
KINDS: dict[str, float] = {
    "constant": 5.0,
    "arithmetic": 2.0,
    "comparison": 1.5,
    "boolean": 1.0,
    "duplicate": 0.7,
    "delete": 0.7,
    "reorder": 0.7,
    "crossover": 2.0,
}

_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_MAX_INT = 10**9

# Arithmetic partners: the likely swap first (a sign error, an off-by-kind operator).
_ARITH: dict[type[ast.operator], tuple[type[ast.operator], ...]] = {
    ast.Add: (ast.Sub, ast.Mult),
    ast.Sub: (ast.Add, ast.Mult),
    ast.Mult: (ast.Add, ast.FloorDiv, ast.Div, ast.Sub),
    ast.Div: (ast.Mult, ast.FloorDiv),
    ast.FloorDiv: (ast.Mult, ast.Mod, ast.Div),
    ast.Mod: (ast.FloorDiv, ast.Mult),
    ast.Pow: (ast.Mult,),  # never *into* Pow: 10**10**10 is a memory bomb, not a variant
    ast.BitAnd: (ast.BitOr, ast.BitXor),
    ast.BitOr: (ast.BitAnd, ast.BitXor),
    ast.BitXor: (ast.BitOr, ast.BitAnd),
    ast.LShift: (ast.RShift,),
    ast.RShift: (ast.LShift,),
}
_SYMBOL: dict[type[ast.AST], str] = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
    ast.Mod: "%", ast.Pow: "**", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^",
    ast.LShift: "<<", ast.RShift: ">>", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">",
    ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is", ast.IsNot: "is not",
    ast.In: "in", ast.NotIn: "not in", ast.And: "and", ast.Or: "or",
}  # fmt: skip
_COMPARE: dict[type[ast.cmpop], tuple[type[ast.cmpop], ...]] = {
    ast.Lt: (ast.LtE, ast.Gt, ast.GtE),
    ast.LtE: (ast.Lt, ast.GtE, ast.Gt),
    ast.Gt: (ast.GtE, ast.Lt, ast.LtE),
    ast.GtE: (ast.Gt, ast.LtE, ast.Lt),
    ast.Eq: (ast.NotEq,),
    ast.NotEq: (ast.Eq,),
    ast.Is: (ast.IsNot,),
    ast.IsNot: (ast.Is,),
    ast.In: (ast.NotIn,),
    ast.NotIn: (ast.In,),
}
# (weight, operation) for integer constants: small steps most often, jumps and scalings in
# both directions so a constant can also move by an order of magnitude.
_INT_MOVES: tuple[tuple[float, Callable[[int], int], str], ...] = (
    (2.0, lambda v: v + 1, "+1"),
    (2.0, lambda v: v - 1, "-1"),
    (1.0, lambda v: v + 2, "+2"),
    (1.0, lambda v: v - 2, "-2"),
    (1.0, lambda v: v + 5, "+5"),
    (1.0, lambda v: v - 5, "-5"),
    (0.8, lambda v: v + 10, "+10"),
    (0.8, lambda v: v - 10, "-10"),
    (1.0, lambda v: v * 2, "x2"),
    (1.0, lambda v: v // 2, "/2"),
    (0.7, lambda v: v * 5, "x5"),
    (0.7, lambda v: v * 10, "x10"),
    (0.5, lambda v: v // 10, "/10"),
    (0.3, lambda v: -v, "negated"),
)
_FLOAT_MOVES: tuple[tuple[float, Callable[[float], float], str], ...] = (
    (1.5, lambda v: v + 0.1, "+0.1"),
    (1.5, lambda v: v - 0.1, "-0.1"),
    (1.0, lambda v: v + 0.5, "+0.5"),
    (1.0, lambda v: v - 0.5, "-0.5"),
    (0.7, lambda v: v + 1.0, "+1"),
    (0.7, lambda v: v - 1.0, "-1"),
    (0.7, lambda v: v + 0.01, "+0.01"),
    (0.7, lambda v: v - 0.01, "-0.01"),
    (1.0, lambda v: v * 1.1, "x1.1"),
    (1.0, lambda v: v * 0.9, "x0.9"),
    (0.7, lambda v: v * 2.0, "x2"),
    (0.7, lambda v: v * 0.5, "x0.5"),
    (0.3, lambda v: -v, "negated"),
)


@dataclass
class _Site:
    """The target function inside a source text, cut into verbatim head, body and tail."""

    head: str  # everything up to the first mutable statement (def line, docstring, ...)
    body: list[ast.stmt]  # the statements after the docstring: the only part we change
    indent: str
    tail: str  # everything after the last statement

    def render(self, body: Sequence[ast.stmt]) -> str:
        lines = [self.indent + line for stmt in body for line in ast.unparse(stmt).splitlines()]
        return self.head + "\n".join(lines) + self.tail


def _locate(source: str, target: str | None) -> tuple[_Site, str]:
    """Find the target function (the last top-level definition of that name)."""
    try:
        tree = pyast.parse(source)
    except SyntaxError as exc:
        raise ModelError(
            f"MutationModel: the active source does not parse (line {exc.lineno}: {exc.msg})"
        ) from exc
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    if target is not None:
        defs = [d for d in defs if d.name == target]
    if not defs:
        what = f"function named {target!r}" if target else "function"
        raise ModelError(f"MutationModel: no top-level {what} in the active source")
    func = defs[-1]
    stmts = list(func.body)
    doc = _is_docstring(stmts[0]) if stmts else False
    mutable = stmts[1:] if doc else stmts

    lines = source.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(lineno: int, col: int) -> int:
        line = lines[lineno - 1]
        return starts[lineno - 1] + len(line.encode()[:col].decode("utf-8", "replace"))

    if mutable:
        first, last = mutable[0], mutable[-1]
        begin = offset(first.lineno, first.col_offset)
        line_start = starts[first.lineno - 1]
        before = source[line_start:begin]
        if before.strip() == "":
            head, indent = source[:line_start], before
        else:  # `def f(x): return x`, or statements after the docstring on its line
            head = source[:begin].rstrip().rstrip(";").rstrip() + "\n"
            indent = _indent_of(lines[func.lineno - 1]) + "    "
        end = offset(last.end_lineno or last.lineno, last.end_col_offset or 0)
        tail = source[end:]
    else:
        anchor = stmts[0]
        end = offset(anchor.end_lineno or anchor.lineno, anchor.end_col_offset or 0)
        head = source[:end] + "\n"
        indent = _indent_of(lines[anchor.lineno - 1])
        tail = source[end:]
    return _Site(head, mutable, indent, tail), func.name


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def _indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _body_key(name: str, body: Sequence[ast.stmt]) -> str:
    """Equal for function bodies with the same syntax tree (formatting and comments ignored).

    Only the body is hashed (re-parsed from its text, so `-3` and `-(3)` agree): hashing
    the whole module would cost more than the mutation itself.
    """
    text = "\n".join(ast.unparse(stmt) for stmt in body)
    dumped = ast.dump(pyast.parse(text))
    return hashlib.sha256(f"{name}\0{dumped}".encode()).hexdigest()


# -- walking the body ------------------------------------------------------------------------


def _slots(body: list[ast.stmt]) -> Iterator[tuple[object, str, int | None, ast.AST]]:
    """Every node under the body, with where it hangs: (parent, field, list index, node).

    Annotations are skipped: they belong to the typing, not the behaviour.
    """
    stack: list[ast.AST] = []
    for i, stmt in enumerate(body):
        yield (_Holder(body), "items", i, stmt)
        stack.append(stmt)
    while stack:
        node = stack.pop()
        for name, value in ast.iter_fields(node):
            if name in ("annotation", "returns", "type_comment"):
                continue
            if isinstance(value, ast.AST):
                yield (node, name, None, value)
                stack.append(value)
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, ast.AST):
                        yield (node, name, i, item)
                        stack.append(item)


class _Holder:
    """Makes the top-level body list addressable like any other field."""

    def __init__(self, items: list[ast.stmt]) -> None:
        self.items = items


def _replace(parent: object, field: str, index: int | None, new: ast.AST) -> None:
    if index is None:
        setattr(parent, field, new)
    else:
        getattr(parent, field)[index] = new


def _stmt_lists(body: list[ast.stmt]) -> list[list[ast.stmt]]:
    """The body and every nested block of statements in it."""
    out = [body]
    for node in (n for stmt in body for n in ast.walk(stmt)):
        for name in ("body", "orelse", "finalbody"):
            block = getattr(node, name, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                out.append(block)
        if isinstance(node, ast.match_case):
            out.append(node.body)
    return out


def _is_loadable(node: ast.AST) -> bool:
    """An expression that is read, not assigned to (safe to replace by another expression)."""
    if not isinstance(node, ast.expr) or isinstance(node, ast.Starred | ast.Slice):
        return False
    ctx = getattr(node, "ctx", None)
    return ctx is None or isinstance(ctx, ast.Load)


def _weighted(rng: random.Random, items: Sequence[tuple[float, Any, str]]) -> tuple[Any, str]:
    total = sum(w for w, _, _ in items)
    pick = rng.random() * total
    for weight, value, label in items:
        pick -= weight
        if pick <= 0:
            return value, label
    return items[-1][1], items[-1][2]


def _round(value: float) -> float:
    return float(f"{value:.6g}")


# -- the mutations -----------------------------------------------------------------------------


class _Mutator:
    """One kind of change per method; each returns a description, or None if not applicable."""

    def __init__(self, rng: random.Random, others: Sequence[list[ast.stmt]]) -> None:
        self.rng = rng
        self.others = others

    def constant(self, body: list[ast.stmt]) -> str | None:
        found = [
            (p, f, i, n)
            for p, f, i, n in _slots(body)
            if isinstance(n, ast.Constant)
            and isinstance(n.value, int | float)
            and not isinstance(n.value, bool)
        ]
        if not found:
            return None
        parent, field, index, node = self.rng.choice(found)
        assert isinstance(node, ast.Constant)
        old = node.value
        for _ in range(8):
            if isinstance(old, int):
                move, _label = _weighted(self.rng, _INT_MOVES)
                new: float = move(old)
                if abs(new) > _MAX_INT:
                    continue
            else:
                move, _label = _weighted(self.rng, _FLOAT_MOVES)
                new = _round(move(old))
                if new != new or abs(new) > 1e15:  # NaN or absurd
                    continue
            if new != old:
                break
        else:
            return None
        _replace(parent, field, index, ast.Constant(new))
        return f"changed the constant {old!r} to {new!r}"

    def arithmetic(self, body: list[ast.stmt]) -> str | None:
        found = [
            n
            for _, _, _, n in _slots(body)
            if isinstance(n, ast.BinOp | ast.AugAssign)
            and type(n.op) in _ARITH
            and not _is_text_op(n)
        ]
        if not found:
            return None
        node = self.rng.choice(found)
        assert isinstance(node, ast.BinOp | ast.AugAssign)
        partners = _ARITH[type(node.op)]
        new = partners[0] if self.rng.random() < 0.6 else self.rng.choice(partners)
        old = type(node.op)
        node.op = new()
        return f"replaced the operator {_SYMBOL[old]} with {_SYMBOL[new]}"

    def comparison(self, body: list[ast.stmt]) -> str | None:
        found = [n for _, _, _, n in _slots(body) if isinstance(n, ast.Compare)]
        if not found:
            return None
        node = self.rng.choice(found)
        assert isinstance(node, ast.Compare)
        k = self.rng.randrange(len(node.ops))
        old = type(node.ops[k])
        new = self.rng.choice(_COMPARE[old])
        node.ops[k] = new()
        return f"replaced the comparison {_SYMBOL[old]} with {_SYMBOL[new]}"

    def boolean(self, body: list[ast.stmt]) -> str | None:
        options: list[tuple[str, object, str, int | None, ast.AST]] = []
        for parent, field, index, node in _slots(body):
            if isinstance(node, ast.BoolOp):
                options.append(("flip", parent, field, index, node))
            elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
                options.append(("drop-not", parent, field, index, node))
            elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
                options.append(("toggle", parent, field, index, node))
            if isinstance(node, ast.If | ast.While | ast.IfExp | ast.Assert) and not (
                isinstance(node.test, ast.UnaryOp) and isinstance(node.test.op, ast.Not)
            ):
                options.append(("negate", parent, field, index, node))
        if not options:
            return None
        how, parent, field, index, node = self.rng.choice(options)
        if how == "flip" and isinstance(node, ast.BoolOp):
            old = type(node.op)
            node.op = ast.Or() if old is ast.And else ast.And()
            return f"replaced `{_SYMBOL[old]}` with `{_SYMBOL[type(node.op)]}`"
        if how == "drop-not" and isinstance(node, ast.UnaryOp):
            _replace(parent, field, index, node.operand)
            return f"removed the `not` in `{_short(node)}`"
        if how == "toggle" and isinstance(node, ast.Constant):
            node.value = not node.value
            return f"changed {not node.value} to {node.value}"
        if isinstance(node, ast.If | ast.While | ast.IfExp | ast.Assert):
            node.test = ast.UnaryOp(ast.Not(), node.test)
            return f"negated the condition `{_short(node.test.operand)}`"
        return None

    def duplicate(self, body: list[ast.stmt]) -> str | None:
        enders = (ast.Return, ast.Raise, ast.Continue, ast.Break, ast.Pass)
        blocks = [
            (block, i)
            for block in _stmt_lists(body)
            for i, s in enumerate(block)
            if not isinstance(s, enders)
        ]
        if not blocks:
            return None
        block, i = self.rng.choice(blocks)
        block.insert(i + 1, copy.deepcopy(block[i]))
        return f"duplicated the statement `{_short(block[i])}`"

    def delete(self, body: list[ast.stmt]) -> str | None:
        blocks = [b for b in _stmt_lists(body) if len(b) >= 2]
        if not blocks:
            return None
        block = self.rng.choice(blocks)
        removed = block.pop(self.rng.randrange(len(block)))
        return f"deleted the statement `{_short(removed)}`"

    def reorder(self, body: list[ast.stmt]) -> str | None:
        blocks = [b for b in _stmt_lists(body) if len(b) >= 2]
        if not blocks:
            return None
        block = self.rng.choice(blocks)
        i = self.rng.randrange(len(block) - 1)
        block[i], block[i + 1] = block[i + 1], block[i]
        return f"swapped `{_short(block[i + 1])}` and `{_short(block[i])}`"

    def crossover(self, body: list[ast.stmt]) -> str | None:
        donors = [d for d in self.others if d]
        if not donors or not body:
            return None
        k = self.rng.randrange(len(donors))
        donor = donors[k]
        which = f"revision #{k + 2} of those shown"
        choices: list[str] = []
        if len(body) >= 2:
            choices.append("one-point")
        choices.append("statement")
        if any(_is_loadable(n) for _, _, _, n in _slots(donor)):
            choices.append("expression")
        how = self.rng.choice(choices)
        if how == "one-point":
            # a prefix of the active body, then a suffix of the donor's: both contribute
            i = self.rng.randrange(1, len(body))
            j = self.rng.randrange(0, len(donor))
            body[i:] = copy.deepcopy(donor[j:])
            return f"crossed over: first {i} statement(s) kept, the rest from {which}"
        if how == "statement":
            i = self.rng.randrange(len(body))
            have = {ast.dump(s) for s in body}
            fresh: list[ast.stmt] = [s for s in donor if ast.dump(s) not in have] or donor
            same = [s for s in fresh if type(s) is type(body[i])]
            body[i] = copy.deepcopy(self.rng.choice(same or fresh))
            return f"crossed over: statement {i + 1} taken from {which}"
        targets = [(p, f, i, n) for p, f, i, n in _slots(body) if _is_loadable(n)]
        gifts = [n for _, _, _, n in _slots(donor) if _is_loadable(n)]
        if not targets:
            return None
        parent, field, index, node = self.rng.choice(targets)
        # prefer a subtree the active body does not already have: a real contribution
        have = {ast.dump(n) for _, _, _, n in _slots(body)}
        fresh_gifts = [g for g in gifts if ast.dump(g) not in have] or gifts
        same_gifts = [g for g in fresh_gifts if type(g) is type(node)]
        gift = copy.deepcopy(self.rng.choice(same_gifts or fresh_gifts))
        _replace(parent, field, index, gift)
        return f"crossed over: `{_short(node)}` replaced by `{_short(gift)}` from {which}"


def _is_text_op(node: ast.BinOp | ast.AugAssign) -> bool:
    """`"a" + b` or `"%d" % x`: string operations, which other operators would only break."""
    parts = [node.left, node.right] if isinstance(node, ast.BinOp) else [node.value]
    return any(
        isinstance(p, ast.JoinedStr) or (isinstance(p, ast.Constant) and isinstance(p.value, str))
        for p in parts
    )


def _short(node: ast.AST, limit: int = 40) -> str:
    text = (ast.unparse(node).splitlines() or [""])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- the model ---------------------------------------------------------------------------------


class MutationModel:
    """A seeded `Model` that proposes AST mutations of the active revision (no network).

    `kinds` restricts the mutation kinds (see `KINDS`), for tests and experiments.
    """

    name = "mutation"

    def __init__(
        self, seed: int = 0, *, kinds: Sequence[str] | None = None, max_tries: int = 300
    ) -> None:
        unknown = sorted(set(kinds or ()) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown mutation kinds {unknown}; choose from {sorted(KINDS)}")
        self.seed = seed
        self.kinds = tuple(kinds) if kinds else tuple(KINDS)
        self.max_tries = max_tries
        self.proposals = 0
        self._rng = random.Random(seed)
        self._seen: set[str] = set()

    def __repr__(self) -> str:
        return f"MutationModel(seed={self.seed})"

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        hints: Mapping[str, Any] | None = None,
    ) -> ModelReply:
        started = time.perf_counter()
        # Off the event loop's thread: a proposal parses and rewrites syntax trees.
        text = await asyncio.to_thread(self.propose, messages, hints)
        return ModelReply(
            text=text,
            usage=Usage(),  # nothing was tokenised: no model ran
            latency_s=time.perf_counter() - started,
            model=f"mutation(seed={self.seed})",
            finish_reason="stop",
        )

    def propose(
        self, messages: Sequence[Message] = (), hints: Mapping[str, Any] | None = None
    ) -> str:
        """The reply text for one proposal (synchronous core of `complete`)."""
        active, others, target = _inputs(messages, hints or {})
        site, name = _locate(active, target)
        donors: list[list[ast.stmt]] = []
        for other in others:
            try:
                donors.append(_locate(other, name)[0].body)
            except ModelError:
                continue  # a revision without the function cannot be a parent
        for known in (site.body, *donors):  # never propose a revision it was shown
            self._seen.add(_body_key(name, known))
        for avoided in (hints or {}).get("avoid") or ():  # e.g. revisions rejected in earlier runs
            try:
                self._seen.add(_body_key(name, _locate(avoided, name)[0].body))
            except (ModelError, SyntaxError, ValueError, TypeError):
                continue

        mutator = _Mutator(self._rng, donors)
        weights = [(KINDS[k], k, k) for k in self.kinds if k != "crossover" or donors]
        if not weights:
            return self._give_up(
                name, "no mutation kind applies (crossover needs a second revision)"
            )
        for attempt in range(self.max_tries):
            # Mostly one change; more as the near neighbourhood gets used up.
            count = 1 + (self._rng.random() < 0.2) + attempt // 60
            body = copy.deepcopy(site.body)
            notes: list[str] = []
            for _ in range(count):
                for _retry in range(6):  # a kind may not apply to this body: pick another
                    kind, _ = _weighted(self._rng, weights)
                    note = getattr(mutator, kind)(body)
                    if note:
                        notes.append(note)
                        break
            if not notes or not body:
                continue
            try:
                key = _body_key(name, body)
            except (SyntaxError, ValueError):
                continue
            if key in self._seen:
                continue
            self._seen.add(key)  # also when it fails to compile: no point trying it again
            code = site.render(body)
            try:
                compile(code, f"<mutation of {name}>", "exec")
            except (SyntaxError, ValueError):
                continue
            self.proposals += 1
            summary = "; ".join(notes)
            return (
                f"Variant {self.proposals} of `{name}` (offline mutation, seed {self.seed}): "
                f"{summary}.\n\n```python\n{code.strip()}\n```\n"
            )
        return self._give_up(name, f"{self.max_tries} tries gave only variants already proposed")

    def _give_up(self, name: str, why: str) -> str:
        return f"I could not produce a new variant of `{name}`: {why}. No code this time."


def _inputs(
    messages: Sequence[Message], hints: Mapping[str, Any]
) -> tuple[str, list[str], str | None]:
    """(active source, other sources, target name) from the hints, else from the messages."""
    target = hints.get("target")
    if target is not None and not isinstance(target, str):
        raise ModelError(f"MutationModel: hints['target'] must be a function name, not {target!r}")
    sources = hints.get("sources")
    if sources:
        if isinstance(sources, str) or not all(isinstance(s, str) for s in sources):
            raise ModelError("MutationModel: hints['sources'] must be a list of source texts")
        return sources[0], list(sources[1:]), target
    blocks = _blocks_with_functions(messages, target)
    if not blocks:
        raise ModelError(
            "MutationModel: nothing to mutate — no hints['sources'] and no ```python block "
            "defining a function in the messages"
        )
    active, name = blocks[0]
    others = [b for b, n in blocks[1:] if n == name and b != active]
    return active, others, target or name


def _blocks_with_functions(
    messages: Sequence[Message], target: str | None
) -> list[tuple[str, str]]:
    """Fenced blocks that define a function, newest first; the prompt's own blocks (user and
    system messages) come before the model's earlier replies."""
    found: list[tuple[int, str, str]] = []
    for m in reversed(messages):
        content = m.get("content")
        if not isinstance(content, str):
            continue
        rank = 1 if m.get("role") == "assistant" else 0
        for block in reversed(_FENCE.findall(content)):
            try:
                tree = pyast.parse(block)
            except SyntaxError:
                continue
            names = [
                n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            ]
            if target is not None:
                names = [n for n in names if n == target]
            if names:
                found.append((rank, block, names[-1]))
    found.sort(key=lambda t: t[0])  # stable: newest first within each rank
    return [(b, n) for _, b, n in found]
