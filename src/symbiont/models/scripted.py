"""`ScriptedModel`: replies fixed in advance, for tests and scripted demos.

Each call takes the next item of the script: a string (the reply text), a `ModelReply`
(text, tool calls, usage), an exception (raised, to test error handling), or a function of
the messages returning one of those (for replies that depend on what was asked). Every call
is recorded so tests can assert on exactly what the model was told.
"""

from __future__ import annotations

import copy
import inspect
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from symbiont.errors import ModelError
from symbiont.models.base import Message, ModelReply, Usage

__all__ = ["ScriptItem", "ScriptedModel"]

ScriptItem = str | ModelReply | BaseException | type[BaseException] | Callable[[list[Message]], Any]


def _approx_tokens(text: str) -> int:
    return (len(text) + 3) // 4


class ScriptedModel:
    """A `Model` answering from a script; `.calls` holds a copy of the messages of each call."""

    name = "scripted"

    def __init__(self, replies: Sequence[ScriptItem] = ()) -> None:
        self._script: deque[ScriptItem] = deque(replies)
        self._total = len(self._script)
        self.calls: list[list[Message]] = []
        self.tools: list[list[dict[str, Any]] | None] = []
        self.hints: list[dict[str, Any] | None] = []

    @property
    def remaining(self) -> int:
        """Script items not used yet."""
        return len(self._script)

    def add(self, *replies: ScriptItem) -> None:
        """Append more replies to the script."""
        self._script.extend(replies)
        self._total += len(replies)

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        hints: Mapping[str, Any] | None = None,
    ) -> ModelReply:
        started = time.perf_counter()
        recorded = copy.deepcopy(list(messages))  # later edits by the caller must not leak in
        self.calls.append(recorded)
        self.tools.append([dict(t) for t in tools] if tools is not None else None)
        self.hints.append(dict(hints) if hints is not None else None)
        if not self._script:
            last = recorded[-1].get("content") if recorded else None
            preview = (str(last)[:200] + "...") if last and len(str(last)) > 200 else last
            raise ModelError(
                f"ScriptedModel ran out of replies: call #{len(self.calls)} but the script had "
                f"{self._total}. The last message was: {preview!r}"
            )
        item: Any = self._script.popleft()
        if callable(item) and not (isinstance(item, type) and issubclass(item, BaseException)):
            item = item(copy.deepcopy(recorded))
            if inspect.isawaitable(item):
                item = await item
        if isinstance(item, BaseException) or (
            isinstance(item, type) and issubclass(item, BaseException)
        ):
            raise item
        if isinstance(item, ModelReply):
            return item
        if isinstance(item, str):
            prompt = "".join(str(m.get("content") or "") for m in recorded)
            return ModelReply(
                text=item,
                usage=Usage(_approx_tokens(prompt), _approx_tokens(item)),
                latency_s=time.perf_counter() - started,
                model="scripted",
                finish_reason="stop",
            )
        raise ModelError(
            f"ScriptedModel script item #{len(self.calls)} is a {type(item).__name__}; expected "
            "str, ModelReply, an exception, or a function returning str or ModelReply"
        )
