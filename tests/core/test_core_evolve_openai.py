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
            t.triple,
            model,
            prompt="multiply by three",
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


GOOD_REPLY = "```python\ndef triple(x: int) -> int:\n    return x * SCALE\n```"


def _evolve(server, **kwargs):
    model = OpenAIModel(
        "fake-model",
        base_url=server.base_url,
        api_key="test-key",
        timeout=kwargs.pop("model_timeout", 30),
        abandon_after=60,
    )
    rt = symbiont.Runtime(store=False)
    try:
        return rt.evolve_sync(
            t.triple, model, prompt="multiply by three", check=check_triple, **kwargs
        )
    finally:
        rt.close()
        h = t.triple.symbiont
        h.activate(0)
        del h.revisions[1:]
        h._previous.clear()


def test_exhausted_retries_end_the_attempt_not_the_run(openai_server) -> None:
    openai_server.enqueue(
        Error(status=503, retry_after=0.01),
        Error(status=503, retry_after=0.01),  # one retry, then attempt 1 has failed
        GOOD_REPLY,
    )
    report = _evolve(openai_server, attempts=3, max_retries=1)
    assert [a.stage for a in report.attempts] == ["model", "promote"]
    failed = report.attempts[0]
    assert failed.retries == 1  # an attempt that failed at the model reports its retries
    assert "503" in failed.diagnostics[0].message and "1 retry" in failed.diagnostics[0].message
    assert report.ok


def test_the_run_stops_after_consecutive_model_failures_with_its_reason(openai_server) -> None:
    openai_server.handler = lambda body: Error(
        status=503, message="model loading", retry_after=0.01
    )
    report = _evolve(openai_server, attempts=10, max_retries=1, max_model_failures=3)
    assert [a.stage for a in report.attempts] == ["model"] * 3
    assert all(a.retries == 1 for a in report.attempts)
    assert "failed 3 attempts in a row" in report.stop_reason
    assert "model loading" in report.stop_reason
    assert len(openai_server.chat_requests) == 3 * 2


def test_after_a_timeout_one_request_at_a_time_and_the_late_answer_is_used(openai_server) -> None:
    from symbiont.testing.openai_server import Reply

    openai_server.enqueue(Reply(text=GOOD_REPLY, delay_s=2.0))
    report = _evolve(
        openai_server, attempts=10, max_retries=1, max_model_failures=10, model_timeout=0.3
    )
    assert (
        report.attempts[0].stage == "model"
        and "timed out" in report.attempts[0].diagnostics[0].message
    )
    assert report.ok  # the slow answer arrived and was used
    assert len(openai_server.chat_requests) == 1  # the server was never asked twice
    assert openai_server.max_in_flight == 1


def test_a_reply_cut_off_at_the_length_limit_is_answered_as_such(openai_server) -> None:
    from symbiont.testing.openai_server import Reply

    openai_server.enqueue(
        Reply(text="```python\ndef triple(x: int) -> int:\n    return x *", finish_reason="length"),
        GOOD_REPLY,
    )
    report = _evolve(openai_server, attempts=2)
    assert report.attempts[0].diagnostics[0].kind == "truncated"
    answer = openai_server.chat_requests[1]["messages"][-1]["content"]
    assert "truncated" in answer and "shorter function" in answer
    assert report.ok


def test_repeated_replies_raise_the_sampling_temperature(openai_server) -> None:
    wrong = "```python\ndef triple(x: int) -> int:\n    return x + x\n```"
    openai_server.enqueue(wrong, wrong, wrong, GOOD_REPLY)
    model = OpenAIModel("fake-model", base_url=openai_server.base_url, api_key="k", temperature=0.2)
    rt = symbiont.Runtime(store=False)
    h = t.triple.symbiont
    try:
        report = rt.evolve_sync(t.triple, model, prompt="multiply by three", check=check_triple)
        assert [a.stage for a in report.attempts] == ["evaluate", "model", "model", "promote"]
        temperatures = [c.get("temperature") for c in openai_server.chat_requests]
        # the model's own setting while replies are new, higher after each repeat
        assert temperatures[:2] == [0.2, 0.2]
        assert temperatures[2] > 0.2 and temperatures[3] > temperatures[2]
    finally:
        rt.close()
        h.activate(0)
        del h.revisions[1:]
        h._previous.clear()
