"""Tool definitions for other APIs: `symbiont lib export-tools`, `Library.as_tools()`, and the
exported OpenAI tools used by the real `openai` SDK against the loopback server, with the
model's tool call routed to `Library.run`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import mcp_types as types
import openai
import pytest
from mcp_helpers import employee

from symbiont.cli import main
from symbiont.library import Library
from symbiont.mcp.schemas import run_tool_call, tool_names, tool_result_text
from symbiont.testing.openai_server import FakeOpenAIServer

API_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # what the OpenAI and Anthropic APIs accept


@pytest.fixture
def library(home: Path) -> Iterator[Library]:
    lib = Library(home / "symbiont.db", data_root=home / "data", tier="process")
    yield lib
    lib.close()


def export(capsys: pytest.CaptureFixture[str], home: Path, fmt: str) -> list[dict[str, Any]]:
    code = main(["lib", "export-tools", "--format", fmt, "--store", str(home / "symbiont.db")])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_export_tools_in_the_three_formats(
    home: Path, library: Library, capsys: pytest.CaptureFixture[str]
) -> None:
    library.deprecate("ratio", "retired for the test")
    active = sorted(c.id for c in library.list(status="active"))

    openai_tools = export(capsys, home, "openai")
    assert sorted(t["function"]["name"] for t in openai_tools) == active  # not ratio
    salary = next(t for t in openai_tools if t["function"]["name"] == "get_salary_details")
    assert salary["type"] == "function"
    params = salary["function"]["parameters"]
    assert params["properties"] == {"employee_id": {"type": "string"}}  # `employee_id: str`
    assert params["required"] == ["employee_id"]
    assert "paid" in salary["function"]["description"]
    writer = next(t for t in openai_tools if t["function"]["name"] == "update_employee_salary")
    assert "it changes data" in writer["function"]["description"]

    anthropic_tools = export(capsys, home, "anthropic")
    assert all(set(t) == {"name", "description", "input_schema"} for t in anthropic_tools)
    assert [t["name"] for t in anthropic_tools] == [t["function"]["name"] for t in openai_tools]

    mcp_tools = [types.Tool.model_validate(t) for t in export(capsys, home, "mcp")]
    by_name = {t.name: t for t in mcp_tools}
    assert by_name["get_salary_details"].annotations.read_only_hint is True
    assert by_name["update_employee_salary"].annotations.read_only_hint is False
    # the output schema describes what the capability really returns
    output = library.run("get_salary_details", {"employee_id": "E007"}).output
    jsonschema.validate({"result": output}, by_name["get_salary_details"].output_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {"result": {"base": "a lot"}}, by_name["get_salary_details"].output_schema
        )

    assert library.as_tools("anthropic") == anthropic_tools
    with pytest.raises(SystemExit):
        main(["lib", "export-tools", "--format", "gemini"])
    capsys.readouterr()


def test_tool_names_fit_every_api_and_never_collide() -> None:
    ids = ["a.b", "a_b", "search_capabilities", "x" * 80, "get_salary_details"]
    names = tool_names(ids, reserved={"search_capabilities"})
    assert len(set(names.values())) == len(ids)
    assert all(API_NAME.match(n) for n in names.values())
    assert names["a_b"] == "a_b" and names["get_salary_details"] == "get_salary_details"
    assert names["a.b"] != "a_b" and names["a.b"].startswith("a_b_")
    assert names["search_capabilities"] != "search_capabilities"
    # a name does not depend on what else is in the library
    assert tool_names(["a.b"])["a.b"] == names["a.b"]
    assert tool_names(["x" * 80])["x" * 80] == names["x" * 80]


def test_openai_sdk_tool_call_routed_to_library_run(library: Library) -> None:
    """A program with the plain OpenAI SDK offers the capabilities and routes the call."""

    def model(body: dict[str, Any]) -> Any:
        tool_messages = [m for m in body["messages"] if m["role"] == "tool"]
        if not tool_messages:
            return [{"name": "get_salary_details", "arguments": {"employee_id": "E007"}}]
        result = json.loads(tool_messages[-1]["content"])["output"]
        return f"{result['name']} earns {result['base']} {result['currency']} a year."

    tools = library.as_tools("openai")
    with FakeOpenAIServer(handler=model) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test")
        messages: list[dict[str, Any]] = [{"role": "user", "content": "What does E007 earn?"}]
        first = client.chat.completions.create(model="fake-model", messages=messages, tools=tools)
        calls = first.choices[0].message.tool_calls or []
        assert [c.function.name for c in calls] == ["get_salary_details"]
        messages.append(first.choices[0].message.model_dump(exclude_none=True))
        for call in calls:
            result = run_tool_call(library, call.function.name, call.function.arguments)
            messages.append(
                {"role": "tool", "tool_call_id": call.id, "content": tool_result_text(result)}
            )
        final = client.chat.completions.create(model="fake-model", messages=messages, tools=tools)
        sent_tools = server.chat_requests[0]["tools"]

    salary = employee("E007")["salary"]
    assert sent_tools == tools
    routed = json.loads(messages[-1]["content"])
    assert routed["ok"] is True and routed["output"]["base"] == salary["base"]
    answer = final.choices[0].message.content or ""
    assert f"earns {salary['base']} {salary['currency']}" in answer
    assert library.get("get_salary_details").stats.runs == 1  # the run was recorded


def test_a_failed_routed_call_goes_back_as_an_error(library: Library) -> None:
    failed = run_tool_call(library, "ratio", '{"a": 1, "b": 0}')
    body = json.loads(tool_result_text(failed))
    assert body["ok"] is False and "ZeroDivisionError" in body["error"]["message"]
    with pytest.raises(LookupError):
        run_tool_call(library, "no_such_tool", {})
