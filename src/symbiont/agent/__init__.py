"""Agents that use, write and retire capabilities.

    from symbiont.agent import Agent
    result = Agent(library, model).run("What is employee E042's salary?")

- `Agent` — the task agent: retrieves the top-k capabilities for a task, runs one in the
  sandbox, or has a new one written when none fits; ends on an answer or a step limit;
- `MutationAgent` — writes, builds and tests a capability until `complete` may store it;
- `TranscriptStore` — every step of every run, in the library's store (`store.transcripts`);
- `prompts.TEMPLATES` — every prompt, shown by `symbiont prompts`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from symbiont.agent._recorder import AgentEvent
    from symbiont.agent.mutation import MutationAgent, MutationResult
    from symbiont.agent.task import OUTCOMES, Agent, AgentResult
    from symbiont.agent.transcripts import Transcript, TranscriptNotFound, TranscriptStore

# Imported lazily: `import symbiont.agent` should not pull in the agents (and through them
# the library, the sandbox and the models) until a name is used.
_WHERE = {
    "AgentEvent": "symbiont.agent._recorder",
    "MutationAgent": "symbiont.agent.mutation",
    "MutationResult": "symbiont.agent.mutation",
    "OUTCOMES": "symbiont.agent.task",
    "Agent": "symbiont.agent.task",
    "AgentResult": "symbiont.agent.task",
    "Transcript": "symbiont.agent.transcripts",
    "TranscriptNotFound": "symbiont.agent.transcripts",
    "TranscriptStore": "symbiont.agent.transcripts",
}

__all__ = [
    "OUTCOMES",
    "Agent",
    "AgentEvent",
    "AgentResult",
    "MutationAgent",
    "MutationResult",
    "Transcript",
    "TranscriptNotFound",
    "TranscriptStore",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'symbiont.agent' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
