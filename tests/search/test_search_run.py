"""runtime.search end to end: real pipeline, forked trials, store; scripted and offline models."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import search_targets as t

import symbiont
from symbiont.models import ScriptedModel
from symbiont.models.mutation import MutationModel
from symbiont.search import Budget, Stage
from symbiont.store.searches import SearchRepository
from symbiont.testing import reset


def fenced(code: str) -> str:
    return f"Here:\n```python\n{code.strip()}\n```\n"


def work_body(expr: str) -> str:
    return fenced(f'def work(n: int) -> int:\n    """Return n + 1."""\n    {expr}\n')


def peak_body(c: float, k: float = 0.0) -> str:
    return fenced(
        "def peak(x: float) -> float:\n"
        '    """A value to maximise at x = 3: candidates change the constants."""\n'
        f"    return -((x - {c!r}) ** 2) - {k!r}\n"
    )


@pytest.fixture
def runtime(tmp_path: Path):
    rt = symbiont.Runtime(store=tmp_path / "s.db")
    yield rt
    rt.close()
    reset(t.peak, t.work)


def rows(runtime: symbiont.Runtime, search_id: int) -> list:
    assert runtime.store is not None
    return SearchRepository(runtime.store).candidates(search_id)


def test_the_offline_proposer_improves_and_the_best_is_promoted(runtime) -> None:
    report = runtime.search_sync(
        t.peak, MutationModel(seed=3), metric=t.score_peak, budget=Budget(evaluations=25),
        parallel=2, islands=2, migration_interval=5,
    )  # fmt: skip
    assert report.baseline_score == pytest.approx(-4.0)  # -(3 - 1)^2
    assert report.best is not None and report.best_score is not None
    assert report.best_score > -4.0
    assert report.evaluations == 25
    # the best revision is live, and its score is the function's value at 3
    assert t.peak.symbiont.active.number == report.best.number
    assert t.peak(3.0) == pytest.approx(report.best_score)
    # the curve only rises, and its last point is the best
    values = [p.best for p in report.curve]
    assert values == sorted(values) and values[-1] == report.best_score
    assert [p.evaluations for p in report.curve] == sorted(p.evaluations for p in report.curve)
    assert report.migrations >= 1 and len(report.island_bests) == 2
    # everything is in the store: one row per candidate, evaluated ones with their revision
    stored = rows(runtime, report.search_id)
    assert sum(r.evaluated for r in stored) == 25
    numbers = {r.number for r in runtime.store.revisions_of(runtime._function_id(t.peak.symbiont))}
    assert all(r.revision_number in numbers for r in stored if r.kind == "evaluated")
    assert len([r for r in stored if r.kind not in ("seed", "migrant")]) == report.candidates
    # migrations are rows too: a program that was evaluated on one island, arriving on the other
    migrants = [r for r in stored if r.kind == "migrant"]
    assert len(migrants) == report.migrations
    home = {r.revision_number: r.island for r in stored if r.kind in ("evaluated", "seed")}
    assert all(m.island == (home[m.revision_number] + 1) % 2 for m in migrants if m.revision_number)
    # every evaluated row carries its MAP-Elites features: code length and structural distance
    for r in stored:
        if r.kind == "evaluated":
            assert set(r.features) == {"code_length", "distance"} and r.features["code_length"] > 0
    record = SearchRepository(runtime.store).get(report.search_id)
    assert record.status == "finished" and record.best_number == report.best.number
    assert "evaluation budget" in record.stop_reason


def test_parallel_candidates_never_overshoot_the_evaluation_budget(runtime) -> None:
    model = ScriptedModel([peak_body(1.0 + i / 10) for i in range(1, 30)])
    report = runtime.search_sync(
        t.peak, model, metric=t.score_peak, budget=Budget(evaluations=7), parallel=3,
        novelty_threshold=None,
    )  # fmt: skip
    assert report.evaluations == 7
    assert len(model.calls) == 6  # the seed took one evaluation


def test_token_and_time_budgets_stop_the_search(runtime) -> None:
    model = ScriptedModel([peak_body(1.0 + i / 10) for i in range(1, 30)])
    report = runtime.search_sync(
        t.peak, model, metric=t.score_peak, budget=Budget(evaluations=None, tokens=1500),
        novelty_threshold=None,
    )  # fmt: skip
    assert "token budget" in report.stop_reason
    assert report.input_tokens + report.output_tokens >= 1500
    first = model.calls[0]
    per_request = sum(len(m["content"]) for m in first) // 4
    assert len(model.calls) <= 1500 // per_request + 1
    report = runtime.search_sync(
        t.peak, MutationModel(seed=1), metric=t.score_peak,
        budget=Budget(evaluations=None, seconds=1.0),
    )  # fmt: skip
    assert "time budget" in report.stop_reason


def test_the_search_stops_at_its_target(runtime) -> None:
    model = ScriptedModel([peak_body(2.0), peak_body(2.9), peak_body(2.95), peak_body(3.0)])
    report = runtime.search_sync(
        t.peak, model, metric=t.score_peak, target=-0.05, budget=Budget(evaluations=10),
        novelty_threshold=None,
    )  # fmt: skip
    assert "target" in report.stop_reason
    assert report.best_score == pytest.approx(-0.01)  # c = 2.9, the first to reach -0.05
    assert model.remaining == 2


def test_promote_never_and_a_promote_callable(runtime) -> None:
    model = ScriptedModel([peak_body(2.0), peak_body(3.0)])
    report = runtime.search_sync(
        t.peak, model, metric=t.score_peak, budget=Budget(evaluations=3), promote="never",
        novelty_threshold=None,
    )  # fmt: skip
    assert report.best_score == pytest.approx(0.0) and report.promoted == []
    assert t.peak.symbiont.active.number == 0 and t.peak(3.0) == pytest.approx(-4.0)
    seen = []

    def only_perfect(candidate, active) -> bool:
        seen.append((candidate.score, active.number))
        return candidate.score == 0.0

    model = ScriptedModel([peak_body(2.5), peak_body(3.0)])
    report = runtime.search_sync(
        t.peak, model, metric=t.score_peak, budget=Budget(evaluations=3), promote=only_perfect,
        novelty_threshold=None,
    )  # fmt: skip
    assert [s for s, _ in seen] == [pytest.approx(-0.25), pytest.approx(0.0)]
    assert report.promoted == [t.peak.symbiont.active.number]
    assert t.peak(3.0) == 0.0


def test_parallel_trials_that_hang_or_crash_while_others_succeed(runtime) -> None:
    model = ScriptedModel(
        [
            work_body("while True:\n        pass"),  # hangs: killed at the 2 s timeout
            work_body("return n // (n - n)"),  # raises
            work_body("return len(bytearray(1 << 40))"),  # blows its memory limit
            work_body("return n + 1"),  # correct
        ]
    )
    report = runtime.search_sync(
        t.work, model, metric=t.score_work, budget=Budget(evaluations=5), parallel=4,
        novelty_threshold=None,
    )  # fmt: skip
    assert report.evaluations == 5
    assert report.best_score == 1.0 and t.work(4) == 5
    assert report.rejections["timeout"] == 1
    assert report.rejections["exception"] == 1
    assert report.rejections["memory"] + report.rejections["exception"] == 2
    assert report.trial_cpu_s > 0


def test_a_non_matching_search_block_gets_difflib_feedback_and_a_second_chance(runtime) -> None:
    bad = "<<<<<<< SEARCH\n    return n + 0\n=======\n    return n + 1\n>>>>>>> REPLACE\n"
    good = "<<<<<<< SEARCH\n    return n\n=======\n    return n + 1\n>>>>>>> REPLACE\n"
    never = "<<<<<<< SEARCH\n    return m\n=======\n    return 2\n>>>>>>> REPLACE\n"
    model = ScriptedModel([bad, good, never, never])
    report = runtime.search_sync(
        t.work, model, metric=t.score_work, budget=Budget(evaluations=2), islands=1,
        novelty_threshold=None,
    )  # fmt: skip
    assert report.evaluations == 2 and report.best_score == 1.0
    feedback = model.calls[1][-1]["content"]
    assert "does not match the parent" in feedback
    assert "|     return n" in feedback  # the parent's nearest line, quoted
    assert model.calls[1][-2] == {"role": "assistant", "content": bad}
    # an edit that never matches is a rejection of kind "edit", and costs no evaluation
    report = runtime.search_sync(
        t.work, model, metric=t.score_work, budget=Budget(evaluations=2, seconds=20), islands=1,
        novelty_threshold=None,
    )  # fmt: skip
    assert report.rejections["edit"] >= 1


def test_duplicates_are_rejected_before_they_cost_an_evaluation(runtime) -> None:
    same = work_body("return n + 1")
    reformatted = work_body("return (n +   1)  # the same")
    declared = work_body("return n")  # the seed itself
    model = ScriptedModel([same, reformatted, declared, work_body("return 1 + n")])
    report = runtime.search_sync(
        t.work, model, metric=t.score_work, budget=Budget(evaluations=3), novelty_threshold=None,
    )  # fmt: skip
    assert report.rejections["duplicate"] == 2
    assert report.evaluations == 3 and len(model.calls) == 4
    stored = rows(runtime, report.search_id)
    dupes = [r for r in stored if r.kind == "duplicate"]
    assert [r.evaluated for r in dupes] == [False, False]
    assert dupes[1].revision_number == 0  # it repeats the seed r0


def test_near_duplicates_by_embedding(runtime) -> None:
    a = work_body("x = n + 1\n    return x")
    b = work_body("x = 1 + n\n    return x")  # another tree, the same words
    model = ScriptedModel([a, b, work_body("return sum([n, 1])")])
    report = runtime.search_sync(
        t.work, model, metric=t.score_work, budget=Budget(evaluations=3), novelty_threshold=0.95,
    )  # fmt: skip
    assert report.rejections["near_duplicate"] == 1
    assert report.evaluations == 3


@pytest.mark.parametrize("bandit", ["ucb1", "thompson"])
def test_the_bandit_prefers_the_model_that_improves(runtime, bandit: str) -> None:
    steps = iter(range(1, 1000))
    useful = ScriptedModel([lambda _m: peak_body(3.0 - 2.0 / (next(steps) + 1))] * 60)
    useful.name = "useful"
    junk = iter(range(1, 1000))
    useless = ScriptedModel([lambda _m: peak_body(1.0, float(next(junk)))] * 60)
    useless.name = "useless"
    report = runtime.search_sync(
        t.peak, [useless, useful], metric=t.score_peak, budget=Budget(evaluations=40),
        islands=1, novelty_threshold=None, bandit=bandit,
    )  # fmt: skip
    stats = report.models
    assert stats["useful"].improvements > 10 and stats["useless"].improvements == 0
    assert stats["useful"].calls > 3 * stats["useless"].calls
    assert stats["useless"].calls >= 1  # it was tried
    assert runtime.store is not None
    assert SearchRepository(runtime.store).get(report.search_id).config["bandit"] == bandit


def cheap(fn) -> float:
    return float(fn(4) == 5)


def full(fn) -> float:
    if fn(4) != 5:
        raise AssertionError("the expensive stage ran on a candidate that failed the cheap one")
    return 1.0 + sum(fn(i) == i + 1 for i in range(100)) / 100


def test_cascade_thresholds_spare_the_expensive_stage(runtime) -> None:
    h = t.work.symbiont
    model = ScriptedModel([work_body("return n * 2"), work_body("return n + 1")])
    # the declared body fails the cheap stage too: start from a body that passes it
    runtime.store  # noqa: B018
    start = ScriptedModel([work_body("return 5 if n == 4 else n")])
    runtime.evolve_sync(t.work, start, check=lambda fn: None, attempts=1)
    assert h.active.number > 0
    report = runtime.search_sync(
        t.work, model, stages=[Stage(cheap, threshold=1.0, name="cheap"), full],
        budget=Budget(evaluations=3), novelty_threshold=None,
    )  # fmt: skip
    assert report.rejections["cascade"] == 1  # n * 2 stopped at the cheap stage
    assert report.rejections["exception"] == 0  # so `full` never ran on it
    assert report.best_score == pytest.approx(2.0)  # n + 1 passed both: 1 + 100/100
    assert report.baseline_score == pytest.approx(1.01)


def test_a_search_with_no_working_start_is_refused(runtime) -> None:
    def broken(fn) -> float:
        raise ValueError("no")

    with pytest.raises(symbiont.SymbiontError, match="no starting point"):
        runtime.search_sync(t.work, ScriptedModel([]), metric=broken, budget=Budget(evaluations=2))


def test_the_store_holds_one_search_row_per_search(runtime, tmp_path: Path) -> None:
    for _ in range(2):
        runtime.search_sync(
            t.peak, MutationModel(seed=5), metric=t.score_peak, budget=Budget(evaluations=3)
        )
    conn = sqlite3.connect(tmp_path / "s.db")
    assert conn.execute("SELECT COUNT(*), MIN(status), MAX(status) FROM searches").fetchone() == (
        2, "finished", "finished",
    )  # fmt: skip


def test_another_process_promoting_meanwhile_wins_the_compare_and_set(runtime) -> None:
    store, h = runtime.store, t.peak.symbiont
    fid = runtime._function_id(h)
    calls = []

    def meanwhile(candidate, active) -> bool:
        calls.append(active.number)
        if len(calls) == 2:  # as if another process made r0 active again right now
            store.set_active(fid, 0, reason="other process")
        return True

    model = ScriptedModel([peak_body(2.0), peak_body(2.5)])
    report = runtime.search_sync(
        t.peak, model, metric=t.score_peak, budget=Budget(evaluations=3), promote=meanwhile,
        islands=1, novelty_threshold=None,
    )  # fmt: skip
    first, second = (
        r.revision_number for r in rows(runtime, report.search_id) if r.kind == "evaluated"
    )
    assert report.promoted == [first]  # the second lost: judged against r{first}, not r0
    assert calls == [0, first]
    assert h.active.number == 0 and t.peak(3.0) == pytest.approx(-4.0)  # the winner is followed
    assert store.get_function(fid).active_number == 0
    assert [a.reason for a in store.activations(fid)][-2:] == ["search", "other process"]
    assert report.best is not None and report.best.number == second  # still the search's best


def test_of_two_new_bests_in_flight_the_better_one_ends_up_live(runtime) -> None:
    # Pairs of candidates that both beat the active revision finish their trials at about
    # the same time; whichever is recorded second must still be judged against the first
    # one's promotion, so the better of the two is live at the end of every round.
    for rnd in range(6):
        model = ScriptedModel(
            [peak_body(3.0 - 1.0 / (2 + 2 * rnd) - 0.001), peak_body(3.0 - 1.0 / (3 + 2 * rnd))]
        )
        report = runtime.search_sync(
            t.peak, model, metric=t.score_peak, budget=Budget(evaluations=3), parallel=2,
            islands=1, novelty_threshold=None,
        )  # fmt: skip
        assert report.evaluations == 3
        assert report.best is not None and report.best_score is not None
        assert t.peak.symbiont.active.number == report.best.number, (rnd, report.summary())
        assert t.peak(3.0) == pytest.approx(report.best_score)
