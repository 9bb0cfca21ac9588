"""Small helpers shared by the pipeline stages: positions and excerpts, and one walk over a
candidate's tree that every stage can share."""

from __future__ import annotations

import ast

from symbiont.diagnostics import Diagnostic, caret_excerpt

_AST = ast.AST


def walk(node: ast.AST) -> list[ast.AST]:
    """`node` and every node below it, in `ast.walk`'s order (breadth first), as a list.

    Several stages look at every node of a candidate (the unused-import repair, the policy,
    the import checks); `ast.walk` costs two generators per node, which was a fifth of a
    cheap candidate's harness when each stage walked on its own. `run_pipeline` walks the
    judged tree once with this and hands the list to each stage (their `nodes` argument).
    """
    nodes = [node]
    append = nodes.append
    for current in nodes:  # the list grows under the loop: breadth first, as ast.walk
        for name in current._fields:
            value = getattr(current, name, None)
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, _AST):
                        append(item)
            elif isinstance(value, _AST):
                append(value)
    return nodes


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
