"""Prompts for the evolve loop: the first request and one corrective message per failure kind.

Every template is a plain string with `str.format` fields, collected in `TEMPLATES` so
`symbiont prompts` can show users exactly what the model is told.
"""

from __future__ import annotations

from collections.abc import Sequence

from symbiont.diagnostics import Diagnostic

SYSTEM = """\
You write the body of one Python function that lives inside a running program.
Rules:
- Reply with exactly one ```python fenced block containing the complete function: the `def`
  line must match the declared signature exactly (same name, parameters, defaults and
  annotations), followed by the new body.
- You may add small helper functions, classes or constants in the same block, above the
  function. Do not redefine names the module already has.
- The module's globals (its imports, helpers, types and constants) are available to you.
- Do not use os, sys, subprocess, socket, ctypes, importlib, threading, multiprocessing,
  signal, shutil, eval, exec, compile, open, __import__, globals or breakpoint.
- Keep the code typed and deterministic. No prose is needed outside the code block."""

TASK = """\
{prompt}

The function to implement (module `{module}`):
```python
{signature}
```

{context}The active revision (r{active_number}{active_score}):
```python
{active_source}
```
{failures}
Reply with the complete function in one ```python block."""

CONTEXT = """\
Names the module defines that your code may use:
{names}

"""

LIVE_FAILURES = """
Since the last evolution, the live function raised these exceptions; fix their cause:
{failures}
"""

# Corrective messages, by diagnostic stage or kind. `{diagnostics}` is the rendered list.
CORRECTIONS: dict[str, str] = {
    "extract": (
        "I could not find Python code in your reply. {diagnostics}\n"
        "Reply with the complete function `{name}` inside one ```python fenced block."
    ),
    "parse": (
        "Your code is not valid Python:\n{diagnostics}\n"
        "Fix the syntax and send the whole function again."
    ),
    "signature": (
        "Your function does not match the declared signature:\n{diagnostics}\n"
        "The `def` line must be exactly:\n```python\n{def_line}\n```"
    ),
    "policy": (
        "Your code uses something this program does not allow:\n{diagnostics}\n"
        "Rewrite it without these imports or names."
    ),
    "typecheck": (
        "The type checker found errors in your code, checked inside its module:\n"
        "{diagnostics}\nFix the types and send the whole function again."
    ),
    "compile": (
        "Your code could not be installed in place of the declared function:\n"
        "{diagnostics}\nSend a plain top-level function with that signature."
    ),
    "exception": (
        "Your function raised an exception when it was tried:\n{diagnostics}\n"
        "Fix the cause (do not just catch and hide it) and send the whole function again."
    ),
    "timeout": (
        "Your function did not finish within {timeout_s:g} s when it was tried (it was "
        "stopped):\n{diagnostics}\nLook for endless loops or very slow algorithms."
    ),
    "crash": (
        "The process running your function crashed:\n{diagnostics}\n"
        "Avoid whatever could crash the interpreter."
    ),
    "memory": (
        "Your function ran out of memory when it was tried:\n{diagnostics}\n"
        "Use far less memory."
    ),
    "recursion": (
        "Your function recursed without end:\n{diagnostics}\n"
        "Make sure the recursion has a base case, or use a loop."
    ),
    "exit": (
        "Your function tried to exit the process:\n{diagnostics}\n"
        "Never call exit(); return a value instead."
    ),
    "invalid_result": (
        "Your function's result could not be evaluated:\n{diagnostics}\n"
    ),
    "check_failed": (
        "Your function runs, but it does not do what is required:\n{diagnostics}\n"
        "Fix the behaviour and send the whole function again."
    ),
    "worse_score": (
        "Your function works but scores {score} ({direction}), worse than the active "
        "revision's {active_score}.\n{diagnostics}\nTry a different idea that scores better."
    ),
    "promote": ("Your function could not be swapped in:\n{diagnostics}\n"),
    "repeat": (
        "You sent a function that was already tried and rejected. Do not repeat it: try a "
        "clearly different approach.\n{diagnostics}"
    ),
}

ACCEPTED = (
    "That revision was accepted (score {score}). Improve it further if you can: send a new "
    "complete function."
)

TEMPLATES: dict[str, str] = {
    "system": SYSTEM,
    "task": TASK,
    "context": CONTEXT,
    "live_failures": LIVE_FAILURES,
    "accepted": ACCEPTED,
    **{f"correction.{k}": v for k, v in CORRECTIONS.items()},
}


def correction_key(diagnostics: Sequence[Diagnostic]) -> str:
    """Which corrective template applies to a rejected candidate."""
    if not diagnostics:
        return "exception"
    first = diagnostics[0]
    if first.kind in CORRECTIONS:
        return first.kind
    if first.stage in ("trial", "evaluate"):
        return "exception"
    return first.stage if first.stage in CORRECTIONS else "exception"


def correction(
    diagnostics: Sequence[Diagnostic],
    *,
    name: str,
    def_line: str,
    timeout_s: float = 0.0,
    score: float | None = None,
    active_score: float | None = None,
    direction: str = "maximize",
    limit: int = 6,
) -> str:
    """The corrective message for a rejected candidate (at most `limit` diagnostics)."""
    shown = list(diagnostics)[:limit]
    rendered = "\n\n".join(d.render() for d in shown)
    if len(diagnostics) > limit:
        rendered += f"\n\n(and {len(diagnostics) - limit} more)"
    return CORRECTIONS[correction_key(diagnostics)].format(
        diagnostics=rendered,
        name=name,
        def_line=def_line,
        timeout_s=timeout_s,
        score=_fmt(score),
        active_score=_fmt(active_score),
        direction=direction,
    )


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.6g}"
