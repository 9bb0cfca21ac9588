"""examples/native_sim.py and `symbiont demo native` run; time_kernel counts and reports."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import symbiont
from symbiont.native import time_kernel

EXAMPLES = Path(__file__).parents[2] / "examples"


def test_time_kernel_warms_up_repeats_and_reports_the_median() -> None:
    calls = []

    def kernel(x: float) -> float:
        calls.append(x)
        return x

    timing = time_kernel(kernel, 1.0, warmup=2, repeats=5, number=3)
    assert len(calls) == 2 + 5 * 3
    assert timing.repeats == 5 and timing.number == 3
    assert 0 < timing.best_s <= timing.median_s
    assert timing.speed == pytest.approx(1 / timing.median_s)
    with pytest.raises(ValueError, match="repeats"):
        time_kernel(kernel, 1.0, repeats=0)


def test_the_simulation_keeps_running_while_its_kernel_is_evolved() -> None:
    sys.path.insert(0, str(EXAMPLES))
    try:
        import native_sim
    finally:
        sys.path.remove(str(EXAMPLES))
    rt = symbiont.Runtime(store=False)
    try:
        result = native_sim.main(runtime=rt, measure_s=0.2)
    finally:
        rt.close()
    h = native_sim.diffuse.symbiont
    try:
        assert result["report"].ok, result["report"].summary()
        assert h.active.number == 1 and "no modulo" in h.active.source
        assert result["steps_per_s_before"] > 0 and result["steps_per_s_after"] > 0
        assert result["heat_kept"]  # the swap under the running simulation lost nothing
        native_sim.check(native_sim.diffuse)  # the live function is still right
        u = np.ones((4, 4))
        out = np.zeros((4, 4))
        native_sim.diffuse(u, out, 0.5)
        assert (out == 1.0).all()  # a uniform field does not change
    finally:
        h.activate(0)


def test_symbiont_demo_native_shows_the_speedups_over_the_declared_body_and_plain_python(
    tmp_path: Path,
) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from symbiont.cli import main; sys.exit(main())",
            *("demo", "native", "--memory", "--examples-dir", str(EXAMPLES)),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "COLUMNS": "300",
            "SYMBIONT_MODEL": "mutation:1",  # offline: the example's scripted reply stands in
            "SYMBIONT_NATIVE_CACHE": str(tmp_path / "kernels"),
        },
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    assert "a scripted reply (examples/native_sim.py FASTER) stands in" in out
    assert re.search(r"accepted as r1 score [0-9.]+", out), out
    line = re.search(
        r"the simulation kept running: (\d+) → (\d+) steps/s; kernel ([0-9.]+) ms per step: "
        r"([0-9.]+)× the declared body \(([0-9.]+) ms\), (\d+)× the same code in plain "
        r"Python \((\d+) ms\)",
        out,
    )
    assert line, out
    before, after, active, vs_declared, declared, vs_python, python = map(float, line.groups())
    assert before > 0 and after > 0 and active > 0
    # the ratios printed are the ones the printed times give (rounded as printed)
    assert vs_declared == pytest.approx(declared / active, abs=0.1, rel=0.05)
    assert vs_python == pytest.approx(python / active, rel=0.05, abs=1)
    assert any(p.name.startswith("k_") for p in (tmp_path / "kernels").iterdir())
