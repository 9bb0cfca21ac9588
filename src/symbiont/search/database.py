"""The program database: islands, a MAP-Elites grid per island, an elite archive.

Pure and in memory; the store keeps the candidates, and a resumed search replays them here
in order (`add`, `migrate`), which rebuilds the same grids. Scores are compared through a
sign so one code path serves "maximize" and "minimize".

- A program lands in the cell its features pick on its island's grid and stays there while
  no better program claims that cell (MAP-Elites: the best of each niche survives).
- The archive keeps the best `archive_size` programs of the whole search.
- `migrate` sends each island's best to the next island (a ring).
- Parents come from an island's elites: rank-weighted (weight 1/(rank+1)), tournament
  (best of k drawn at random) or uniform.
"""

from __future__ import annotations

import ast
import math
import random
from collections import Counter
from dataclasses import dataclass, field

from symbiont import pyast
from symbiont.evolvable import content_hash, tree_hash
from symbiont.search.config import FeatureDim, Selection

Cell = tuple[int, ...]


@dataclass(slots=True)
class Program:
    number: int  # revision number
    source: str
    score: float
    features: dict[str, float] = field(default_factory=dict)
    island: int = 0
    parent: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)


def structure(source: str) -> Counter[str]:
    """The bag of syntax-node types of a source (empty for one that does not parse)."""
    return fingerprint(source)[1]


def fingerprint(source: str, tree: ast.Module | None = None) -> tuple[str, Counter[str]]:
    """The content hash of a source (`symbiont.evolvable.content_hash`: the digest of its
    normalised AST, `ast.dump`'s text) and its `structure`, from one pass over one parse: a
    candidate's duplicate check and its place on the grid cost one walk over its tree, not
    three. `tree`: the source's, when the caller parsed it already
    (`symbiont.pipeline.extract_and_parse`)."""
    try:
        parsed = tree if tree is not None else pyast.parse(source, "<candidate>")
    except (SyntaxError, ValueError):
        return content_hash(source), Counter()
    shape: Counter[str] = Counter()
    return tree_hash(parsed, source, shape), shape


def structural_distance(a: Counter[str], b: Counter[str]) -> float:
    """1 − cosine similarity of two node-type bags: 0 for the same shape, up to 1."""
    dot = sum(a[k] * b[k] for k in a.keys() & b.keys())
    na = math.sqrt(sum(v * v for v in a.values()))
    nb = math.sqrt(sum(v * v for v in b.values()))
    if na == 0 or nb == 0:
        return 1.0
    return max(0.0, 1.0 - dot / (na * nb))


class Island:
    def __init__(self, index: int) -> None:
        self.index = index
        self.grid: dict[Cell, Program] = {}
        self.best: Program | None = None


class ProgramDatabase:
    def __init__(
        self,
        islands: int,
        features: tuple[FeatureDim, ...],
        *,
        maximize: bool = True,
        archive_size: int = 20,
        seed_source: str = "",
    ) -> None:
        if islands < 1:
            raise ValueError("a program database needs at least one island")
        self.islands = [Island(i) for i in range(islands)]
        self.features = features
        self.sign = 1.0 if maximize else -1.0
        self.archive_size = archive_size
        self.archive: list[Program] = []  # best first
        self._seed_shape = structure(seed_source)

    def set_origin(self, source: str) -> None:
        """The program structural distance is measured from (the search's starting one)."""
        self._seed_shape = structure(source)

    # -- features and placement -----------------------------------------------------------
    def describe(
        self, source: str, metrics: dict[str, float], shape: Counter[str] | None = None
    ) -> dict[str, float]:
        """The feature values of a program: its metrics plus the built-ins (`shape`: its
        `structure`, when the caller has it already)."""
        values = dict(metrics)
        values["code_length"] = float(len(source))
        shape = structure(source) if shape is None else shape
        values["distance"] = structural_distance(shape, self._seed_shape)
        return {f.name: values.get(f.name, 0.0) for f in self.features}

    def cell(self, features: dict[str, float]) -> Cell:
        return tuple(f.bin(features.get(f.name, 0.0)) for f in self.features)

    def fitness(self, program: Program) -> float:
        return self.sign * program.score

    def add(self, program: Program) -> bool:
        """Place `program` on its island; True when it took a cell (new or better)."""
        island = self.islands[program.island % len(self.islands)]
        cell = self.cell(program.features)
        here = island.grid.get(cell)
        placed = here is None or self.fitness(program) > self.fitness(here)
        if placed:
            island.grid[cell] = program
        if island.best is None or self.fitness(program) > self.fitness(island.best):
            island.best = program
        self._archive(program)
        return placed

    def _archive(self, program: Program) -> None:
        if any(p.number == program.number for p in self.archive):
            return
        self.archive.append(program)
        self.archive.sort(key=lambda p: -self.fitness(p))
        del self.archive[self.archive_size :]

    def migrate(self) -> list[tuple[Program, int]]:
        """Each island's best goes to the next island (ring); returns (migrant, destination)
        for the ones that took a cell there. Nothing moves with one island."""
        if len(self.islands) < 2:
            return []
        moves = []
        bests = [island.best for island in self.islands]
        for i, best in enumerate(bests):
            if best is None:
                continue
            destination = (i + 1) % len(self.islands)
            migrant = Program(
                best.number,
                best.source,
                best.score,
                dict(best.features),
                destination,
                best.parent,
                dict(best.metrics),
                dict(best.artifacts),
            )
            if self.add(migrant):
                moves.append((migrant, destination))
        return moves

    def renumber(self, numbers: dict[int, int]) -> None:
        """Give the programs the revision numbers the store gave them (old -> new; each
        program mapped once, a migrant's copy too)."""
        programs = {id(p): p for p in self.archive}
        for island in self.islands:
            programs.update((id(p), p) for p in island.grid.values())
            if island.best is not None:
                programs[id(island.best)] = island.best
        for p in programs.values():
            p.number = numbers.get(p.number, p.number)
            if p.parent is not None:
                p.parent = numbers.get(p.parent, p.parent)

    # -- reading --------------------------------------------------------------------------
    @property
    def best(self) -> Program | None:
        return self.archive[0] if self.archive else None

    def elites(self, island: int) -> list[Program]:
        """The island's grid occupants, best first."""
        return sorted(self.islands[island].grid.values(), key=lambda p: -self.fitness(p))

    def size(self) -> int:
        return sum(len(i.grid) for i in self.islands)

    def sample_parent(
        self, island: int, rng: random.Random, strategy: Selection = "rank", k: int = 3
    ) -> Program:
        elites = self.elites(island) or self.archive
        if not elites:
            raise LookupError("the program database is empty: seed it before sampling")
        if strategy == "uniform":
            return rng.choice(elites)
        if strategy == "tournament":
            drawn = [rng.choice(elites) for _ in range(max(1, k))]
            return max(drawn, key=self.fitness)
        if strategy == "rank":
            weights = [1.0 / (rank + 1) for rank in range(len(elites))]
            return rng.choices(elites, weights=weights, k=1)[0]
        raise ValueError(f"unknown selection strategy {strategy!r}")

    def inspirations(
        self, island: int, parent: Program, rng: random.Random, top: int = 2, diverse: int = 2
    ) -> list[Program]:
        """A few of the best programs (the island's, then the archive's) and a few diverse
        ones (occupants of the grid cells farthest from the parent's), never the parent."""
        chosen: list[Program] = []
        seen = {parent.number}
        for p in self.elites(island) + self.archive:
            if len(chosen) >= top:
                break
            if p.number not in seen:
                chosen.append(p)
                seen.add(p.number)
        others = [p for i in self.islands for p in i.grid.values() if p.number not in seen]
        home = self.cell(parent.features)

        def far(p: Program) -> tuple[float, float]:
            return (
                sum(abs(a - b) for a, b in zip(self.cell(p.features), home, strict=True)),
                rng.random(),
            )

        for p in sorted(others, key=far, reverse=True):
            if len(chosen) >= top + diverse:
                break
            if p.number not in seen:
                chosen.append(p)
                seen.add(p.number)
        return chosen
