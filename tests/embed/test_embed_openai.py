"""OpenAIEmbedder through the real `openai` SDK against a loopback /v1/embeddings server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from symbiont.embed import EmbeddingError, OpenAIEmbedder


def fake_vector(text: str) -> list[float]:
    """Deterministic, deliberately not unit-length: the client must normalise."""
    return [float(len(text) + 1), float(sum(map(ord, text)) % 97), 3.0, -4.0]


@dataclass
class Server:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    status: int = 200


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append(body)
            state.headers.append({k.lower(): v for k, v in self.headers.items()})
            if self.path != "/v1/embeddings":
                return self._send(404, {"error": {"message": "no such path"}})
            if state.status != 200:
                return self._send(state.status, {"error": {"message": "model is sleeping"}})
            inputs = body["input"]
            if any(t == "" for t in inputs):  # what api.openai.com does with empty strings
                return self._send(400, {"error": {"message": "input cannot be empty"}})
            data = [
                {"object": "embedding", "index": i, "embedding": fake_vector(t)}
                for i, t in enumerate(inputs)
            ]
            data.reverse()  # the client must order by "index", not by position
            self._send(
                200,
                {
                    "object": "list",
                    "data": data,
                    "model": body["model"],
                    "usage": {"prompt_tokens": 1, "total_tokens": 1},
                },
            )

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def _unit(v: list[float]) -> np.ndarray:
    a = np.array(v, dtype=np.float64)
    return a / np.linalg.norm(a)


def test_embeds_through_the_sdk(server: Server) -> None:
    e = OpenAIEmbedder("test-embed", base_url=server.url, api_key="sk-test")
    texts = ["salary of E007", "weather", "x"]
    v = e.embed(texts)
    assert v.dtype == np.float32 and v.shape == (3, 4)
    for row, text in zip(v, texts, strict=True):
        np.testing.assert_allclose(row, _unit(fake_vector(text)), rtol=1e-6)
    assert server.requests[-1]["model"] == "test-embed"
    assert server.requests[-1]["input"] == texts
    assert server.headers[-1]["authorization"] == "Bearer sk-test"
    assert e.dim == 4
    assert e.id == f"openai:test-embed@{server.url}"


def test_configuration_from_environment(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    e = OpenAIEmbedder("env-model")
    assert e.dim == 4  # learnt by a probe request
    assert server.headers[-1]["authorization"] == "Bearer sk-env"


def test_empty_strings_are_sent_as_a_space(server: Server) -> None:
    e = OpenAIEmbedder("m", base_url=server.url, api_key="k")
    v = e.embed(["", "a"])
    assert server.requests[-1]["input"] == [" ", "a"]
    np.testing.assert_allclose(v[0], _unit(fake_vector(" ")), rtol=1e-6)


def test_server_error_becomes_embedding_error(server: Server) -> None:
    server.status = 503
    e = OpenAIEmbedder("m", base_url=server.url, api_key="k", max_retries=0)
    with pytest.raises(EmbeddingError, match=r"HTTP 503 for model 'm'"):
        e.embed(["a"])


def test_connection_refused_becomes_embedding_error(server: Server) -> None:
    dead = server.url.replace("/v1", "/nowhere")  # 404: a server that is not an embedder
    with pytest.raises(EmbeddingError, match="HTTP 404"):
        OpenAIEmbedder("m", base_url=dead, api_key="k", max_retries=0).embed(["a"])
    with pytest.raises(EmbeddingError, match="cannot get embeddings"):
        OpenAIEmbedder(
            "m", base_url="http://127.0.0.1:9/v1", api_key="k", max_retries=0, timeout=5
        ).embed(["a"])


def test_model_is_required() -> None:
    with pytest.raises(EmbeddingError, match="model name"):
        OpenAIEmbedder("")
