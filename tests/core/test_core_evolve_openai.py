"""Evolution end to end through the real `openai` SDK against a loopback OpenAI server."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import evolve_targets as t

import symbiont
from symbiont.models import OpenAIModel
from symbiont.testing.openai_server import Error


def check_triple(fn) -> None:
    for x in (1, 4):
        assert fn(x) == 3 * x, f"triple({x}) returned {fn(x)}"


def test_evolve_with_openai_model_retries_a_429_and_feeds_back_errors(openai_server) -> None:
    openai_server.enqueue(
        Error(status=429, retry_after=0.01),
        "```python\ndef triple(x: int) -> int:\n    return x + x\n```",
        "Sure.\n```python\ndef triple(x: int) -> int:\n    return x * SCALE\n```",
    )
    model = OpenAIModel("fake-model", base_url=openai_server.base_url, api_key="test-key")
    rt = symbiont.Runtime(store=False)
    try:
        report = rt.evolve_sync(
            t.triple, model, prompt="multiply by three",
            check=check_triple,
        )
    finally:
        rt.close()
        h = t.triple.symbiont
    try:
        assert [a.stage for a in report.attempts] == ["evaluate", "promote"]
        assert report.attempts[0].retries == 1  # the 429, retried without using an attempt
        assert report.attempts[0].input_tokens > 0 and report.attempts[0].output_tokens > 0
        assert t.triple(5) == 15
        chats = openai_server.chat_requests
        assert len(chats) == 3  # 429 + two completions
        second = chats[-1]["messages"]
        assert second[0]["role"] == "system"
        assert "triple(1) returned 2" in second[-1]["content"]  # the failed check, fed back
        assert second[-2]["role"] == "assistant"
        assert "return x + x" in second[-2]["content"]
    finally:
        h.activate(0)
        del h.revisions[1:]
        h._previous.clear()
