"""Example usage a model appends after the function: removed before the policy stage.

Asked for one function, a small model often adds a demonstration below it, the way code
in tutorials ends::

    def predict(x: float) -> float:
        ...

    # Example usage:
    DATA = [(0.5, 2.3), (1.0, 4.0)]
    print(predict(0))
    assert step({"counter": 0}) == 1

None of that is part of the answer, and at the module level it would run when the
candidate is installed, so the policy stage refuses it (`policy/module_level`). With
Qwen2.5-Coder-0.5B that refusal did not teach: it sent the same demonstration again with
the next function, attempt after attempt, and good functions were lost with it. So the
statements that follow the target function and only *use* things — functions and classes
nothing that stays calls (a `main()`, a `test_...()`), expression statements
(calls, prints), `assert`, `if`/`for`/`while`/`with`/`try`/`match` blocks (`if __name__ ==
"__main__":` among them), `del`, `raise`, augmented assignments, assignments that rebind a
name the module already has, and assignments whose names nothing that stays reads — are
cut from the candidate before the policy stage sees it.

What stays is judged as before: definitions, imports, new constants, and anything *above*
the target function (code there is not a demonstration; the policy stage decides) except
example data that rebinds a name the program already has (`DATA = [(1.0, 2.0), ...]`),
which would be refused anyway and which the function is meant to read from the program. Cutting
only ever removes code, so nothing the policy would refuse can get in this way. A statement
sharing a line with one that stays (`x = 1; print(x)`) is left alone, and so the policy
refuses it. Capabilities are not touched: their module is theirs and runs in the sandbox.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

_USAGE_STATEMENTS = (
    ast.Expr,
    ast.Assert,
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.With,
    ast.AsyncWith,
    ast.Try,
    ast.TryStar,
    ast.Match,
    ast.Delete,
    ast.Raise,
    ast.AugAssign,
)


def _names_bound(target: ast.expr) -> list[str]:
    return [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]


def _calls(node: ast.AST, name: str) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name
        for n in ast.walk(node)
    )


def _is_usage(
    stmt: ast.stmt, module_globals: Mapping[str, Any], used: set[str], target: str
) -> bool:
    """`used`: the names the code that stays reads (a constant or helper it needs stays);
    `target`: the function asked for (a value computed by calling it is a demonstration)."""
    if isinstance(stmt, _USAGE_STATEMENTS):
        return True
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return stmt.name not in used  # a `main()` or test function nothing calls but the demo
    if isinstance(stmt, ast.Assign | ast.AnnAssign):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        if any(not isinstance(t, ast.Name | ast.Tuple | ast.List) for t in targets):
            return True  # `DATA[0] = ...`, `obj.x = ...`: stores into something
        names = [name for t in targets for name in _names_bound(t)]
        if any(name in module_globals for name in names):
            return True  # rebinds the program's own name (`DATA = [...]` as an example)
        if stmt.value is not None and _calls(stmt.value, target):
            return True  # `slope, intercept = predict(2.1)`: the function tried out
        # a value the code that stays needs, however it is made, stays (the policy judges
        # it); one nothing reads but the demonstration goes with it
        return not any(name in used for name in names)
    return False


def _names_read(stmts: list[ast.stmt]) -> set[str]:
    return {
        n.id
        for s in stmts
        for n in ast.walk(s)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }


def _first_line(stmt: ast.stmt) -> int:
    decorators = getattr(stmt, "decorator_list", None) or []
    return min([stmt.lineno, *(d.lineno for d in decorators)])


def _rebinds_program_data(
    stmt: ast.stmt, module_globals: Mapping[str, Any], owned: frozenset[str]
) -> bool:
    """`DATA = [(1.0, 2.0), ...]` above the function: example data (a list, tuple, dict or
    set written out) for a name the program already has and no earlier revision of this
    function installed. A scalar (`SCALE = 4`) reads as a change the model means to make,
    so it stays, and the compile stage says why it cannot be made that way."""
    if not isinstance(stmt, ast.Assign | ast.AnnAssign):
        return False
    if not isinstance(stmt.value, ast.List | ast.Tuple | ast.Dict | ast.Set):
        return False
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
    return all(
        isinstance(t, ast.Name) and t.id in module_globals and t.id not in owned for t in targets
    )


def drop_trailing_usage(
    tree: ast.Module,
    source: str,
    target_name: str,
    module_globals: Mapping[str, Any],
    owned: frozenset[str] = frozenset(),
) -> tuple[str, list[int]] | None:
    """`source` without the usage statements after the function `target_name` (and the
    example data above it that rebinds the program's own names), and the line numbers
    removed; None when there is nothing to remove (or it cannot be removed cleanly).

    `owned`: module names earlier revisions' helpers installed, which a candidate may bind
    again (see `Target.owned_names`)."""
    body = tree.body
    index = next(
        (
            i
            for i, stmt in enumerate(body)
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) and stmt.name == target_name
        ),
        None,
    )
    if index is None:
        return None
    after = body[index + 1 :]
    # above the function only example data goes: binding the program's own names is
    # refused anyway (compile/overwrite), and the function is meant to use the real ones
    example_data = [s for s in body[:index] if _rebinds_program_data(s, module_globals, owned)]
    if not after and not example_data:
        return None  # the usual case: nothing follows the function
    # what stays: everything up to the function, then whatever is not usage; a name read by
    # anything that stays is needed (to a fixed point: `B = A + 1` kept keeps `A`)
    used: set[str] = set()
    while True:
        usage = example_data + [s for s in after if _is_usage(s, module_globals, used, target_name)]
        staying = [s for s in body if not any(s is u for u in usage)]
        now = _names_read(staying)
        if now <= used:
            break
        used |= now
    if not usage:
        return None
    kept = staying
    kept_lines = {n for s in kept for n in range(_first_line(s), (s.end_lineno or s.lineno) + 1)}
    cut = {n for s in usage for n in range(_first_line(s), (s.end_lineno or s.lineno) + 1)}
    if cut & kept_lines:
        return None  # shares a line with code that stays
    lines = source.splitlines(keepends=True)
    end_of_target = body[index].end_lineno or body[index].lineno
    # comments below the function that introduce the removed code (`# Example usage:`) go too
    for number in range(end_of_target + 1, len(lines) + 1):
        if number not in kept_lines and lines[number - 1].lstrip().startswith("#"):
            cut.add(number)
    text = "".join(line for n, line in enumerate(lines, 1) if n not in cut)
    return text.rstrip("\n") + "\n", sorted(cut)
