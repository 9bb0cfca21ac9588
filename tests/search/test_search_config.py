"""Search options: clear errors for bad values; the ensemble's bandits (UCB1, Thompson
sampling) on their own."""

from __future__ import annotations

import random

import pytest

from symbiont.models import ScriptedModel
from symbiont.search import Budget, FeatureDim, SearchConfig, Stage
from symbiont.search.proposer import Ensemble
from symbiont.store.sqlite import Pricing


def metric(fn) -> float:  # type: ignore[no-untyped-def]
    return 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs a metric"),
        ({"metric": metric, "parallel": 0}, "parallel must be at least 1"),
        ({"metric": metric, "islands": 0}, "islands must be at least 1"),
        ({"metric": metric, "direction": "up"}, "direction must be"),
        ({"metric": metric, "selection": "roulette"}, "selection must be"),
        ({"metric": metric, "promote": "always"}, "promote must be"),
        ({"metric": metric, "novelty_threshold": 1.5}, "novelty_threshold"),
        ({"metric": metric, "features": (FeatureDim("a"), FeatureDim("a"))}, "distinct names"),
    ],
)
def test_bad_options_are_refused_with_a_clear_message(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SearchConfig(**kwargs)


def test_budgets_need_a_positive_limit() -> None:
    with pytest.raises(ValueError, match="at least one limit"):
        Budget(evaluations=None)
    with pytest.raises(ValueError, match=r"Budget\.seconds"):
        Budget(seconds=-1)
    with pytest.raises(ValueError, match="lo < hi"):
        FeatureDim("x", 1.0, 1.0)


def test_a_plain_metric_is_a_one_stage_cascade() -> None:
    config = SearchConfig(metric=metric)
    assert config.all_stages == (Stage(metric, None, "metric"),)
    staged = SearchConfig(stages=(Stage(metric, 0.5),))
    assert staged.all_stages[0].threshold == 0.5
    assert SearchConfig(metric=metric, direction="minimize").better(1.0, 2.0)
    assert not SearchConfig(metric=metric).better(1.0, 2.0)


def test_ucb1_tries_each_arm_then_prefers_the_rewarding_one() -> None:
    good, bad = ScriptedModel(), ScriptedModel()
    good.name, bad.name = "good", "bad"
    ensemble = Ensemble([bad, good])
    first, second = ensemble.choose(), ensemble.choose()
    assert {first.stats.name, second.stats.name} == {"good", "bad"}  # each tried once
    for arm in (first, second):
        ensemble.record(arm, improved=arm.stats.name == "good")
    picks = []
    for _ in range(50):
        arm = ensemble.choose()
        picks.append(arm.stats.name)
        ensemble.record(arm, improved=arm.stats.name == "good")
    assert picks.count("good") > 40
    assert "bad" in picks  # exploration never stops entirely


def test_a_cheaper_model_that_improves_as_often_earns_more() -> None:
    cheap, dear = ScriptedModel(), ScriptedModel()
    cheap.name, dear.name = "cheap", "dear"
    ensemble = Ensemble([(cheap, Pricing(0.1, 0.1)), (dear, Pricing(10.0, 10.0))])
    for arm in ensemble.arms:
        for _ in range(5):
            cost = ensemble.cost(arm, 1000, 1000)
            ensemble.record(
                arm, input_tokens=1000, output_tokens=1000, cost_usd=cost, improved=True
            )
    stats = ensemble.stats()
    assert stats["cheap"].reward > stats["dear"].reward
    assert stats["dear"].cost_usd == pytest.approx(5 * 20.0)


def test_two_models_of_one_name_stay_apart() -> None:
    a, b = ScriptedModel(), ScriptedModel()
    assert list(Ensemble([a, b]).stats()) == ["scripted", "scripted#2"]


def test_thompson_sampling_stops_spending_on_the_arm_that_never_improves() -> None:
    good, bad = ScriptedModel(), ScriptedModel()
    good.name, bad.name = "good", "bad"
    ensemble = Ensemble([bad, good], bandit="thompson", rng=random.Random(7))
    picks = []
    for _ in range(60):
        arm = ensemble.choose()
        picks.append(arm.stats.name)
        ensemble.record(arm, improved=arm.stats.name == "good")
    assert set(picks[:2]) == {"good", "bad"}  # each tried once first
    assert picks[30:].count("good") >= 28  # the posterior of "bad" collapsed
    # a draw is random, but seeded: the same seed makes the same choices
    again = Ensemble([bad, good], bandit="thompson", rng=random.Random(7))
    replay = []
    for _ in range(60):
        arm = again.choose()
        replay.append(arm.stats.name)
        again.record(arm, improved=arm.stats.name == "good")
    assert replay == picks


def test_thompson_weighs_an_improvement_by_its_cost() -> None:
    cheap, dear = ScriptedModel(), ScriptedModel()
    cheap.name, dear.name = "cheap", "dear"
    ensemble = Ensemble(
        [(dear, Pricing(10.0, 10.0)), (cheap, Pricing(0.1, 0.1))],
        bandit="thompson",
        rng=random.Random(3),
    )
    picks = []
    for _ in range(40):  # both improve every time; one costs a hundred times more
        arm = ensemble.choose()
        picks.append(arm.stats.name)
        cost = ensemble.cost(arm, 1000, 1000)
        ensemble.record(arm, input_tokens=1000, output_tokens=1000, cost_usd=cost, improved=True)
    assert picks[10:].count("cheap") >= 28


def test_an_unknown_bandit_is_refused() -> None:
    with pytest.raises(ValueError, match="bandit"):
        Ensemble([ScriptedModel()], bandit="epsilon")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bandit"):
        SearchConfig(metric=metric, bandit="epsilon")  # type: ignore[arg-type]


def test_the_summary_lists_the_last_promotions_of_a_long_search() -> None:
    from symbiont.search import SearchReport

    report = SearchReport("m.f", 1, 0.0, promoted=list(range(1, 301)))
    line = next(ln for ln in report.summary().splitlines() if "promoted" in ln)
    assert line.endswith("r293, r294, r295, r296, r297, r298, r299, r300 (300 in all)")
    assert "r292," not in line
    short = SearchReport("m.f", 1, 0.0, promoted=[4, 9])
    assert "  promoted: r4, r9" in short.summary().splitlines()
