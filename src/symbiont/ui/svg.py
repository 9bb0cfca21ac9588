"""Inline SVG pictures: a lineage tree and a score-over-revisions plot (no JavaScript)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from symbiont.ui.html import Safe, fmt, join, num


@dataclass(frozen=True, slots=True)
class Node:
    number: int
    parents: tuple[int, ...]
    status: str  # accepted | rejected
    stage: str
    score: float | None
    href: str
    active: bool = False


def _depths(nodes: Sequence[Node]) -> dict[int, int]:
    """Depth of each revision: one more than its deepest known parent (cycles cut)."""
    by_number = {n.number: n for n in nodes}
    depth: dict[int, int] = {}

    def of(number: int, seen: frozenset[int]) -> int:
        if number in depth:
            return depth[number]
        node = by_number.get(number)
        parents = [p for p in node.parents if p in by_number and p not in seen] if node else []
        d = 1 + max((of(p, seen | {number}) for p in parents), default=-1)
        depth[number] = d
        return d

    for n in nodes:
        of(n.number, frozenset())
    return depth


def lineage_tree(nodes: Sequence[Node]) -> Safe:
    """Revisions as a tree, top-down by depth; a crossover has one edge per parent."""
    if not nodes:
        return Safe("")
    depth = _depths(nodes)
    levels: dict[int, list[Node]] = {}
    for n in sorted(nodes, key=lambda n: n.number):
        levels.setdefault(depth[n.number], []).append(n)
    dx, dy, r, pad = 46, 64, 15, 24
    pos: dict[int, tuple[float, float]] = {}
    widest = max(len(v) for v in levels.values())
    width = pad * 2 + max(widest - 1, 0) * dx
    for d, row in levels.items():
        offset = (width - (len(row) - 1) * dx) / 2
        for i, n in enumerate(row):
            pos[n.number] = (offset + i * dx, pad + d * dy)
    height = pad * 2 + max(levels) * dy
    edges = []
    for n in nodes:
        x2, y2 = pos[n.number]
        for p in n.parents:
            if p in pos:
                x1, y1 = pos[p]
                edges.append(
                    fmt(
                        '<line class="edge{}" x1="{}" y1="{}" x2="{}" y2="{}"/>',
                        " cross" if len(n.parents) > 1 else "",
                        f"{x1:.1f}",
                        f"{y1 + r:.1f}",
                        f"{x2:.1f}",
                        f"{y2 - r:.1f}",
                    )
                )
    circles = []
    for n in nodes:
        x, y = pos[n.number]
        tip = f"revision {n.number}: {n.status} at {n.stage}" + (
            f", score {num(n.score)}" if n.score is not None else ""
        )
        if n.parents:
            tip += f"; parents {', '.join(map(str, n.parents))}"
        circles.append(
            fmt(
                '<a href="{href}" class="node-link"><g class="node {status}{active}" '
                'data-number="{number}"><title>{tip}</title>'
                '<circle cx="{x}" cy="{y}" r="{r}"/>'
                '<text x="{x}" y="{ty}" text-anchor="middle">{number}</text></g></a>',
                href=n.href,
                status=n.status,
                active=" active" if n.active else "",
                number=n.number,
                tip=tip,
                x=f"{x:.1f}",
                y=f"{y:.1f}",
                ty=f"{y + 4:.1f}",
                r=r,
            )
        )
    return fmt(
        '<svg class="tree" role="img" aria-label="lineage tree" width="{w}" height="{h}" '
        'viewBox="0 0 {w} {h}">{edges}{circles}</svg>',
        w=f"{width:.0f}",
        h=f"{height:.0f}",
        edges=join(edges),
        circles=join(circles),
    )


def line_plot(
    points: Sequence[tuple[float, float, str]],
    *,
    x_label: str,
    y_label: str,
    best: Sequence[tuple[float, float]] = (),
    width: int = 560,
    height: int = 220,
) -> Safe:
    """Scatter of (x, y, class) with an optional best-so-far step line; finite values only."""
    pts = [(x, y, c) for x, y, c in points if math.isfinite(x) and math.isfinite(y)]
    if not pts:
        return fmt('<p class="hint">no scores to plot yet</p>')
    left, right, top, bottom = 70, 12, 12, 36
    xs = [p[0] for p in pts] + [b[0] for b in best]
    ys = [p[1] for p in pts] + [b[1] for b in best]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - 1, y1 + 1

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * (height - top - bottom)

    dots = join(
        fmt(
            '<circle class="pt {}" cx="{}" cy="{}" r="4"><title>{}: {}</title></circle>',
            c,
            f"{sx(x):.1f}",
            f"{sy(y):.1f}",
            num(x),
            num(y),
        )
        for x, y, c in pts
    )
    step = ""
    if best:
        coords = []
        for i, (x, y) in enumerate(best):
            if i:
                coords.append(f"{sx(x):.1f},{sy(best[i - 1][1]):.1f}")
            coords.append(f"{sx(x):.1f},{sy(y):.1f}")
        step = fmt('<polyline class="best" points="{}"/>', " ".join(coords))
    axes = fmt(
        '<line class="axis" x1="{l}" y1="{b}" x2="{r}" y2="{b}"/>'
        '<line class="axis" x1="{l}" y1="{t}" x2="{l}" y2="{b}"/>'
        '<text class="tick" x="{l}" y="{bt}" text-anchor="start">{x0}</text>'
        '<text class="tick" x="{r}" y="{bt}" text-anchor="end">{x1}</text>'
        '<text class="tick" x="{lt}" y="{b}" text-anchor="end">{y0}</text>'
        '<text class="tick" x="{lt}" y="{tt}" text-anchor="end">{y1}</text>'
        '<text class="label" x="{mx}" y="{lb}" text-anchor="middle">{xl}</text>'
        '<text class="label" x="12" y="{my}" text-anchor="middle" '
        'transform="rotate(-90 12 {my})">{yl}</text>',
        l=left,
        r=width - right,
        t=top,
        b=height - bottom,
        bt=height - bottom + 14,
        lt=left - 4,
        tt=top + 8,
        x0=num(x0, 3),
        x1=num(x1, 3),
        y0=num(y0, 3),
        y1=num(y1, 3),
        mx=(left + width - right) / 2,
        lb=height - 6,
        my=(top + height - bottom) / 2,
        xl=x_label,
        yl=y_label,
    )
    return fmt(
        '<svg class="plot" role="img" aria-label="{al}" width="{w}" height="{h}" '
        'viewBox="0 0 {w} {h}">{axes}{step}{dots}</svg>',
        al=f"{y_label} over {x_label}",
        w=width,
        h=height,
        axes=axes,
        step=Safe(step),
        dots=dots,
    )


def heat_map(
    cells: dict[tuple[int, int], float], shape: tuple[int, int], *, size: int = 22
) -> Safe:
    """A MAP-Elites grid of shape (x bins, y bins): one square per bin, darker for a better
    score (`cells` holds each occupied bin's best); empty bins are outlined."""
    if not cells or shape[0] < 1 or shape[1] < 1:
        return fmt('<p class="hint">no grid cells yet</p>')
    lo, hi = min(cells.values()), max(cells.values())
    span = (hi - lo) or 1.0
    nx, ny = shape
    rects = []
    for x in range(nx):
        for y in range(ny):
            v = cells.get((x, y))
            common = (x * size + 1, (ny - 1 - y) * size + 1, size - 2, size - 2)
            if v is None:
                rects.append(
                    fmt('<rect x="{}" y="{}" width="{}" height="{}" class="empty"/>', *common)
                )
            else:
                rects.append(
                    fmt(
                        '<rect x="{}" y="{}" width="{}" height="{}" fill-opacity="{}" class="cell">'
                        "<title>bin ({}, {}): {}</title></rect>",
                        *common,
                        f"{0.2 + 0.8 * (v - lo) / span:.2f}",
                        x,
                        y,
                        num(v),
                    )
                )
    return fmt(
        '<svg class="heat" role="img" aria-label="MAP-Elites grid" width="{}" height="{}">{}</svg>',
        nx * size,
        ny * size,
        join(rects),
    )
