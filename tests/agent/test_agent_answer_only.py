"""A small model that has a capability's result calls the capability again instead of
answering (what Qwen2.5-Coder-0.5B did in `make bench-real-model`: it repeated the call, or
wrote the call and an invented result as text, until the run ended `repeated_call` in five
of five tasks). The first repeat of a call that succeeded is not run again: the model is
asked the question with the data in a request of its own, without tools or tool history.
If it still calls, the repeat warning follows (no tools offered) and then the stop.

Real parts: the openai SDK over loopback HTTP, the HR library, the sandbox."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from agent_helpers import call

from symbiont.agent import Agent
from symbiont.library import Library
from symbiont.models.openai import OpenAIModel
from symbiont.testing.openai_server import FakeOpenAIServer


def _data_in(request: dict[str, Any]) -> dict[str, Any]:
    """The capability output quoted in the last user message (the answer request)."""
    text = request["messages"][-1]["content"]
    found = re.search(r"returned:\n(\{.*?\})\n", text + "\n", re.S)
    assert found, text
    return json.loads(found.group(1))


def _base_salary(hr_database: Path, employee: str) -> int:
    return int(json.loads(hr_database.read_text())["employees"][employee]["salary"]["base"])


def test_a_repeated_successful_call_becomes_a_request_for_the_answer(
    openai_server: FakeOpenAIServer, hr_library: Library, hr_database: Path
) -> None:
    # With tools offered it calls the same one again and again; asked plainly, it answers.
    def brain(request: dict[str, Any]) -> Any:
        if request.get("tools"):
            return [call("get_salary_details", employee_id="E042")]
        out = _data_in(request)
        return f"{out['name']} earns {out['base']} {out['currency']}."

    openai_server.handler = brain
    model = OpenAIModel("fake-model", base_url=openai_server.base_url, api_key="sk-test")
    with Agent(hr_library, model) as agent:
        result = agent.run("What is employee E042's salary?")

    assert result.outcome == "answered", result.error
    assert str(_base_salary(hr_database, "E042")) in (result.answer or "")
    requests = openai_server.chat_requests
    assert [bool(r.get("tools")) for r in requests] == [True, True, False]
    # the answer request carries the question and the data, no tool history
    assert [m["role"] for m in requests[2]["messages"]] == ["system", "user"]
    assert "E042" in requests[2]["messages"][1]["content"]
    assert hr_library.get("get_salary_details").stats.runs == 1  # the repeat was not run
    assert result.ran == ["get_salary_details"]


def test_a_call_written_as_text_with_an_invented_result_is_not_the_answer(
    openai_server: FakeOpenAIServer, hr_library: Library, hr_database: Path
) -> None:
    # The real model's habit: the call as JSON text, then (after the result) the same call
    # again followed by a result of its own making.
    text_call = '```json\n{"name": "get_salary_details", "arguments": {"employee_id": "E042"}}\n```'
    invented = (
        '{"name": "get_salary_details", "arguments": {"employee_id": "E042"}}\n'
        '{"output": {"employee_id": "E042", "base": 1, "currency": "EUR"}}'
    )

    def brain(request: dict[str, Any]) -> Any:
        if request.get("tools"):
            ran = any(m["role"] == "tool" for m in request["messages"])
            return invented if ran else text_call
        out = _data_in(request)
        return f"The base salary is {out['base']} {out['currency']}."

    openai_server.handler = brain
    model = OpenAIModel("fake-model", base_url=openai_server.base_url, api_key="sk-test")
    with Agent(hr_library, model) as agent:
        result = agent.run("What is the base salary of employee E042?")

    assert result.outcome == "answered", result.error
    real = _base_salary(hr_database, "E042")
    assert real != 1
    assert f"{real} EUR" in (result.answer or "")
    assert hr_library.get("get_salary_details").stats.runs == 1


def test_a_model_that_calls_even_without_tools_still_ends_as_repeated_call(
    openai_server: FakeOpenAIServer, hr_library: Library
) -> None:
    openai_server.handler = lambda request: [call("get_salary_details", employee_id="E042")]
    model = OpenAIModel("fake-model", base_url=openai_server.base_url, api_key="sk-test")
    with Agent(hr_library, model, max_steps=12) as agent:
        result = agent.run("What is employee E042's salary?")
    assert result.outcome == "repeated_call"
    assert result.answer is None
    requests = openai_server.chat_requests
    # the call, its repeat, the answer request, the warning's request, the stop
    assert [bool(r.get("tools")) for r in requests] == [True, True, False, False, False]
    assert hr_library.get("get_salary_details").stats.runs == 1


def test_a_repeat_of_a_failed_call_is_not_turned_into_an_answer_request(
    openai_server: FakeOpenAIServer, hr_library: Library
) -> None:
    # An unknown id: the capability answers with an error; repeating it earns the warning,
    # not a request to answer from data (there is none).
    openai_server.handler = lambda request: [call("get_salary_details", employee_id="E999")]
    model = OpenAIModel("fake-model", base_url=openai_server.base_url, api_key="sk-test")
    with Agent(hr_library, model, max_steps=12) as agent:
        result = agent.run("What is employee E999's salary?")
    assert result.outcome == "repeated_call"
    requests = openai_server.chat_requests
    assert all(any(m["role"] == "tool" for m in r["messages"]) for r in requests[1:])
