"""Population search: harness cost per candidate, throughput by `parallel`, search efficiency.

1. Harness cost: an instant model served over loopback through the `openai` SDK (the
   project's fake server, `OpenAIModel`), a trivial metric, no type check, a real SQLite
   store, forked (confined) trials. Per-candidate cost is the interval between two finished
   candidates (p50), and wall time / candidates; `parallel` = 1, 2, 4 on this machine. The
   same server and function through `evolve` (one lineage) for reference.
2. Search efficiency: the offline mutation proposer on circle packing (n = 26), best score
   after 200 evaluations, `search` against `evolve` with the same number of attempts.

    python benchmarks/bench_search.py [--quick]
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))
from _report import percentile, write_section

import symbiont
from symbiont.models import ScriptedModel
from symbiont.models.mutation import MutationModel
from symbiont.models.openai import OpenAIModel
from symbiont.search import Budget
from symbiont.testing.openai_server import FakeOpenAIServer


@symbiont.evolvable(timeout=5.0, typecheck=False)
def bump(x: int) -> int:
    """Return x plus something."""
    return x


@symbiont.evolvable(timeout=5.0, typecheck=False, trial="inprocess")
def bump_trusted(x: int) -> int:
    """Return x plus something."""
    return x


def gain(fn) -> float:  # type: ignore[no-untyped-def]
    return float(fn(0))


def _reset(fn) -> None:  # type: ignore[no-untyped-def]
    h = fn.symbiont
    h.activate(0)
    del h.revisions[1:]
    h._previous.clear()
    h.revision(0).score = None


def _server(name: str = "bump") -> FakeOpenAIServer:
    counter = itertools.count(1)

    def answer(body: dict) -> str:
        return f"```python\ndef {name}(x: int) -> int:\n    return x + {next(counter)}\n```"

    server = FakeOpenAIServer()
    server.handler = answer
    return server


def harness_search(
    parallel: int,
    n: int,
    *,
    scripted: bool = False,
    trusted: bool = False,
    store: bool = True,
    sync: str | None = None,
) -> dict[str, float]:
    """`trusted`: the evolvable's trials run in-process (no fork); `store`: a SQLite store
    (one commit per candidate; WAL with the default synchronous=NORMAL, or `sync`, e.g.
    "FULL" for an fsync per commit) or none."""
    fn = bump_trusted if trusted else bump
    with _server(fn.__name__) as server, tempfile.TemporaryDirectory() as tmp:
        model: object = OpenAIModel("fake-model", base_url=server.base_url, api_key="k")
        if scripted:  # the same replies without HTTP: what the harness costs without the SDK
            model = ScriptedModel([server.handler({}) for _ in range(n * 2)])  # type: ignore[misc]
        before = os.environ.get("SYMBIONT_STORE_SYNC")
        if sync is not None:
            os.environ["SYMBIONT_STORE_SYNC"] = sync
        try:
            rt = symbiont.Runtime(store=Path(tmp) / "s.db" if store else False)
        finally:
            if sync is not None:
                if before is None:
                    os.environ.pop("SYMBIONT_STORE_SYNC", None)
                else:
                    os.environ["SYMBIONT_STORE_SYNC"] = before
        stamps: list[float] = []
        try:
            cpu = time.process_time()
            started = time.perf_counter()
            report = rt.search_sync(
                fn, model, metric=gain, budget=Budget(evaluations=n + 1), parallel=parallel,
                islands=1, on_progress=lambda _r: stamps.append(time.perf_counter()),
            )  # fmt: skip
            wall = time.perf_counter() - started
            cpu = time.process_time() - cpu
        finally:
            rt.close()
            _reset(fn)
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    return {
        "candidates": report.candidates,
        "p50_ms": percentile(gaps, 50) * 1000,
        "mean_ms": wall / max(1, report.candidates) * 1000,
        "per_s": report.candidates / wall,
        "cpu_ms": cpu / max(1, report.candidates) * 1000,
        "trial_cpu_ms": report.trial_cpu_s / max(1, report.candidates) * 1000,
    }


def harness_evolve(n: int) -> dict[str, float]:
    with _server() as server, tempfile.TemporaryDirectory() as tmp:
        model = OpenAIModel("fake-model", base_url=server.base_url, api_key="k")
        rt = symbiont.Runtime(store=Path(tmp) / "s.db")
        stamps: list[float] = []
        try:
            cpu = time.process_time()
            started = time.perf_counter()
            rt.evolve_sync(
                bump, model, metric=gain, attempts=n, stop_on_accept=False,
                on_attempt=lambda _a: stamps.append(time.perf_counter()),
            )  # fmt: skip
            wall = time.perf_counter() - started
            cpu = time.process_time() - cpu
        finally:
            rt.close()
            _reset(bump)
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    return {
        "candidates": n,
        "p50_ms": percentile(gaps, 50) * 1000,
        "mean_ms": wall / n * 1000,
        "per_s": n / wall,
        "cpu_ms": cpu / n * 1000,
        "trial_cpu_ms": float("nan"),
    }


OPENEVOLVE = "openevolve==0.4.0"
OE_VENV = Path(tempfile.gettempdir()) / "symbiont-bench-openevolve-0.4.0"


def openevolve_marginal(small: int, large: int) -> float | None:
    """OpenEvolve's cost per iteration on the same instant server: (t(large) − t(small)) /
    (large − small), so its start-up (process pool, imports) is not counted. Installs
    OpenEvolve into its own virtual environment first (from the package index)."""
    python = OE_VENV / "bin" / "python"
    if not python.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(OE_VENV)], check=True, timeout=300)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", OPENEVOLVE], check=True, timeout=900
            )
        except (subprocess.SubprocessError, OSError) as exc:
            print(f"OpenEvolve could not be installed: {exc}", file=sys.stderr)
            return None
    script = Path(__file__).parent / "_openevolve_run.py"
    with _server() as server:
        run = subprocess.run(
            [str(python), str(script), server.base_url, str(small), str(large)],
            capture_output=True,
            text=True,
            timeout=1800,
        )
    if run.returncode != 0:
        print(f"OpenEvolve failed: {run.stderr[-2000:]}", file=sys.stderr)
        return None
    data = json.loads(run.stdout.strip().splitlines()[-1])
    (n1, t1), (n2, t2) = data["small"], data["large"]
    return (t2 - t1) / (n2 - n1) * 1000


def search_marginal(small: int, large: int) -> float:
    """symbiont's cost per candidate measured the same way (parallel 1)."""
    times = []
    for n in (small, large):
        started = time.perf_counter()
        harness_search(1, n)
        times.append(time.perf_counter() - started)
    return (times[1] - times[0]) / (large - small) * 1000


def efficiency(evaluations: int, seeds: list[int]) -> tuple[list[float], list[float], float]:
    import circle_packing as cp

    searched, evolved = [], []
    start = 0.0
    for seed in seeds:
        rt = symbiont.Runtime(store=False)
        try:
            report = cp.main(runtime=rt, model=MutationModel(seed=seed), evaluations=evaluations)
            searched.append(report.best_score)
            start = report.baseline_score
        finally:
            rt.close()
            _reset(cp.construct_packing)
        rt = symbiont.Runtime(store=False)
        try:
            rt.evolve_sync(
                cp.construct_packing, MutationModel(seed=seed), metric=cp.sum_of_radii,
                check=cp.check_packing, attempts=evaluations - 1, stop_on_accept=False,
            )  # fmt: skip
            evolved.append(cp.construct_packing.symbiont.active.score)
        finally:
            rt.close()
            _reset(cp.construct_packing)
    return searched, evolved, start


def main(quick: bool = False) -> str:
    load = os.getloadavg()[0]
    n = 40 if quick else 120
    rows = []
    for parallel in (1, 2, 4):
        m = harness_search(parallel, n)
        rows.append(
            f"| search, parallel={parallel} | {m['candidates']:.0f} | {m['p50_ms']:.1f} "
            f"| {m['mean_ms']:.1f} | {m['per_s']:.1f} | {m['cpu_ms']:.1f} | {m['trial_cpu_ms']:.1f} |"
        )
        print(rows[-1], flush=True)
    m = harness_search(1, n, trusted=True)
    rows.append(
        f"| search, parallel=1, trial='inprocess', store (the SDK, no fork) | {m['candidates']:.0f} "
        f"| {m['p50_ms']:.1f} | {m['mean_ms']:.1f} | {m['per_s']:.1f} | {m['cpu_ms']:.1f} | — |"
    )
    print(rows[-1], flush=True)
    m = harness_search(1, n, scripted=True)
    rows.append(
        f"| search, parallel=1, scripted model (no HTTP) | {m['candidates']:.0f} | {m['p50_ms']:.1f} "
        f"| {m['mean_ms']:.1f} | {m['per_s']:.1f} | {m['cpu_ms']:.1f} | {m['trial_cpu_ms']:.1f} |"
    )
    print(rows[-1], flush=True)
    for label, store, sync in (
        ("store", True, None),
        ("store synchronous=FULL", True, "FULL"),
        ("no store", False, None),
    ):
        m = harness_search(1, n, scripted=True, trusted=True, store=store, sync=sync)
        rows.append(
            f"| search, parallel=1, scripted, trial='inprocess', {label} | {m['candidates']:.0f} "
            f"| {m['p50_ms']:.1f} | {m['mean_ms']:.1f} | {m['per_s']:.1f} | {m['cpu_ms']:.1f} | — |"
        )
        print(rows[-1], flush=True)
    m = harness_evolve(n)
    rows.append(
        f"| evolve (one lineage) | {m['candidates']:.0f} | {m['p50_ms']:.1f} | {m['mean_ms']:.1f} "
        f"| {m['per_s']:.1f} | {m['cpu_ms']:.1f} | — |"
    )
    print(rows[-1], flush=True)
    small, large = (10, 60) if quick else (20, 220)
    ours = search_marginal(small, large)
    theirs = openevolve_marginal(small, large)
    ratio = f"{theirs / ours:.2f}" if theirs else "—"
    versus = (
        f"| symbiont search (parallel 1, confined forked trials, store) | {ours:.1f} |\n"
        f"| OpenEvolve 0.4.0 (full rewrite, 1 worker) | "
        + (f"{theirs:.1f} |" if theirs else "not measured |")
        + f"\n\nOpenEvolve's cost / symbiont's: {ratio} (above 1: symbiont is cheaper)."
    )
    print(versus, flush=True)
    evaluations = 60 if quick else 200
    seeds = [1, 2] if quick else [1, 2, 3]
    searched, evolved, start = efficiency(evaluations, seeds)
    eff = (
        f"| search (2 islands, parallel 2) | {evaluations} | {statistics.median(searched):.4f} "
        f"| {', '.join(f'{s:.4f}' for s in searched)} |\n"
        f"| evolve (one lineage) | {evaluations} | {statistics.median(evolved):.4f} "
        f"| {', '.join(f'{s:.4f}' for s in evolved)} |"
    )
    if not quick:  # a longer run of the search alone
        import circle_packing as cp

        rt = symbiont.Runtime(store=False)
        try:
            started = time.perf_counter()
            long = cp.main(runtime=rt, model=MutationModel(seed=1), evaluations=1000)
            took = time.perf_counter() - started
        finally:
            rt.close()
            _reset(cp.construct_packing)
        at200 = max((p.best for p in long.curve if p.evaluations <= 200), default=start)
        eff += (
            f"\n| search, seed 1, one run of 1,000 | 1000 | {long.best_score:.4f} "
            f"| after 200: {at200:.4f}; {took:.0f} s, {long.evaluations_per_s:.1f} evaluations/s |"
        )
    print(eff, flush=True)
    text = "\n".join(
        [
            "## Population search",
            "",
            "`python benchmarks/bench_search.py`. Harness: an instant model over loopback through",
            "the `openai` SDK (`OpenAIModel` against the project's fake server), a one-line",
            "function, a trivial metric, no type check, a SQLite store, confined forked trials.",
            "p50 ms is the median interval between two finished candidates; CPU ms is this",
            "process's CPU per candidate (all threads, the loopback server's included); trial",
            "CPU ms is the trials' own (the CPU the search took from the live program). Load",
            f"average at start: {load:.2f}. The scripted rows take HTTP out; the",
            "trial='inprocess' rows (trusted code, no fork) show what the harness itself",
            "costs, what the store's commit adds (WAL, synchronous=NORMAL, the default: no",
            "committed candidate is lost when the process dies; FULL adds an fsync per commit",
            "for power cuts), and — by difference with the confined rows — what the forked,",
            "confined trial adds (a fork's cost grows with the process's resident memory:",
            "importing the `openai` SDK alone adds ~30 MB).",
            "",
            "| run | candidates | p50 ms/candidate | wall ms/candidate | candidates/s "
            "| CPU ms/candidate | trial CPU ms/candidate |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            *rows,
            "",
            "Side by side in this run, on the same instant server: marginal cost per candidate,",
            f"(t({large}) − t({small})) / {large - small}, so start-up is not counted.",
            "",
            "| harness | ms/candidate |",
            "| --- | ---: |",
            versus,
            "",
            f"Circle packing (n = 26, sum of radii; the initial layout scores {start:.4f}, best",
            "published ≈ 2.635), offline mutation proposer, median over seeds:",
            "",
            "| engine | evaluations | median best | per seed |",
            "| --- | ---: | ---: | --- |",
            eff,
        ]
    )
    return write_section("search", text)


if __name__ == "__main__":
    print(main(quick="--quick" in sys.argv))
