"""Feature-hashing embedder: the fallback when no model weights are installed.

Word unigrams and character trigrams (of each word, with boundary marks) are hashed into
`dim` buckets with a sign bit, then the vector is L2-normalised. It knows no synonyms, so
it retrieves like a soft keyword match; `default_embedder` announces when it falls back to
it. The hash is BLAKE2b, not Python's `hash()`, so vectors are identical across processes
and machines (PYTHONHASHSEED does not apply) and persisted vectors stay valid.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from symbiont.embed.base import EmbeddingError, check_texts, l2_normalise

_WORD = re.compile(r"[^\W_]+", re.UNICODE)  # letters/digits; "_" splits snake_case
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_TRIGRAM_WEIGHT = 0.5  # a word match is stronger evidence than a shared trigram


def words(text: str) -> list[str]:
    """Lower-cased words; snake_case and camelCase identifiers are split into their words."""
    return [w.lower() for w in _WORD.findall(_CAMEL.sub(" ", text))]


class HashingEmbedder:
    """Signed feature hashing of word unigrams + character trigrams; deterministic."""

    def __init__(self, dim: int = 384) -> None:
        if not isinstance(dim, int) or dim < 8:
            raise EmbeddingError(f"HashingEmbedder dim must be an int >= 8, got {dim!r}")
        self.dim = dim
        self.id = f"hashing-v1-{dim}"  # bump "v1" if the features or weights change

    def _bucket(self, feature: str) -> tuple[int, float]:
        h = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
        return (h >> 1) % self.dim, (1.0 if h & 1 else -1.0)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        items = check_texts(texts)
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        cache: dict[str, tuple[int, float]] = {}
        for row, text in enumerate(items):
            vec = out[row]
            for w in words(text):
                features = [("w:" + w, 1.0)]
                marked = f"<{w}>"
                features += [
                    ("c:" + marked[i : i + 3], _TRIGRAM_WEIGHT) for i in range(len(marked) - 2)
                ]
                for feature, weight in features:
                    hit = cache.get(feature)
                    if hit is None:
                        hit = cache[feature] = self._bucket(feature)
                    vec[hit[0]] += hit[1] * weight
        return l2_normalise(out)
