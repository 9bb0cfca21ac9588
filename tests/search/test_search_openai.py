"""runtime.search through OpenAIModel (the openai SDK) against the loopback server."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import search_targets as t

import symbiont
from symbiont.models.openai import OpenAIModel
from symbiont.search import Budget
from symbiont.store.sqlite import Pricing
from symbiont.testing.openai_server import Reply

HEAD = 'def peak(x: float) -> float:\n    """A value to maximise at x = 3: candidates change the constants."""\n'


@pytest.fixture
def runtime(peak_runtime: symbiont.Runtime) -> symbiont.Runtime:
    return peak_runtime  # tests/search/conftest.py


def test_parallel_requests_inspirations_tokens_and_cost(runtime, openai_server) -> None:
    steps = itertools.count(1)

    def answer(body: dict) -> Reply:
        c = 3.0 - 2.0 / (next(steps) + 1)
        return Reply(f"```python\n{HEAD}    return -((x - {c!r}) ** 2)\n```", delay_s=0.15)

    openai_server.handler = answer
    model = OpenAIModel("fake-model", base_url=openai_server.base_url, api_key="k")
    report = runtime.search_sync(
        t.peak, [(model, Pricing(0.5, 1.5))], metric=t.score_peak,
        budget=Budget(evaluations=9), parallel=2, islands=1, novelty_threshold=None,
    )  # fmt: skip
    assert report.evaluations == 9
    assert openai_server.max_in_flight == 2  # two requests answered at once
    assert report.best_score is not None and report.best_score > -4.0
    stats = report.models["fake-model"]
    assert stats.calls == 8 and stats.input_tokens > 0 and stats.output_tokens > 0
    expected = stats.input_tokens / 1000 * 0.5 + stats.output_tokens / 1000 * 1.5
    assert report.cost_usd == pytest.approx(expected)
    assert report.input_tokens == stats.input_tokens
    # the later prompts show the parent with its score, and other programs as inspirations
    last = openai_server.chat_requests[-1]["messages"]
    assert last[0]["role"] == "system" and "SEARCH" in last[0]["content"]
    user = last[-1]["content"]
    assert "The parent program (r" in user and "score -" in user
    assert "Another program (r" in user
    # no prompt shows the harness (the metric) to the model
    assert all(
        "score_peak" not in m["content"] for r in openai_server.chat_requests for m in r["messages"]
    )


def test_a_cost_budget_stops_the_search(runtime, openai_server) -> None:
    steps = itertools.count(1)
    openai_server.handler = lambda body: (
        f"```python\n{HEAD}    return -((x - {3.0 - 1.0 / (next(steps) + 1)!r}) ** 2)\n```"
    )
    model = OpenAIModel("fake-model", base_url=openai_server.base_url, api_key="k")
    report = runtime.search_sync(
        t.peak, [(model, Pricing(10.0, 10.0))], metric=t.score_peak,
        budget=Budget(evaluations=100, cost_usd=0.05), novelty_threshold=None,
    )  # fmt: skip
    assert "cost budget" in report.stop_reason
    assert report.cost_usd >= 0.05
    assert report.evaluations < 100
