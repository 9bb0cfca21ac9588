"""The proposer: an ensemble of models, one chosen per request by UCB1.

The reward of a request is 1 when its child beats its parent, else 0, divided by the
request's relative cost (its cost over the mean cost of a request so far) when the model is
priced; so a cheap model that improves as often as an expensive one is preferred. Every arm
is tried once before UCB1 takes over: mean reward + c·sqrt(2 ln N / n).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from symbiont.models.base import Model
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
    ) -> None:
        if not models:
            raise ValueError("an ensemble needs at least one model")
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
        self._pulls = 0

    def choose(self) -> Arm:
        """The arm to ask next: an arm nobody has asked yet (nor is asking), then the highest
        UCB1 bound; requests in flight count as pulls without reward."""
        self._pulls += 1
        chosen = next((a for a in self.arms if a.stats.calls + a.pending == 0), None)
        if chosen is None:
            total = sum(a.stats.calls + a.pending for a in self.arms)

            def bound(arm: Arm) -> float:
                n = max(1, arm.stats.calls + arm.pending)
                explore = math.sqrt(2 * math.log(total) / n)
                return arm.stats.reward / n + self.exploration * explore

            chosen = max(self.arms, key=bound)
        chosen.pending += 1
        return chosen

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
