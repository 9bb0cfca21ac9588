"""The proposer: an ensemble of models, one chosen per request by a bandit.

Both bandits value a model by how often its children beat their parents, per unit of cost
when models are priced, so a cheap model that improves as often as an expensive one is
preferred. Every arm is tried once before either takes over.

* `"ucb1"` (the default): the reward of a request is 1 when its child beats its parent,
  else 0, divided by the request's relative cost (its cost over the mean cost of a request
  so far) when the model is priced; the arm with the highest mean reward + c·sqrt(2 ln N / n)
  is asked. Deterministic; requests in flight count as pulls without reward, so parallel
  requests spread over the arms.
* `"thompson"`: each arm's chance to improve has a Beta(1 + improvements, 1 + requests
  without one) posterior; a draw from each, divided by the arm's relative cost per request
  when priced, picks the arm. Randomised (seeded), so parallel requests spread by
  themselves; it stops spending on a useless arm sooner than UCB1's steady exploration.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from symbiont.models.base import Model
from symbiont.search.config import Bandit
from symbiont.store.sqlite import Pricing


@dataclass(slots=True)
class ModelStats:
    name: str
    calls: int = 0
    failures: int = 0  # requests that raised after retries
    evaluated: int = 0  # children that reached their trial
    improvements: int = 0  # children better than their parent
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    reward: float = 0.0  # sum of rewards


@dataclass(slots=True)
class Arm:
    model: Model
    pricing: Pricing | None = None
    stats: ModelStats = field(default_factory=lambda: ModelStats(""))
    pending: int = 0  # chosen, not recorded yet (requests in flight)


class Ensemble:
    def __init__(
        self,
        models: list[Model] | list[tuple[Model, Pricing | None]],
        *,
        exploration: float = 1.0,
        bandit: Bandit = "ucb1",
        rng: random.Random | None = None,
    ) -> None:
        if not models:
            raise ValueError("an ensemble needs at least one model")
        if bandit not in ("ucb1", "thompson"):
            raise ValueError(f"bandit must be 'ucb1' or 'thompson', not {bandit!r}")
        self.arms: list[Arm] = []
        names: set[str] = set()
        for item in models:
            model, pricing = item if isinstance(item, tuple) else (item, None)
            name = str(getattr(model, "name", type(model).__name__))
            base, n = name, 2
            while name in names:  # two models of one name stay apart in the report
                name, n = f"{base}#{n}", n + 1
            names.add(name)
            self.arms.append(Arm(model, pricing, ModelStats(name)))
        self.exploration = exploration
        self.bandit = bandit
        self.rng = rng if rng is not None else random.Random(0)
        self._pulls = 0

    def choose(self) -> Arm:
        """The arm to ask next: an arm nobody has asked yet (nor is asking), then the
        bandit's choice."""
        self._pulls += 1
        chosen = next((a for a in self.arms if a.stats.calls + a.pending == 0), None)
        if chosen is None and self.bandit == "thompson":
            chosen = max(self.arms, key=self._thompson_draw)
        elif chosen is None:
            total = sum(a.stats.calls + a.pending for a in self.arms)

            def bound(arm: Arm) -> float:
                n = max(1, arm.stats.calls + arm.pending)
                explore = math.sqrt(2 * math.log(total) / n)
                return arm.stats.reward / n + self.exploration * explore

            chosen = max(self.arms, key=bound)
        chosen.pending += 1
        return chosen

    def _thompson_draw(self, arm: Arm) -> float:
        """A draw of the arm's chance to improve, per unit of its relative cost."""
        s = arm.stats
        draw = self.rng.betavariate(1 + s.improvements, 1 + max(0, s.calls - s.improvements))
        if arm.pricing is None or not s.calls:
            return draw
        priced = [a.stats for a in self.arms if a.pricing is not None and a.stats.calls]
        mean = sum(p.cost_usd for p in priced) / max(1, sum(p.calls for p in priced))
        own = s.cost_usd / s.calls
        return draw / max(own / mean, 1e-3) if mean > 0 else draw

    def cost(self, arm: Arm, input_tokens: int, output_tokens: int) -> float | None:
        if arm.pricing is None:
            return None
        return arm.pricing.cost(input_tokens, output_tokens)

    def record(
        self,
        arm: Arm,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost_usd: float | None = None,
        failed: bool = False,
        evaluated: bool = False,
        improved: bool = False,
    ) -> None:
        s = arm.stats
        arm.pending = max(0, arm.pending - 1)
        s.calls += 1
        s.failures += int(failed)
        s.evaluated += int(evaluated)
        s.improvements += int(improved)
        s.input_tokens += input_tokens
        s.output_tokens += output_tokens
        s.cost_usd += cost_usd or 0.0
        reward = 1.0 if improved else 0.0
        if reward and cost_usd:
            priced = [a.stats for a in self.arms if a.pricing is not None and a.stats.calls]
            mean = sum(p.cost_usd for p in priced) / max(1, sum(p.calls for p in priced))
            reward /= max(cost_usd / mean, 1e-3) if mean > 0 else 1.0
        s.reward += reward

    def stats(self) -> dict[str, ModelStats]:
        return {a.stats.name: a.stats for a in self.arms}
