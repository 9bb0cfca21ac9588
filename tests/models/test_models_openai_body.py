"""`OpenAIModel` sends its request body as built, without the SDK's typed transform.

The transform of `chat.completions.create` walks every message of the history on every
request; the body here is already plain JSON, so it goes through the client's own `post`.
These tests pin what the server receives and that the transform is never called.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from openai.resources.chat.completions import completions as sdk_completions

from symbiont.errors import ModelError
from symbiont.models import OpenAIModel
from symbiont.models.base import ModelReply
from symbiont.testing.openai_server import FakeOpenAIServer, Reply

HISTORY = [
    {"role": "system", "content": "You write Python."},
    {"role": "user", "content": "Write f."},
    {"role": "assistant", "content": "```python\ndef f(x: int) -> int:\n    return x\n```"},
    {"role": "user", "content": [{"type": "text", "text": "Score 0.5; do better."}]},
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SYMBIONT_MODEL", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def no_transform(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's request-body transform fails the test if anything calls it."""

    def refuse(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the SDK's request-body transform was called")

    monkeypatch.setattr(sdk_completions, "async_maybe_transform", refuse)
    monkeypatch.setattr(sdk_completions, "maybe_transform", refuse)


def ask(model: OpenAIModel, messages: list[dict[str, Any]], **kw: Any) -> ModelReply:
    return asyncio.run(model.complete(messages, **kw))


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_body_is_sent_as_built(
    openai_server: FakeOpenAIServer, no_transform: None, stream: bool
) -> None:
    openai_server.api_key = "sk-body"
    openai_server.enqueue("ok")
    model = OpenAIModel(
        "fake-model", base_url=openai_server.base_url, api_key="sk-body", stream=stream,
        temperature=0.25, max_tokens=64,
    )  # fmt: skip
    reply = ask(model, HISTORY)
    assert reply.text == "ok"
    body = openai_server.chat_requests[-1]
    assert body["model"] == "fake-model"
    assert body["messages"] == HISTORY  # every message, every key, in order
    assert body["temperature"] == 0.25
    assert body["max_tokens"] == 64
    assert bool(body.get("stream")) is stream
    if stream:
        assert body["stream_options"] == {"include_usage": True}
    assert openai_server.log[-1].headers["authorization"] == "Bearer sk-body"


def test_tool_calls_without_the_sdk_types(
    openai_server: FakeOpenAIServer, no_transform: None
) -> None:
    openai_server.enqueue(
        Reply(
            tool_calls=[{"name": "lookup", "arguments": '{"q": "x"}'}], finish_reason="tool_calls"
        )
    )
    model = OpenAIModel("fake-model", base_url=openai_server.base_url)
    tool = {"name": "lookup", "parameters": {"type": "object", "properties": {}}}
    reply = ask(model, HISTORY[:2], tools=[tool])
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [("lookup", '{"q": "x"}')]
    assert reply.tool_calls[0].id
    assert reply.finish_reason == "tool_calls"
    assert openai_server.chat_requests[-1]["tools"] == [{"type": "function", "function": tool}]


def test_a_reply_that_is_not_a_completion_is_a_model_error(
    openai_server: FakeOpenAIServer,
) -> None:
    openai_server.handler = lambda body: "unused"
    model = OpenAIModel("fake-model", base_url=openai_server.base_url)

    async def run() -> None:
        client = model._client()

        async def garbage(*_a: Any, **_k: Any) -> bytes:
            return b"<html>gateway</html>"

        client.post = garbage  # type: ignore[method-assign]
        with pytest.raises(ModelError, match="other than a JSON completion"):
            await model.complete(HISTORY[:2])
        await model.aclose()

    asyncio.run(run())
