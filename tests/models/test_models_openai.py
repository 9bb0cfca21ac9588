"""`OpenAIModel` end to end: the real `openai` SDK over real HTTP to the loopback server."""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

import pytest

from symbiont.errors import ModelError, TransientModelError
from symbiont.models import OpenAIModel, call_with_retries, default_model
from symbiont.models.base import ModelReply
from symbiont.models.openai import PLACEHOLDER_API_KEY
from symbiont.testing.openai_server import Error, FakeOpenAIServer, Reply

USER = [{"role": "user", "content": "Write a function."}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "run_capability",
            "description": "Run a capability",
            "parameters": {
                "type": "object",
                "properties": {"capability_id": {"type": "string"}, "input": {"type": "object"}},
                "required": ["capability_id"],
            },
        },
    }
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SYMBIONT_MODEL", "OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_CUSTOM_HEADERS"):
        monkeypatch.delenv(name, raising=False)


def ask(model: OpenAIModel, messages: list[dict] | None = None, **kw: Any) -> ModelReply:
    return asyncio.run(model.complete(messages or USER, **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_text_reply_and_usage(openai_server: FakeOpenAIServer, stream: bool) -> None:
    text = "Here you go:\n```python\ndef f(x: int) -> int:\n    return x + 1\n```\n"
    openai_server.enqueue(text)
    model = OpenAIModel("fake-model", base_url=openai_server.base_url, stream=stream)
    prompt = [{"role": "system", "content": "s" * 30}, {"role": "user", "content": "u" * 51}]
    reply = ask(model, prompt)
    assert reply.text == text  # every streamed piece arrived, in order
    assert reply.tool_calls == ()
    assert reply.model == "fake-model"
    assert reply.finish_reason == "stop"
    # the server counts ceil(chars / 4): 81 prompt characters, len(text) reply characters
    assert reply.usage.input_tokens == math.ceil(81 / 4)
    assert reply.usage.output_tokens == math.ceil(len(text) / 4)
    assert reply.latency_s > 0
    body = openai_server.chat_requests[-1]
    assert body["model"] == "fake-model"
    assert body["messages"] == prompt
    assert bool(body.get("stream")) is stream
    if stream:
        assert body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_tool_calls(openai_server: FakeOpenAIServer, stream: bool) -> None:
    openai_server.enqueue(
        [
            {
                "name": "run_capability",
                "arguments": {"capability_id": "get_salary", "input": {"id": "E042"}},
            },
            {"name": "run_capability", "arguments": '{"capability_id": "broken", '},  # malformed
        ]
    )
    model = OpenAIModel("fake-model", base_url=openai_server.base_url, stream=stream)
    reply = ask(model, tools=TOOLS)
    assert reply.finish_reason == "tool_calls"
    assert [c.name for c in reply.tool_calls] == ["run_capability", "run_capability"]
    assert json.loads(reply.tool_calls[0].arguments) == {
        "capability_id": "get_salary",
        "input": {"id": "E042"},
    }
    assert reply.tool_calls[1].arguments == '{"capability_id": "broken", '  # kept raw, as written
    assert len({c.id for c in reply.tool_calls}) == 2 and all(c.id for c in reply.tool_calls)
    assert reply.usage.output_tokens > 0
    assert openai_server.chat_requests[-1]["tools"] == TOOLS


def test_text_and_tool_call_together_streamed(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue(
        Reply(
            text="Let me look that up.",
            tool_calls=[{"name": "search", "arguments": {"q": "salary"}}],
        )
    )
    model = OpenAIModel("fake-model", base_url=openai_server.base_url, stream=True)
    reply = ask(model, tools=[{"name": "search", "parameters": {"type": "object"}}])
    assert reply.text == "Let me look that up."
    assert reply.tool_calls[0].name == "search"
    assert json.loads(reply.tool_calls[0].arguments) == {"q": "salary"}
    # a bare function schema was wrapped into the OpenAI tool format
    assert openai_server.chat_requests[-1]["tools"][0]["type"] == "function"


def test_options_and_headers_are_sent(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue("ok")
    model = OpenAIModel(
        "fake-model",
        base_url=openai_server.base_url,
        api_key="sk-test",
        temperature=0.25,
        max_tokens=123,
        extra_headers={"X-Title": "symbiont-tests"},
    )
    ask(model)
    body = openai_server.chat_requests[-1]
    assert body["temperature"] == 0.25
    assert body["max_tokens"] == 123
    headers = openai_server.log[-1].headers
    assert headers["authorization"] == "Bearer sk-test"
    assert headers["x-title"] == "symbiont-tests"


def test_rate_limit_then_success_is_retried_and_counted(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue(Error(status=429, message="slow down", retry_after=0.3), "finally")
    model = OpenAIModel("fake-model", base_url=openai_server.base_url)
    waits: list[tuple[int, str, float]] = []
    started = time.monotonic()
    reply, retries = asyncio.run(
        call_with_retries(
            model, USER, base_delay_s=0.001, on_retry=lambda n, e, d: waits.append((n, str(e), d))
        )
    )
    elapsed = time.monotonic() - started
    assert reply.text == "finally"
    assert retries == 1
    assert len(waits) == 1 and waits[0][0] == 1
    assert "429" in waits[0][1] and "slow down" in waits[0][1]
    # the server's Retry-After (0.3 s), not the 1 ms base delay, set the wait
    assert waits[0][2] >= 0.3
    assert elapsed >= 0.3
    assert len(openai_server.chat_requests) == 2


def test_server_error_then_success(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue(Error(status=500, message="upstream exploded"), Error(status=503), "ok")
    model = OpenAIModel("fake-model", base_url=openai_server.base_url, stream=True)
    reply, retries = asyncio.run(call_with_retries(model, USER, base_delay_s=0.01))
    assert (reply.text, retries) == ("ok", 2)


def test_server_error_is_transient_with_message(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue(Error(status=502, message="bad gateway upstream", retry_after=2))
    model = OpenAIModel("fake-model", base_url=openai_server.base_url)
    with pytest.raises(TransientModelError, match="bad gateway upstream") as info:
        ask(model)
    assert info.value.retry_after == pytest.approx(2.0)


def test_wrong_api_key_is_a_clear_model_error() -> None:
    with FakeOpenAIServer(api_key="sk-right") as server:
        model = OpenAIModel("fake-model", base_url=server.base_url, api_key="sk-wrong")
        with pytest.raises(ModelError, match=r"refused the API key \(OPENAI_API_KEY\)") as info:
            ask(model)
        assert not isinstance(info.value, TransientModelError)
        # the right key works against the same server
        server.enqueue("hello")
        assert (
            ask(OpenAIModel("fake-model", base_url=server.base_url, api_key="sk-right")).text
            == "hello"
        )


def test_unknown_model_names_model_and_base_url() -> None:
    with FakeOpenAIServer(models=("llama3",), strict_models=True) as server:
        model = OpenAIModel("gpt-9", base_url=server.base_url)
        with pytest.raises(ModelError) as info:
            ask(model)
        message = str(info.value)
        assert "'gpt-9'" in message and server.base_url in message and "404" in message
        assert not isinstance(info.value, TransientModelError)


def test_bad_request_is_not_transient(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue(Error(status=400, message="tools are not supported by this model"))
    with pytest.raises(ModelError, match="tools are not supported") as info:
        ask(OpenAIModel("fake-model", base_url=openai_server.base_url))
    assert not isinstance(info.value, TransientModelError)


def test_connection_refused_is_transient(refused_port: int) -> None:
    base = f"http://127.0.0.1:{refused_port}/v1"
    model = OpenAIModel("fake-model", base_url=base, timeout_s=5)
    with pytest.raises(TransientModelError, match="could not connect") as info:
        ask(model)
    assert base in str(info.value)
    # and retries give up after max_retries, raising the last error
    seen: list[int] = []
    with pytest.raises(TransientModelError):
        asyncio.run(
            call_with_retries(
                model,
                USER,
                max_retries=2,
                base_delay_s=0.001,
                on_retry=lambda n, e, d: seen.append(n),
            )
        )
    assert seen == [1, 2]


def test_slow_server_times_out_as_transient(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue(Reply(text="too late", delay_s=2.0))
    model = OpenAIModel("fake-model", base_url=openai_server.base_url, timeout_s=0.2)
    with pytest.raises(TransientModelError, match="timed out"):
        ask(model)


def test_environment_configuration(
    openai_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYMBIONT_MODEL", "fake-model")
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    announced: list[str] = []
    model = default_model(announce=announced.append)
    assert isinstance(model, OpenAIModel)
    assert announced == []
    openai_server.enqueue("from env")
    assert ask(model).text == "from env"
    assert openai_server.chat_requests[-1]["model"] == "fake-model"
    # no key configured: a local server needs none, so a placeholder is sent
    assert openai_server.log[-1].headers["authorization"] == f"Bearer {PLACEHOLDER_API_KEY}"

    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    openai_server.enqueue("again")
    ask(OpenAIModel())
    assert openai_server.log[-1].headers["authorization"] == "Bearer sk-from-env"


def test_model_name_discovered_from_server() -> None:
    with FakeOpenAIServer(models=("qwen2.5-coder",)) as server:
        model = OpenAIModel(base_url=server.base_url)  # no SYMBIONT_MODEL
        server.enqueue("hi")
        reply = ask(model)
        assert reply.model == "qwen2.5-coder"
        assert server.chat_requests[-1]["model"] == "qwen2.5-coder"
        assert model.name == "qwen2.5-coder"


def test_missing_configuration_is_a_clear_error() -> None:
    with pytest.raises(ModelError, match="OPENAI_API_KEY"):
        OpenAIModel("gpt-4o-mini")
    with pytest.raises(ModelError, match="SYMBIONT_MODEL"):
        OpenAIModel(api_key="sk-x")


def test_one_model_serves_several_event_loops(openai_server: FakeOpenAIServer) -> None:
    """`evolve_sync` runs each evolve under a fresh `asyncio.run`; the model must survive it."""
    model = OpenAIModel("fake-model", base_url=openai_server.base_url)
    for i in range(3):
        openai_server.enqueue(f"reply {i}")
        assert ask(model).text == f"reply {i}"


def test_aclose_closes_and_the_model_stays_usable(openai_server: FakeOpenAIServer) -> None:
    model = OpenAIModel("fake-model", base_url=openai_server.base_url)
    openai_server.enqueue("one", "two")

    async def go() -> list[str]:
        first = (await model.complete(USER)).text
        await model.aclose()
        second = (await model.complete(USER)).text  # a new client is opened on demand
        await model.aclose()
        return [first, second]

    assert asyncio.run(go()) == ["one", "two"]
