"""`OpenAIModel` sends its request body as built, without the SDK's typed transform.

The transform of `chat.completions.create` walks every message of the history on every
request; the body here is already plain JSON, so it goes through the client's own `post`.
These tests pin what the server receives and that the transform is never called.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from openai.resources.chat.completions import completions as sdk_completions

from symbiont.errors import ModelError
from symbiont.models import OpenAIModel
from symbiont.models.base import ModelReply
from symbiont.models.transport import TRANSPORT_ENV
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


@pytest.fixture
def gateway() -> Iterator[str]:
    """A server that answers every request 200 with an HTML page, not a completion."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            page = b"<html>gateway</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *_a: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("transport", ["lean", "httpx"])
def test_a_reply_that_is_not_a_completion_is_a_model_error(
    gateway: str, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if transport == "httpx":  # the SDK's own client and request path
        monkeypatch.setenv(TRANSPORT_ENV, "httpx")
    model = OpenAIModel("fake-model", base_url=gateway)
    with pytest.raises(ModelError, match=r"other than a JSON completion.*gateway"):
        ask(model, HISTORY[:2])


def test_a_plain_request_sends_what_the_sdk_sends(
    openai_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a plain-http server the chat request is sent straight on the SDK's client (not
    through the SDK's per-request machinery): the same headers, path and body as the SDK's
    own request path sends, but for the SDK's per-try telemetry headers."""
    openai_server.handler = lambda body: "ok"
    model = OpenAIModel(
        "fake-model", base_url=openai_server.base_url, api_key="sk-h", extra_headers={"X-A": "1"}
    )
    ask(model, HISTORY[:2])
    monkeypatch.setenv(TRANSPORT_ENV, "httpx")
    ask(OpenAIModel(
        "fake-model", base_url=openai_server.base_url, api_key="sk-h", extra_headers={"X-A": "1"}
    ), HISTORY[:2])  # fmt: skip
    direct, sdk = openai_server.log[-2], openai_server.log[-1]
    assert (direct.method, direct.path, direct.body) == (sdk.method, sdk.path, sdk.body)
    per_try = {"x-stainless-retry-count", "x-stainless-read-timeout"}
    assert direct.headers.keys() == sdk.headers.keys() - per_try
    for name in direct.headers.keys() - {"content-length"}:
        assert direct.headers[name] == sdk.headers[name], name
    assert direct.headers["authorization"] == "Bearer sk-h"
    assert direct.headers["x-a"] == "1"
    assert direct.headers["user-agent"].startswith("AsyncOpenAI/Python")
