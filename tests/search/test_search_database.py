"""Program database: MAP-Elites placement, islands and ring migration, parent selection."""

from __future__ import annotations

import ast
import random
from collections import Counter

import pytest

from symbiont.evolvable import content_hash
from symbiont.search.config import FeatureDim
from symbiont.search.database import (
    Program,
    ProgramDatabase,
    fingerprint,
    structural_distance,
    structure,
)

DIMS = (FeatureDim("a", 0.0, 1.0, 4), FeatureDim("b", 0.0, 10.0, 2))


def prog(number: int, score: float, a: float = 0.1, b: float = 1.0, island: int = 0) -> Program:
    return Program(number, f"def f():\n    return {number}\n", score, {"a": a, "b": b}, island)


def test_cells_follow_bins_and_clamp_out_of_range_values() -> None:
    db = ProgramDatabase(1, DIMS)
    assert db.cell({"a": 0.0, "b": 0.0}) == (0, 0)
    assert db.cell({"a": 0.26, "b": 5.5}) == (1, 1)
    assert db.cell({"a": 7.0, "b": -3.0}) == (3, 0)  # outside [lo, hi]: the end bins


def test_a_cell_keeps_its_best_program_only() -> None:
    db = ProgramDatabase(1, DIMS)
    assert db.add(prog(1, 0.5))
    assert not db.add(prog(2, 0.4))  # same cell, worse: refused
    assert db.add(prog(3, 0.9))  # same cell, better: replaces
    assert db.add(prog(4, 0.1, a=0.9))  # another cell: kept although worse
    assert {p.number for p in db.elites(0)} == {3, 4}
    assert [p.number for p in db.archive] == [3, 1, 2, 4]
    assert db.best is not None and db.best.number == 3


def test_minimising_prefers_lower_scores() -> None:
    db = ProgramDatabase(1, DIMS, maximize=False)
    db.add(prog(1, 5.0))
    assert db.add(prog(2, 3.0))
    assert not db.add(prog(3, 4.0))
    assert db.best is not None and db.best.number == 2


def test_archive_is_bounded() -> None:
    db = ProgramDatabase(1, DIMS, archive_size=3)
    for i in range(10):
        db.add(prog(i, float(i), a=(i % 4) / 4))
    assert [p.number for p in db.archive] == [9, 8, 7]


def test_migration_moves_each_islands_best_to_the_next_island_in_a_ring() -> None:
    db = ProgramDatabase(3, DIMS)
    db.add(prog(1, 1.0, island=0))
    db.add(prog(2, 2.0, island=1, a=0.6))
    db.add(prog(3, 3.0, island=2, a=0.9))
    moves = db.migrate()
    assert sorted((m.number, dest) for m, dest in moves) == [(1, 1), (2, 2), (3, 0)]
    assert {p.number for p in db.elites(0)} == {1, 3}
    assert {p.number for p in db.elites(1)} == {1, 2}
    assert db.islands[0].best is not None and db.islands[0].best.number == 3


def test_one_island_never_migrates() -> None:
    db = ProgramDatabase(1, DIMS)
    db.add(prog(1, 1.0))
    assert db.migrate() == []


def _picks(db: ProgramDatabase, strategy: str, n: int = 3000) -> Counter[int]:
    rng = random.Random(7)
    return Counter(db.sample_parent(0, rng, strategy).number for _ in range(n))  # type: ignore[arg-type]


def test_selection_strategies_weigh_scores_differently() -> None:
    db = ProgramDatabase(1, (FeatureDim("a", 0.0, 1.0, 5),))
    for i in range(5):  # one program per cell, score i
        db.add(Program(i, "", float(i), {"a": i / 5 + 0.01}))
    uniform = _picks(db, "uniform")
    rank = _picks(db, "rank")
    tournament = _picks(db, "tournament")
    # uniform: every elite about a fifth of the time
    assert all(500 < uniform[i] < 700 for i in range(5)), uniform
    # rank-weighted 1/(rank+1): the best about 44 %, the worst about 9 %
    assert 1200 < rank[4] < 1450 and 200 < rank[0] < 340, rank
    # tournament of 3: the best wins whenever drawn (1 - (4/5)^3 = 49 %), the worst only
    # when drawn three times (0.8 %)
    assert 1350 < tournament[4] < 1600 and tournament[0] < 60, tournament
    assert rank[4] > uniform[4] and tournament[4] > uniform[4]


def test_sampling_an_empty_database_is_a_clear_error() -> None:
    with pytest.raises(LookupError, match="empty"):
        ProgramDatabase(2, DIMS).sample_parent(1, random.Random(0))


def test_inspirations_hold_the_best_and_far_away_programs_but_not_the_parent() -> None:
    db = ProgramDatabase(1, (FeatureDim("a", 0.0, 1.0, 10),))
    programs = [Program(i, "", float(i), {"a": i / 10 + 0.01}) for i in range(10)]
    for p in programs:
        db.add(p)
    parent = programs[5]
    chosen = db.inspirations(0, parent, random.Random(0), top=2, diverse=1)
    numbers = [p.number for p in chosen]
    assert numbers[:2] == [9, 8]  # the two best
    assert numbers[2] == 0  # the farthest cell from the parent's (cell 5)
    assert 5 not in numbers


def test_structural_distance() -> None:
    a = structure("def f(x):\n    return x + 1\n")
    b = structure("def f(y):\n    return y + 2\n")  # same shape, other names and constants
    c = structure(
        "def f(x):\n    for i in range(3):\n        x = x * i if i else -x\n    return x\n"
    )
    assert structural_distance(a, b) == pytest.approx(0.0)
    assert 0.1 < structural_distance(a, c) <= 1.0
    assert structural_distance(a, structure("not python (")) == 1.0


def test_describe_adds_builtin_features() -> None:
    seed = "def f(x):\n    return x\n"
    db = ProgramDatabase(
        1, (FeatureDim("code_length", 0, 100, 4), FeatureDim("distance")), seed_source=seed
    )
    values = db.describe(seed, {"unused": 3.0})
    assert values == {"code_length": float(len(seed)), "distance": pytest.approx(0.0)}


def test_fingerprint_is_the_content_hash_and_the_structure_from_one_parse() -> None:
    sources = [
        "def f(x):\n    return x + 1\n",
        'def g(a, *b, **c):\n    """Doc(ument) A(b)"""\n    return {k: v for k, v in c.items() if b\'X(\' in v}\n',
        "def h(s):\n    return 'Foo(' + s + \"it's Bar(\" + f'{s!r} Baz(x)'\n",
        "import math\nclass A:\n    def m(self, *, k=1):\n        with open('x') as f:\n            return [math.sqrt(i) for i in f]\n",
        "not python (",
    ]
    for source in sources:
        digest, shape = fingerprint(source)
        assert digest == content_hash(source)
        try:
            walked = Counter(type(node).__name__ for node in ast.walk(ast.parse(source)))
        except SyntaxError:
            walked = Counter()
        assert shape == walked == structure(source), source
