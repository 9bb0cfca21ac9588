"""The `Model` protocol: one small interface over every way of proposing code.

Messages use the OpenAI chat format (`{"role": ..., "content": ...}`), tools the OpenAI
tool-calling format, because that is what every supported server speaks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

Message = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # raw JSON text as the model wrote it (may be malformed)


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ModelReply:
    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0
    model: str = ""
    finish_reason: str | None = None


@runtime_checkable
class Model(Protocol):
    """Anything that answers a conversation.

    `hints` carries structured context some proposers use instead of reading the prompt
    (the offline mutation proposer reads `target` and `sources`; `OpenAIModel` reads
    `temperature`, which evolve raises after repeated replies); others ignore it.
    Raise `symbiont.errors.TransientModelError` for errors worth retrying (429, 5xx,
    connection) and `ModelError` for the rest.
    """

    name: str

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        hints: Mapping[str, Any] | None = None,
    ) -> ModelReply: ...
