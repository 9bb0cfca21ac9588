"""Stage 2: syntax errors become diagnostics with line, column and caret."""

from __future__ import annotations

import pytest

from symbiont.errors import StageError
from symbiont.pipeline import parse_source


def _fail(src: str):
    with pytest.raises(StageError) as info:
        parse_source(src)
    (diag,) = info.value.diagnostics
    assert diag.stage == "parse"
    return diag


def test_valid_source_parses() -> None:
    tree = parse_source("def f(x: int) -> int:\n    return x\n")
    assert tree.body[0].name == "f"  # type: ignore[attr-defined]


def test_syntax_error_points_at_the_offending_text() -> None:
    diag = _fail("def f(x: int) -> int:\n    return x +* 2\n")
    assert diag.kind == "syntax"
    assert diag.line == 2
    assert diag.col == 15  # the '*'
    assert diag.excerpt is not None
    last = diag.excerpt.splitlines()[-1]
    assert last.index("^") == diag.excerpt.splitlines()[-2].index("*")


def test_indentation_error() -> None:
    diag = _fail("def f():\nreturn 1\n")
    assert diag.kind == "indentation" and diag.line == 2
    assert "indentation" in diag.message


def test_compiler_only_errors_are_syntax_too() -> None:
    diag = _fail("def f():\n    pass\nbreak\n")
    assert diag.kind == "syntax" and diag.line == 3 and "outside loop" in diag.message


def test_columns_count_characters_not_bytes() -> None:
    diag = _fail("s = 'ééé' +* 1\n")
    assert diag.col == 12  # the '*' after three two-byte characters


def test_null_byte() -> None:
    diag = _fail("def f():\n    return\x00 1\n")
    assert diag.kind == "null_byte" and diag.line == 2 and diag.col == 11


def test_too_deep_nesting_is_a_diagnostic() -> None:
    diag = _fail("x = " + "(" * 500 + ")" * 500 + "\n")
    assert diag.kind in ("syntax", "too_complex")
