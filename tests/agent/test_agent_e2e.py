"""End to end: the agents driven through the real `openai` SDK over HTTP on loopback.

The model side is a function of each request (see agent_helpers), answering with tool calls
the way a model would; everything else is real: the library in a SQLite file, capabilities
run in the process-tier sandbox, data read from the HR JSON file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent_helpers import (
    call,
    is_mutation,
    last_result,
    raw_call,
    salary_brain,
    tool_results,
    user_prompt,
)

from symbiont.agent import Agent
from symbiont.agent.transcripts import open_transcripts
from symbiont.library import Capability, Library
from symbiont.models.openai import OpenAIModel
from symbiont.testing.openai_server import Error, FakeOpenAIServer


def _model(server: FakeOpenAIServer) -> OpenAIModel:
    return OpenAIModel("fake-model", base_url=server.base_url, api_key="sk-test")


def _employees(database: Path) -> dict[str, Any]:
    return json.loads(database.read_text())["employees"]


# -- (a) retrieve, run, answer ---------------------------------------------------------------


def test_salary_question_is_answered_from_the_json_file(
    openai_server: FakeOpenAIServer, hr_library: Library, hr_database: Path
) -> None:
    openai_server.handler = salary_brain
    with Agent(hr_library, _model(openai_server)) as agent:
        result = agent.run("What is employee E042's salary?")

    salary = _employees(hr_database)["E042"]["salary"]
    assert result.outcome == "answered"
    assert result.answer is not None and str(salary["base"]) in result.answer
    assert result.ran == ["get_salary_details"]
    assert result.created == []
    assert result.offered[0] == "get_salary_details"
    assert result.steps == 3

    # the model was told the candidates with their input schemas and was given the tools
    first = openai_server.chat_requests[0]
    assert "get_salary_details" in user_prompt(first["messages"])
    assert '"employee_id"' in user_prompt(first["messages"])
    library_tools = {
        "search_capabilities",
        "run_capability",
        "create_capability",
        "mutate_capability",
    }
    offered_tools = {t["function"]["name"] for t in first["tools"]}
    # the library tools, and each offered capability as a tool of its own
    assert offered_tools == library_tools | set(result.offered)
    # the run was recorded by the library
    assert hr_library.get("get_salary_details").stats.runs == 1

    # and the whole run is a transcript: retrieval, three model calls, two tools, tokens
    with open_transcripts(hr_library.path) as store:
        t = store.get(result.transcript_id)
    assert t.outcome == "answered" and t.answer == result.answer
    assert [s.kind for s in t.step_records] == [
        "retrieve",
        "model",
        "tool",
        "model",
        "tool",
        "model",
    ]
    assert [s.name for s in t.step_records if s.kind == "tool"] == [
        "search_capabilities",
        "run_capability",
    ]
    assert t.steps == 3 and t.input_tokens > 0 and t.output_tokens > 0
    assert t.messages is not None and t.messages[-1]["content"] == result.answer


# -- (b) create through the mutation agent, then reuse --------------------------------------

TASK_B = "What is the average base salary in the Engineering department?"

# v1 does not build: it returns a string where the declared type says float
SOURCE_V1 = '''
import json
from typing import TypedDict

from symbiont.host import read_file


class DepartmentPay(TypedDict):
    department: str
    employees: int
    average_base: float
    currency: str


def department_average_salary(department: str) -> DepartmentPay:
    """Average base salary of the employees of one department."""
    db = json.loads(read_file("employee_database.json"))
    return {"department": department, "employees": 0, "average_base": "n/a", "currency": "EUR"}
'''

# v2 builds, but ignores the department: its test fails
SOURCE_V2 = '''
import json
from typing import TypedDict

from symbiont.host import read_file


class DepartmentPay(TypedDict):
    department: str
    employees: int
    average_base: float
    currency: str


def department_average_salary(department: str) -> DepartmentPay:
    """Average base salary of the employees of one department."""
    db = json.loads(read_file("employee_database.json"))
    people = list(db["employees"].values())
    total = sum(float(e["salary"]["base"]) for e in people)
    return {
        "department": department,
        "employees": len(people),
        "average_base": round(total / len(people), 2),
        "currency": "EUR",
    }
'''

# v3 is right
SOURCE_V3 = '''
import json
from typing import TypedDict

from symbiont.host import read_file


class DepartmentPay(TypedDict):
    department: str
    employees: int
    average_base: float
    currency: str


def department_average_salary(department: str) -> DepartmentPay:
    """Average base salary of the employees of one department."""
    db = json.loads(read_file("employee_database.json"))
    wanted = department.strip().lower()
    people = [e for e in db["employees"].values() if e["department"].lower() == wanted]
    if not people:
        raise LookupError(f"no employees in a department called {department!r}")
    total = sum(float(e["salary"]["base"]) for e in people)
    return {
        "department": people[0]["department"],
        "employees": len(people),
        "average_base": round(total / len(people), 2),
        "currency": people[0]["salary"]["currency"],
    }
'''

SUMMARY_B = (
    "Average base salary of the employees in one department: takes a department name such as "
    "Engineering or Sales and returns the average annual base pay, the currency and how many "
    "employees were counted."
)


def _average(database: Path, department: str) -> float:
    pay = [
        float(e["salary"]["base"])
        for e in _employees(database).values()
        if e["department"] == department
    ]
    return round(sum(pay) / len(pay), 2)


def test_missing_capability_is_written_built_tested_stored_then_reused(
    openai_server: FakeOpenAIServer, hr_library: Library, hr_database: Path
) -> None:
    expected = _average(hr_database, "Engineering")
    examples = [
        {"input": {"department": "Engineering"}, "check": {"contains": {"average_base": expected}}},
        {"input": {"department": "Astrology"}, "check": {"error": "no employees"}},
    ]
    mutation_plan = [
        call("write_source", code=SOURCE_V1, permissions={"data": "hr", "read_files": True}),
        call("build"),
        call("write_source", code=SOURCE_V2),
        call("build"),
        call("test", examples=examples),
        call("write_source", code=SOURCE_V3),
        call("build"),
        call("test"),
        call("complete", summary=SUMMARY_B, examples=examples),
    ]

    def brain(request: dict[str, Any]) -> Any:
        messages = request["messages"]
        if is_mutation(messages):
            done = len(tool_results(messages))
            return [mutation_plan[done]]
        last = last_result(messages)
        if last is None:
            # a model would run a capability that fits; here none does unless one was stored
            if "department_average_salary" in user_prompt(messages):
                return [
                    call(
                        "run_capability",
                        capability_id="department_average_salary",
                        input={"department": "Engineering"},
                    )
                ]
            return [call("create_capability", task_description=SUMMARY_B)]
        name, body = last
        if name == "create_capability":
            return [
                call(
                    "run_capability",
                    capability_id=body["capability_id"],
                    input={"department": "Engineering"},
                )
            ]
        out = body["output"]
        return f"The average base salary in {out['department']} is {out['average_base']} EUR."

    openai_server.handler = brain
    with Agent(hr_library, _model(openai_server)) as agent:
        first = agent.run(TASK_B)
        requests_after_first = len(openai_server.chat_requests)
        second = agent.run(TASK_B)

    assert first.outcome == "answered", first.error
    assert first.created == ["department_average_salary"]
    assert first.ran == ["department_average_salary"]
    assert first.answer is not None and str(expected) in first.answer
    assert "department_average_salary" not in first.offered

    # the mutation run went: build fails, test fails, then both pass, then complete
    with open_transcripts(hr_library.path) as store:
        (mid,) = first.mutation_transcripts
        mutation = store.get(mid)
        task_transcript = store.get(first.transcript_id)
    assert mutation.kind == "mutation" and mutation.parent_id == first.transcript_id
    assert task_transcript.children == (mid,)
    assert mutation.outcome == "completed" and mutation.capability_id == "department_average_salary"
    tools = [(s.name, s.ok) for s in mutation.step_records if s.kind == "tool"]
    assert tools == [
        ("write_source", True),
        ("build", False),
        ("write_source", True),
        ("build", True),
        ("test", False),
        ("write_source", True),
        ("build", True),
        ("test", True),
        ("complete", True),
    ]
    tool_steps = [s for s in mutation.step_records if s.kind == "tool"]
    build_error = json.loads(tool_steps[1].data["result"])["error"]
    assert build_error["kind"] == "build_failed" and "typecheck" in build_error["message"]
    test_steps = [s for s in mutation.step_records if s.name == "test"]
    failed_test = json.loads(test_steps[0].data["result"])
    assert failed_test["error"]["kind"] == "test_failed"

    stored = hr_library.get("department_average_salary")
    assert stored.status == "active" and stored.parents == ()
    assert stored.summary == SUMMARY_B
    assert stored.input_schema["properties"] == {"department": {"type": "string"}}
    assert stored.permissions.data == "hr" and stored.permissions.read_files
    assert not stored.permissions.write_files

    # the second identical task finds it and runs it, without the mutation agent
    assert second.outcome == "answered", second.error
    assert second.offered[0] == "department_average_salary"
    assert second.created == [] and second.mutation_transcripts == []
    assert second.ran == ["department_average_salary"]
    assert second.answer == first.answer
    later = openai_server.chat_requests[requests_after_first:]
    assert later and not any(is_mutation(r["messages"]) for r in later)
    assert hr_library.get("department_average_salary").stats.runs == 2


# -- (c) deprecation ---------------------------------------------------------------------------

CONVERT_SOURCE = '''
import json

from symbiont.host import read_file

RATES = {"EUR": 1.0, "USD": 1.08}


def salary_in_currency(employee_id: str, currency: str) -> dict[str, float | str]:
    """An employee's base salary converted to another currency."""
    emp = json.loads(read_file("employee_database.json"))["employees"][employee_id.upper()]
    return {
        "employee_id": emp["employee_id"],
        "currency": currency,
        "base": round(emp["salary"]["base"] * RATES[currency], 2),
    }
'''


def test_capability_failing_twice_is_deprecated_and_not_offered_again(
    openai_server: FakeOpenAIServer, hr_library: Library
) -> None:
    hr_library.add(
        Capability.from_source(
            CONVERT_SOURCE,
            id="salary_in_currency",
            summary=(
                "Convert an employee's salary to another currency: takes employee_id such as "
                "E007 and a currency code such as USD or GBP, returns the base salary in it."
            ),
            examples=[
                {"input": {"employee_id": "E007", "currency": "USD"}, "check": {"keys": ["base"]}}
            ],
            permissions={"data": "hr", "read_files": True},
        )
    )

    def brain(request: dict[str, Any]) -> Any:
        messages = request["messages"]
        results = tool_results(messages)
        if "GBP" in user_prompt(messages):
            if len(results) < 2:  # try, and try again once
                return [
                    call(
                        "run_capability",
                        capability_id="salary_in_currency",
                        input={"employee_id": "E042", "currency": "GBP"},
                    )
                ]
            return "I could not convert the salary to GBP."
        # second task: the model insists on the deprecated id it remembers
        if not results:
            return [
                call(
                    "run_capability",
                    capability_id="salary_in_currency",
                    input={"employee_id": "E007", "currency": "USD"},
                )
            ]
        if len(results) == 1:
            return [call("search_capabilities", query="convert salary to another currency")]
        return "No working capability converts salaries."

    openai_server.handler = brain
    with Agent(hr_library, _model(openai_server)) as agent:
        first = agent.run("What is employee E042's salary in GBP?")
        assert "salary_in_currency" in first.offered
        second = agent.run("What is employee E007's salary in USD?")

    assert first.outcome == "answered"
    first_results = tool_results(openai_server.chat_requests[2]["messages"])
    assert [b["error"]["kind"] for _, b in first_results] == ["run_failed", "run_failed"]
    assert first_results[0][1]["deprecated_now"] is False
    assert first_results[1][1]["deprecated_now"] is True
    assert "deprecated" in first_results[1][1]["error"]["message"]

    cap = hr_library.get("salary_in_currency")
    assert cap.status == "deprecated"
    assert cap.stats.consecutive_failures == 2

    # not offered on the next task, not found by search, and it refuses to run
    assert "salary_in_currency" not in second.offered
    second_requests = openai_server.chat_requests[3:]
    assert "salary_in_currency" not in user_prompt(second_requests[0]["messages"])
    results = tool_results(second_requests[-1]["messages"])
    assert results[0][1]["error"]["kind"] == "deprecated"
    assert "salary_in_currency" not in [c["id"] for c in results[1][1]["capabilities"]]
    assert second.outcome == "unverified"  # no capability ran: said so


# -- (d) malformed tool calls ------------------------------------------------------------------


def test_malformed_tool_calls_go_back_to_the_model_as_tool_errors(
    openai_server: FakeOpenAIServer, hr_library: Library
) -> None:
    openai_server.enqueue(
        [
            raw_call("run_capability", '{"capability_id": "get_salary_details", "input": {"empl'),
            call(
                "run_capability", capability_id="get_salary_detail", input={"employee_id": "E042"}
            ),
            call("run_capability", capability_id="get_salary_details", input={"employee": "E042"}),
            call("run_capability", capability_id="get_salary_details"),
            raw_call("run_capability", '["get_salary_details"]'),
            call("drop_database", everything=True),
        ],
        "Sorry, my tool calls were malformed.",
    )
    with Agent(hr_library, _model(openai_server)) as agent:
        result = agent.run("What is employee E042's salary?")

    # no capability ran, so the closing text is not recorded as a real answer
    assert result.outcome == "unverified"
    assert result.error == "answered without running a capability"
    results = tool_results(openai_server.chat_requests[1]["messages"])
    kinds = [b["error"]["kind"] for _, b in results]
    assert kinds == [
        "invalid_json",
        "unknown_capability",
        "invalid_input",
        "invalid_arguments",
        "invalid_arguments",
        "unknown_tool",
    ]
    messages = [b["error"]["message"] for _, b in results]
    assert "not valid JSON" in messages[0]
    assert "get_salary_details" in messages[1]  # did you mean
    assert "employee_id" in messages[2]  # names the missing field
    assert results[2][1]["input_schema"]["required"] == ["employee_id"]
    assert "input" in messages[3]
    assert "object" in messages[4]
    assert "run_capability" in messages[5]  # lists the real tools
    # none of them ran the capability, so none counted as a failure
    stats = hr_library.get("get_salary_details").stats
    assert stats.runs == 0 and stats.failures == 0


# -- (e) step caps -------------------------------------------------------------------------------


def test_mutation_agent_that_never_completes_stops_at_its_step_cap(
    openai_server: FakeOpenAIServer, hr_library: Library
) -> None:
    def brain(request: dict[str, Any]) -> Any:
        messages = request["messages"]
        if is_mutation(messages):
            n = len(tool_results(messages))
            # keeps writing new versions and building them, never calls complete
            if n % 2 == 0:
                return [call("write_source", code=f"def f(x: int) -> int:\n    return x + {n}\n")]
            return [call("build")]
        last = last_result(messages)
        if last is None:
            return [call("create_capability", task_description="add a number to another number")]
        name, body = last
        assert name == "create_capability"
        return "I could not get a capability written: " + body["error"]["message"]

    openai_server.handler = brain
    with Agent(hr_library, _model(openai_server), mutation_max_steps=5) as agent:
        before = {c.id for c in hr_library.list()}
        result = agent.run("Add 2 and 3 with a new capability")

    assert result.outcome == "unverified"  # it answered, but no capability ran
    assert result.created == []
    assert {c.id for c in hr_library.list()} == before
    (mid,) = result.mutation_transcripts
    with open_transcripts(hr_library.path) as store:
        t = store.get(mid)
    assert t.outcome == "step_limit" and t.steps == 5
    assert t.capability_id is None
    assert "step limit (5 model calls)" in (t.error or "")
    mutation_requests = [r for r in openai_server.chat_requests if is_mutation(r["messages"])]
    assert len(mutation_requests) == 5
    error = tool_results(openai_server.chat_requests[-1]["messages"])[-1][1]["error"]
    assert error["kind"] == "creation_failed" and "step_limit" in error["message"]


def test_task_agent_that_never_answers_stops_at_its_step_limit(
    openai_server: FakeOpenAIServer, hr_library: Library
) -> None:
    # a different query each time: identical calls in a row would end the run sooner
    openai_server.handler = lambda request: [
        call("search_capabilities", query=f"salary {len(request['messages'])}")
    ]
    with Agent(hr_library, _model(openai_server), max_steps=4) as agent:
        result = agent.run("What is employee E042's salary?")
    assert result.outcome == "step_limit"
    assert result.answer is None
    assert result.steps == 4 and len(openai_server.chat_requests) == 4
    assert "step limit (4 model calls)" in (result.error or "")
    with open_transcripts(hr_library.path) as store:
        assert store.get(result.transcript_id).outcome == "step_limit"


# -- model errors ----------------------------------------------------------------------------


def test_a_rate_limit_is_retried_and_a_refusal_ends_the_run_as_an_error(
    openai_server: FakeOpenAIServer, hr_library: Library
) -> None:
    # an answer before any tool call is reminded once to run a capability, then taken
    # (marked as given without running one)
    openai_server.enqueue(Error(status=429, retry_after=0.01), "Nothing to do.", "Nothing to do.")
    with Agent(hr_library, _model(openai_server)) as agent:
        retried = agent.run("Say hello")
        assert retried.outcome == "unverified" and retried.answer == "Nothing to do."
        assert len(openai_server.chat_requests) == 3

        openai_server.enqueue(Error(status=400, message="context length exceeded"))
        failed = agent.run("Say hello again")
    assert failed.outcome == "error" and failed.answer is None
    assert "context length exceeded" in (failed.error or "")
    with open_transcripts(hr_library.path) as store:
        t = store.get(failed.transcript_id)
    assert t.outcome == "error" and "context length exceeded" in (t.error or "")
    assert [s.kind for s in t.step_records] == ["retrieve"]
