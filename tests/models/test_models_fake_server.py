"""The loopback OpenAI server itself: embeddings, models, handlers, errors, recording."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from typing import Any

import openai
import pytest

from symbiont.testing.openai_server import Error, FakeOpenAIServer, Reply


def client(server: FakeOpenAIServer, key: str = "sk-test") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)


def test_base_url_is_loopback_v1(openai_server: FakeOpenAIServer) -> None:
    assert openai_server.base_url.startswith("http://127.0.0.1:")
    assert openai_server.base_url.endswith("/v1")
    assert openai_server.port > 0


def test_models_listing(openai_server: FakeOpenAIServer) -> None:
    with client(openai_server) as c:
        assert [m.id for m in c.models.list().data] == ["fake-model"]


def test_embeddings_are_deterministic_unit_vectors(openai_server: FakeOpenAIServer) -> None:
    with client(openai_server) as c:
        first = c.embeddings.create(model="emb", input=["salary of an employee", "weather"])
        again = c.embeddings.create(
            model="emb", input="salary of an employee", encoding_format="float"
        )
    a, b = (d.embedding for d in first.data)
    assert len(a) == 32
    assert a == pytest.approx(again.data[0].embedding, abs=1e-6)  # base64 and float agree
    assert a != pytest.approx(b, abs=1e-3)
    assert math.sqrt(sum(x * x for x in a)) == pytest.approx(1.0, abs=1e-5)
    assert first.usage.prompt_tokens > 0


def test_embeddings_with_dimensions_and_custom_function() -> None:
    def embed(text: str) -> list[float]:
        return [float(len(text)), 1.0, 0.0]

    with FakeOpenAIServer(embed=embed) as server, client(server) as c:
        out = c.embeddings.create(model="emb", input=["abcd"], encoding_format="float")
        assert out.data[0].embedding == [4.0, 1.0, 0.0]
    with FakeOpenAIServer() as server, client(server) as c:
        out = c.embeddings.create(model="emb", input="x", dimensions=8)
        assert len(out.data[0].embedding) == 8


def test_handler_drives_a_conversation(openai_server: FakeOpenAIServer) -> None:
    def handler(request: dict[str, Any]) -> Any:
        last = request["messages"][-1]
        if last["role"] == "tool":
            return f"The answer is {json.loads(last['content'])['salary']}."
        return [{"name": "run_capability", "arguments": {"capability_id": "get_salary"}}]

    openai_server.handler = handler
    messages: list[Any] = [{"role": "user", "content": "What is E042's salary?"}]
    with client(openai_server) as c:
        first = c.chat.completions.create(model="fake-model", messages=messages)
        calls = first.choices[0].message.tool_calls
        assert calls
        call = calls[0]
        messages.append(first.choices[0].message.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"salary": 85000}'})
        second = c.chat.completions.create(model="fake-model", messages=messages)
    assert second.choices[0].message.content == "The answer is 85000."
    assert len(openai_server.chat_requests) == 2
    assert openai_server.chat_requests[1]["messages"][-1]["role"] == "tool"


def test_queue_takes_precedence_over_handler(openai_server: FakeOpenAIServer) -> None:
    openai_server.handler = lambda request: "from handler"
    openai_server.enqueue("from queue")
    with client(openai_server) as c:
        replies = [
            c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
            .choices[0]
            .message.content
            for _ in range(2)
        ]
    assert replies == ["from queue", "from handler"]
    assert openai_server.pending == 0


def test_empty_queue_answers_500_with_a_message(openai_server: FakeOpenAIServer) -> None:
    with client(openai_server) as c, pytest.raises(openai.InternalServerError) as info:
        c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert "queue is empty" in str(info.value)


def test_scripted_error_statuses_and_headers(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue(
        Error(status=429, retry_after=1.5), Error(status=418, body={"detail": "teapot"})
    )
    with client(openai_server) as c:
        with pytest.raises(openai.RateLimitError) as info:
            c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert info.value.response.headers["retry-after"] == "1.5"
        assert info.value.response.headers["retry-after-ms"] == "1500"
        with pytest.raises(openai.APIStatusError) as info2:
            c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert info2.value.status_code == 418


def test_api_key_is_enforced_when_set() -> None:
    with FakeOpenAIServer(api_key="sk-right") as server:
        with client(server, "sk-wrong") as c, pytest.raises(openai.AuthenticationError):
            c.models.list()
        with client(server, "sk-right") as c:
            assert c.models.list().data


def test_bad_requests_get_400_and_unknown_routes_404(openai_server: FakeOpenAIServer) -> None:
    def post(path: str, payload: bytes) -> int:
        req = urllib.request.Request(
            openai_server.base_url + path,
            data=payload,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as err:
            return err.code

    assert post("/chat/completions", b'{"messages": "nope"}') == 400
    assert post("/chat/completions", b"not json") == 400
    assert post("/embeddings", b'{"input": []}') == 400
    assert post("/nothing-here", b"{}") == 404
    assert openai_server.requests[0] == {"messages": "nope"}


def test_enqueue_rejects_what_it_cannot_serve(openai_server: FakeOpenAIServer) -> None:
    with pytest.raises(TypeError):
        not_a_reply: Any = {"text": "a dict is not a reply"}
        openai_server.enqueue(not_a_reply)
    with pytest.raises(TypeError, match="name"):
        openai_server.enqueue([{"arguments": {}}])
    assert openai_server.pending == 0


def test_usage_grows_with_the_text(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue("a", Reply(text="b" * 400))
    with client(openai_server) as c:
        short = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        long = c.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x" * 400}]
        )
    assert short.usage is not None and long.usage is not None
    assert (short.usage.prompt_tokens, short.usage.completion_tokens) == (1, 1)
    assert (long.usage.prompt_tokens, long.usage.completion_tokens) == (100, 100)
    assert long.usage.total_tokens == 200


def test_stop_and_restart() -> None:
    server = FakeOpenAIServer().start()
    server.stop()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.base_url
    with server, client(server) as c:
        assert c.models.list().data
