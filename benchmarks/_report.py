"""Shared by the benchmark scripts: write a section to benchmarks/results/<name>.md."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def write_section(name: str, text: str) -> str:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(text.rstrip() + "\n")
    return text


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    idx = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[idx]
