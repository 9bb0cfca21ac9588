"""Hashing embedder: deterministic across processes, normalised, keyword-like."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from symbiont.embed import EmbeddingError, HashingEmbedder

TEXTS = ["get_salary_details", "Weather forecast for Paris", "", "Ünïcödé ✓ 東京"]


def _in_subprocess(seed: str) -> list[list[float]]:
    code = (
        "import json, sys\n"
        "from symbiont.embed import HashingEmbedder\n"
        "texts = json.loads(sys.argv[1])\n"
        "print(json.dumps(HashingEmbedder(64).embed(texts).tolist()))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": seed}
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(TEXTS)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return json.loads(proc.stdout)


def test_same_vectors_in_two_processes_with_different_hash_seeds() -> None:
    a, b = _in_subprocess("1"), _in_subprocess("2")
    assert a == b
    np.testing.assert_array_equal(np.array(a, dtype=np.float32), HashingEmbedder(64).embed(TEXTS))


def test_unit_length_and_empty_text_is_zero() -> None:
    v = HashingEmbedder().embed(TEXTS)
    assert v.dtype == np.float32 and v.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(v[[0, 1, 3]], axis=1), 1.0, atol=1e-6)
    assert not v[2].any()  # nothing to hash: a zero vector, never NaN


def test_shared_words_score_higher_than_unrelated() -> None:
    a, b, c = HashingEmbedder().embed(["salary details", "get_salary_details", "rain in Paris"])
    assert a @ b > 0.5 > a @ c


def test_id_depends_on_dim_and_bad_dim_is_refused() -> None:
    assert HashingEmbedder(64).id != HashingEmbedder(128).id
    with pytest.raises(EmbeddingError, match="dim"):
        HashingEmbedder(0)
