"""Retrying transient model errors with exponential backoff, visibly.

The SDK's own retries are off so that the caller sees every retry: the evolve loop counts
them per attempt (they do not use up attempts), and `on_retry` lets a UI show them.
Only `TransientModelError` (429, 5xx, timeouts, connection failures) is retried; anything
else is a mistake retrying cannot fix and is raised at once.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from symbiont.errors import TransientModelError
from symbiont.models.base import Message, Model, ModelReply

__all__ = ["backoff_delay", "call_with_retries"]

# A server asking for a longer pause than this is treated as asking for this long, so a
# bogus `Retry-After: 86400` cannot hang the program for a day.
MAX_RETRY_AFTER_S = 120.0


def backoff_delay(
    retry: int,
    *,
    base_delay_s: float = 0.5,
    max_delay_s: float = 20.0,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number `retry` (1-based).

    Without a server hint: "equal jitter" exponential backoff, a uniform pick in
    [d/2, d] with d = min(max_delay_s, base_delay_s * 2**(retry-1)), so concurrent clients
    spread out but the wait still grows. With `retry_after`: at least that long (plus up to
    10% jitter), since retrying earlier only earns another 429.
    """
    r = rng or random
    if retry_after is not None:
        wait = min(max(retry_after, 0.0), MAX_RETRY_AFTER_S)
        return wait * (1.0 + 0.1 * r.random())
    cap = min(max_delay_s, base_delay_s * (2 ** (retry - 1)))
    return cap / 2 + r.random() * cap / 2


async def call_with_retries(
    model: Model,
    messages: Sequence[Message],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    hints: Mapping[str, Any] | None = None,
    max_retries: int = 5,
    base_delay_s: float = 0.5,
    max_delay_s: float = 20.0,
    on_retry: Callable[[int, TransientModelError, float], None] | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    rng: random.Random | None = None,
) -> tuple[ModelReply, int]:
    """`model.complete(...)`, retried on `TransientModelError`; returns (reply, retries used).

    `on_retry(retry_number, error, delay_s)` is called before each wait. After
    `max_retries` retries the last transient error is raised.
    """
    if max_retries < 0:
        raise ValueError(f"max_retries must be >= 0, not {max_retries}")
    retries = 0
    while True:
        try:
            reply = await model.complete(messages, tools=tools, hints=hints)
        except TransientModelError as exc:
            if retries >= max_retries:
                raise
            retries += 1
            delay = backoff_delay(
                retries,
                base_delay_s=base_delay_s,
                max_delay_s=max_delay_s,
                retry_after=exc.retry_after,
                rng=rng,
            )
            if on_retry is not None:
                on_retry(retries, exc, delay)
            await sleep(delay)
            continue
        return reply, retries
