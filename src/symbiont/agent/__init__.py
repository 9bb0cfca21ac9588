"""Agents that use, write and retire capabilities.

    from symbiont.agent import Agent
    result = Agent(library, model).run("What is employee E042's salary?")

- `Agent` — the task agent: retrieves the top-k capabilities for a task, runs one in the
  sandbox, or has a new one written when none fits; ends on an answer or a step limit;
- `MutationAgent` — writes, builds and tests a capability until `complete` may store it;
- `TranscriptStore` — every step of every run, in the library's store file;
- `prompts.TEMPLATES` — every prompt, shown by `symbiont prompts`.
"""

from __future__ import annotations

from symbiont.agent._recorder import AgentEvent
from symbiont.agent.mutation import MutationAgent, MutationResult
from symbiont.agent.task import OUTCOMES, Agent, AgentResult
from symbiont.agent.transcripts import Transcript, TranscriptNotFound, TranscriptStore

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
