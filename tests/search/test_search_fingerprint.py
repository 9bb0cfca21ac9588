"""`fingerprint` writes `ast.dump`'s text itself (one pass that also counts the node types):
its hash must stay `ast.dump`'s, which the store and `symbiont.evolvable.content_hash` use."""

from __future__ import annotations

import ast
import hashlib
from collections import Counter
from pathlib import Path

import pytest

import symbiont
from symbiont.search.database import fingerprint

SOURCES = sorted(Path(symbiont.__file__).parent.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES[::7], ids=lambda p: p.name)
def test_fingerprint_hashes_ast_dump_and_counts_every_node(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, "<candidate>")
    digest, shape = fingerprint(source)
    assert digest == hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:16]
    assert shape == Counter(type(node).__name__ for node in ast.walk(tree))
    assert fingerprint(source, tree) == (digest, shape)  # from the caller's tree alike
