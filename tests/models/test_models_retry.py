"""`call_with_retries` and `backoff_delay`, driven by a scripted model and a recording sleep."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from symbiont.errors import ModelError, TransientModelError
from symbiont.models import ScriptedModel, call_with_retries
from symbiont.models.retry import backoff_delay

USER = [{"role": "user", "content": "hi"}]


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def run(model: ScriptedModel, **kw: Any) -> tuple[str, int, RecordingSleep]:
    sleep = RecordingSleep()
    reply, retries = asyncio.run(call_with_retries(model, USER, sleep=sleep, **kw))  # type: ignore[arg-type]
    return reply.text, retries, sleep


def test_transient_errors_are_retried_with_growing_backoff() -> None:
    model = ScriptedModel([TransientModelError("503")] * 4 + ["done"])
    text, retries, sleep = run(model, base_delay_s=1.0, max_delay_s=100.0, rng=random.Random(1))
    assert (text, retries) == ("done", 4)
    assert len(model.calls) == 5
    # retry n waits within [d/2, d] for d = 2**(n-1) seconds
    for n, delay in enumerate(sleep.delays, start=1):
        assert 2 ** (n - 1) / 2 <= delay <= 2 ** (n - 1)
    assert sleep.delays[-1] > sleep.delays[0]


def test_backoff_is_capped() -> None:
    model = ScriptedModel([TransientModelError("503")] * 6 + ["ok"])
    _, _, sleep = run(model, base_delay_s=1.0, max_delay_s=3.0, max_retries=6)
    assert max(sleep.delays) <= 3.0


def test_retry_after_is_honoured() -> None:
    model = ScriptedModel([TransientModelError("429", retry_after=7.0), "ok"])
    _, retries, sleep = run(model, base_delay_s=0.01, max_delay_s=1.0)
    assert retries == 1
    assert 7.0 <= sleep.delays[0] <= 7.7  # at least what the server asked, plus <= 10% jitter


def test_absurd_retry_after_is_bounded() -> None:
    assert backoff_delay(1, retry_after=86400.0) <= 120.0 * 1.1


def test_non_transient_errors_are_not_retried() -> None:
    model = ScriptedModel([ModelError("bad key"), "never reached"])
    with pytest.raises(ModelError, match="bad key"):
        run(model)
    assert len(model.calls) == 1


def test_gives_up_after_max_retries_and_reports_each_retry() -> None:
    model = ScriptedModel([TransientModelError(f"fail {i}") for i in range(5)])
    seen: list[tuple[int, str]] = []
    with pytest.raises(TransientModelError, match="fail 3"):
        run(model, max_retries=3, on_retry=lambda n, e, d: seen.append((n, str(e))))
    assert seen == [(1, "fail 0"), (2, "fail 1"), (3, "fail 2")]
    assert len(model.calls) == 4


def test_zero_retries_means_one_call() -> None:
    model = ScriptedModel([TransientModelError("x"), "ok"])
    with pytest.raises(TransientModelError):
        run(model, max_retries=0)
    with pytest.raises(ValueError):
        run(ScriptedModel(["ok"]), max_retries=-1)


def test_real_sleep_is_used_by_default() -> None:
    model = ScriptedModel([TransientModelError("429", retry_after=0.05), "ok"])
    loop_time: list[float] = []

    async def go() -> int:
        loop = asyncio.get_running_loop()
        start = loop.time()
        _, retries = await call_with_retries(model, USER)
        loop_time.append(loop.time() - start)
        return retries

    assert asyncio.run(go()) == 1
    assert loop_time[0] >= 0.05
