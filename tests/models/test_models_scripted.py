"""`ScriptedModel` and `default_model`."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from symbiont.errors import ModelError, TransientModelError
from symbiont.models import (
    OFFLINE_NOTICE,
    Model,
    ModelReply,
    MutationModel,
    ScriptedModel,
    ToolCall,
    default_model,
)


def ask(model: Model, content: str = "hi", **kw: Any) -> ModelReply:
    return asyncio.run(model.complete([{"role": "user", "content": content}], **kw))  # type: ignore[arg-type]


def test_replies_in_order_and_records_calls() -> None:
    tool_reply = ModelReply(text="", tool_calls=(ToolCall("c1", "search", '{"q": "x"}'),))
    model = ScriptedModel(["first", tool_reply, lambda messages: f"echo {messages[-1]['content']}"])
    assert isinstance(model, Model)
    assert ask(model, "a").text == "first"
    assert (
        ask(model, "b", tools=[{"type": "function", "function": {"name": "search"}}]) is tool_reply
    )
    assert ask(model, "c", hints={"target": "f"}).text == "echo c"
    assert [call[-1]["content"] for call in model.calls] == ["a", "b", "c"]
    assert model.tools[1] == [{"type": "function", "function": {"name": "search"}}]
    assert model.hints[2] == {"target": "f"}
    assert model.remaining == 0


def test_string_replies_report_usage_from_lengths() -> None:
    model = ScriptedModel(["y" * 40, "y"])
    long = ask(model, "x" * 400)
    short = ask(model, "x")
    assert long.usage.input_tokens > short.usage.input_tokens > 0
    assert long.usage.output_tokens > short.usage.output_tokens > 0


def test_exceptions_are_raised() -> None:
    model = ScriptedModel([TransientModelError("429", retry_after=0.5), ValueError, "after"])
    with pytest.raises(TransientModelError) as info:
        ask(model)
    assert info.value.retry_after == 0.5
    with pytest.raises(ValueError):
        ask(model)
    assert ask(model).text == "after"


def test_recorded_messages_are_copies() -> None:
    model = ScriptedModel(["ok"])
    messages = [{"role": "user", "content": "original"}]
    asyncio.run(model.complete(messages))
    messages[0]["content"] = "changed later"
    assert model.calls[0][0]["content"] == "original"


def test_running_out_is_a_clear_error() -> None:
    model = ScriptedModel(["only one"])
    ask(model)
    with pytest.raises(ModelError, match=r"ran out of replies: call #2 but the script had 1"):
        ask(model, "what now?")
    model.add("more")
    assert ask(model).text == "more"


def test_bad_script_item_is_a_clear_error() -> None:
    with pytest.raises(ModelError, match="expected str, ModelReply"):
        bad: Any = 42
        ask(ScriptedModel([bad]))


def test_default_model_offline_is_announced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYMBIONT_MODEL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    said: list[str] = []
    model = default_model(announce=said.append)
    assert isinstance(model, MutationModel)
    assert said == [OFFLINE_NOTICE]
    assert "SYMBIONT_MODEL / OPENAI_BASE_URL unset" in said[0]
    assert isinstance(default_model(announce=None), MutationModel)


def test_default_model_stderr_notice_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import symbiont.models as models

    monkeypatch.delenv("SYMBIONT_MODEL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setattr(models, "_announced", set())
    default_model()
    default_model()
    err = capsys.readouterr().err
    assert err.count("offline mutation proposer") == 1


def test_default_model_explicit_mutation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYMBIONT_MODEL", "mutation:7")
    said: list[str] = []
    model = default_model(announce=said.append)
    assert isinstance(model, MutationModel) and model.seed == 7
    assert said == []
    monkeypatch.setenv("SYMBIONT_MODEL", "mutation:x")
    with pytest.raises(ValueError, match="integer"):
        default_model()
