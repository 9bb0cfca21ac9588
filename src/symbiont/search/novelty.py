"""Novelty before evaluation: exact duplicates by content hash (across the whole search)
and near duplicates by cosine similarity of code embeddings."""

from __future__ import annotations

import ast
from dataclasses import dataclass

import numpy as np

from symbiont import pyast
from symbiont.embed.base import Embedder


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: str  # "new" | "duplicate" | "near_duplicate"
    of: int | None = None  # the revision it duplicates
    similarity: float = 0.0


class NoveltyFilter:
    """Remembers the programs of a search; says whether a new one adds anything.

    `threshold` None checks exact duplicates only (no embedder is needed then)."""

    def __init__(self, embedder: Embedder | None, threshold: float | None = 0.995) -> None:
        if threshold is not None and embedder is None:
            raise ValueError("a near-duplicate threshold needs an embedder")
        self.embedder = embedder
        self.threshold = threshold
        self._hashes: dict[str, int] = {}
        self._vectors: list[np.ndarray] = []
        self._numbers: list[int] = []

    def check(self, content_hash: str, source: str) -> Verdict:
        if content_hash in self._hashes:
            return Verdict("duplicate", self._hashes[content_hash], 1.0)
        if self.threshold is None or self.embedder is None or not self._vectors:
            return Verdict("new")
        vector = self.embedder.embed([body(source)])[0]
        sims = np.stack(self._vectors) @ vector
        best = int(np.argmax(sims))
        if float(sims[best]) >= self.threshold:
            return Verdict("near_duplicate", self._numbers[best], float(sims[best]))
        return Verdict("new", None, float(sims[best]))

    def remember(self, content_hash: str, source: str, number: int, *, embed: bool = True) -> None:
        """Keep a program: its hash always; its embedding when it was evaluated (`embed`)."""
        self._hashes.setdefault(content_hash, number)
        if embed and self.threshold is not None and self.embedder is not None and source:
            self._vectors.append(self.embedder.embed([body(source)])[0])
            self._numbers.append(number)

    def renumber(self, numbers: dict[int, int]) -> None:
        """The revisions remembered, under the numbers the store gave them (old -> new)."""
        self._hashes = {h: numbers.get(n, n) for h, n in self._hashes.items()}
        self._numbers = [numbers.get(n, n) for n in self._numbers]


def body(source: str) -> str:
    """The code of a program without its first function's `def` line and docstring (the
    head every candidate shares), so similarity measures what changed."""
    try:
        tree = pyast.parse(source)
    except (SyntaxError, ValueError):
        return source
    fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)), None)
    if fn is None:
        return source
    stmts = fn.body
    if (
        stmts
        and isinstance(stmts[0], ast.Expr)
        and isinstance(getattr(stmts[0], "value", None), ast.Constant)
    ):
        stmts = stmts[1:]
    if not stmts:
        return source
    lines = source.splitlines()
    start = stmts[0].lineno - 1
    inner = "\n".join(lines[start : fn.end_lineno])
    rest = [ast.get_source_segment(source, n) or "" for n in tree.body if n is not fn]
    return "\n".join([inner, *rest])
