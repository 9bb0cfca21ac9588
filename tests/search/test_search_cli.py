"""`symbiont search | searches | best | lineage` in a subprocess, on a store of its own."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "examples" / "circle_packing.py"


def symbiont(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from symbiont.cli import main; sys.exit(main())",
            *args,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", "SYMBIONT_MODEL": "mutation:2"},
    )


def test_search_then_read_the_results_from_the_store(tmp_path: Path) -> None:
    store = str(tmp_path / "s.db")
    run = symbiont(
        "search", f"{EXAMPLE}:construct_packing", "--metric", "sum_of_radii", "--check",
        "check_packing", "--evaluations", "12", "--store", store, "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    found = re.search(
        r"best r(\d+) score ([0-9.]+) \(start ([0-9.]+)\) after 12 evaluations", run.stdout
    )
    assert found, run.stdout
    number, best = int(found.group(1)), float(found.group(2))

    listed = symbiont("searches", "--store", store, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "circle_packing.construct_packing" in listed.stdout and "finished" in listed.stdout
    assert f"r{number}" in listed.stdout

    shown = symbiont("best", "construct_packing", "--store", store, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"construct_packing@{number}" in shown.stdout and "def construct_packing" in shown.stdout

    lineage = symbiont("lineage", f"construct_packing@{number}", "--store", store, cwd=tmp_path)
    assert lineage.returncode == 0, lineage.stderr
    rows = re.findall(r"r(\d+)\s+│\s+([0-9.]+)", lineage.stdout)
    assert rows[0] == (str(number), f"{best:.6g}")
    assert rows[-1][0] == "0"  # back to the declared body
    scores = [float(s) for _, s in rows]
    assert max(scores) == scores[0]  # the best revision heads its own lineage


def test_search_names_what_is_missing(tmp_path: Path) -> None:
    run = symbiont(
        "search", str(EXAMPLE), "--metric", "nope", "--store", str(tmp_path / "s.db"), cwd=tmp_path
    )
    assert run.returncode == 1
    assert "no metric function 'nope'" in run.stderr
