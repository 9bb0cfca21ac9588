"""Population search over revisions of one evolvable function.

Parts, OpenEvolve-style but small: the program database (`database`: islands, MAP-Elites
grids, archive, parent selection), the prompt builder (`prompts`: parent plus
inspirations), edits (`edits`: SEARCH/REPLACE blocks), novelty (`novelty`: exact and near
duplicates), the proposer (`proposer`: model ensemble chosen by UCB1), the evaluator
(`evaluator`: cascade stages in one forked trial) and the controller (`controller`:
budgets, parallel candidates, promotion, persistence and resume).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from symbiont.search.config import Budget, FeatureDim, SearchConfig, Stage
from symbiont.search.database import Program, ProgramDatabase

if TYPE_CHECKING:
    from symbiont.search.controller import SearchReport

__all__ = [
    "Budget",
    "FeatureDim",
    "Program",
    "ProgramDatabase",
    "SearchConfig",
    "SearchReport",
    "Stage",
]


def __getattr__(name: str) -> Any:  # the controller pulls in the pipeline: load it when asked
    if name == "SearchReport":
        from symbiont.search.controller import SearchReport

        return SearchReport
    raise AttributeError(f"module 'symbiont.search' has no attribute {name!r}")
