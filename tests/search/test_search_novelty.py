"""Novelty before evaluation: exact duplicates by hash, near duplicates by embedding."""

from __future__ import annotations

import pytest

from symbiont.embed.hashing import HashingEmbedder
from symbiont.evolvable import content_hash
from symbiont.search.novelty import NoveltyFilter

A = "def f(x: int) -> int:\n    total = 0\n    for i in range(x):\n        total += i * i\n    return total\n"
A_REFORMATTED = "def f(x: int) -> int:\n    total = 0\n    for i in range(x):  # loop\n        total += i*i\n    return total\n"
B = "def f(x: int) -> int:\n    return sum(range(x)) if x > 0 else -1\n"


def test_exact_duplicates_are_found_by_normalised_hash() -> None:
    nf = NoveltyFilter(None, threshold=None)
    nf.remember(content_hash(A), A, 4)
    verdict = nf.check(content_hash(A_REFORMATTED), A_REFORMATTED)
    assert verdict.kind == "duplicate" and verdict.of == 4
    assert nf.check(content_hash(B), B).kind == "new"


def test_near_duplicates_by_cosine_similarity() -> None:
    near = A.replace("total", "acc")  # one name changed throughout: another hash, same idea
    assert content_hash(near) != content_hash(A)
    strict = NoveltyFilter(HashingEmbedder(), threshold=0.3)
    strict.remember(content_hash(A), A, 1)
    verdict = strict.check(content_hash(near), near)
    assert verdict.kind == "near_duplicate" and verdict.of == 1
    assert 0.3 <= verdict.similarity < 1.0
    loose = NoveltyFilter(HashingEmbedder(), threshold=0.999)
    loose.remember(content_hash(A), A, 1)
    assert loose.check(content_hash(near), near).kind == "new"


def test_programs_remembered_without_embedding_count_only_as_exact() -> None:
    nf = NoveltyFilter(HashingEmbedder(), threshold=0.5)
    nf.remember(content_hash(A), A, 1, embed=False)
    assert nf.check(content_hash(A), A).kind == "duplicate"
    near = A.replace("total", "acc")
    assert nf.check(content_hash(near), near).kind == "new"


def test_a_threshold_without_an_embedder_is_refused() -> None:
    with pytest.raises(ValueError, match="embedder"):
        NoveltyFilter(None, threshold=0.9)
