"""The task agent over a library kept in PostgreSQL: retrieval from the store's index, the
run recorded by the library and every step of the transcript written through
`store.transcripts` into the same database, where a fresh process's view finds them.

Real parts: a real PostgreSQL 18 + pgvector (`pg_url`), the openai SDK over loopback HTTP,
the HR capabilities, the process-tier sandbox, the MiniLM embedder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent_helpers import HR_EXAMPLES, salary_brain

from symbiont.agent import Agent
from symbiont.agent.transcripts import open_transcripts
from symbiont.library import Library
from symbiont.models.openai import OpenAIModel
from symbiont.testing.openai_server import FakeOpenAIServer


def test_an_agent_on_a_postgresql_library_keeps_its_transcript_there(
    openai_server: FakeOpenAIServer,
    pg_url: str,
    tmp_path: Path,
    shared_embedder: Any,
    shared_sandbox: Any,
) -> None:
    openai_server.handler = salary_brain
    model = OpenAIModel("fake-model", base_url=openai_server.base_url, api_key="sk-test")
    with Library(
        store=pg_url,
        data_root=tmp_path / "data",
        embedder=shared_embedder,
        sandbox=shared_sandbox,
        tier="process",
        typecheck=False,
    ) as library:
        report = library.import_dir(HR_EXAMPLES)
        assert not report.failed and len(report.added) == 12
        with Agent(library, model) as agent:
            result = agent.run("What is employee E042's salary?")
        assert library.get("get_salary_details").stats.runs == 1

    database = tmp_path / "data" / "hr" / "employee_database.json"
    base = json.loads(database.read_text())["employees"]["E042"]["salary"]["base"]
    assert result.outcome == "answered" and str(base) in (result.answer or "")
    assert result.ran == ["get_salary_details"]
    with open_transcripts(pg_url) as transcripts:  # a store of its own on the database
        assert [t.id for t in transcripts.list()] == [result.transcript_id]
        t = transcripts.get(result.transcript_id)
    assert t.outcome == "answered" and t.answer == result.answer
    assert [s.kind for s in t.step_records] == [
        "retrieve",
        "model",
        "tool",
        "model",
        "tool",
        "model",
    ]
    assert t.steps == 3 and t.input_tokens > 0
