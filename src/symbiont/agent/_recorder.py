"""What both agents share: events for a live display, transcript recording, asking the model.

`Recorder` writes each step to the transcript as it happens and tells the `on_event`
observer (the CLI prints these), so the display and the stored transcript never disagree.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from symbiont.agent.transcripts import TranscriptStore
from symbiont.models.base import Message, Model, ModelReply
from symbiont.models.retry import call_with_retries

log = logging.getLogger("symbiont.agent")


@dataclass(frozen=True, slots=True)
class AgentEvent:
    """One thing an agent did, for a live display.

    `agent` is "task" or "mutation"; `kind` one of retrieve, model, tool, note, answer,
    step_limit, error, retry, start, end; `name` the tool for tool events.
    """

    agent: str
    kind: str
    summary: str
    name: str = ""
    ok: bool | None = None
    data: dict[str, Any] = field(default_factory=dict)
    transcript_id: int = 0


EventHandler = Callable[[AgentEvent], None]


def preview(value: Any, limit: int = 160) -> str:
    """A one-line preview of a value for displays and logs."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Recorder:
    """One transcript being written, plus the observer to tell about each step."""

    def __init__(
        self,
        store: TranscriptStore,
        *,
        agent: str,
        task: str,
        model: Model,
        parent_id: int | None,
        config: dict[str, Any],
        on_event: EventHandler | None,
    ) -> None:
        self.store = store
        self.agent = agent
        self.on_event = on_event
        self.id = store.start(
            agent, task, model=str(getattr(model, "name", "")), parent_id=parent_id, config=config
        )
        self._position = 0
        self._recorded_messages = 0  # messages already written with an earlier model step
        self.model_calls = 0
        self.input_tokens = 0
        self.output_tokens = 0

    def emit(
        self,
        kind: str,
        summary: str,
        *,
        name: str = "",
        ok: bool | None = None,
        **data: Any,
    ) -> None:
        if self.on_event is None:
            return
        event = AgentEvent(self.agent, kind, summary, name, ok, data, self.id)
        try:
            self.on_event(event)
        except Exception:  # a broken display must not break the agent
            log.exception("agent event handler failed on %s", event.kind)

    def step(
        self,
        kind: str,
        data: dict[str, Any],
        *,
        name: str = "",
        ok: bool | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        duration_s: float = 0.0,
    ) -> None:
        self._position += 1
        self.store.add_step(
            self.id,
            self._position,
            kind,
            data,
            name=name,
            ok=ok,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            duration_s=duration_s,
        )

    def conversation_reset(self) -> None:
        """The conversation restarts: the next model step records it from the beginning."""
        self._recorded_messages = 0

    async def ask(
        self,
        model: Model,
        messages: list[Message],
        tools: Sequence[dict[str, Any]] | None,
        *,
        max_retries: int,
    ) -> ModelReply:
        """Ask the model (transient errors retried, each retry shown) and record the step."""

        def on_retry(n: int, exc: Exception, delay: float) -> None:
            self.emit("retry", f"model call failed ({exc}); retry {n} in {delay:.1f}s")

        started = time.perf_counter()
        reply, retries = await call_with_retries(
            model, messages, tools=tools, max_retries=max_retries, on_retry=on_retry
        )
        duration = time.perf_counter() - started
        new = messages[self._recorded_messages :]
        self._recorded_messages = len(messages) + 1  # + the assistant reply appended next
        self.model_calls += 1
        self.input_tokens += reply.usage.input_tokens
        self.output_tokens += reply.usage.output_tokens
        calls = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in reply.tool_calls]
        self.step(
            "model",
            {
                "new_messages": new,
                "reply": reply.text,
                "tool_calls": calls,
                "model": reply.model,
                "finish_reason": reply.finish_reason,
                "latency_s": reply.latency_s,
                "retries": retries,
            },
            input_tokens=reply.usage.input_tokens,
            output_tokens=reply.usage.output_tokens,
            duration_s=duration,
        )
        what = ", ".join(c.name for c in reply.tool_calls) or preview(reply.text, 100)
        self.emit(
            "model",
            f"model → {what}",
            input_tokens=reply.usage.input_tokens,
            output_tokens=reply.usage.output_tokens,
            latency_s=duration,
        )
        return reply
