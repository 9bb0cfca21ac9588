"""SEARCH/REPLACE edits: parsing, applying, and the feedback for a block that does not match."""

from __future__ import annotations

import pytest

from symbiont.search.edits import Edit, EditError, apply_edits, parse_edits

PARENT = """def area(w: float, h: float) -> float:
    \"\"\"Area of a rectangle.\"\"\"
    scale = 1.0
    result = w * h
    return result * scale
"""


def block(search: str, replace: str) -> str:
    return f"<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"


def test_a_reply_without_blocks_has_no_edits() -> None:
    assert parse_edits("```python\ndef area(w, h):\n    return 0\n```") == []


def test_blocks_are_parsed_in_order_and_applied() -> None:
    reply = (
        "Two changes.\n"
        + block("    scale = 1.0\n", "    scale = 2.0\n")
        + "and\n"
        + block("    return result * scale\n", "    return result * scale + 1\n")
    )
    edits = parse_edits(reply)
    assert edits == [
        Edit("    scale = 1.0\n", "    scale = 2.0\n"),
        Edit("    return result * scale\n", "    return result * scale + 1\n"),
    ]
    out = apply_edits(PARENT, edits)
    assert "scale = 2.0" in out and out.endswith("return result * scale + 1\n")
    assert out.count("\n") == PARENT.count("\n")


def test_trailing_whitespace_differences_still_match() -> None:
    edits = [
        Edit("    scale = 1.0   \n    result = w * h\n", "    scale = 3.0\n    result = w * h\n")
    ]
    assert "scale = 3.0" in apply_edits(PARENT, edits)


def test_a_search_block_that_does_not_match_quotes_the_nearest_parent_lines() -> None:
    edits = [Edit("    scale = 1.5\n    result = w*h\n", "    scale = 2.0\n")]
    with pytest.raises(EditError) as info:
        apply_edits(PARENT, edits)
    message = str(info.value)
    assert "SEARCH block 1 does not match" in message
    # the nearest parent lines, numbered as in the parent
    assert "   3 |     scale = 1.0" in message
    assert "   4 |     result = w * h" in message
    assert "-    scale = 1.5" in message and "+    scale = 1.0" in message


def test_an_empty_search_block_is_refused() -> None:
    with pytest.raises(EditError, match="empty"):
        apply_edits(PARENT, [Edit("\n", "x = 1\n")])
