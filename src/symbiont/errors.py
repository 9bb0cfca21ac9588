"""The errors symbiont raises, as one small hierarchy users can catch.

Catch `SymbiontError` for everything; the subclasses say which part failed.
"""

from __future__ import annotations

from collections.abc import Sequence

from symbiont.diagnostics import Diagnostic, render_all


class SymbiontError(Exception):
    """Base class of every error symbiont raises on purpose."""


class DeclarationError(SymbiontError, TypeError):
    """`@evolvable` was applied to something it cannot evolve (lambda, method, closure...)."""


class StageError(SymbiontError):
    """A pipeline stage rejected a candidate; carries the diagnostics."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        super().__init__(render_all(self.diagnostics))


class RevisionError(SymbiontError, LookupError):
    """An unknown revision was named, or a revision cannot be activated."""


class ModelError(SymbiontError):
    """The model could not be asked or gave an unusable answer (not retried)."""


class TransientModelError(ModelError):
    """A model error worth retrying: rate limit (429), server error (5xx), connection."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreError(SymbiontError):
    """The persistent store could not be opened or written."""


class CorruptStoreError(StoreError):
    """The file at the store path is not a symbiont store (corrupt or foreign)."""


class SandboxError(SymbiontError):
    """A sandbox tier is unavailable or misconfigured (not: the program inside failed)."""


class CapabilityError(SymbiontError):
    """A capability was refused, not found, deprecated, or given invalid input."""
