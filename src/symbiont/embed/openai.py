"""Embeddings from any OpenAI-compatible `/v1/embeddings` endpoint, through the `openai` SDK.

OpenAI, Azure, Ollama, vLLM, llama.cpp server, LM Studio... all speak it. Configuration
follows the SDK's conventions: `OPENAI_BASE_URL` and `OPENAI_API_KEY`; the model comes from
the argument (`default_embedder` reads `SYMBIONT_EMBED_MODEL`). Vectors are re-normalised
here because not every server returns unit vectors.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from symbiont.embed.base import EmbeddingError, check_texts, l2_normalise

_CHUNK = 256  # inputs per request: well under OpenAI's 2048 limit and typical server limits


class OpenAIEmbedder:
    """`/v1/embeddings` provider. `dim` is learnt from the first response unless given."""

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        dim: int | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
    ) -> None:
        if not model or not isinstance(model, str):
            raise EmbeddingError("OpenAIEmbedder needs a model name (e.g. SYMBIONT_EMBED_MODEL)")
        import openai

        self.model = model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        key = api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"  # local servers
        self._client = openai.OpenAI(
            base_url=self.base_url, api_key=key, timeout=timeout, max_retries=max_retries
        )
        # Different servers may serve different weights under one model name.
        where = (self.base_url or "https://api.openai.com/v1").rstrip("/")
        self.id = f"openai:{model}@{where}"
        self._dim = dim

    @property
    def dim(self) -> int:
        if self._dim is None:
            self.embed(["dimension probe"])
        assert self._dim is not None
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import openai

        items = check_texts(texts)
        if not items:
            return np.empty((0, self._dim or 0), dtype=np.float32)
        rows: list[Any] = []
        for start in range(0, len(items), _CHUNK):
            # The OpenAI API rejects empty strings; a single space embeds "nothing" as well.
            chunk = [t if t.strip() else " " for t in items[start : start + _CHUNK]]
            try:
                resp = self._client.embeddings.create(
                    model=self.model, input=chunk, encoding_format="float"
                )
            except openai.APIStatusError as e:
                raise EmbeddingError(
                    f"embedding server {self.base_url or 'api.openai.com'} answered "
                    f"HTTP {e.status_code} for model {self.model!r}: {e.message}"
                ) from e
            except openai.APIError as e:  # connection refused, timeout, malformed reply
                raise EmbeddingError(
                    f"cannot get embeddings from {self.base_url or 'api.openai.com'}: {e}"
                ) from e
            data = sorted(resp.data, key=lambda d: d.index)
            if len(data) != len(chunk):
                raise EmbeddingError(
                    f"embedding server returned {len(data)} vectors for {len(chunk)} inputs"
                )
            rows.extend(d.embedding for d in data)
        try:
            out = np.asarray(rows, dtype=np.float32)
        except ValueError as e:
            raise EmbeddingError(f"embedding server returned ragged vectors: {e}") from e
        if out.ndim != 2 or out.shape[1] == 0:
            raise EmbeddingError(f"embedding server returned vectors of shape {out.shape}")
        if self._dim is None:
            self._dim = int(out.shape[1])
        elif out.shape[1] != self._dim:
            raise EmbeddingError(
                f"embedding server returned dimension {out.shape[1]}, expected {self._dim}"
            )
        return l2_normalise(out)
