"""Diagnostics: what went wrong with a candidate, in words a model (and a person) can act on.

Every pipeline stage, the trial runner and the evaluator report failures as `Diagnostic`
objects. The same object is shown in the CLI and rendered into the next prompt, so a message
should say what is wrong *and* what to do about it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Stage = Literal[
    "model",  # the model call itself (no reply, refused, repeated itself)
    "extract",  # finding code in the reply
    "parse",  # Python syntax
    "signature",  # the declared signature
    "policy",  # denied imports and names
    "typecheck",  # static type check in the module's context
    "compile",  # building a code object that can replace the declared one
    "trial",  # running the candidate in isolation (exceptions, timeouts, crashes)
    "evaluate",  # the check or metric said no (failed check, worse score)
    "promote",  # swapping the code into the live function
]

STAGES: tuple[str, ...] = (
    "model",
    "extract",
    "parse",
    "signature",
    "policy",
    "typecheck",
    "compile",
    "trial",
    "evaluate",
    "promote",
)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in a candidate.

    `line` and `col` are 1-based and relative to the candidate's own source (not the module
    it is checked in). `excerpt` is a ready-rendered source excerpt with a caret line under
    the offending text; `detail` holds longer text such as a trimmed traceback.
    """

    stage: str
    kind: str
    message: str
    line: int | None = None
    col: int | None = None
    excerpt: str | None = None
    detail: str | None = None

    def render(self) -> str:
        """Render for a prompt or a terminal: one header line, then excerpt and detail."""
        where = ""
        if self.line is not None:
            where = f" (line {self.line}" + (f", column {self.col})" if self.col else ")")
        parts = [f"[{self.stage}/{self.kind}]{where} {self.message}"]
        if self.excerpt:
            parts.append(self.excerpt.rstrip("\n"))
        if self.detail:
            parts.append(self.detail.rstrip("\n"))
        return "\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Diagnostic:
        return cls(
            stage=str(data["stage"]),
            kind=str(data["kind"]),
            message=str(data["message"]),
            line=data.get("line"),
            col=data.get("col"),
            excerpt=data.get("excerpt"),
            detail=data.get("detail"),
        )


def caret_excerpt(
    source: str, line: int, col: int | None = None, end_col: int | None = None, context: int = 1
) -> str:
    """Return the lines around `line` (1-based) with a caret line under columns col..end_col.

    Columns are 1-based; `end_col` is exclusive. Out-of-range positions are clamped so the
    function never raises on odd input (it is fed positions reported by other tools).
    """
    lines = source.splitlines() or [""]
    line = min(max(line, 1), len(lines))
    first = max(1, line - context)
    width = len(str(line))
    out: list[str] = []
    for n in range(first, line + 1):
        out.append(f"{n:>{width}} | {lines[n - 1]}")
    if col is not None:
        text = lines[line - 1]
        start = min(max(col, 1), len(text) + 1)
        stop = end_col if end_col is not None and end_col > start else start + 1
        stop = min(stop, max(len(text) + 1, start + 1))
        out.append(f"{' ' * width} | {' ' * (start - 1)}{'^' * (stop - start)}")
    return "\n".join(out)


def render_all(diagnostics: list[Diagnostic] | tuple[Diagnostic, ...]) -> str:
    return "\n\n".join(d.render() for d in diagnostics)
