"""The mutation agent's rules, each driven by a scripted model and checked on what the model
was told back: complete() refusals, the repeated-error hint, the reset on identical code,
lineage and legacy, and that tests never touch the real data."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from agent_helpers import tool_results

from symbiont.agent import Agent, MutationAgent
from symbiont.agent.transcripts import open_transcripts
from symbiont.library import Library
from symbiont.models.base import ModelReply, ToolCall
from symbiont.models.scripted import ScriptedModel

_n = 0


def reply(name: str, **arguments: Any) -> ModelReply:
    global _n
    _n += 1
    return ModelReply("", (ToolCall(f"c{_n}", name, json.dumps(arguments)),))


HEADCOUNT = '''
import json

from symbiont.host import read_file


def department_headcount(department: str) -> int:
    """How many employees a department has."""
    db = json.loads(read_file("employee_database.json"))
    return sum(1 for e in db["employees"].values() if e["department"] == department)
'''
PERMS = {"data": "hr", "read_files": True}
EXAMPLES = [{"input": {"department": "Sales"}, "expect": 10}]
SUMMARY = (
    "Count the employees of a department: takes a department name, returns how many work there."
)


def _tool_steps(library: Library, transcript_id: int) -> list[tuple[str, dict[str, Any]]]:
    """(tool, parsed result) of every tool step, from the stored transcript."""
    with open_transcripts(library.path) as store:
        t = store.get(transcript_id)
    return [(s.name, json.loads(s.data["result"])) for s in t.step_records if s.kind == "tool"]


def test_complete_is_refused_until_build_and_test_pass_on_the_latest_source(
    hr_library: Library,
) -> None:
    model = ScriptedModel(
        [
            reply("complete", summary=SUMMARY),  # nothing written yet
            reply("write_source", code=HEADCOUNT, permissions=PERMS),
            reply("complete", summary=SUMMARY),  # not built
            reply("build"),
            reply("complete", summary=SUMMARY),  # not tested
            reply("test", examples=EXAMPLES),
            reply("write_source", code=HEADCOUNT + "\n# changed\n"),
            reply("complete", summary=SUMMARY),  # the latest source is not built
            reply("build"),
            reply("test"),
            reply("complete", summary="Implemented and tested successfully."),
            reply("complete", summary="   "),
            reply("complete", summary=SUMMARY),
            "unused",
        ]
    )
    agent = MutationAgent(hr_library, model, max_steps=20)
    result = agent.run("count the employees of a department")
    agent.close()

    assert result.outcome == "completed", result.error
    assert result.capability is not None and result.capability.id == "department_headcount"
    results = _tool_steps(hr_library, result.transcript_id)
    complete = [b for name, b in results if name == "complete"]
    assert [b["ok"] for b in complete] == [False] * 6 + [True]
    reasons = [b["error"]["message"] for b in complete[:6]]
    assert "no source" in reasons[0]
    assert "build() has not passed" in reasons[1]
    assert "test() has not passed" in reasons[2]
    assert "build() has not passed" in reasons[3]
    assert "only says that it worked" in reasons[4]
    assert "summary is empty" in reasons[5]
    stored = hr_library.get("department_headcount")
    assert stored.summary == SUMMARY and stored.parents == ()
    assert hr_library.run("department_headcount", {"department": "Sales"}).output == 10


def test_the_same_error_three_times_in_a_row_earns_a_hint(hr_library: Library) -> None:
    broken = HEADCOUNT.replace("-> int:", "-> str:")  # returns an int: a type error
    model = ScriptedModel(
        [
            reply("write_source", code=broken, permissions=PERMS),
            reply("build"),
            reply("build"),
            reply("build"),
            "giving up",
        ]
    )
    agent = MutationAgent(hr_library, model, max_steps=5)
    result = agent.run("count the employees of a department")
    agent.close()
    assert result.outcome == "step_limit"
    builds = [b for name, b in tool_results(model.calls[-1]) if name == "build"]
    assert [b["ok"] for b in builds] == [False, False, False]
    assert builds[0]["error"]["kind"] == "build_failed"
    assert "hint" not in builds[0] and "hint" not in builds[1]
    assert "third time in a row" in builds[2]["hint"]
    # a reply without a tool call is answered with a nudge, not taken as the end
    with open_transcripts(hr_library.path) as store:
        steps = store.get(result.transcript_id).step_records
    assert steps[-1].kind == "note" and "nudged" in steps[-1].data["note"]
    assert result.steps == 5 and "step limit (5 model calls)" in (result.error or "")


def test_identical_failed_code_resubmitted_restarts_the_conversation(
    hr_library: Library,
) -> None:
    broken = HEADCOUNT.replace("-> int:", "-> str:")
    model = ScriptedModel(
        [
            reply("write_source", code=broken, permissions=PERMS),
            reply("build"),
            reply("write_source", code=broken + "\n"),  # the same code again
            "stop",
        ]
    )
    agent = MutationAgent(hr_library, model, max_steps=4)
    agent.run("count the employees of a department")
    agent.close()
    after_reset = model.calls[3]
    assert [m["role"] for m in after_reset[:3]] == ["system", "user", "user"]
    note = after_reset[2]["content"]
    assert "exactly the same code" in note
    assert "typecheck" in note  # the error it failed with
    assert after_reset[:2] == model.calls[0][:2]  # the original task, from the start


def test_a_mutation_that_replaces_its_parent_marks_it_legacy(hr_library: Library) -> None:
    parent = hr_library.get("get_salary_details")
    improved = parent.source.replace(
        '"""Salary record of one employee', '"""Salary record of one employee, improved'
    )
    model = ScriptedModel(
        [
            reply("write_source", code=improved),
            reply("build"),
            reply("test"),
            reply("complete", summary=parent.summary + " Also accepts lowercase ids."),
        ]
    )
    agent = MutationAgent(hr_library, model, max_steps=6)
    result = agent.run("accept lowercase employee ids", "get_salary_details", replace_parent=True)
    agent.close()
    assert result.outcome == "completed", result.error
    # the parent's source and examples were in the first prompt; its examples were the tests
    assert "def get_salary_details" in model.calls[0][1]["content"]
    test = next(b for name, b in tool_results(model.calls[-1]) if name == "test")
    assert test["passed"] == len(parent.examples)
    new = result.capability
    assert new is not None and new.id == "get_salary_details_v2"
    assert new.parents == ("get_salary_details",)
    assert new.permissions == parent.permissions  # inherited
    old = hr_library.get("get_salary_details")
    assert old.status == "legacy" and old.replaced_by == new.id
    hits = [h.capability.id for h in hr_library.search("how much is employee E007 paid", 5)]
    assert "get_salary_details_v2" in hits and "get_salary_details" not in hits


BUMP = '''
import json

from symbiont.host import read_file, write_file


def add_sick_day(employee_id: str) -> int:
    """Record one more sick day for an employee; returns the new count."""
    db = json.loads(read_file("employee_database.json"))
    emp = db["employees"][employee_id]
    emp["leave"]["sick_days_taken"] += 1
    write_file("employee_database.json", json.dumps(db))
    return int(emp["leave"]["sick_days_taken"])
'''


def test_tests_work_on_a_copy_only_run_capability_touches_real_data(
    hr_library: Library, hr_database: Path
) -> None:
    def digest() -> str:
        return hashlib.sha256(hr_database.read_bytes()).hexdigest()

    before = digest()
    sick = json.loads(hr_database.read_text())["employees"]["E042"]["leave"]["sick_days_taken"]
    examples = [{"input": {"employee_id": "E042"}, "expect": sick + 1}]
    mutation = [
        reply(
            "write_source",
            code=BUMP,
            permissions={"data": "hr", "read_files": True, "write_files": True},
        ),
        reply("build"),
        reply("test", examples=examples, input={"employee_id": "E001"}),
        reply("test"),  # run again: still on a fresh copy, so the same expected value holds
        reply(
            "complete",
            summary="Record a sick day for an employee: takes employee_id, adds one to the "
            "sick days taken and returns the new count.",
        ),
    ]
    task = [
        reply("create_capability", task_description="record a sick day for an employee"),
        *mutation,
        reply("run_capability", capability_id="add_sick_day", input={"employee_id": "E042"}),
        "Recorded.",
    ]
    model = ScriptedModel(task)
    with Agent(hr_library, model) as agent:
        # everything before the real run: data untouched
        calls_seen: list[str] = []
        changed_by: list[str] = []  # (an assert here would be swallowed by the recorder)

        def watch(event: Any) -> None:
            if event.kind == "tool":
                calls_seen.append(event.name)
                if event.name != "run_capability" and digest() != before:
                    changed_by.append(event.name)

        agent.on_event = watch
        agent.mutation.on_event = watch
        result = agent.run("Record a sick day for E042")

    assert result.outcome == "answered", result.error
    (mid,) = result.mutation_transcripts
    tests = [b for name, b in _tool_steps(hr_library, mid) if name == "test"]
    assert [b["ok"] for b in tests] == [True, True]
    # each test() works on a fresh copy: the second run sees the original count again
    assert tests[0]["cases"][0]["output"] == sick + 1
    assert tests[1]["cases"][0]["output"] == sick + 1
    assert calls_seen[-1] == "run_capability" and "complete" in calls_seen
    assert changed_by == []
    # only the task agent's run changed the file, exactly once
    after = json.loads(hr_database.read_text())["employees"]["E042"]["leave"]["sick_days_taken"]
    assert after == sick + 1
