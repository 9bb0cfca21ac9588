"""The agents' parts on their own: argument parsing, transcripts, prompts, the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from agent_helpers import HR_EXAMPLES

from symbiont.agent.prompts import TEMPLATES, render
from symbiont.agent.tools import MUTATION_TOOLS, TASK_TOOLS, ToolError, parse_arguments
from symbiont.agent.transcripts import TranscriptNotFound, open_transcripts
from symbiont.cli import main
from symbiont.errors import SymbiontError

RUN = next(t for t in TASK_TOOLS if t.name == "run_capability")


def test_tool_arguments_are_parsed_or_refused_with_a_reason() -> None:
    ok = parse_arguments(RUN, '{"capability_id": "x", "input": {"a": 1}}')
    assert ok == {"capability_id": "x", "input": {"a": 1}}
    cases = {
        '{"capability_id": "x", "input": {': ("invalid_json", "not valid JSON"),
        "[1, 2]": ("invalid_arguments", "must be a JSON object"),
        '{"capability_id": "x"}': ("invalid_arguments", "input"),
        '{"capability_id": 3, "input": {}}': ("invalid_arguments", "capability_id"),
        '{"capability_id": "x", "input": "E042"}': ("invalid_arguments", "input"),
        '{"capability_id": "x", "input": {}, "force": true}': ("invalid_arguments", "force"),
    }
    for raw, (kind, words) in cases.items():
        with pytest.raises(ToolError) as info:
            parse_arguments(RUN, raw)
        assert info.value.kind == kind, raw
        assert words in info.value.message, (raw, info.value.message)
    build = next(t for t in MUTATION_TOOLS if t.name == "build")
    assert parse_arguments(build, "") == {}  # an argument-less call may send nothing


def test_every_tool_spec_is_openai_shaped() -> None:
    for tool in (*TASK_TOOLS, *MUTATION_TOOLS):
        spec = tool.spec()
        assert spec["type"] == "function"
        assert spec["function"]["name"] == tool.name
        assert spec["function"]["parameters"]["type"] == "object"
        json.dumps(spec)  # serialisable as sent


def test_prompts_render_and_name_a_missing_field() -> None:
    assert "{" not in render("task.user", task="T", candidates="C").replace("{{", "")
    assert "Task: T" in render("task.user", task="T", candidates="C")
    with pytest.raises(SymbiontError, match="needs the field 'candidates'"):
        render("task.user", task="T")
    with pytest.raises(SymbiontError, match="no agent prompt template"):
        render("nope")
    # every template formats with its own fields (no stray single braces)
    for name, text in TEMPLATES.items():
        fields = {f.split("}")[0]: "x" for f in text.replace("{{", "").split("{")[1:]}
        render(name, **fields)


def test_transcripts_round_trip_and_unknown_id(store_backend: str) -> None:
    with open_transcripts(store_backend) as store:
        tid = store.start("task", "do it", model="m", config={"k": 5})
        store.add_step(tid, 1, "retrieve", {"results": []})
        store.add_step(tid, 2, "model", {"reply": "hi"}, input_tokens=10, output_tokens=3)
        store.add_step(tid, 3, "tool", {"input": {}}, name="run_capability", ok=False)
        child = store.start("mutation", "write it", parent_id=tid)
        store.finish(child, "step_limit", error="cap")
        store.finish(tid, "answered", answer="done", messages=[{"role": "user", "content": "x"}])
    with open_transcripts(store_backend) as store:  # reopened: persisted
        t = store.get(tid)
        assert (t.outcome, t.answer, t.steps, t.input_tokens, t.output_tokens) == (
            "answered",
            "done",
            1,
            10,
            3,
        )
        assert [s.kind for s in t.step_records] == ["retrieve", "model", "tool"]
        assert [(s.name, s.ok) for s in t.step_records][2] == ("run_capability", False)
        assert t.children == (child,) and t.config == {"k": 5}
        assert t.messages == [{"role": "user", "content": "x"}]
        assert t.finished_at is not None and t.duration_s is not None and t.duration_s >= 0
        assert [x.id for x in store.list()] == [child, tid]
        assert [x.id for x in store.list(kind="task")] == [tid]
        assert store.list(kind="task")[0].messages is None  # listings leave them out
        assert store.count() == 2
        with pytest.raises(TranscriptNotFound, match="no transcript 999"):
            store.get(999)


def test_an_empty_store_says_there_are_no_transcripts_yet(store_backend: str) -> None:
    with open_transcripts(store_backend) as store:
        assert store.list() == [] and store.count() == 0
        with pytest.raises(TranscriptNotFound, match="none yet"):
            store.get(1)


def test_transcript_commands_read_either_backend(
    store_backend: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_transcripts(store_backend) as store:
        tid = store.start("task", "what is E042's salary", model="m")
        store.add_step(tid, 0, "model", {"reply": "..."}, input_tokens=7, output_tokens=2)
        store.finish(tid, "answered", answer="41,000 EUR")
    assert main(["transcripts", "--store", store_backend]) == 0
    listing = capsys.readouterr().out
    assert "what is E042's salary" in listing and "answered" in listing
    assert main(["transcript", str(tid), "--store", store_backend, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["answer"] == "41,000 EUR" and shown["steps_detail"][0]["input_tokens"] == 7
    assert main(["transcript", "42", "--store", store_backend]) == 1
    assert "no transcript 42" in capsys.readouterr().err
    monkeypatch.setenv("SYMBIONT_STORE", store_backend)  # the store every command opens
    assert main(["transcripts", "--json"]) == 0
    assert [t["id"] for t in json.loads(capsys.readouterr().out)] == [tid]


def test_demo_runs_the_whole_loop_and_its_transcripts_are_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "demo" / "symbiont.db"
    args = ["--store", str(store)]
    code = main(["agent", "--demo", "--tier", "process", "--examples", str(HR_EXAMPLES), *args])
    out = capsys.readouterr().out
    assert code == 0, out
    # each stage of the loop, in this order
    stages = ["retrieve", "run", "create", "build", "test", "complete", "reuse"]
    positions = []
    for stage in stages:
        at = out.find(f"\n{stage} ", positions[-1] if positions else 0)
        if at < 0:
            at = out.find(f"    {stage} ", positions[-1] if positions else 0)
        assert at >= 0, f"{stage} missing after position {positions[-1:]}:\n{out}"
        positions.append(at)
    assert "typecheck" in out  # the first build failed on a type error
    assert "Pedro Ivanova (E042) earns a base salary of 41,000 EUR" in out
    assert out.count("answer    The average base salary in Engineering is") == 2

    assert main(["transcripts", *args]) == 0
    listing = capsys.readouterr().out
    lines = [line for line in listing.splitlines() if line[:1].isdigit()]
    assert len(lines) == 4  # three task runs and one mutation run
    assert "department_average_salary" in listing and "completed" in listing

    assert main(["transcript", "3", *args]) == 0
    shown = capsys.readouterr().out
    assert "mutation run 3" in shown and "started by task run 2" in shown
    assert "build" in shown and "complete" in shown

    assert main(["transcript", "42", *args]) == 1
    assert "no transcript 42" in capsys.readouterr().err


def test_agent_without_a_model_says_how_to_configure_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for name in ("SYMBIONT_MODEL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert main(["agent", "what is 2 + 2", "--store", str(tmp_path / "s.db")]) == 1
    err = capsys.readouterr().err
    assert "SYMBIONT_MODEL" in err and "--demo" in err
    assert not (tmp_path / "s.db").exists()
    assert "SYMBIONT_MODEL" not in os.environ


def test_prompts_command_shows_the_agent_templates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "agent.mutation.system"]) == 0
    out = capsys.readouterr().out
    assert "capability author" in out and "complete(summary, examples)" in out
