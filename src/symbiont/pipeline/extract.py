"""Stage 1, extract: find the candidate's code in a model's reply.

Models answer in many shapes: one ```python block with prose around it, several blocks (a
helper, the function, a usage example), a bare ``` fence, a fence that is never closed, or
just code. `extract_code` returns the source of the block that defines the target, preceded
by any other blocks that only define helpers (imports, functions, classes, constants); usage
examples and shell snippets are dropped. It raises `StageError` with an `extract/no_code`
diagnostic when the reply holds no code at all, saying exactly what to send instead.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass

from symbiont import pyast
from symbiont.diagnostics import Diagnostic
from symbiont.errors import StageError

PYTHON_TAGS = frozenset({"", "python", "py", "python3", "py3", "pycon", "ipython", "python-repl"})
_FENCE = re.compile(r"^(?P<indent>[ \t]{0,3})(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$")
_THINK = re.compile(r"<(think|thinking|reasoning)>.*?</\1>", re.DOTALL | re.IGNORECASE)
_STATEMENT_START = re.compile(
    r"^(?:@|#|def\s|async\s+def\s|class\s|import\s|from\s+\S+\s+import\s|if\s|elif\s|else\s*:"
    r"|for\s|while\s|try\s*:|except\b|finally\s*:|with\s|return\b|raise\b|yield\b|pass\b"
    r"|assert\s|global\s|nonlocal\s|del\s|\"\"\"|''')"
)
_ASSIGNMENT = re.compile(r"^[A-Za-z_][\w.]*(?:\[[^\]]*\])?\s*(?::[^=]+)?(?:=|\+=|-=|\*=|/=)(?!=)")
_CALL = re.compile(r"^[A-Za-z_][\w.]*\(.*\)\s*$")
_HELPER_STATEMENTS = (
    ast.Import,
    ast.ImportFrom,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Assign,
    ast.AnnAssign,
)


@dataclass(frozen=True, slots=True)
class CodeBlock:
    """One fenced block of a reply: its info string, its text and where it starts."""

    info: str
    text: str
    line: int  # 1-based line of the reply where the block's text starts
    closed: bool


def fenced_blocks(reply: str) -> list[CodeBlock]:
    """All fenced blocks (``` or ~~~) of a Markdown reply; an unclosed fence runs to the end."""
    lines = reply.split("\n")
    blocks: list[CodeBlock] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        fence, info = m.group("fence"), m.group("info").strip().lower()
        body: list[str] = []
        j = i + 1
        closed = False
        while j < len(lines):
            stripped = lines[j].strip()
            if stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0]):
                closed = True
                break
            body.append(lines[j])
            j += 1
        blocks.append(CodeBlock(info.split()[0] if info else "", "\n".join(body), i + 2, closed))
        i = j + 1
    return blocks


def defines(source: str, name: str) -> bool:
    """Whether `source` has a top-level-looking `def name(` (by text: it may not parse yet)."""
    return (
        re.search(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(name)}[ \t]*\(", source, re.M)
        is not None
    )


def _is_helper_block(text: str, target_name: str) -> bool:
    """A block worth keeping next to the target: it parses and only defines things."""
    try:
        tree = pyast.parse(text)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    if not tree.body or not all(isinstance(s, _HELPER_STATEMENTS) for s in tree.body):
        return False
    return not any(isinstance(n, ast.Name) and n.id == target_name for n in ast.walk(tree))


def _looks_like_code(line: str) -> bool:
    s = line.strip()
    if not s:
        return True
    return bool(_STATEMENT_START.match(s) or _ASSIGNMENT.match(s) or _CALL.match(s))


def _unfenced_code(reply: str, target_name: str) -> str | None:
    """Code in a reply without fences: the whole reply if it parses, else the region around
    `def target` (lines that look like code, plus the indented body)."""
    text = reply.strip("\n")
    if not text.strip():
        return None
    try:
        tree = pyast.parse(textwrap.dedent(text))
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        tree = None
    if tree is not None and tree.body and not _is_prose_tree(tree):
        return textwrap.dedent(text)
    lines = text.split("\n")
    start = next(
        (i for i, ln in enumerate(lines) if defines(ln, target_name)),
        next(
            (i for i, ln in enumerate(lines) if re.match(r"^\s*(async\s+)?def\s+\w+\s*\(", ln)),
            None,
        ),
    )
    if start is None:
        return None
    indent = len(lines[start]) - len(lines[start].lstrip())
    first = start
    while first > 0 and lines[first - 1].strip() and _looks_like_code(lines[first - 1]):
        first -= 1
    last = start
    for j in range(start + 1, len(lines)):
        ln = lines[j]
        width = len(ln) - len(ln.lstrip())
        if not ln.strip() or width > indent or (width == indent and _looks_like_code(ln)):
            last = j
        else:
            break
    while last > start and not lines[last].strip():
        last -= 1
    return textwrap.dedent("\n".join(lines[first : last + 1]))


def _is_prose_tree(tree: ast.Module) -> bool:
    """A "program" that is really a sentence: bare names or constants only (`Sure`, `"ok"`)."""
    return all(
        isinstance(s, ast.Expr) and isinstance(s.value, ast.Name | ast.Constant) for s in tree.body
    )


def no_code_diagnostic(target_name: str, def_line: str | None = None) -> Diagnostic:
    expected = f"`{def_line}`" if def_line else f"`def {target_name}(...)`"
    return Diagnostic(
        "extract",
        "no_code",
        "your reply contains no Python code. Send the complete function "
        f"{expected} with its body inside one ```python fenced block.",
    )


def normalise_reply(reply: str) -> str:
    """Line endings, a BOM and reasoning sections (<think>...</think>) removed."""
    text = reply.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    text = _THINK.sub("", text)
    # an unclosed <think> swallows the rest only if no fence follows it
    open_think = re.search(r"<(think|thinking|reasoning)>", text, re.IGNORECASE)
    if open_think and "```" not in text[open_think.end() :]:
        text = text[: open_think.start()]
    return text


def extract_code(reply: str, target_name: str, *, def_line: str | None = None) -> str:
    """The candidate source in `reply` (target block, with helper-only blocks before it).

    Raises `StageError` with one `extract/no_code` diagnostic when there is no code.
    `def_line` (the declared `def` line) makes that diagnostic quote what to send.
    """
    text = normalise_reply(reply)
    blocks = fenced_blocks(text)
    python = [b for b in blocks if b.info in PYTHON_TAGS and b.text.strip()]
    others = [b for b in blocks if b.info not in PYTHON_TAGS and b.text.strip()]
    pool = python or [b for b in others if defines(b.text, target_name)]
    if pool:
        defining = [b for b in pool if defines(b.text, target_name)]
        chosen = defining[-1] if defining else pool[0]
        parts = [
            textwrap.dedent(b.text).strip("\n")
            for b in pool
            if b is not chosen
            and not defines(b.text, target_name)
            and _is_helper_block(textwrap.dedent(b.text), target_name)
        ]
        parts.append(textwrap.dedent(chosen.text).strip("\n"))
        return "\n\n\n".join(parts) + "\n"
    code = _unfenced_code(text if not blocks else _strip_fences(text), target_name)
    if code is None or not code.strip():
        raise StageError([no_code_diagnostic(target_name, def_line)])
    return code.strip("\n") + "\n"


def _strip_fences(text: str) -> str:
    return "\n".join(ln for ln in text.split("\n") if _FENCE.match(ln) is None)
