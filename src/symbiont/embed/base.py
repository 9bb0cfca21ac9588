"""The `Embedder` protocol: texts in, L2-normalised float32 vectors out.

An embedder's `id` names everything that decides its vectors (model, implementation,
truncation...). The retrieval index stores vectors next to that id and recomputes them only
when it changes, so an id must change whenever the vectors would, and must not change
otherwise (no timestamps, no process-dependent parts).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from symbiont.errors import SymbiontError


class EmbeddingError(SymbiontError):
    """An embedder could not produce vectors (model files missing, server refused, bad input).

    Defined here rather than in `symbiont.errors` because that module is a shared contract;
    it subclasses `SymbiontError`, so `except SymbiontError` catches it.
    """


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit vectors; cosine similarity is then a dot product."""

    id: str  # e.g. "minilm-l6-v2@numpy"; changes exactly when the vectors would

    @property
    def dim(self) -> int:
        """Vector length (read-only; a plain class attribute satisfies it)."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return float32 array of shape (len(texts), dim), each row L2-normalised."""
        ...


def check_texts(texts: Sequence[str]) -> list[str]:
    """Validate the `texts` argument once for every embedder, with a specific error.

    A bare `str` is refused: iterating it would silently embed its characters.
    """
    if isinstance(texts, str | bytes):
        raise EmbeddingError("embed() takes a sequence of strings, not a single string")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise EmbeddingError(f"embed(): item {i} is {type(t).__name__}, expected str")
    return out


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Normalise rows in place (float32); an all-zero row stays zero instead of becoming NaN."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.maximum(norms, np.float32(1e-12), out=norms)
    x /= norms
    return x
