"""The circle-packing example: with the offline proposer, the search beats the initial layout."""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))

import circle_packing as cp

import symbiont
from symbiont.models.mutation import MutationModel
from symbiont.testing import reset


def valid_radii_sum(centers: list[tuple[float, float]], radii: list[float]) -> float:
    """Checked independently of the example: inside the square, no two circles overlap."""
    assert len(centers) == len(radii) == 26
    for (x, y), r in zip(centers, radii, strict=True):
        assert (
            r >= 0 and x - r >= -1e-9 and y - r >= -1e-9 and x + r <= 1 + 1e-9 and y + r <= 1 + 1e-9
        )
    for (c1, r1), (c2, r2) in itertools.combinations(zip(centers, radii, strict=True), 2):
        assert math.dist(c1, c2) >= r1 + r2 - 1e-9
    return sum(radii)


def test_the_search_improves_the_packing_with_the_offline_proposer() -> None:
    initial = valid_radii_sum(
        cp.centers_of(cp.construct_packing), cp.max_radii(cp.centers_of(cp.construct_packing))
    )
    rt = symbiont.Runtime(store=False)
    try:
        report = cp.main(runtime=rt, model=MutationModel(seed=2), evaluations=40, parallel=2)
        assert report.baseline_score == initial
        assert report.best_score > initial, report.summary()
        # the best layout is live now, and it is a valid packing worth what the report says
        centers = cp.centers_of(cp.construct_packing)
        assert valid_radii_sum(centers, cp.max_radii(centers)) == report.best_score
    finally:
        rt.close()
        reset(cp.construct_packing)
