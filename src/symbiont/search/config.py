"""The options of a population search, as small frozen dataclasses."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from symbiont.evaluation import Check, Direction, Metric

Selection = Literal["rank", "tournament", "uniform"]
Bandit = Literal["ucb1", "thompson"]
PromotePolicy = Literal["best", "never"] | Callable[[Any, Any], bool]


def _function(value: Any, what: str) -> Any:
    """A metric or check given as an import path ('package.module:function') is the function
    it names, imported now, so a bad path fails when the search is set up."""
    if isinstance(value, str):
        from symbiont.search.executors import resolve

        return resolve(value, what)
    return value


@dataclass(frozen=True, slots=True)
class Budget:
    """When a search stops: whichever limit is reached first (None: no limit).

    evaluations: trials run (the seed's included); seconds: wall time of this call;
    tokens: input + output tokens over all models; cost_usd: priced models only."""

    evaluations: int | None = 100
    seconds: float | None = None
    tokens: int | None = None
    cost_usd: float | None = None

    def __post_init__(self) -> None:
        for name in ("evaluations", "seconds", "tokens", "cost_usd"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int | float) and value > 0):
                raise ValueError(f"Budget.{name} must be a positive number or None, not {value!r}")
        if all(getattr(self, n) is None for n in ("evaluations", "seconds", "tokens", "cost_usd")):
            raise ValueError(
                "a Budget needs at least one limit (evaluations, seconds, tokens, cost_usd)"
            )


@dataclass(frozen=True, slots=True)
class FeatureDim:
    """One axis of the MAP-Elites grid: a metric the evaluator returns (or a built-in,
    "code_length" or "distance"), cut into `bins` equal bins over [lo, hi] (values outside
    go to the end bins)."""

    name: str
    lo: float = 0.0
    hi: float = 1.0
    bins: int = 10

    def __post_init__(self) -> None:
        if self.bins < 1:
            raise ValueError(f"FeatureDim {self.name!r}: bins must be at least 1")
        if not (math.isfinite(self.lo) and math.isfinite(self.hi) and self.hi > self.lo):
            raise ValueError(f"FeatureDim {self.name!r}: needs finite lo < hi")

    def bin(self, value: float) -> int:
        if not math.isfinite(value):
            return 0
        i = int((value - self.lo) / (self.hi - self.lo) * self.bins)
        return min(max(i, 0), self.bins - 1)


# Built-in feature dimensions: characters of source, structural distance from the seed.
CODE_LENGTH = FeatureDim("code_length", 0.0, 4000.0, 10)
DISTANCE = FeatureDim("distance", 0.0, 1.0, 10)


@dataclass(frozen=True, slots=True)
class Stage:
    """One step of a cascade: `metric(fn)` scores the candidate; one whose score is below
    `threshold` (above it when minimising) stops there and never pays for later stages."""

    metric: Metric
    threshold: float | None = None
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "metric", _function(self.metric, "the stage's metric"))


@dataclass(frozen=True, slots=True)
class SearchConfig:
    metric: Metric | None = None
    check: Check | None = None
    stages: tuple[Stage, ...] = ()
    prompt: str = ""
    direction: Direction = "maximize"
    budget: Budget = field(default_factory=Budget)
    target: float | None = None
    parallel: int = 1
    islands: int = 2
    migration_interval: int = 20  # evaluations between two migrations (ring)
    features: tuple[FeatureDim, ...] = (CODE_LENGTH, DISTANCE)
    selection: Selection = "rank"
    tournament_size: int = 3
    archive_size: int = 20
    top_inspirations: int = 2
    diverse_inspirations: int = 2
    promote: PromotePolicy = "best"
    bandit: Bandit = "ucb1"  # how the ensemble picks a model: "ucb1" or "thompson"
    novelty_threshold: float | None = None  # cosine of bodies; None: exact duplicates only
    edit_retries: int = 1  # re-asks after a SEARCH block that does not match
    typecheck: bool | None = None
    timeout_s: float | None = None
    max_retries: int = 3  # transient model errors, per request
    seed: int = 0
    max_prompt_chars: int = 24_000

    def __post_init__(self) -> None:
        object.__setattr__(self, "metric", _function(self.metric, "the metric"))
        object.__setattr__(self, "check", _function(self.check, "the check"))
        if self.metric is None and not self.stages:
            raise ValueError("search needs a metric (or cascade stages) to rank candidates")
        if self.direction not in ("maximize", "minimize"):
            raise ValueError(f"direction must be 'maximize' or 'minimize', not {self.direction!r}")
        if self.parallel < 1:
            raise ValueError(f"parallel must be at least 1, not {self.parallel}")
        if self.islands < 1:
            raise ValueError(f"islands must be at least 1, not {self.islands}")
        if self.migration_interval < 1:
            raise ValueError(
                f"migration_interval must be at least 1, not {self.migration_interval}"
            )
        if self.selection not in ("rank", "tournament", "uniform"):
            raise ValueError(
                f"selection must be 'rank', 'tournament' or 'uniform', not {self.selection!r}"
            )
        if self.bandit not in ("ucb1", "thompson"):
            raise ValueError(f"bandit must be 'ucb1' or 'thompson', not {self.bandit!r}")
        if not (self.promote in ("best", "never") or callable(self.promote)):
            raise ValueError(f"promote must be 'best', 'never' or a callable, not {self.promote!r}")
        if self.novelty_threshold is not None and not 0 < self.novelty_threshold <= 1:
            raise ValueError("novelty_threshold must be in (0, 1] or None")
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError(f"feature dimensions must have distinct names, not {names}")

    @property
    def all_stages(self) -> tuple[Stage, ...]:
        """The cascade; a plain metric is a one-stage cascade."""
        if self.stages:
            return self.stages
        assert self.metric is not None
        return (Stage(self.metric, None, getattr(self.metric, "__name__", "metric")),)

    def better(self, a: float, b: float | None) -> bool:
        """Is score `a` strictly better than `b` (None: no score yet)?"""
        if b is None:
            return True
        return a > b if self.direction == "maximize" else a < b

    def reached(self, score: float | None) -> bool:
        if self.target is None or score is None:
            return False
        return score >= self.target if self.direction == "maximize" else score <= self.target

    def describe(self) -> dict[str, Any]:
        """What the store keeps about this configuration (JSON)."""
        return {
            "metric": getattr(self.metric, "__name__", None),
            "check": getattr(self.check, "__name__", None),
            "stages": [s.name or getattr(s.metric, "__name__", "stage") for s in self.stages],
            "direction": self.direction,
            "budget": {
                "evaluations": self.budget.evaluations,
                "seconds": self.budget.seconds,
                "tokens": self.budget.tokens,
                "cost_usd": self.budget.cost_usd,
            },
            "target": self.target,
            "parallel": self.parallel,
            "islands": self.islands,
            "migration_interval": self.migration_interval,
            "features": [[f.name, f.lo, f.hi, f.bins] for f in self.features],
            "selection": self.selection,
            "bandit": self.bandit,
            "seed": self.seed,
        }
