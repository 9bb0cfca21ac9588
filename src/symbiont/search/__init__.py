"""Population search over revisions of one evolvable function.

Parts, OpenEvolve-style but small: the program database (`database`: islands, MAP-Elites
grids, archive, parent selection), the prompt builder (`prompts`: parent plus
inspirations), edits (`edits`: SEARCH/REPLACE blocks), novelty (`novelty`: exact and near
duplicates), the proposer (`proposer`: model ensemble chosen by UCB1 or Thompson sampling),
the evaluator (`evaluator`: cascade stages in one trial, for `evolve` too), the executors
(`executors`: where trials run, forked children of the live process or a Ray cluster;
`workers`: confined workers forked once and reused) and the controller (`controller`:
budgets, parallel candidates, promotion, persistence and resume).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from symbiont.search.config import Budget, FeatureDim, SearchConfig, Stage
from symbiont.search.database import Program, ProgramDatabase

if TYPE_CHECKING:
    from symbiont.search.controller import SearchReport
    from symbiont.search.executors import Executor, ExecutorError, ForkedExecutor, RayExecutor
    from symbiont.search.workers import WorkerPoolExecutor

__all__ = [
    "Budget",
    "Executor",
    "ExecutorError",
    "FeatureDim",
    "ForkedExecutor",
    "Program",
    "ProgramDatabase",
    "RayExecutor",
    "SearchConfig",
    "SearchReport",
    "Stage",
    "WorkerPoolExecutor",
]


_EXECUTORS = ("Executor", "ExecutorError", "ForkedExecutor", "RayExecutor")


def __getattr__(name: str) -> Any:  # the controller pulls in the pipeline: load it when asked
    if name == "SearchReport":
        from symbiont.search.controller import SearchReport

        return SearchReport
    if name in _EXECUTORS:  # Ray itself is imported only when a RayExecutor is made
        from symbiont.search import executors

        return getattr(executors, name)
    if name == "WorkerPoolExecutor":
        from symbiont.search.workers import WorkerPoolExecutor

        return WorkerPoolExecutor
    raise AttributeError(f"module 'symbiont.search' has no attribute {name!r}")
