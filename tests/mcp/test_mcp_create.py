"""create_capability / mutate_capability through `symbiont mcp`: the mutation agent, driven by
the loopback OpenAI server (`FakeOpenAIServer`) that the server subprocess reaches through
`OPENAI_BASE_URL`, like a real model server."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
from mcp_helpers import HR_DATABASE, payload, server_env, stdio_session, text_of

from symbiont.library import Library
from symbiont.testing.openai_server import FakeOpenAIServer, Reply

HEADCOUNT = '''
import json

from symbiont.host import read_file


def department_headcount(department: str) -> int:
    """How many employees a department has."""
    db = json.loads(read_file("employee_database.json"))
    return sum(1 for e in db["employees"].values() if e["department"] == department)
'''
PERMS = {"data": "hr", "read_files": True}
SUMMARY = (
    "Count the employees of a department: takes a department name, returns how many work there."
)


def _tool_results(messages: Sequence[Mapping[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    names: dict[str, str] = {}
    out = []
    for m in messages:
        if m["role"] == "assistant":
            for c in m.get("tool_calls") or ():
                names[c["id"]] = c["function"]["name"]
        elif m["role"] == "tool":
            out.append((names.get(m["tool_call_id"], "?"), json.loads(m["content"])))
    return out


def author(code: str, examples: list[dict[str, Any]]) -> Callable[[dict[str, Any]], Any]:
    """A model that writes `code`, builds, tests and completes, reacting to each result."""

    def reply(body: dict[str, Any]) -> Any:
        results = _tool_results(body["messages"])
        if not results:
            return [{"name": "write_source", "arguments": {"code": code, "permissions": PERMS}}]
        name, result = results[-1]
        if not result.get("ok"):
            return [{"name": "build", "arguments": {}}]  # a stubborn model: it never fixes it
        step = {"write_source": "build", "build": "test", "test": "complete"}.get(name)
        if step == "test":
            return [{"name": "test", "arguments": {"examples": examples}}]
        if step == "complete":
            return [{"name": "complete", "arguments": {"summary": SUMMARY, "examples": examples}}]
        if step is not None:
            return [{"name": step, "arguments": {}}]
        return "The capability is stored."

    return reply


def _sales_headcount() -> int:
    employees = json.loads(HR_DATABASE.read_text())["employees"].values()
    return sum(1 for e in employees if e["department"] == "Sales")


def test_create_capability_through_the_mutation_agent(home: Path) -> None:
    examples = [{"input": {"department": "Sales"}, "expect": _sales_headcount()}]
    with FakeOpenAIServer(handler=author(HEADCOUNT, examples)) as model_server:
        env = server_env(home, OPENAI_BASE_URL=model_server.base_url, SYMBIONT_MODEL="fake-model")

        async def main() -> None:
            async with stdio_session(home, "--expose", "all", env=env) as (session, notes):
                tools = {t.name for t in (await session.list_tools()).tools}
                assert {"create_capability", "mutate_capability"} <= tools
                assert "department_headcount" not in tools

                progress: list[tuple[float, str | None]] = []

                async def on_progress(
                    done: float, total: float | None, message: str | None
                ) -> None:
                    progress.append((done, message))

                created = payload(
                    await session.call_tool(
                        "create_capability",
                        {"task": "count the employees of a department"},
                        progress_callback=on_progress,
                    )
                )
                # each step of the mutation agent was reported while it worked
                assert [p for p, _ in progress] == sorted({p for p, _ in progress})
                steps = " ".join(m or "" for _, m in progress)
                assert "write_source" in steps and "build" in steps and "complete" in steps
                assert created["capability"]["id"] == "department_headcount"
                assert created["capability"]["summary"] == SUMMARY
                await notes.wait_for("notifications/tools/list_changed")
                tools = {t.name for t in (await session.list_tools()).tools}
                assert "department_headcount" in tools

                for department in ("Sales", "Engineering"):
                    ran = await session.call_tool(
                        "department_headcount", {"department": department}
                    )
                    employees = json.loads(HR_DATABASE.read_text())["employees"].values()
                    expected = sum(1 for e in employees if e["department"] == department)
                    assert ran.structured_content == {"result": expected}, text_of(ran)

        anyio.run(main)
        # the model was really asked, through the OpenAI API, with the mutation tools
        first = model_server.chat_requests[0]
        assert {t["function"]["name"] for t in first["tools"]} >= {"write_source", "complete"}

    with Library(home / "symbiont.db") as lib:
        assert lib.get("department_headcount").status == "active"


def test_a_failed_creation_stores_nothing(home: Path) -> None:
    broken = HEADCOUNT.replace("-> int:", "-> str:")  # returns an int: the type check fails
    examples = [{"input": {"department": "Sales"}, "expect": "10"}]
    with Library(home / "symbiont.db") as lib:
        before = sorted(c.id for c in lib.list())
    with FakeOpenAIServer(handler=author(broken, examples)) as model_server:
        env = server_env(home, OPENAI_BASE_URL=model_server.base_url, SYMBIONT_MODEL="fake-model")

        async def main() -> None:
            async with stdio_session(home, "--expose", "all", env=env) as (session, notes):
                failed = await session.call_tool(
                    "create_capability", {"task": "count the employees of a department"}
                )
                assert failed.is_error
                assert "not_created" in text_of(failed) and "nothing was stored" in text_of(failed)
                assert "notifications/tools/list_changed" not in notes.methods()

                unknown = await session.call_tool(
                    "mutate_capability", {"id": "no_such_parent", "task": "anything"}
                )
                assert unknown.is_error and "unknown_capability" in text_of(unknown)
                empty = await session.call_tool("create_capability", {"task": "  "})
                assert empty.is_error and "empty" in text_of(empty)

        anyio.run(main)
        requests = len(model_server.chat_requests)
        assert requests > 1  # the failing build went back to the model, more than once
    with Library(home / "symbiont.db") as lib:
        assert sorted(c.id for c in lib.list()) == before


BASE_ONLY = '''
import json

from symbiont.host import read_file


def salary_base(employee_id: str) -> float:
    """The base salary of one employee."""
    db = json.loads(read_file("employee_database.json"))
    return db["employees"][employee_id.strip().upper()]["salary"]["base"]
'''


def test_mutate_capability_records_the_lineage(home: Path) -> None:
    base = json.loads(HR_DATABASE.read_text())["employees"]["E007"]["salary"]["base"]
    examples = [{"input": {"employee_id": "E007"}, "expect": base}]
    with FakeOpenAIServer(handler=author(BASE_ONLY, examples)) as model_server:
        env = server_env(home, OPENAI_BASE_URL=model_server.base_url, SYMBIONT_MODEL="fake-model")

        async def main() -> None:
            async with stdio_session(home, env=env) as (session, _):
                made = await session.call_tool(
                    "mutate_capability",
                    {"id": "get_salary_details", "task": "only the base salary, as a number"},
                )
                created = payload(made)["capability"]
                assert created["id"] == "salary_base"
                assert created["lineage"]["parents"] == ["get_salary_details"]
                parent = payload(
                    await session.call_tool("get_capability", {"id": "get_salary_details"})
                )
                assert parent["lineage"]["children"] == ["salary_base"]
                assert parent["status"] == "active"  # not replaced: replace_parent was not set
                ran = await session.call_tool(
                    "run_capability", {"id": "salary_base", "input": {"employee_id": "E007"}}
                )
                assert payload(ran)["output"] == base

        anyio.run(main)
        # the model was shown the parent's source
        first = model_server.chat_requests[0]["messages"]
        assert any("def get_salary_details" in str(m.get("content")) for m in first)


def test_other_tools_answer_while_a_capability_is_being_created(home: Path) -> None:
    examples = [{"input": {"department": "Sales"}, "expect": _sales_headcount()}]
    steps = author(HEADCOUNT, examples)

    def slow_first_reply(body: dict[str, Any]) -> Any:
        reply = steps(body)
        if not _tool_results(body["messages"]):  # the model thinks for a while first
            return Reply(tool_calls=reply, delay_s=8.0)
        return reply

    with FakeOpenAIServer(handler=slow_first_reply) as model_server:
        env = server_env(home, OPENAI_BASE_URL=model_server.base_url, SYMBIONT_MODEL="fake-model")

        async def main() -> None:
            async with stdio_session(home, env=env) as (session, _):
                created: dict[str, Any] = {}

                async def create() -> None:
                    created["result"] = await session.call_tool(
                        "create_capability", {"task": "count the employees of a department"}
                    )

                async with anyio.create_task_group() as tg:
                    tg.start_soon(create)
                    with anyio.fail_after(60):
                        while model_server.in_flight == 0:  # the agent waits for the model
                            await anyio.sleep(0.05)
                    ran = await session.call_tool(
                        "run_capability",
                        {"id": "get_salary_details", "input": {"employee_id": "E007"}},
                    )
                    # answered while the creation was still waiting for its first reply
                    assert model_server.in_flight == 1 and "result" not in created
                    assert payload(ran)["output"]["employee_id"] == "E007"
                assert payload(created["result"])["capability"]["id"] == "department_headcount"

        anyio.run(main)
