"""Models: the `Model` protocol and its providers.

- `OpenAIModel` — any OpenAI-compatible server through the official `openai` SDK (OpenAI,
  Azure OpenAI, Ollama, vLLM, llama.cpp server, LM Studio, OpenRouter);
- `MutationModel` — an offline proposer rewriting the active revision's syntax tree; the
  default when no model is configured;
- `ScriptedModel` — replies fixed in advance, for tests.

`default_model()` picks one from the environment; `call_with_retries` retries transient
errors with backoff.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from symbiont.models.base import Message, Model, ModelReply, ToolCall, Usage
from symbiont.models.mutation import MutationModel
from symbiont.models.retry import call_with_retries
from symbiont.models.scripted import ScriptedModel

if TYPE_CHECKING:
    from symbiont.models.openai import OpenAIModel

__all__ = [
    "OFFLINE_NOTICE",
    "Message",
    "Model",
    "ModelReply",
    "MutationModel",
    "OpenAIModel",
    "ScriptedModel",
    "ToolCall",
    "Usage",
    "call_with_retries",
    "default_model",
    "print_to_stderr",
]

OFFLINE_NOTICE = (
    "no model configured (SYMBIONT_MODEL / OPENAI_BASE_URL unset): "
    "using the offline mutation proposer"
)

_announced: set[str] = set()


def __getattr__(name: str) -> Any:
    # The openai SDK takes most of a second to import: load it only when it is used.
    if name == "OpenAIModel":
        from symbiont.models.openai import OpenAIModel

        return OpenAIModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def print_to_stderr(message: str) -> None:
    """The default announcer: one line on stderr, printed once per process."""
    if message in _announced:
        return
    _announced.add(message)
    print(message, file=sys.stderr, flush=True)


def default_model(*, announce: Callable[[str], None] | None = print_to_stderr) -> Model:
    """The model the environment asks for.

    `OpenAIModel` when `SYMBIONT_MODEL` or `OPENAI_BASE_URL` is set (`SYMBIONT_MODEL=mutation`
    or `mutation:SEED` asks for the offline proposer explicitly, without a notice); otherwise
    the offline `MutationModel`, announced in one line through `announce` (the default
    prints it on stderr once per process; pass `None` for silence).
    """
    name = os.environ.get("SYMBIONT_MODEL", "").strip()
    if name == "mutation" or name.startswith("mutation:"):
        seed_text = name.partition(":")[2] or "0"
        try:
            seed = int(seed_text)
        except ValueError as exc:
            raise ValueError(
                f"SYMBIONT_MODEL={name!r}: the seed after 'mutation:' must be an integer"
            ) from exc
        return MutationModel(seed=seed)
    if name or os.environ.get("OPENAI_BASE_URL", "").strip():
        from symbiont.models.openai import OpenAIModel

        return OpenAIModel()
    if announce is not None:
        announce(OFFLINE_NOTICE)
    return MutationModel()
