"""Timeouts a slow local server survives: configurable, and never a second request while the
server is still working on one that timed out. Real `openai` SDK against the loopback server."""

from __future__ import annotations

import asyncio

import pytest

from symbiont.errors import TransientModelError
from symbiont.models import OpenAIModel, call_with_retries
from symbiont.testing.openai_server import FakeOpenAIServer, Reply

USER = [{"role": "user", "content": "write it"}]
OTHER = [{"role": "user", "content": "write something else"}]


def test_timeout_comes_from_the_argument_the_environment_or_a_local_friendly_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SYMBIONT_MODEL_TIMEOUT", raising=False)
    base = "http://127.0.0.1:9/v1"
    # a CPU model can take minutes for one reply: the default is generous
    assert OpenAIModel("m", base_url=base).timeout_s >= 300
    monkeypatch.setenv("SYMBIONT_MODEL_TIMEOUT", "900")
    assert OpenAIModel("m", base_url=base).timeout_s == 900
    assert OpenAIModel("m", base_url=base, timeout=42).timeout_s == 42
    assert OpenAIModel("m", base_url=base, timeout_s=7).timeout_s == 7  # the older name
    monkeypatch.setenv("SYMBIONT_MODEL_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="SYMBIONT_MODEL_TIMEOUT='soon'"):
        OpenAIModel("m", base_url=base)
    with pytest.raises(ValueError, match="positive"):
        OpenAIModel("m", base_url=base, timeout=0)
    with pytest.raises(ValueError, match="not both"):
        OpenAIModel("m", base_url=base, timeout=1, timeout_s=1)


def test_a_retry_after_a_timeout_waits_for_the_same_request(
    openai_server: FakeOpenAIServer,
) -> None:
    openai_server.enqueue(Reply(text="worth the wait", delay_s=1.5))
    model = OpenAIModel(
        "fake-model", base_url=openai_server.base_url, timeout=0.3, abandon_after=30
    )
    retried: list[int] = []

    async def go() -> tuple[str, int]:
        try:
            reply, retries = await call_with_retries(
                model,
                USER,
                max_retries=20,
                base_delay_s=0.01,
                max_delay_s=0.02,
                on_retry=lambda n, exc, delay: retried.append(n),
            )
            return reply.text, retries
        finally:
            await model.aclose()

    text, retries = asyncio.run(go())
    assert text == "worth the wait"
    assert retries >= 1 and retried  # it did time out, and was retried
    assert len(openai_server.chat_requests) == 1  # ... without sending the request again
    assert openai_server.max_in_flight == 1


def test_another_request_waits_until_the_server_has_answered_the_timed_out_one(
    openai_server: FakeOpenAIServer,
) -> None:
    openai_server.enqueue(Reply(text="late", delay_s=1.0), "next")
    model = OpenAIModel(
        "fake-model", base_url=openai_server.base_url, timeout=0.3, abandon_after=30
    )

    async def go() -> list[str]:
        outcomes = []
        try:
            for messages in (USER, *[OTHER] * 20):  # until the other one is answered
                try:
                    outcomes.append((await model.complete(messages)).text)
                    if outcomes[-1] == "next":
                        break
                except TransientModelError as exc:
                    outcomes.append(str(exc))
        finally:
            await model.aclose()
        return outcomes

    outcomes = asyncio.run(go())
    assert "timed out after 0.3 s" in outcomes[0] and "not resent" in outcomes[0]
    assert outcomes[-1] == "next"
    assert openai_server.max_in_flight == 1  # never two at once at the server
    assert len(openai_server.chat_requests) == 2  # the slow one, then the other
    assert openai_server.chat_requests[1]["messages"] == OTHER


def test_a_request_left_running_is_given_up_after_abandon_after(
    openai_server: FakeOpenAIServer,
) -> None:
    openai_server.enqueue(Reply(text="never read", delay_s=30.0), "fresh")
    model = OpenAIModel(
        "fake-model", base_url=openai_server.base_url, timeout=0.2, abandon_after=0.4
    )

    async def go() -> str:
        try:
            for _ in range(10):
                try:
                    return (await model.complete(USER)).text
                except TransientModelError:
                    continue
            return "gave up"
        finally:
            await model.aclose()

    assert asyncio.run(go()) == "fresh"  # the stuck request was dropped, then resent
    assert len(openai_server.chat_requests) == 2
