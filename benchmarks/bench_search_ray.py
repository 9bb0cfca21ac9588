"""Search throughput: evaluations on a local Ray cluster against forked trials, same run.

The same scripted candidates (a one-line function, `x + k` for distinct k), the same SQLite
store and the same search options; only the executor differs:

* forked: the default, a confined child of the live process per candidate;
* Ray: `RayExecutor` on a local cluster started here (`ray.init(num_cpus=2)`, this
  machine's two cores), each candidate compiled and judged in a confined child of a Ray
  worker.

Two metrics: `trivial` (one call; the row is all harness and transport) and `heavy`
(300,000 calls, tens of ms of CPU; an evaluation worth sending away). Evaluations/s is
evaluations / the search's wall time. CPU is of the whole process tree (this process, the
Ray processes and every trial child), per evaluation; the Ray rows also show the CPU the
trials used on the workers. On one 2-core machine Ray cannot add cores: these rows measure
its cost per evaluation against a fork, which is what a cluster has to win back.

    python benchmarks/bench_search_ray.py [--quick]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import _ray_bench_targets as t
from _report import write_section

import symbiont
from symbiont.models import ScriptedModel
from symbiont.search import Budget, ForkedExecutor, RayExecutor

HERE = Path(__file__).parent
_TICK = os.sysconf("SC_CLK_TCK")


def _tree_cpu() -> dict[int, float]:
    """CPU seconds of this process and of every live descendant, each with its reaped
    children (trial children forked by a Ray worker count once the worker reaped them)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = sum(int(v) for v in fields[11:15]) / _TICK
    tree: dict[int, float] = {}
    frontier = [os.getpid()]
    while frontier:
        pid = frontier.pop()
        if pid in tree or pid not in times:
            continue
        tree[pid] = times[pid]
        frontier += [child for child, parent in parents.items() if parent == pid]
    return tree


def _cpu_since(before: dict[int, float]) -> float:
    """CPU the tree used since `before`: a process that ended meanwhile (Ray replaces idle
    workers) is left out, so this is a lower bound."""
    now = _tree_cpu()
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in now.items())


def _reset() -> None:
    h = t.bump.symbiont
    h.activate(0)
    del h.revisions[1:]
    h._previous.clear()
    h.revision(0).score = None


def one_search(executor: object, parallel: int, metric: str, n: int, offset: int) -> dict:
    replies = [
        f"```python\ndef bump(x: int) -> int:\n    return x + {offset + i}\n```" for i in range(n)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        rt = symbiont.Runtime(store=Path(tmp) / "s.db")
        try:
            cpu = _tree_cpu()
            worker_cpu = getattr(executor, "cpu_s", 0.0)
            started = time.perf_counter()
            report = rt.search_sync(
                t.bump, ScriptedModel(replies), metric=f"_ray_bench_targets:{metric}",
                budget=Budget(evaluations=n + 1), parallel=parallel, islands=1,
                executor=executor,
            )  # fmt: skip
            wall = time.perf_counter() - started
            cpu = _cpu_since(cpu)
            worker_cpu = getattr(executor, "cpu_s", 0.0) - worker_cpu
        finally:
            rt.close()
            _reset()
    if report.rejections:
        raise SystemExit(f"unexpected rejections: {dict(report.rejections)}")
    e = report.evaluations
    return {
        "evaluations": e,
        "per_s": e / wall,
        "cpu_ms": cpu / e * 1000,
        "worker_cpu_ms": worker_cpu / e * 1000 if worker_cpu else None,
    }


def _rows(
    configs: list, n: int, repeats: int, offset: int, cpu: dict[tuple[str, str, int], float]
) -> tuple[list[str], int]:
    """One table row per (metric, config); the median CPU ms/evaluation goes into `cpu`."""
    rows = []
    for metric in ("trivial", "heavy"):
        for label, make, parallel in configs:
            runs = []
            for _ in range(repeats):
                offset += n
                runs.append(one_search(make(), parallel, metric, n, offset))
            per_s = statistics.median(r["per_s"] for r in runs)
            cpu_ms = cpu[metric, label, parallel] = statistics.median(r["cpu_ms"] for r in runs)
            worker = [r["worker_cpu_ms"] for r in runs if r["worker_cpu_ms"] is not None]
            rows.append(
                f"| {metric} | {label} | {parallel} | {runs[0]['evaluations']} × {repeats} "
                f"| {per_s:.1f} | {cpu_ms:.1f} | "
                + (f"{statistics.median(worker):.1f}" if worker else "—")
                + " |"
            )
            print(rows[-1], flush=True)
    return rows, offset


def main(quick: bool = False) -> str:
    n = 20 if quick else 60
    repeats = 1 if quick else 3
    load = os.getloadavg()
    forked = "forked (confined child per candidate)"
    one_search(ForkedExecutor(), 1, "trivial", 2, 10_000)  # warm-up: the first trial's set-up
    cpu: dict[tuple[str, str, int], float] = {}
    alone = f"{forked}; Ray not loaded"
    rows, offset = _rows([(alone, ForkedExecutor, p) for p in (1, 2)], n, repeats, 0, cpu)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    started = time.perf_counter()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(HERE)}},
    )
    start_s = time.perf_counter() - started
    try:
        ray_executor = RayExecutor()
        one_search(ray_executor, 2, "trivial", 4, 10_000)  # warm-up: workers and imports
        before = _tree_cpu()
        time.sleep(5.0)
        idle_ms = _cpu_since(before) / 5.0 * 1000  # Ray's processes, doing nothing
        on_ray = "Ray, 2 worker CPUs (confined child of a worker)"
        more, offset = _rows(
            [(f"{forked}; Ray connected", ForkedExecutor, 2)]
            + [(on_ray, lambda: ray_executor, p) for p in (2, 4)],
            n,
            repeats,
            offset,
            cpu,
        )
        rows += more
        rows.sort(key=lambda row: "| trivial |" not in row)  # stable: trivial rows first
    finally:
        ray.shutdown()
    load_after = os.getloadavg()
    text = f"""## Search with Ray workers against forked trials

`python benchmarks/bench_search_ray.py`. The same scripted candidates (`x + k`), SQLite
store, `islands=1`, no type check; only the executor differs. Ray: a local cluster started
by the script, `ray.init(num_cpus=2)` (it took {start_s:.1f} s to start), each candidate
compiled on a worker and judged in a confined child of it. Metrics: `trivial` (one call) and
`heavy` (300,000 calls). Evaluations/s: median of {repeats} searches (the seed's evaluation
included); the forked rows were measured first without Ray in the process, then again
with this process connected to the cluster. CPU ms: the whole process tree (this process,
every Ray process, every trial) per evaluation; worker CPU ms: what the trials used inside the Ray workers. Load average
{load[0]:.2f} at start, {load_after[0]:.2f} at the end (2 cores, shared with other work).

| metric | executor | parallel | evaluations | evaluations/s | CPU ms/evaluation | worker CPU ms/evaluation |
| --- | --- | ---: | ---: | ---: | ---: | ---: |
{chr(10).join(rows)}

How to read it. With the load above on two cores, evaluations/s mostly measure how large a
share of the cores a run's processes won from everything else running at that moment (a
Ray run has more processes to win it with), so they swing either way between rows and
runs; they are not a speed of Ray. CPU ms/evaluation is the figure to compare. A trivial
evaluation costs {cpu["trivial", alone, 2]:.1f} ms of CPU in a forked trial (parallel 2,
no Ray in the process) and {cpu["trivial", on_ray, 2]:.1f} ms on Ray; a heavy one
{cpu["heavy", alone, 2]:.1f} ms against {cpu["heavy", on_ray, 2]:.1f} ms. Part of Ray's
figure is its processes' own upkeep, {idle_ms:.0f} ms of CPU per second even when idle,
counted over each search's wall time (which is also why the forked row with Ray connected
costs more than the one without). On one machine Ray adds no cores and costs CPU per
evaluation; it pays where an evaluation costs far more than that overhead and the cluster
has more cores than this machine.
"""
    return write_section("search_ray", text)


if __name__ == "__main__":
    print(main(quick="--quick" in sys.argv[1:]))
