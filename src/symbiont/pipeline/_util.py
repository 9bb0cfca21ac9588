"""Small helpers shared by the pipeline stages: positions and excerpts."""

from __future__ import annotations

import ast

from symbiont.diagnostics import Diagnostic, caret_excerpt


def char_col(source_lines: list[str], lineno: int, byte_offset: int | None) -> int | None:
    """1-based character column of a 0-based UTF-8 byte offset (what `ast` reports)."""
    if byte_offset is None:
        return None
    if not 1 <= lineno <= len(source_lines):
        return byte_offset + 1
    raw = source_lines[lineno - 1].encode("utf-8")
    return len(raw[:byte_offset].decode("utf-8", errors="replace")) + 1


def node_diagnostic(
    stage: str,
    kind: str,
    message: str,
    source: str,
    node: ast.AST | None,
    *,
    detail: str | None = None,
    lines: list[str] | None = None,
) -> Diagnostic:
    """A diagnostic pointing at `node` (line, column and a caret under its first line)."""
    if node is None or not hasattr(node, "lineno"):
        return Diagnostic(stage, kind, message, detail=detail)
    lines = lines if lines is not None else source.splitlines()
    line = int(node.lineno)
    col = char_col(lines, line, getattr(node, "col_offset", None))
    end_col: int | None = None
    if getattr(node, "end_lineno", None) == line:
        end_col = char_col(lines, line, getattr(node, "end_col_offset", None))
    excerpt = caret_excerpt(source, line, col, end_col)
    return Diagnostic(stage, kind, message, line, col, excerpt, detail)
