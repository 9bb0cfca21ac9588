"""A metric's artifacts reach the model about the revision it is asked to improve, bounded.

The correction after a worse candidate always quoted the metric's artifacts ("worst point:
..."), but the first prompt showed the active revision's score alone, and the note after an
accepted revision its score alone: the one revision the model is asked to improve was the
one it was told nothing about. Artifacts are computed from what a candidate returns, so a
hostile candidate can make them huge: every prompt shows at most a few entries, each cut.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import prompts_targets as t

import symbiont
from symbiont import feedback
from symbiont.models import ScriptedModel
from symbiont.testing import reset

SHOUT = (
    '```python\ndef shout(text: str) -> str:\n    """Upper-case text."""\n    return {body}\n```'
)


@pytest.fixture
def runtime() -> Iterator[symbiont.Runtime]:
    rt = symbiont.Runtime(store=False)
    yield rt
    rt.close()
    reset(t.shout)
    first = t.shout.symbiont.revisions[0]  # scored by this test's metric: forget it
    first.score, first.metrics, first.artifacts = None, {}, {}


def upper_count(fn) -> symbiont.Score:  # type: ignore[no-untyped-def]
    """Higher is better: how many letters of a sample come back upper-case."""
    said = fn("Hello there")
    return symbiont.Score(
        value=float(sum(c.isupper() for c in said)),
        artifacts={"said": said, "length": str(len(said))},
    )


def user_messages(model: ScriptedModel, call: int) -> list[str]:
    return [m["content"] for m in model.calls[call] if m["role"] == "user"]


def test_the_first_prompt_shows_what_the_metric_said_of_the_active_revision(
    runtime: symbiont.Runtime,
) -> None:
    model = ScriptedModel(["no code"])
    runtime.evolve_sync(t.shout, model, metric=upper_count, attempts=1)
    task = user_messages(model, 0)[0]
    # the active body lower-cases: the metric saw "hello there"
    assert "What the metric reports about it:\nsaid: hello there\nlength: 11" in task


def test_after_an_accepted_revision_the_model_hears_what_the_metric_said_of_it(
    runtime: symbiont.Runtime,
) -> None:
    model = ScriptedModel([SHOUT.format(body="text.upper()"), "no code"])
    report = runtime.evolve_sync(
        t.shout, model, metric=upper_count, accept="better", attempts=2, stop_on_accept=False
    )
    assert report.accepted is not None
    note = user_messages(model, 1)[-1]
    assert note.startswith("That revision was accepted (score 10")
    assert "said: HELLO THERE" in note


def test_a_candidate_that_floods_the_artifacts_cannot_flood_the_prompt(
    runtime: symbiont.Runtime,
) -> None:
    def echo_everything(fn) -> symbiont.Score:  # type: ignore[no-untyped-def]
        said = fn("x")
        keys = {f"part {i}": said[i * 10 : i * 10 + 10] for i in range(50)}
        return symbiont.Score(value=-float(len(said)), artifacts={"said": said, **keys})

    flood = SHOUT.format(body='"A" * 200_000')  # worse (-2e5) than the active one (-1)
    model = ScriptedModel([flood, "no code"])
    report = runtime.evolve_sync(
        t.shout, model, metric=echo_everything, accept="better", attempts=2
    )
    assert report.accepted is None and report.attempts[0].stage == "evaluate"
    correction = user_messages(model, 1)[-1]
    assert "said: AAAA" in correction
    assert len(correction) < 5_000, len(correction)
    assert f"part {feedback.MAX_ARTIFACTS - 2}:" in correction  # said, then parts 0..6
    assert f"part {feedback.MAX_ARTIFACTS - 1}:" not in correction
    assert t.shout("ab") == "ab"  # the active revision is the same, and it still runs
