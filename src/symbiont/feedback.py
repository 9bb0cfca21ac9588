"""Prompts for the evolve loop: the first request and one corrective message per failure kind.

Every template is a plain string with `str.format` fields, collected in `TEMPLATES` so
`symbiont prompts` can show users exactly what the model is told.
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING

from symbiont.diagnostics import Diagnostic
from symbiont.pipeline.compile import original_names

if TYPE_CHECKING:
    from symbiont.pipeline.policy import Policy

SYSTEM = """\
You write the body of one Python function that lives inside a running program.
Rules:
- Reply with exactly one ```python fenced block containing the complete function. Start it
  with the function's `def` line and docstring exactly as you are given them (same
  parameters, defaults, annotations, quotes and indentation), followed by the new body.
- You may add small helper functions, classes or constants in the same block, above the
  function. Do not redefine names the module already has.
- Your code may use Python's builtins and the names listed as available; nothing else of the
  program is yours to use. Do not write tests, a `main` function, checks, or calls of the
  function itself.
- Do not import {denied_imports}.
- Do not use {denied_names}.
- Use only the standard library and the modules the program already imports.
- Keep the code typed and deterministic. No prose is needed outside the code block."""

TASK = """\
{prompt}

Write the function `{name}`.
Your reply starts with these lines, exactly as shown:
```python
{head}
```
{active}{context}{failures}
Reply with the complete function `{name}` in one ```python block."""

CONTEXT = """
Names of the program your code may use besides Python's builtins (values are not shown):
{names}
"""

EXPLICIT_CONTEXT = """
Context given for this task:
{context}
"""

ACTIVE = """
The active revision (r{number}{score}):
```python
{source}
```
{artifacts}"""

ARTIFACTS = "What the metric reports about it:\n{lines}\n"

WRITE_AFRESH = """Your last functions fail exactly as the active revision does ({failure}):
editing it does not fix it. Write `{name}` afresh from its docstring and the task, without
copying the old body.

Send the complete function `{name}` in one ```python block, starting exactly with:
```python
{def_line}
```"""

ACTIVE_FAILS = """
The active revision (r{number}) does not pass the check; your function must:
{failure}
"""

LIVE_FAILURES = """
Since the last evolution, the live function raised these exceptions; fix their cause:
{failures}
"""

# Shown where a prompt was shortened to fit its size cap.
TRUNCATED = "[... {cut} characters cut: this prompt is limited to {cap} characters]"

# Corrective messages, by diagnostic stage or kind. `{diagnostics}` is the rendered list.
CORRECTIONS: dict[str, str] = {
    "extract": ("I could not find Python code in your reply. {diagnostics}"),
    "parse": (
        "Your code is not valid Python:\n{diagnostics}\n"
        "Fix the syntax (check the indentation of every line)."
    ),
    "signature": (
        "Your function does not match the declared signature:\n{diagnostics}\n"
        "Keep the `def` line exactly as declared."
    ),
    "policy": (
        "Your code uses something this program does not allow:\n{diagnostics}\n"
        "Rewrite it without these imports or names."
    ),
    "missing_module": (
        "Your code imports a module that is not installed where it runs:\n{diagnostics}\n"
        "Write it with the standard library and the modules the program already imports."
    ),
    "typecheck": (
        "The type checker found errors in your code, checked inside its module:\n"
        "{diagnostics}\nFix the types."
    ),
    "compile": (
        "Your code could not be installed in place of the declared function:\n"
        "{diagnostics}\nWrite a plain top-level function with that signature."
    ),
    "native": (
        "Numba could not compile your function to machine code (nopython mode, with the "
        "declared argument types):\n{diagnostics}\nRewrite that line with what Numba supports."
    ),
    "exception": (
        "Your function raised an exception when it was tried:\n{diagnostics}\n"
        "Fix the cause (do not just catch and hide it)."
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
        "Your function ran out of memory when it was tried:\n{diagnostics}\nUse far less memory."
    ),
    "recursion": (
        "Your function recursed without end:\n{diagnostics}\n"
        "Make sure the recursion has a base case, or use a loop."
    ),
    "exit": (
        "Your function tried to exit the process:\n{diagnostics}\n"
        "Never call exit(); return a value instead."
    ),
    "invalid_result": ("Your function's result could not be evaluated:\n{diagnostics}"),
    "check_failed": (
        "Your function runs, but it does not do what is required:\n{diagnostics}\n"
        "Fix the behaviour."
    ),
    "worse_score": (
        "Your function works but scores {score} ({direction}), {compared} the active "
        "revision's {active_score}.\n{diagnostics}\nTry a different idea that scores better."
    ),
    "promote": ("Your function could not be swapped in:\n{diagnostics}"),
    "repeat": (
        "You sent a function that was already tried and rejected. Do not repeat it: try a "
        "clearly different approach.\n{diagnostics}"
    ),
}

# Ends every correction, so the model is always told again which function to write.
RESTATE = (
    "\n\nSend the complete function `{name}` again in one ```python block, starting exactly "
    "with:\n```python\n{def_line}\n```"
)

ACCEPTED = (
    "That revision was accepted (score {score}). Improve it further if you can: send a new "
    "complete function.{artifacts}"
)

MAX_ARTIFACTS = 8  # entries of a metric's artifacts a prompt shows
MAX_ARTIFACT_CHARS = 300  # of each entry's value


def artifact_lines(artifacts: Mapping[str, object] | None) -> str:
    """A metric's artifacts as `name: value` lines, bounded (the first `MAX_ARTIFACTS`
    entries, each value cut at `MAX_ARTIFACT_CHARS`); empty when there are none. They are
    what the metric's author chose to tell about a revision ("worst point: ..."), so
    prompts show them as the metric wrote them."""
    lines = []
    for key, value in list((artifacts or {}).items())[:MAX_ARTIFACTS]:
        text = str(value).strip()
        if len(text) > MAX_ARTIFACT_CHARS:
            text = text[: MAX_ARTIFACT_CHARS - 1] + "…"
        lines.append(f"{key}: " + text.replace("\n", "\n  "))
    return "\n".join(lines)


def active_artifacts(artifacts: Mapping[str, object] | None) -> str:
    """The part of the task message that shows the active revision's artifacts."""
    lines = artifact_lines(artifacts)
    return ARTIFACTS.format(lines=lines) if lines else ""


def accepted(score: float | None, artifacts: Mapping[str, object] | None) -> str:
    """The message after an accepted revision: its score and what the metric said of it."""
    lines = artifact_lines(artifacts)
    return ACCEPTED.format(
        score=score, artifacts=f" What the metric reports about it:\n{lines}" if lines else ""
    )


TEMPLATES: dict[str, str] = {
    "system": SYSTEM,
    "task": TASK,
    "context": CONTEXT,
    "explicit_context": EXPLICIT_CONTEXT,
    "truncated": TRUNCATED,
    "restate": RESTATE,
    "live_failures": LIVE_FAILURES,
    "accepted": ACCEPTED,
    **{f"correction.{k}": v for k, v in CORRECTIONS.items()},
}


def write_afresh(failure: Diagnostic, *, name: str, def_line: str) -> str:
    """The note after edits of the active revision kept failing exactly as it does."""
    return WRITE_AFRESH.format(failure=failure.message, name=name, def_line=def_line)


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
    """The corrective message for a rejected candidate (at most `limit` diagnostics).

    `def_line` is what the model must start its next reply with: the `def` line, or better
    the function's head as the first prompt showed it (`symbiont.prompting.function_head`).
    Every correction ends by restating it. Tracebacks from the trial and the check keep the
    candidate's own frames only: the program's checker is not the model's to read or copy.
    """
    shown = [_candidate_only(d) for d in list(diagnostics)[:limit]]
    # Per-revision helper names (`_helper__sym_1a2b3c4d`) are shown as the model wrote them.
    rendered = original_names("\n\n".join(d.render() for d in shown))
    if len(diagnostics) > limit:
        rendered += f"\n\n(and {len(diagnostics) - limit} more)"
    fields = {
        "diagnostics": rendered,
        "name": name,
        "def_line": def_line,
        "timeout_s": timeout_s,
        "score": _fmt(score),
        "active_score": _fmt(active_score),
        "direction": direction,
        # a tie is not better, and a model told "worse" about its equal score tries to undo
        # a change that did no harm
        "compared": "the same as" if score is not None and score == active_score else "worse than",
    }
    return CORRECTIONS[correction_key(diagnostics)].format(**fields) + RESTATE.format(**fields)


def system_prompt(policy: Policy | None = None) -> str:
    """The system message, naming what `policy` (default: the default policy) denies."""
    from symbiont.pipeline.policy import DEFAULT_POLICY

    chosen = policy if policy is not None else DEFAULT_POLICY
    # The default policy's entries first: a long list is cut, and they are the usual ones.
    imports = sorted(
        chosen.denied_imports, key=lambda m: (m not in DEFAULT_POLICY.denied_imports, m)
    )
    names = sorted(chosen.denied_names, key=lambda n: (n not in DEFAULT_POLICY.denied_names, n))
    text = SYSTEM.format(
        denied_imports=_or_list(imports) or "modules the program lacks",
        denied_names=_or_list(names) or "nothing outside Python",
    )
    # The policy's lists make long lines; wrap them like the rest of the rules.
    return "\n".join(
        textwrap.fill(line, 92, subsequent_indent="  ", break_on_hyphens=False)
        for line in text.splitlines()
    )


# The file name prefix of a candidate's code (see symbiont.pipeline.compile.pseudo_filename).
CANDIDATE_FILE_PREFIX = "<symbiont"
_FRAME_START = '  File "'
_FRAME = re.compile(r'^  File "(?P<file>.*)", line \d+, in (?P<function>.+)$')


def candidate_frames_only(
    detail: str,
    prefix: str = CANDIDATE_FILE_PREFIX,
    *,
    functions: Collection[tuple[str, str]] = (),
) -> str:
    """`detail` with every traceback frame outside the candidate's code removed.

    Kept are frames in files whose name starts with `prefix` (a candidate's pseudo file) and
    frames of the (file, function) pairs in `functions` (say, the declared body in its
    module). A frame is its `  File "...", line N, in f` line and the deeper-indented lines
    under it (source line, carets). A "Traceback" header left with no frame is dropped; the
    exception lines and anything else (output tails) stay as they are.
    """
    out: list[str] = []
    header: int | None = None  # index in `out` of the current traceback's header
    frames_kept = 0
    in_traceback = keep = False
    for line in detail.splitlines():
        if line.startswith("Traceback (most recent call last"):
            in_traceback, header, frames_kept = True, len(out), 0
            out.append(line)
            continue
        if in_traceback and line.startswith(_FRAME_START):
            frame = _FRAME.match(line)
            keep = line[len(_FRAME_START) :].startswith(prefix) or (
                frame is not None and (frame["file"], frame["function"]) in functions
            )
            frames_kept += keep
            if keep:
                out.append(line)
            continue
        if in_traceback and line.startswith("  "):  # under a frame, or "[... repeated]"
            if keep:
                out.append(line)
            continue
        if in_traceback:  # the exception line: the traceback is over
            in_traceback = False
            if header is not None and frames_kept == 0:
                del out[header]
            header = None
        out.append(line)
    if in_traceback and header is not None and frames_kept == 0:
        del out[header]
    return "\n".join(out)


def _candidate_only(diagnostic: Diagnostic) -> Diagnostic:
    if diagnostic.stage not in ("trial", "evaluate") or not diagnostic.detail:
        return diagnostic
    detail = candidate_frames_only(diagnostic.detail).rstrip()
    # With no frame of the candidate's left, the exception's own lines at the end only
    # repeat the message (after a failed check's "where it returned" lines, say).
    message = diagnostic.message.strip()
    if message and detail.endswith(message) and "Traceback (" not in detail:
        detail = detail[: -len(message)].rstrip()
    return dataclasses.replace(diagnostic, detail=detail or None)


def _or_list(items: Sequence[str], limit: int = 24) -> str:
    """`a`, `b` or `c`; past `limit` items, the rest are counted (the prompt stays small)."""
    quoted = [f"`{i}`" for i in items[:limit]]
    if len(items) > limit:
        quoted.append(f"{len(items) - limit} more that the policy denies")
    if len(quoted) <= 1:
        return "".join(quoted)
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.6g}"
