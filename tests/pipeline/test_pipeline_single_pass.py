"""The pipeline reads a candidate once: one walk over its tree shared by the stages that look
at every node, and (from the search) one extraction and one parse shared with the duplicate
check. What is judged must stay exactly what is compiled."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import symbiont.pipeline
from symbiont.pipeline._util import walk

PIPELINE_FILES = sorted(Path(symbiont.pipeline.__file__).parent.glob("*.py"))


@pytest.mark.parametrize("path", PIPELINE_FILES, ids=lambda p: p.name)
def test_walk_is_ast_walk_as_a_list(path: Path) -> None:
    tree = ast.parse(path.read_text())
    ours, theirs = walk(tree), list(ast.walk(tree))
    assert len(ours) == len(theirs) > 100
    assert all(a is b for a, b in zip(ours, theirs, strict=True))


def test_walk_of_a_subtree_starts_at_it() -> None:
    call = ast.parse("f(a, *b, k=[c for c in d])").body[0]
    names = [n.id for n in walk(call) if isinstance(n, ast.Name)]
    assert walk(call)[0] is call
    # breadth first: `b` (under the Starred) before the list comprehension's `c` (its element),
    # which comes before the comprehension's target `c` and iterable `d` (one level deeper)
    assert names == ["f", "a", "b", "c", "c", "d"]
