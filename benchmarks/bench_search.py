"""Population search: harness cost per candidate, throughput by `parallel`, search efficiency.

1. Harness cost: an instant model served over loopback through the `openai` SDK (the
   project's fake server, run in a process of its own by `_instant_server.py` so that its
   CPU and threads are not counted in the harness; `OpenAIModel`), a one-line function, a
   trivial metric, no type check, a real SQLite store. Every row names where its trials
   run:
     fork     the default executor: a forked, confined child of the live process per
              candidate (judged against the live state, nothing shared between candidates);
     pool     `WorkerPoolExecutor`: confined workers forked from the live process once and
              reused, candidate after candidate (state as of the fork; what a candidate
              leaves in memory stays for the next in that worker);
     inproc   `trial="inprocess"`: the candidate runs in the live process, no isolation.
   Per-candidate cost is the interval between two finished candidates (p50), wall time per
   candidate, and this process's CPU per candidate; trial CPU is the trial processes' own.
   `parallel` = 1, 2, 4 on this machine. The SDK runs on symbiont's lean HTTP/1.1
   transport (the default for an http:// base URL), where `OpenAIModel` sends a chat
   request straight to the SDK's httpx client's transport with the SDK's headers and
   exception types, not through the SDK's per-request machinery (docs in
   `symbiont.models.openai`); two pool rows run the SDK's whole request path on httpx's own transport instead
   (SYMBIONT_HTTP_TRANSPORT=httpx), to show what the two save.
2. Side by side with OpenEvolve 0.4.0 (installed by this script into its own virtual
   environment from the package index) on the same server process, full-rewrite mode, one
   worker: marginal cost per candidate, (t(large) − t(small)) / (large − small), in wall
   time and in CPU time of the whole process tree. OpenEvolve runs each iteration (model
   request and evaluation) in a worker of a process pool, so `pool` is its like; `fork`
   is shown next to it. The pool and OpenEvolve are each measured three times, taking
   turns, and keep their lowest times (a shared machine slows some runs); then the pool with
   one candidate in flight and OpenEvolve over a longer run (1,000 candidates), twice each,
   as OpenEvolve's cost per iteration grows with its database. The closing line checks
   issue 12's targets: p50 <= 4 ms with 1 and 2 in flight, >= 3x cheaper than OpenEvolve.
3. Search efficiency: the offline mutation proposer on circle packing (n = 26), best score
   after 200 evaluations (median of three seeds), `search` against `evolve` with the same
   number of evaluations, and one run of 1,000.

Two parts can be run alone, printed and not written to the results:

    python benchmarks/bench_search.py [--quick]
    python benchmarks/bench_search.py --pool          # the pool rows of 1. and 2., no OpenEvolve
    python benchmarks/bench_search.py --instructions  # instructions per candidate (callgrind)

`--instructions` runs one pool search (SDK, store, one candidate in flight) under valgrind's
callgrind and counts the live process's instructions between its 20th and 120th finished
candidate: a figure that does not depend on the machine's load, for comparing changes.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))
from _report import percentile, write_section

import symbiont
from symbiont.models import ScriptedModel
from symbiont.models.mutation import MutationModel
from symbiont.models.openai import OpenAIModel
from symbiont.models.transport import TRANSPORT_ENV
from symbiont.search import Budget
from symbiont.search.workers import WorkerPoolExecutor
from symbiont.testing import reset

HERE = Path(__file__).parent


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


@contextlib.contextmanager
def instant_server(name: str = "bump") -> Iterator[str]:
    """The instant model server in its own process; yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_instant_server.py"), name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError("the instant server did not start")
        yield url
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)


def _replies(name: str, n: int) -> list[str]:
    return [f"```python\ndef {name}(x: int) -> int:\n    return x + {k}\n```" for k in range(1, n)]


def _tree_cpu() -> float:
    """CPU seconds of this process and of its reaped children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def harness(
    url: str | None,
    parallel: int,
    n: int,
    *,
    trials: str = "fork",
    store: bool = True,
    workers: int | None = None,
) -> dict[str, float]:
    """One search of `n` candidates. `url` None: a scripted model (no HTTP); `trials`:
    "fork" | "pool" | "inproc" (see the module's docstring); `workers`: the pool's (None:
    one per candidate in flight)."""
    fn = bump_trusted if trials == "inproc" else bump
    executor = WorkerPoolExecutor(workers=workers) if trials == "pool" else None
    with tempfile.TemporaryDirectory() as tmp:
        if url is None:
            model: object = ScriptedModel(_replies(fn.__name__, 3 * n + 10))
        else:
            model = OpenAIModel("fake-model", base_url=url, api_key="k")
        rt = symbiont.Runtime(store=Path(tmp) / "s.db" if store else False)
        stamps: list[tuple[float, float]] = []
        try:
            tree = _tree_cpu()
            started = time.perf_counter()
            report = rt.search_sync(
                fn, model, metric=gain, budget=Budget(evaluations=n + 1), parallel=parallel,
                islands=1, executor=executor,
                on_progress=lambda _r: stamps.append((time.perf_counter(), time.process_time())),
            )  # fmt: skip
            wall = time.perf_counter() - started
            tree = _tree_cpu() - tree
        finally:
            rt.close()
            reset(fn)
    # Skip the first tenth: the seed's trial, the first fork and connection, warm-up.
    steady = stamps[max(1, n // 10) :]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(steady)]
    cpu = (steady[-1][1] - steady[0][1]) / max(1, len(steady) - 1)
    return {
        "candidates": report.candidates,
        "p50_ms": percentile(gaps, 50) * 1000,
        "wall_ms": wall / max(1, report.candidates) * 1000,
        "per_s": report.candidates / wall,
        "cpu_ms": cpu * 1000,
        "trial_cpu_ms": report.trial_cpu_s / max(1, report.candidates) * 1000,
        "tree_cpu_ms": tree / max(1, report.candidates) * 1000,
        "forks": float(executor.forks) if executor is not None else float("nan"),
    }


def harness_evolve(url: str, n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        model = OpenAIModel("fake-model", base_url=url, api_key="k")
        rt = symbiont.Runtime(store=Path(tmp) / "s.db")
        stamps: list[tuple[float, float]] = []
        try:
            started = time.perf_counter()
            rt.evolve_sync(
                bump, model, metric=gain, attempts=n, stop_on_accept=False,
                on_attempt=lambda _a: stamps.append((time.perf_counter(), time.process_time())),
            )  # fmt: skip
            wall = time.perf_counter() - started
        finally:
            rt.close()
            reset(bump)
    steady = stamps[max(1, n // 10) :]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(steady)]
    return {
        "candidates": n,
        "p50_ms": percentile(gaps, 50) * 1000,
        "wall_ms": wall / n * 1000,
        "per_s": n / wall,
        "cpu_ms": (steady[-1][1] - steady[0][1]) / max(1, len(steady) - 1) * 1000,
    }


OPENEVOLVE = "openevolve==0.4.0"
OE_VENV = Path(tempfile.gettempdir()) / "symbiont-bench-openevolve-0.4.0"


def openevolve_marginal(url: str, small: int, large: int) -> tuple[float, float] | None:
    """OpenEvolve's marginal (wall ms, CPU ms) per iteration on the instant server, so its
    start-up (process pool, imports) is not counted. Installs OpenEvolve into its own
    virtual environment first (from the package index)."""
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
    run = subprocess.run(
        [str(python), str(HERE / "_openevolve_run.py"), url, str(small), str(large)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if run.returncode != 0:
        print(f"OpenEvolve failed: {run.stderr[-2000:]}", file=sys.stderr)
        return None
    data = json.loads(run.stdout.strip().splitlines()[-1])
    (n1, t1, c1), (n2, t2, c2) = data["small"], data["large"]
    return (t2 - t1) / (n2 - n1) * 1000, (c2 - c1) / (n2 - n1) * 1000


def search_marginal(
    url: str, trials: str, small: int, large: int, parallel: int = 1
) -> tuple[float, float]:
    """symbiont's marginal (wall ms, CPU ms of the process tree) per candidate, measured
    the same way. With `parallel` 2 the pool has one worker: two candidates in flight, one
    trial process, like OpenEvolve's one worker with two iterations submitted to it."""
    walls, cpus = [], []
    for n in (small, large):
        cpu = _tree_cpu()
        started = time.perf_counter()
        harness(url, parallel, n, trials=trials, workers=1 if parallel > 1 else None)
        walls.append(time.perf_counter() - started)
        cpus.append(_tree_cpu() - cpu)
    return (
        (walls[1] - walls[0]) / (large - small) * 1000,
        (cpus[1] - cpus[0]) / (large - small) * 1000,
    )


def _targets(
    pool_p50: dict[int, float],
    ours: tuple[float, float],
    ours2: tuple[float, float],
    theirs: tuple[float, float] | None,
) -> str:
    """Issue 12's targets against this run's figures (pool, SDK, store)."""

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    p50 = ", ".join(f"{pool_p50[k]:.1f} ms with {k} in flight" for k in (1, 2))
    p50_ok = all(pool_p50[k] <= 4.0 for k in (1, 2))
    line = (
        f"Targets: p50 ≤ 4 ms per candidate with 1 and with 2 in flight — {p50}: {verdict(p50_ok)}."
    )
    if theirs is not None:
        for label, mine in (("one candidate in flight", ours), ("two in flight", ours2)):
            wall, cpu = theirs[0] / mine[0], theirs[1] / mine[1]
            line += (
                f" ≥ 3× cheaper than OpenEvolve 0.4.0 ({label}) — {wall:.2f}× in wall time: "
                f"{verdict(wall >= 3)}; {cpu:.2f}× in CPU time: {verdict(cpu >= 3)}."
            )
    return line


def _best(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The lowest wall time and the lowest CPU time of several runs."""
    return min(r[0] for r in runs), min(r[1] for r in runs)


@contextlib.contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            del os.environ[name]
        else:
            os.environ[name] = old


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
            reset(cp.construct_packing)
        rt = symbiont.Runtime(store=False)
        try:
            rt.evolve_sync(
                cp.construct_packing, MutationModel(seed=seed), metric=cp.sum_of_radii,
                check=cp.check_packing, attempts=evaluations - 1, stop_on_accept=False,
            )  # fmt: skip
            evolved.append(cp.construct_packing.symbiont.active.score)
        finally:
            rt.close()
            reset(cp.construct_packing)
    return searched, evolved, start


TRIALS = {
    "fork": "fork (default: confined child per candidate)",
    "pool": "pool (`WorkerPoolExecutor`: confined workers, reused)",
    "inproc": "inproc (`trial='inprocess'`: no isolation)",
}


def _row(label: str, m: dict[str, float]) -> str:
    trial = "—" if m.get("trial_cpu_ms") is None else f"{m['trial_cpu_ms']:.1f}"
    return (
        f"| {label} | {m['candidates']:.0f} | {m['p50_ms']:.1f} | {m['wall_ms']:.1f} "
        f"| {m['per_s']:.0f} | {m['cpu_ms']:.1f} | {trial} |"
    )


def main(quick: bool = False) -> str:
    load = os.getloadavg()
    n = 60 if quick else 300
    rows = []
    pool_p50: dict[int, float] = {}
    with instant_server() as url:
        for trials in ("fork", "pool"):
            for parallel in (1, 2, 4):
                m = harness(url, parallel, n, trials=trials)
                rows.append(_row(f"{TRIALS[trials]}, SDK, store, parallel={parallel}", m))
                print(rows[-1], flush=True)
                if trials == "pool":
                    pool_p50[parallel] = m["p50_ms"]
        for parallel in (1, 2):  # the SDK's whole request path, on httpx's own transport
            with _environment(TRANSPORT_ENV, "httpx"):
                m = harness(url, parallel, n, trials="pool")
            rows.append(
                _row(f"{TRIALS['pool']}, SDK over httpx's transport, store, parallel={parallel}", m)
            )
            print(rows[-1], flush=True)
        m = harness(url, 1, n, trials="inproc")
        rows.append(_row(f"{TRIALS['inproc']}, SDK, store, parallel=1", m))
        print(rows[-1], flush=True)
        for store in (True, False):
            m = harness(None, 1, n, trials="pool", store=store)
            where = "store" if store else "no store"
            rows.append(_row(f"{TRIALS['pool']}, scripted model (no HTTP), {where}", m))
            print(rows[-1], flush=True)
        m = harness_evolve(url, n)
        rows.append(_row("evolve (one lineage), fork, SDK, store", {**m, "trial_cpu_ms": None}))
        print(rows[-1], flush=True)
        small, large = (10, 60) if quick else (20, 220)
        # The pool and OpenEvolve are measured three times, taking turns, and each keeps its
        # best (lowest) run: on a shared machine one run can be slowed by someone else's work.
        pool_runs: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
        their_runs = []
        for _ in range(3):
            for parallel in (1, 2):
                pool_runs[parallel].append(search_marginal(url, "pool", small, large, parallel))
            their_run = openevolve_marginal(url, small, large)
            if their_run is not None:
                their_runs.append(their_run)
        ours = {
            "pool": _best(pool_runs[1]),
            "pool2": _best(pool_runs[2]),
            "fork": search_marginal(url, "fork", small, large),
        }
        theirs = _best(their_runs) if their_runs else None
        # A longer run: OpenEvolve's cost per iteration grows as its database fills; the
        # pool with one candidate in flight and OpenEvolve, twice each, taking turns.
        longer = (10, 110) if quick else (20, 1020)
        long_ours, long_theirs = [], []
        for _ in range(2):
            long_ours.append(search_marginal(url, "pool", *longer, 1))
            their_run = openevolve_marginal(url, *longer)
            if their_run is not None:
                long_theirs.append(their_run)
        ours["pool_long"] = _best(long_ours)
        theirs_long = _best(long_theirs) if long_theirs else None
    load_after = os.getloadavg()
    versus = [
        f"| symbiont search, {TRIALS['pool']}, parallel 1 | {ours['pool'][0]:.1f} "
        f"| {ours['pool'][1]:.1f} |",
        f"| symbiont search, pool with one worker, parallel 2 (two candidates in flight) "
        f"| {ours['pool2'][0]:.1f} | {ours['pool2'][1]:.1f} |",
        f"| symbiont search, {TRIALS['fork']}, parallel 1 | {ours['fork'][0]:.1f} "
        f"| {ours['fork'][1]:.1f} |",
        "| OpenEvolve 0.4.0 (full rewrite, 1 worker process, two iterations submitted to it; "
        "evaluation in that worker, timeouts not killable) | "
        + (f"{theirs[0]:.1f} | {theirs[1]:.1f} |" if theirs else "not measured | |"),
        f"| *over {longer[1] - longer[0]:,} candidates:* symbiont search, pool, parallel 1 "
        f"| {ours['pool_long'][0]:.2f} | {ours['pool_long'][1]:.2f} |",
        f"| *over {longer[1] - longer[0]:,} candidates:* OpenEvolve 0.4.0 | "
        + (f"{theirs_long[0]:.2f} | {theirs_long[1]:.2f} |" if theirs_long else "not measured | |"),
    ]
    if theirs:
        ratios = (
            f"OpenEvolve's cost / symbiont's (above 1: symbiont is cheaper), against the pool "
            f"with one candidate in flight: {theirs[0] / ours['pool'][0]:.2f} in wall time, "
            f"{theirs[1] / ours['pool'][1]:.2f} in CPU time; against the pool with two in "
            f"flight and one worker: {theirs[0] / ours['pool2'][0]:.2f} and "
            f"{theirs[1] / ours['pool2'][1]:.2f}; against the default fork per candidate: "
            f"{theirs[0] / ours['fork'][0]:.2f} and {theirs[1] / ours['fork'][1]:.2f}. "
            "OpenEvolve keeps two iterations submitted to its one worker, so its main "
            "process's bookkeeping overlaps the worker's next request and evaluation; with "
            "one candidate in flight symbiont's steps run one after another."
        )
    else:
        ratios = "OpenEvolve could not be run here."
    print("\n".join(versus), ratios, sep="\n", flush=True)
    targets = _targets(pool_p50, ours["pool"], ours["pool2"], theirs)
    if theirs_long:
        wall, cpu = theirs_long[0] / ours["pool_long"][0], theirs_long[1] / ours["pool_long"][1]
        targets += (
            f" Over {longer[1] - longer[0]:,} candidates (one in flight): {wall:.2f}× in wall "
            f"time: {'met' if wall >= 3 else '**not met**'}; {cpu:.2f}× in CPU time: "
            f"{'met' if cpu >= 3 else '**not met**'}."
        )
    print(targets, flush=True)

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
            reset(cp.construct_packing)
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
            "the `openai` SDK (`OpenAIModel` against the project's fake server, which runs in a",
            "process of its own; for its `http://` URL the SDK's client runs on symbiont's lean",
            "HTTP/1.1 transport, `symbiont.models.transport`, and a chat request is sent straight",
            "to that client's transport with the SDK's headers and exception types, not through",
            "the SDK's per-request machinery — except in the rows that say httpx's transport,",
            "which take the SDK's whole request path), a one-line function, a trivial metric, no type check, a",
            "SQLite store (WAL, synchronous=NORMAL, the default; each candidate's transaction is",
            "committed by the search's writer thread while the next request goes out). Where the",
            "trials run:",
            "",
            "- **fork** — the default: a forked child of the live process per candidate,",
            "  confined; judged against the live state; nothing one candidate does reaches another.",
            "- **pool** — `executor=WorkerPoolExecutor()`: confined workers forked from the live",
            "  process once and reused (each candidate still has its own timeout — a kill costs a",
            "  re-fork — and memory limit); the state is the program's as of the fork, and what a",
            "  candidate leaves in memory stays for the next one in that worker.",
            "- **inproc** — `trial='inprocess'`: in the live process, no isolation at all.",
            "",
            "p50 is the median interval between two finished candidates, after the first tenth",
            "(warm-up); wall is the whole search over its candidates; CPU is this process's CPU",
            "per candidate (the harness: model client, pipeline, store, bookkeeping); trial CPU is",
            "the trial processes' own per candidate (the CPU the search took from the live",
            f"program's machine). Load average (1, 5, 15 min) at the start: {load[0]:.2f}, "
            f"{load[1]:.2f}, {load[2]:.2f}; at the end: {load_after[0]:.2f}, {load_after[1]:.2f},"
            f" {load_after[2]:.2f} (2 cores, shared with other work).",
            "",
            "| run | candidates | p50 ms | wall ms | candidates/s | CPU ms | trial CPU ms |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            *rows,
            "",
            "Side by side in this run, on the same instant server process: marginal cost per",
            f"candidate, (t({large}) − t({small})) / {large - small}, so start-up is not counted;",
            "CPU is the whole process tree's (harness, trial processes or pool workers). The pool",
            "and OpenEvolve each ran three times, taking turns; each keeps its lowest wall and CPU",
            f"time. The last two rows are the same over a longer run, (t({longer[1]}) −",
            f"t({longer[0]})) / {longer[1] - longer[0]}, twice each, taking turns: OpenEvolve's",
            "cost per iteration grows as its database fills.",
            "",
            "| harness | wall ms/candidate | CPU ms/candidate |",
            "| --- | ---: | ---: |",
            *versus,
            "",
            ratios,
            "",
            targets,
            "",
            f"Circle packing (n = 26, sum of radii; the initial layout scores {start:.4f}, best",
            "published ≈ 2.635), offline mutation proposer, forked trials, median over seeds",
            "(with two candidates in flight the order of events depends on timing, so these vary",
            "from run to run; with one, a seed gives the same search every time):",
            "",
            "| engine | evaluations | median best | per seed |",
            "| --- | ---: | ---: | --- |",
            eff,
        ]
    )
    return write_section("search", text)


def pool_only(quick: bool = False) -> None:
    """The pool rows alone (p50 with 1 and 2 in flight, marginal cost), printed."""
    n = 60 if quick else 300
    small, large = (10, 60) if quick else (20, 220)
    print(f"load average at the start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with instant_server() as url:
        for parallel in (1, 2):
            m = harness(url, parallel, n, trials="pool")
            print(_row(f"{TRIALS['pool']}, SDK, store, parallel={parallel}", m), flush=True)
        for parallel in (1, 2):
            wall, cpu = search_marginal(url, "pool", small, large, parallel)
            workers = ", one worker" if parallel > 1 else ""
            print(
                f"marginal, pool, parallel {parallel}{workers}: {wall:.1f} ms wall, "
                f"{cpu:.1f} ms CPU (process tree) per candidate",
                flush=True,
            )
    print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


CALLGRIND_FROM, CALLGRIND_TO = 20, 120  # the candidates between which instructions count


def instructions() -> None:
    """Instructions of the live process per candidate, pool, SDK, store, one in flight."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("--instructions needs valgrind (callgrind) on the PATH")
    with tempfile.TemporaryDirectory() as tmp, instant_server() as url:
        out = Path(tmp) / "callgrind.out"
        run = subprocess.run(
            [
                "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p",
                sys.executable, __file__, "--callgrind-child", url,
            ],
            capture_output=True, text=True, timeout=3600,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )  # fmt: skip
        dumps = glob.glob(f"{out}.*.1")  # the dump taken at the last counted candidate
        if run.returncode != 0 or len(dumps) != 1:
            sys.exit(f"the callgrind run failed:\n{run.stderr[-3000:]}")
        total = next(
            int(line.split()[1])
            for line in Path(dumps[0]).read_text().splitlines()
            if line.startswith(("summary:", "totals:"))
        )
    per = total / (CALLGRIND_TO - CALLGRIND_FROM)
    print(
        f"{per / 1e6:.2f} M instructions per candidate in the live process (pool, SDK, store, "
        f"one in flight; callgrind, candidates {CALLGRIND_FROM}-{CALLGRIND_TO})"
    )


def _callgrind_child(url: str) -> None:
    """Under callgrind: one pool search; counters zeroed and dumped at two candidates."""
    seen = 0

    def progress(_report: object) -> None:
        nonlocal seen
        seen += 1
        if seen in (CALLGRIND_FROM, CALLGRIND_TO):
            flag = "-z" if seen == CALLGRIND_FROM else "-d"
            subprocess.run(["callgrind_control", flag, str(os.getpid())], capture_output=True)

    with tempfile.TemporaryDirectory() as tmp:
        rt = symbiont.Runtime(store=Path(tmp) / "s.db")
        try:
            rt.search_sync(
                bump, OpenAIModel("fake-model", base_url=url, api_key="k"), metric=gain,
                budget=Budget(evaluations=CALLGRIND_TO + 5), parallel=1, islands=1,
                executor=WorkerPoolExecutor(), on_progress=progress,
            )  # fmt: skip
        finally:
            rt.close()


if __name__ == "__main__":
    if "--help" in sys.argv or "-h" in sys.argv:
        print(__doc__)
    elif "--callgrind-child" in sys.argv:
        _callgrind_child(sys.argv[sys.argv.index("--callgrind-child") + 1])
    elif "--instructions" in sys.argv:
        instructions()
    elif "--pool" in sys.argv:
        pool_only(quick="--quick" in sys.argv)
    else:
        print(main(quick="--quick" in sys.argv))
