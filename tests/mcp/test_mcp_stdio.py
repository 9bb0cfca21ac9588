"""`symbiont mcp` over stdio, driven by the MCP SDK's own `ClientSession`.

Each test starts the real command as a subprocess on a private copy of a store holding the
HR capabilities and three test ones (`ratio` fails for b = 0, `count_up` never ends for a
negative n, `fetch_page` has no network permission). Expected values come from the HR data
file and the capability folders, never from the server's code.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError
from mcp_helpers import (
    HR_EXAMPLES,
    TEST_CAPABILITIES,
    employee,
    payload,
    stdio_session,
    text_of,
)

from symbiont.library import Library

CORE_TOOLS = {"search_capabilities", "run_capability", "get_capability"}
ALL_IDS = sorted(
    p.name
    for root in (HR_EXAMPLES, TEST_CAPABILITIES)
    for p in root.iterdir()
    if (p / "capability.toml").is_file()
)


def test_initialize_list_search_and_run_an_hr_capability(home: Path) -> None:
    async def main() -> None:
        async with stdio_session(home) as (session, _):
            init = session.initialize_result
            assert init is not None and init.server_info.name == "symbiont"
            assert init.capabilities.tools is not None and init.capabilities.tools.list_changed
            assert "search_capabilities" in (init.instructions or "")

            tools = {t.name: t for t in (await session.list_tools()).tools}
            assert set(tools) == CORE_TOOLS  # no model configured: no create/mutate
            assert tools["run_capability"].input_schema["required"] == ["id"]

            found = payload(
                await session.call_tool(
                    "search_capabilities", {"query": "how much is employee E007 paid", "k": 3}
                )
            )
            assert found["results"][0]["id"] == "get_salary_details"
            assert len(found["results"]) == 3

            ran = payload(
                await session.call_tool(
                    "run_capability",
                    {"id": "get_salary_details", "input": {"employee_id": "E007"}},
                )
            )
            salary = employee("E007")["salary"]
            assert ran["output"]["base"] == salary["base"]
            assert ran["output"]["currency"] == salary["currency"]
            assert ran["output"]["history"] == salary["history"]
            assert ran["tier"] == "process"

    anyio.run(main)
    with Library(home / "symbiont.db") as lib:  # the outcome was recorded in the store
        assert lib.get("get_salary_details").stats.runs == 1


def test_get_capability_shows_source_schema_examples_stats_and_lineage(home: Path) -> None:
    folder = HR_EXAMPLES / "get_salary_details"
    meta = tomllib.loads((folder / "capability.toml").read_text())

    async def main() -> None:
        async with stdio_session(home) as (session, _):
            shown = payload(await session.call_tool("get_capability", {"id": "get_salary_details"}))
            assert shown["source"].strip() == (folder / "capability.py").read_text().strip()
            assert " ".join(shown["summary"].split()) == " ".join(meta["summary"].split())
            assert len(shown["examples"]) == len(meta["examples"])
            assert shown["examples"][0]["input"] == meta["examples"][0]["input"]
            assert shown["input_schema"]["properties"] == {"employee_id": {"type": "string"}}
            assert shown["permissions"]["read_files"] is True
            assert shown["stats"]["runs"] == 0
            assert shown["lineage"]["parents"] == []
            assert [v["version"] for v in shown["lineage"]["versions"]] == [1]
            assert shown["resource"] == "capability://get_salary_details"

    anyio.run(main)


def test_schema_violations_and_bad_arguments_are_tool_errors(home: Path) -> None:
    async def main() -> None:
        async with stdio_session(home) as (session, _):
            wrong = await session.call_tool(
                "run_capability", {"id": "get_salary_details", "input": {"employee": 7}}
            )
            assert wrong.is_error
            text = text_of(wrong)
            assert "invalid_input" in text and "'employee_id'" in text and "unknown field" in text
            assert "nothing was run" in text

            mistyped = await session.call_tool(
                "run_capability", {"id": "get_salary_details", "input": {"employee_id": 7}}
            )
            assert mistyped.is_error and "employee_id" in text_of(mistyped)

            not_an_object = await session.call_tool(
                "run_capability", {"id": "get_salary_details", "input": "E007"}
            )
            assert not_an_object.is_error and "invalid_arguments" in text_of(not_an_object)

            no_query = await session.call_tool("search_capabilities", {"k": 2})
            assert no_query.is_error and "query" in text_of(no_query)
            bad_k = await session.call_tool("search_capabilities", {"query": "salary", "k": "x"})
            assert bad_k.is_error and "'k'" in text_of(bad_k)
            empty = await session.call_tool("search_capabilities", {"query": "   "})
            assert empty.is_error and "empty" in text_of(empty)

            with pytest.raises(MCPError) as unknown_tool:
                await session.call_tool("no_such_tool", {})
            assert "no tool 'no_such_tool'" in str(unknown_tool.value)

            # none of it hurt the server, and none of it ran or counted
            ok = await session.call_tool(
                "run_capability", {"id": "get_salary_details", "input": {"employee_id": "e007"}}
            )
            assert payload(ok)["output"]["employee_id"] == "E007"

    anyio.run(main)
    with Library(home / "symbiont.db") as lib:
        assert lib.get("get_salary_details").stats.runs == 1


def test_unknown_ids_are_errors_with_suggestions(home: Path) -> None:
    async def main() -> None:
        async with stdio_session(home) as (session, _):
            run = await session.call_tool(
                "run_capability", {"id": "get_salary_detail", "input": {"employee_id": "E007"}}
            )
            assert run.is_error
            assert "unknown_capability" in text_of(run)
            assert "get_salary_details" in text_of(run)  # the close match is suggested
            shown = await session.call_tool("get_capability", {"id": "nothing-like-it"})
            assert shown.is_error and "no capability 'nothing-like-it'" in text_of(shown)
            with pytest.raises(MCPError) as missing:
                await session.read_resource("capability://nothing-like-it")
            assert "nothing-like-it" in str(missing.value)

    anyio.run(main)


def test_a_capability_that_fails_twice_is_deprecated_and_leaves_the_lists(home: Path) -> None:
    async def main() -> None:
        async with stdio_session(home, "--expose", "all") as (session, notes):
            listed = {t.name for t in (await session.list_tools()).tools}
            assert "ratio" in listed and "get_salary_details" in listed
            assert payload(
                await session.call_tool(
                    "run_capability", {"id": "ratio", "input": {"a": 6, "b": 3}}
                )
            )["output"] == pytest.approx(2.0)

            first = await session.call_tool("ratio", {"a": 1, "b": 0})  # its own tool
            assert first.is_error and "ZeroDivisionError" in text_of(first)
            assert "deprecated" not in text_of(first)
            assert "notifications/tools/list_changed" not in notes.methods()

            second = await session.call_tool(
                "run_capability", {"id": "ratio", "input": {"a": 2, "b": 0}}
            )
            assert second.is_error and "is deprecated" in text_of(second)
            await notes.wait_for("notifications/tools/list_changed")
            await notes.wait_for("notifications/resources/list_changed")

            listed = {t.name for t in (await session.list_tools()).tools}
            assert "ratio" not in listed and "get_salary_details" in listed
            found = payload(
                await session.call_tool("search_capabilities", {"query": "divide a by b", "k": 20})
            )
            assert "ratio" not in [r["id"] for r in found["results"]]

            again = await session.call_tool("ratio", {"a": 6, "b": 3})
            assert again.is_error and "deprecated" in text_of(again)
            again = await session.call_tool(
                "run_capability", {"id": "ratio", "input": {"a": 6, "b": 3}}
            )
            assert again.is_error and "deprecated" in text_of(again)

    anyio.run(main)
    with Library(home / "symbiont.db") as lib:
        ratio = lib.get("ratio")
        assert ratio.status == "deprecated"
        assert ratio.stats.runs == 3 and ratio.stats.failures == 2


def test_a_sandbox_timeout_and_a_denied_permission_are_tool_errors(home: Path) -> None:
    async def main() -> None:
        async with stdio_session(home, "--timeout", "1") as (session, _):
            done = await session.call_tool("run_capability", {"id": "count_up", "input": {"n": 5}})
            assert payload(done)["output"] == 5
            spun = await session.call_tool("run_capability", {"id": "count_up", "input": {"n": -1}})
            assert spun.is_error and "timeout" in text_of(spun)
            denied = await session.call_tool(
                "run_capability", {"id": "fetch_page", "input": {"url": "https://example.com/"}}
            )
            assert denied.is_error
            assert "denied" in text_of(denied) and "allowlist" in text_of(denied)
            # the server is still there
            assert (
                payload(
                    await session.call_tool("run_capability", {"id": "count_up", "input": {"n": 2}})
                )["output"]
                == 2
            )

    anyio.run(main)


def test_resources_and_the_system_prompt(home: Path) -> None:
    folder = HR_EXAMPLES / "get_salary_details"

    async def main() -> None:
        async with stdio_session(home) as (session, _):
            resources = (await session.list_resources()).resources
            assert sorted(str(r.uri).removeprefix("capability://") for r in resources) == ALL_IDS
            templates = (await session.list_resource_templates()).resource_templates
            assert [t.uri_template for t in templates] == ["capability://{id}"]

            read = await session.read_resource("capability://get_salary_details")
            by_type = {c.mime_type: c for c in read.contents}
            meta = json.loads(by_type["application/json"].text)
            assert meta["id"] == "get_salary_details" and meta["status"] == "active"
            python = by_type["text/x-python"].text
            assert python.strip() == (folder / "capability.py").read_text().strip()

            listed = (await session.list_prompts()).prompts
            assert [p.name for p in listed] == ["capability_library"]
            bare = await session.get_prompt("capability_library")
            assert len(bare.messages) == 1
            assert "run_capability(id, input)" in bare.messages[0].content.text
            with_task = await session.get_prompt(
                "capability_library", {"task": "what car does employee E012 drive"}
            )
            listing = with_task.messages[1].content
            assert isinstance(listing, types.TextContent)
            assert "- id: get_car_details" in listing.text
            with pytest.raises(MCPError):
                await session.get_prompt("no_such_prompt")

    anyio.run(main)


def test_top_k_exposes_what_searches_found(home: Path) -> None:
    async def main() -> None:
        async with stdio_session(home, "--expose", "top-k", "--top-k", "2", "--poll", "0") as (
            session,
            notes,
        ):
            before = {t.name for t in (await session.list_tools()).tools} - CORE_TOOLS
            assert len(before) == 2 and "get_salary_details" not in before
            found = payload(
                await session.call_tool(
                    "search_capabilities", {"query": "how much is employee E007 paid", "k": 1}
                )
            )
            assert found["results"][0]["id"] == "get_salary_details"
            assert found["results"][0]["tool"] == "get_salary_details"
            await notes.wait_for("notifications/tools/list_changed")
            after = {t.name: t for t in (await session.list_tools()).tools}
            assert len(set(after) - CORE_TOOLS) == 2 and "get_salary_details" in after
            salary = after["get_salary_details"]
            assert salary.input_schema["properties"] == {"employee_id": {"type": "string"}}
            assert salary.output_schema is not None and salary.annotations.read_only_hint is True

    anyio.run(main)


def test_changes_by_another_process_are_announced(home: Path) -> None:
    def deprecate_elsewhere() -> None:
        with Library(home / "symbiont.db", tier="process") as lib:
            lib.deprecate("count_up", "retired by hand in another process")

    async def main() -> None:
        async with stdio_session(home, "--expose", "all", "--poll", "0.2") as (session, notes):
            assert "count_up" in {t.name for t in (await session.list_tools()).tools}
            await anyio.to_thread.run_sync(deprecate_elsewhere)
            await notes.wait_for("notifications/tools/list_changed")
            await notes.wait_for("notifications/resources/list_changed")
            assert "count_up" not in {t.name for t in (await session.list_tools()).tools}
            shown = payload(await session.call_tool("get_capability", {"id": "count_up"}))
            assert shown["status"] == "deprecated"
            assert shown["status_reason"] == "retired by hand in another process"

    anyio.run(main)
