"""After the repeat warning the agent asks without tools, so a small model that keeps
calling the same capability answers from the result it already has (what Qwen2.5-Coder-0.5B
did in `make bench-real-model`: five of five tasks ended `repeated_call`). Real parts: the
openai SDK over loopback HTTP, the HR library, the sandbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent_helpers import call, tool_results

from symbiont.agent import Agent
from symbiont.library import Library
from symbiont.models.openai import OpenAIModel
from symbiont.testing.openai_server import FakeOpenAIServer


def test_after_the_repeat_warning_the_model_answers_without_tools(
    openai_server: FakeOpenAIServer, hr_library: Library, hr_database: Path
) -> None:
    # With tools offered it calls the same one again and again; without, it answers.
    def brain(request: dict[str, Any]) -> Any:
        if request.get("tools"):
            return [call("get_salary_details", employee_id="E042")]
        # the last result is the warning; the answer comes from the result before it
        out = [b for _, b in tool_results(request["messages"]) if "output" in b][-1]["output"]
        return f"{out['name']} earns {out['base']} {out['currency']}."

    openai_server.handler = brain
    model = OpenAIModel("fake-model", base_url=openai_server.base_url, api_key="sk-test")
    with Agent(hr_library, model) as agent:
        result = agent.run("What is employee E042's salary?")

    assert result.outcome == "answered", result.error
    base = json.loads(hr_database.read_text())["employees"]["E042"]["salary"]["base"]
    assert str(base) in (result.answer or "")
    requests = openai_server.chat_requests
    assert [bool(r.get("tools")) for r in requests] == [True, True, True, False]
    assert hr_library.get("get_salary_details").stats.runs == 2  # the third was not run


def test_a_model_that_calls_even_without_tools_still_ends_as_repeated_call(
    openai_server: FakeOpenAIServer, hr_library: Library
) -> None:
    openai_server.handler = lambda request: [call("get_salary_details", employee_id="E042")]
    model = OpenAIModel("fake-model", base_url=openai_server.base_url, api_key="sk-test")
    with Agent(hr_library, model, max_steps=12) as agent:
        result = agent.run("What is employee E042's salary?")
    assert result.outcome == "repeated_call"
    assert not openai_server.chat_requests[3].get("tools")
    assert len(openai_server.chat_requests) == 4
