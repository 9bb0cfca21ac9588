"""symbiont: code written by a language model as a living, typed, tested part of a program.

    import symbiont

    @symbiont.evolvable
    def step(state: dict[str, int]) -> None:
        \"\"\"Advance the state by one step.\"\"\"
        state["counter"] += 1

    runtime = symbiont.Runtime()
    report = runtime.evolve_sync(step, prompt="...", check=my_check)

Public names are imported lazily, so `import symbiont` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
    TransientModelError,
)

# Imported eagerly: the submodule `symbiont.evolvable` would otherwise shadow the decorator.
from symbiont.evolvable import Evolvable, Revision, evolvable, handle

if TYPE_CHECKING:
    from symbiont.evaluation import Score
    from symbiont.evolve import AttemptReport, EvolveReport
    from symbiont.runtime import Runtime

_LAZY = {
    "Score": "symbiont.evaluation",
    "Runtime": "symbiont.runtime",
    "EvolveReport": "symbiont.evolve",
    "AttemptReport": "symbiont.evolve",
}

__all__ = [
    "AttemptReport",
    "CapabilityError",
    "DeclarationError",
    "Diagnostic",
    "Evolvable",
    "EvolveReport",
    "ModelError",
    "Revision",
    "RevisionError",
    "Runtime",
    "SandboxError",
    "Score",
    "StageError",
    "StoreError",
    "SymbiontError",
    "TransientModelError",
    "evolvable",
    "handle",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'symbiont' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
