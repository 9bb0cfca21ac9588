"""An evolvable whose check fails, for the check-failed traceback test."""

from __future__ import annotations

import symbiont


@symbiont.evolvable(timeout=2.0, typecheck=False)
def shout(text: str) -> str:
    """Return the text in capitals with one exclamation mark."""
    return text
