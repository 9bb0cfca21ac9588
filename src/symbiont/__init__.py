"""symbiont: code written by a language model as a living, typed, tested part of a program."""

from symbiont.diagnostics import Diagnostic
from symbiont.errors import (
    CapabilityError,
    DeclarationError,
    ModelError,
    RevisionError,
    SandboxError,
    StageError,
    StoreError,
    SymbiontError,
)

__all__ = [
    "CapabilityError",
    "DeclarationError",
    "Diagnostic",
    "ModelError",
    "RevisionError",
    "SandboxError",
    "StageError",
    "StoreError",
    "SymbiontError",
]
__version__ = "0.1.0"
