"""Helpers for testing code that uses symbiont: a fake OpenAI-compatible server
(`symbiont.testing.openai_server`), a throwaway PostgreSQL (`symbiont.testing.pgserver`),
and `reset`, which puts module-level evolvables back between tests."""

from __future__ import annotations

from symbiont.evolvable import handle


def reset(*fns: object) -> None:
    """Put each evolvable back to its declared body (revision 0, unscored) and forget, in
    memory, every other revision, its activation history and its recorded failures — what
    a test that evolved a module-level function does when it ends (after closing its
    runtime; a store keeps what was written to it)."""
    for fn in fns:
        h = handle(fn)
        h.activate(0)
        del h.revisions[1:]
        h._previous.clear()
        h.revision(0).score = None
        h.failures.clear()
