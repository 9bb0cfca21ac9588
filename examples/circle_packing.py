"""Circle packing: 26 circles in the unit square, maximising the sum of their radii.

The benchmark AlphaEvolve, OpenEvolve and ShinkaEvolve report (best published ≈ 2.635).
`construct_packing` places the 26 centres; the metric gives each circle the largest radius
that keeps every circle inside the square and apart from the others (the same fixed rule
for every candidate), and scores the sum. A population search improves the layout — with
the offline mutation proposer it tunes the constants; with a real model it may rewrite it.

    python examples/circle_packing.py            # offline proposer, 200 evaluations
    SYMBIONT_MODEL=... python examples/circle_packing.py
"""

from __future__ import annotations

import math
from collections.abc import Callable

import symbiont
from symbiont.search import Budget, FeatureDim
from symbiont.search.config import CODE_LENGTH

N = 26


@symbiont.evolvable(timeout=5.0, typecheck=False)
def construct_packing() -> list[tuple[float, float]]:
    """The centres (x, y) of 26 circles in the unit square [0, 1] x [0, 1]."""
    centers = [(0.5, 0.5)]
    for i in range(8):
        angle = 2 * math.pi * i / 8
        centers.append((0.5 + 0.3 * math.cos(angle), 0.5 + 0.3 * math.sin(angle)))
    for i in range(17):
        angle = 2 * math.pi * i / 17
        centers.append((0.5 + 0.7 * math.cos(angle), 0.5 + 0.7 * math.sin(angle)))
    return centers


def max_radii(centers: list[tuple[float, float]]) -> list[float]:
    """The largest radii for these centres: each circle within the square, then every
    overlapping pair shrunk in proportion until it only touches."""
    radii = [max(0.0, min(x, y, 1 - x, 1 - y)) for x, y in centers]
    for i in range(len(centers)):
        for j in range(i + 1, len(centers)):
            d = math.dist(centers[i], centers[j])
            if radii[i] + radii[j] > d:
                scale = d / (radii[i] + radii[j])
                radii[i] *= scale
                radii[j] *= scale
    return radii


def centers_of(fn: Callable[[], list[tuple[float, float]]]) -> list[tuple[float, float]]:
    raw = fn()
    centers = [(min(max(float(x), 0.0), 1.0), min(max(float(y), 0.0), 1.0)) for x, y in raw]
    return centers


def check_packing(fn: Callable[[], list[tuple[float, float]]]) -> None:
    centers = fn()
    if len(centers) != N:
        raise ValueError(f"construct_packing must return {N} centres, not {len(centers)}")
    for x, y in centers:
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ValueError(f"a centre is not finite: ({x}, {y})")


def sum_of_radii(fn: Callable[[], list[tuple[float, float]]]) -> symbiont.Score:
    radii = max_radii(centers_of(fn))
    total = sum(radii)
    mean = total / len(radii)
    spread = math.sqrt(sum((r - mean) ** 2 for r in radii) / len(radii))
    return symbiont.Score(
        total,
        metrics={"radius_spread": spread, "empty_circles": float(sum(r < 1e-6 for r in radii))},
        artifacts={"smallest radii": ", ".join(f"{r:.3f}" for r in sorted(radii)[:5])},
    )


FEATURES = (FeatureDim("radius_spread", 0.0, 0.12, 6), CODE_LENGTH)


def main(
    *,
    runtime: symbiont.Runtime | None = None,
    model: object | None = None,
    evaluations: int = 200,
    parallel: int = 2,
    **options: object,
) -> object:
    own = runtime is None
    rt = runtime or symbiont.Runtime()
    try:
        return rt.search_sync(
            construct_packing,
            model,
            prompt=(
                f"Place {N} circles in the unit square so that the sum of their radii is as large "
                "as possible (radii are computed from the centres)."
            ),
            metric=sum_of_radii,
            check=check_packing,
            budget=Budget(evaluations=evaluations),
            parallel=parallel,
            islands=2,
            features=FEATURES,
            **options,
        )
    finally:
        if own:
            rt.close()


if __name__ == "__main__":
    print(main().summary())  # type: ignore[attr-defined]
