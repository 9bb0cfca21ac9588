"""The task agent cannot fake success (issue 11, item 4).

The scripted model reproduces what a small local model did: it calls capability ids as if
they were tools, writes tool calls as plain text (fenced, with broken JSON), invents results,
calls a write capability for a read question and repeats the same call. Everything else is
real: the openai SDK over loopback HTTP, the library in SQLite, the process-tier sandbox,
the HR JSON file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from agent_helpers import call, is_mutation, last_result, tool_results, user_prompt

from symbiont.agent import Agent
from symbiont.agent.transcripts import open_transcripts
from symbiont.library import Capability, Library
from symbiont.models.openai import OpenAIModel
from symbiont.testing.openai_server import FakeOpenAIServer

READ_TASK = "What is employee E042's salary?"


def _model(server: FakeOpenAIServer) -> OpenAIModel:
    return OpenAIModel("fake-model", base_url=server.base_url, api_key="sk-test")


def _salary(database: Path, employee: str) -> dict[str, Any]:
    return json.loads(database.read_text())["employees"][employee]["salary"]


def _tool_names(request: dict[str, Any]) -> set[str]:
    return {t["function"]["name"] for t in request.get("tools") or ()}


def _answer_from(body: dict[str, Any]) -> str:
    out = body["output"]
    return f"{out['name']} earns {out['base']} {out['currency']}."


# -- capability ids called as tools ----------------------------------------------------------


def test_a_capability_id_called_as_a_tool_runs_the_capability(
    openai_server: FakeOpenAIServer, hr_library: Library, hr_database: Path
) -> None:
    def brain(request: dict[str, Any]) -> Any:
        last = last_result(request["messages"])
        if last is None:
            return [call("get_salary_details", employee_id="E042")]
        return _answer_from(last[1])

    openai_server.handler = brain
    with Agent(hr_library, _model(openai_server)) as agent:
        result = agent.run(READ_TASK)

    assert result.outcome == "answered"
    assert result.ran == ["get_salary_details"]
    assert str(_salary(hr_database, "E042")["base"]) in (result.answer or "")
    first = openai_server.chat_requests[0]
    tool = next(t for t in first["tools"] if t["function"]["name"] == "get_salary_details")
    # the capability's input schema is the tool's parameters
    assert tool["function"]["parameters"]["required"] == ["employee_id"]
    assert "employee_id" in tool["function"]["parameters"]["properties"]


def test_tool_names_fit_the_providers_pattern_and_do_not_collide() -> None:
    from symbiont.agent.task import tool_name_for

    pattern = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
    assert tool_name_for("hr.get_salary", set()) == "hr_get_salary"
    long_id = "a" * 80
    clash = tool_name_for("run_capability", {"run_capability"})
    for name in (tool_name_for(long_id, set()), clash, tool_name_for("x.y", {"x_y"})):
        assert pattern.match(name), name
    assert clash != "run_capability"
    assert tool_name_for("x.y", {"x_y"}) != tool_name_for("x_y", set())


def test_a_capability_with_a_dotted_id_is_offered_under_a_valid_tool_name(
    openai_server: FakeOpenAIServer, hr_library: Library
) -> None:
    hr_library.add(
        Capability.from_source(
            "def shout(text: str) -> str:\n    return text.upper() + '!'\n",
            id="text.shout",
            summary="Shout a text: returns the given text in upper case with an exclamation mark.",
            examples=[{"input": {"text": "hi"}, "expect": "HI!"}],
        )
    )

    def brain(request: dict[str, Any]) -> Any:
        last = last_result(request["messages"])
        names = _tool_names(request)
        if last is None:
            assert "text_shout" in names and "text.shout" not in names
            return [call("text_shout", text="hello")]
        return f"It says {last[1]['output']}"

    openai_server.handler = brain
    with Agent(hr_library, _model(openai_server)) as agent:
        result = agent.run("Shout the text hello in upper case")
    assert result.outcome == "answered", result.error
    assert result.ran == ["text.shout"]
    assert result.answer == "It says HELLO!"


# -- tool calls written as text --------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "get_salary_details", "arguments": {"employee_id": "E042"}}',
        'I will look it up.\n```json\n{"name": "get_salary_details", '
        '"arguments": {"employee_id": "E042"}}\n```',
        # broken JSON: single quotes, a trailing comma, a missing closing brace
        "```json\n{'name': 'get_salary_details', 'arguments': {'employee_id': 'E042'},}\n```",
        '<tool_call>{"name": "run_capability", "arguments": {"capability_id": '
        '"get_salary_details", "input": {"employee_id": "E042"}}</tool_call>',
        '```python\nget_salary_details(employee_id="E042")\n```',
    ],
    ids=["bare", "fenced", "broken", "missing-brace", "python-call"],
)
def test_a_tool_call_written_as_text_is_run_not_taken_as_the_answer(
    openai_server: FakeOpenAIServer, hr_library: Library, hr_database: Path, text: str
) -> None:
    def brain(request: dict[str, Any]) -> Any:
        last = last_result(request["messages"])
        if last is None:
            return text
        return _answer_from(last[1])

    openai_server.handler = brain
    with Agent(hr_library, _model(openai_server)) as agent:
        result = agent.run(READ_TASK)

    assert result.outcome == "answered"
    assert result.ran == ["get_salary_details"]
    assert result.answer is not None and "{" not in result.answer
    assert str(_salary(hr_database, "E042")["base"]) in result.answer
    with open_transcripts(hr_library.path) as store:
        notes = [s.data.get("note", "") for s in store.get(result.transcript_id).step_records]
    assert any("written as text" in n for n in notes)


def test_a_text_call_to_an_unknown_tool_is_sent_back_with_the_real_tools(
    openai_server: FakeOpenAIServer, hr_library: Library
) -> None:
    def brain(request: dict[str, Any]) -> Any:
        messages = request["messages"]
        last = last_result(messages)
        if last is not None:
            return _answer_from(last[1])
        if len(messages) == 2:  # first turn: a tool that does not exist, as text
            return '{"name": "lookup_pay", "arguments": {"employee_id": "E042"}}'
        return [call("get_salary_details", employee_id="E042")]

    openai_server.handler = brain
    with Agent(hr_library, _model(openai_server)) as agent:
        result = agent.run(READ_TASK)

    assert result.outcome == "answered"
    second = openai_server.chat_requests[1]["messages"]
    feedback = str(second[-1]["content"])
    assert second[-1]["role"] == "user"
    assert "lookup_pay" in feedback and "Nothing was run" in feedback
    assert "run_capability" in feedback and "get_salary_details" in feedback


def test_an_unreadable_text_call_to_a_real_tool_is_explained_not_answered(
    openai_server: FakeOpenAIServer, hr_library: Library
) -> None:
    def brain(request: dict[str, Any]) -> Any:
        messages = request["messages"]
        last = last_result(messages)
        if last is not None:
            return _answer_from(last[1])
        if len(messages) == 2:
            return '{"name": "get_salary_details", "arguments": {"employee_id": "E042}]]'
        return [call("get_salary_details", employee_id="E042")]

    openai_server.handler = brain
    with Agent(hr_library, _model(openai_server)) as agent:
        result = agent.run(READ_TASK)
    assert result.outcome == "answered"
    feedback = str(openai_server.chat_requests[1]["messages"][-1]["content"])
    assert "could not be read" in feedback and "get_salary_details" in feedback


def test_an_answer_that_quotes_json_output_is_still_an_answer() -> None:
    from symbiont.agent.textcalls import find_text_calls

    assert find_text_calls('The record is {"employee_id": "E042", "base": 64000}.') == []
    assert find_text_calls("No JSON here, {just braces}.") == []
    # a Python-style call inside prose is not a call; alone, of a known tool, it is
    known = ["get_salary_details"]
    prose = 'I ran get_salary_details(employee_id="E042"): E042 earns 64000 EUR.'
    assert find_text_calls(prose, known) == []
    alone = find_text_calls('get_salary_details(employee_id="E042")', known)
    assert [(c.name, json.loads(c.arguments)) for c in alone] == [
        ("get_salary_details", {"employee_id": "E042"})
    ]
    assert find_text_calls('os.system(employee_id="E042")', known) == []


# -- invented results ----------------------------------------------------------------------------


def test_an_invented_answer_is_reminded_then_marked_unverified(
    openai_server: FakeOpenAIServer, hr_library: Library
) -> None:
    openai_server.handler = lambda request: "Employee E042 earns 99,000 EUR a year."
    with Agent(hr_library, _model(openai_server)) as agent:
        result = agent.run(READ_TASK)

    assert result.outcome == "unverified" and not result.ok
    assert result.ran == []
    assert result.error == "answered without running a capability"
    assert len(openai_server.chat_requests) == 2  # one reminder, then taken as it is
    reminder = str(openai_server.chat_requests[1]["messages"][-1]["content"])
    assert "without running a capability" in reminder
    with open_transcripts(hr_library.path) as store:
        t = store.get(result.transcript_id)
    assert t.outcome == "unverified"
    assert t.error == "answered without running a capability"


def test_an_answer_after_the_reminder_and_a_run_is_answered(
    openai_server: FakeOpenAIServer, hr_library: Library
) -> None:
    def brain(request: dict[str, Any]) -> Any:
        messages = request["messages"]
        last = last_result(messages)
        if last is not None:
            return _answer_from(last[1])
        if len(messages) == 2:
            return "E042 earns a lot."
        return [call("get_salary_details", employee_id="E042")]

    openai_server.handler = brain
    with Agent(hr_library, _model(openai_server)) as agent:
        result = agent.run(READ_TASK)
    assert result.outcome == "answered"
    assert result.ran == ["get_salary_details"]


# -- writes only for tasks that ask for a change -------------------------------------------------


def test_a_write_capability_is_neither_offered_nor_run_for_a_read_question(
    openai_server: FakeOpenAIServer, hr_library: Library, hr_database: Path
) -> None:
    before = hr_database.read_bytes()

    def brain(request: dict[str, Any]) -> Any:
        results = tool_results(request["messages"])
        if not results:
            return [
                call(
                    "run_capability",
                    capability_id="update_employee_salary",
                    input={
                        "employee_id": "E007",
                        "new_base": 41000,
                        "effective_date": "2026-01-01",
                    },
                )
            ]
        if len(results) == 1:
            return [call("get_salary_details", employee_id="E007")]
        return _answer_from(results[-1][1])

    openai_server.handler = brain
    with Agent(hr_library, _model(openai_server), k=12) as agent:
        result = agent.run("What is employee E007's salary, and what was their last raise?")

    assert result.change_requested is False
    first = openai_server.chat_requests[0]
    for writer in ("update_employee_salary", "update_employee_car_details"):
        assert writer not in _tool_names(first)
        assert writer not in user_prompt(first["messages"])
        assert writer in result.withheld
    refused = tool_results(openai_server.chat_requests[1]["messages"])[0][1]
    assert refused["error"]["kind"] == "write_not_allowed"
    assert "does not ask for a change" in refused["error"]["message"]
    assert hr_database.read_bytes() == before  # nothing was written
    assert hr_library.get("update_employee_salary").stats.runs == 0
    assert result.outcome == "answered" and result.ran == ["get_salary_details"]


def _raise_brain(request: dict[str, Any]) -> Any:
    results = tool_results(request["messages"])
    if not results:
        assert "update_employee_salary" in _tool_names(request)
        return [
            call(
                "update_employee_salary",
                employee_id="E007",
                new_base=41000,
                effective_date="2026-01-01",
                reason="promotion",
            )
        ]
    body = results[-1][1]
    if body["ok"]:
        return f"Done: the base is now {body['output']['base']}."
    return f"Not done: {body['error']['message']}"


def test_a_task_that_asks_for_a_change_may_run_a_writer(
    openai_server: FakeOpenAIServer, hr_library: Library, hr_database: Path
) -> None:
    openai_server.handler = _raise_brain
    with Agent(hr_library, _model(openai_server)) as agent:
        result = agent.run("Raise employee E007's base salary to 41000 from 2026-01-01")
    assert result.change_requested is True
    assert result.outcome == "answered", result.error
    assert _salary(hr_database, "E007")["base"] == 41000


def test_confirm_writes_asks_the_person_and_a_no_leaves_the_data_alone(
    openai_server: FakeOpenAIServer, hr_library: Library, hr_database: Path
) -> None:
    before = hr_database.read_bytes()
    asked: list[tuple[str, dict[str, Any]]] = []

    def refuse(cap: Capability, value: dict[str, Any]) -> bool:
        asked.append((cap.id, value))
        return False

    openai_server.handler = _raise_brain
    with Agent(hr_library, _model(openai_server), confirm_writes=refuse) as agent:
        result = agent.run("Raise employee E007's base salary to 41000 from 2026-01-01")

    assert asked == [
        (
            "update_employee_salary",
            {
                "employee_id": "E007",
                "new_base": 41000,
                "effective_date": "2026-01-01",
                "reason": "promotion",
            },
        )
    ]
    assert hr_database.read_bytes() == before
    assert "did not confirm" in (result.answer or "")


@pytest.mark.parametrize(
    ("task", "change"),
    [
        ("What is employee E042's salary?", False),
        ("What was E007's last raise?", False),
        ("Show the car details of E003", False),
        ("When is the next update of the calendar?", False),
        ("Raise E007's salary to 41000", True),
        ("Please update the car of E003 to a Tesla", True),
        ("Set the pay grade of E010 to P3", True),
        ("Delete the old emergency contact of E001", True),
        ("add a new emergency contact for E001", True),
        ("Change E002's number plate", True),
    ],
)
def test_the_change_classifier(task: str, change: bool) -> None:
    from symbiont.agent.intent import asks_for_change

    assert asks_for_change(task) is change


# -- repeated identical calls --------------------------------------------------------------------


def test_repeated_identical_calls_are_noticed_and_stop_the_run(
    openai_server: FakeOpenAIServer, hr_library: Library
) -> None:
    # the model never answers; it calls the same capability with the same input forever
    openai_server.handler = lambda request: [call("get_salary_details", employee_id="E042")]
    with Agent(hr_library, _model(openai_server), max_steps=12) as agent:
        result = agent.run(READ_TASK)

    assert result.outcome == "repeated_call"
    assert "same arguments" in (result.error or "")
    # run; repeated (asked for the answer instead); again (warned); again (stopped)
    assert len(openai_server.chat_requests) == 5
    warned = tool_results(openai_server.chat_requests[4]["messages"])[-1][1]
    assert warned["error"]["kind"] == "repeated_call"
    assert hr_library.get("get_salary_details").stats.runs == 1  # no repeat was run
    with open_transcripts(hr_library.path) as store:
        assert store.get(result.transcript_id).outcome == "repeated_call"


def test_the_same_call_through_run_capability_counts_as_a_repeat(
    openai_server: FakeOpenAIServer, hr_library: Library
) -> None:
    replies = [
        [call("get_salary_details", employee_id="E042")],
        [
            call(
                "run_capability",
                capability_id="get_salary_details",
                input={"employee_id": "E042"},
            )
        ],
        "E042 is paid as shown.",
    ]
    openai_server.enqueue(*replies)
    with Agent(hr_library, _model(openai_server)) as agent:
        result = agent.run(READ_TASK)
    # the second call is the first one again: not run; the answer is asked for instead
    answer_request = openai_server.chat_requests[2]
    assert not answer_request.get("tools")
    assert [m["role"] for m in answer_request["messages"]] == ["system", "user"]
    assert hr_library.get("get_salary_details").stats.runs == 1
    assert result.outcome == "answered"


# -- the CLI flag ------------------------------------------------------------------------------


def test_confirm_writes_without_a_terminal_is_refused_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    openai_server: FakeOpenAIServer,
) -> None:
    from symbiont.cli import main

    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    store = tmp_path / "s.db"
    # pytest's stdin is not a terminal, as in a script or a pipe
    code = main(
        ["agent", "Raise E007's salary to 41000", "--confirm-writes", "--store", str(store)]
    )
    assert code != 0
    err = capsys.readouterr().err
    assert "--confirm-writes" in err and "not a terminal" in err
    assert "Traceback" not in err
    assert openai_server.chat_requests == []  # refused before any model call


# -- the mutation agent's closing message ------------------------------------------------------


def test_the_mutation_agents_closing_error_does_not_blame_a_missing_source_once_written(
    openai_server: FakeOpenAIServer, hr_library: Library
) -> None:
    def brain(request: dict[str, Any]) -> Any:
        messages = request["messages"]
        if is_mutation(messages):
            done = len(tool_results(messages))
            if done == 0:
                return [call("build")]  # before any source: no_source
            if done == 1:
                return [call("write_source", code="def double(x: int) -> int:\n    return 2 * x\n")]
            return "Let me think about the tests."  # then never calls a tool again
        last = last_result(messages)
        if last is None:
            return [call("create_capability", task_description="double an integer")]
        return "Could not create it: " + last[1]["error"]["message"]

    openai_server.handler = brain
    with Agent(hr_library, _model(openai_server), mutation_max_steps=4) as agent:
        result = agent.run("Double the number 21 with a new capability")

    message = tool_results(openai_server.chat_requests[-1]["messages"])[-1][1]["error"]["message"]
    assert "step limit" in message
    assert "no_source" not in message
    assert "a source was written" in message
    assert result.created == []


# -- the demo's home -------------------------------------------------------------------------------


def test_the_demo_store_lives_under_symbiont_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from symbiont.agent.demo import default_demo_home

    monkeypatch.setenv("SYMBIONT_HOME", str(tmp_path / "home"))
    home = default_demo_home()
    assert home.is_relative_to(tmp_path / "home")
    assert home != tmp_path / "home"  # its own folder: the demo empties it, never the home
    monkeypatch.delenv("SYMBIONT_HOME")
    assert not default_demo_home().is_relative_to(tmp_path)
