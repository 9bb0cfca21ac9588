"""runtime.search with RayExecutor: evaluations on a real local Ray cluster (2 CPUs).

One cluster for the whole module (it takes seconds to start); the workers import the
evolvable functions and metrics from tests/search/ray_targets.py by module path, as a remote
cluster would. After the last test the cluster is shut down and the process table is
checked: nothing Ray started may still be running.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import ray_targets as t

import symbiont
from symbiont.models import ScriptedModel
from symbiont.search import Budget, ForkedExecutor, RayExecutor
from symbiont.search.executors import ExecutorError, ImportPathError, import_path
from symbiont.store.searches import SearchRepository
from symbiont.testing import reset

HERE = Path(__file__).parent


def fenced(code: str) -> str:
    return f"```python\n{code.strip()}\n```\n"


def peak_body(c: float) -> str:
    return fenced(
        "def peak(x: float) -> float:\n"
        '    """A value to maximise at x = 3: candidates change the constants."""\n'
        f"    return -((x - {c!r}) ** 2)\n"
    )


def work_body(body: str, name: str = "work") -> str:
    return fenced(f'def {name}(n: int) -> int:\n    """Return n + 1."""\n    {body}\n')


def label_body(expr: str) -> str:
    return fenced(f'def label(n: int) -> Any:\n    """A short label for n."""\n    return {expr}\n')


def _descendants(root: int) -> dict[int, str]:
    """Live (not zombie) processes below `root`, pid -> command line."""
    parents: dict[int, int] = {}
    lines: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] == "Z":
            continue
        parents[int(entry)] = int(fields[1])
        lines[int(entry)] = cmd.strip()
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in found:
                found[child] = lines[child]
                frontier.append(child)
    return found


def _alive(pids: set[int]) -> dict[int, str]:
    out = {}
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2] != "Z":
            out[pid] = cmd.strip()
    return out


@pytest.fixture(scope="module")
def ray_cluster():
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray = pytest.importorskip("ray")
    before = set(_descendants(os.getpid()))
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(HERE)}},
    )
    yield ray
    started = set(_descendants(os.getpid())) - before
    assert started, "ray.init started no process under this one: the check below would be empty"
    ray.shutdown()
    deadline = time.monotonic() + 15.0
    while _alive(started) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = _alive(started)
    assert not left, f"processes Ray started are still running after ray.shutdown(): {left}"


@pytest.fixture
def runtime(tmp_path: Path):
    rt = symbiont.Runtime(store=tmp_path / "s.db")
    yield rt
    rt.close()
    reset(t.peak, t.work, t.work_trusted, t.label)


def _rejected(fn) -> str:  # type: ignore[no-untyped-def]
    """The rejected revisions' diagnostics, to show when an assertion fails."""
    return "\n".join(
        f"r{r.number}: {d.kind}: {d.message}"
        for r in fn.symbiont.revisions
        if r.status == "rejected"
        for d in r.diagnostics
    )


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_a_search_on_ray_promotes_the_best_into_the_live_function(ray_cluster, runtime) -> None:
    executor = RayExecutor()
    model = ScriptedModel([peak_body(c) for c in (2.0, 3.0, 2.5, 4.0)])
    report = runtime.search_sync(
        t.peak, model, metric="ray_targets:score_peak", budget=Budget(evaluations=5),
        parallel=2, executor=executor,
    )  # fmt: skip
    assert report.evaluations == 5 and not report.rejections
    assert executor.submitted == 5  # the seed's evaluation too
    assert report.baseline_score == pytest.approx(-4.0)
    assert report.best is not None and report.best_score == pytest.approx(0.0)
    assert "3.0" in report.best.source
    # promoted: the live function (in this process) now runs the best candidate
    assert t.peak.symbiont.active.number == report.best.number
    assert t.peak(3.0) == pytest.approx(0.0)
    # it was computed on a Ray worker: in a trial forked by a Ray worker, not by this process
    ppid = int(report.best.artifacts["ppid"])
    assert ppid != os.getpid() and int(report.best.artifacts["pid"]) != os.getpid()
    assert "ray::" in _cmdline(ppid)
    record = SearchRepository(runtime.store).get(report.search_id)
    assert record.status == "finished" and record.best_number == report.best.number


def test_timeout_memory_bomb_and_crash_are_rejections_and_the_search_goes_on(
    ray_cluster, runtime
) -> None:
    model = ScriptedModel(
        [
            work_body("while True:\n        pass"),
            work_body("return len(bytearray(1 << 31))"),  # 2 GiB; the limit is 200 MB
            work_body("return 13"),  # the metric segfaults on it (in the trial child)
            work_body("return n + 1"),
        ]
    )
    report = runtime.search_sync(
        t.work, model, metric=t.score_work, budget=Budget(evaluations=5), parallel=2,
        executor=RayExecutor(), islands=1,
    )  # fmt: skip
    assert dict(report.rejections) == {"timeout": 1, "memory": 1, "crash": 1}, _rejected(t.work)
    assert report.evaluations == 5
    assert report.best_score == 1.0 and "n + 1" in report.best.source
    assert t.work(4) == 5  # promoted
    kinds = {r.stage: r for r in t.work.symbiont.revisions if r.status == "rejected"}
    assert set(kinds) == {"trial"}
    messages = " | ".join(d.message for r in t.work.symbiont.revisions for d in r.diagnostics)
    # each stopped where a forked trial stops it: the 4 s limit, RLIMIT_AS, the signal
    assert (
        "within 4 s and was killed" in messages
        and "SIGSEGV" in messages
        and "MemoryError" in messages
    )


def test_a_worker_that_dies_or_hangs_is_a_rejection_never_a_hung_search(
    ray_cluster, runtime
) -> None:
    # trial="inprocess": the candidate runs in the Ray worker itself, so the crash kills the
    # worker, and the hang can only be stopped by cancelling the task (after grace_s)
    model = ScriptedModel(
        [
            work_body("return 13", "work_trusted"),
            work_body("while True:\n        pass", "work_trusted"),
            work_body("return n + 1", "work_trusted"),
        ]
    )
    report = runtime.search_sync(
        t.work_trusted, model, metric=t.score_work, budget=Budget(evaluations=4), parallel=1,
        executor=RayExecutor(grace_s=2.0), islands=1,
    )  # fmt: skip
    assert dict(report.rejections) == {"crash": 1, "timeout": 1}, _rejected(t.work_trusted)
    assert report.best_score == 1.0 and t.work_trusted(4) == 5
    messages = [d.message for r in t.work_trusted.symbiont.revisions for d in r.diagnostics]
    assert any("Ray worker running the trial died" in m for m in messages)
    assert any("was cancelled" in m for m in messages)


def test_results_that_are_not_json_or_too_large_are_rejected(ray_cluster, runtime) -> None:
    model = ScriptedModel(
        [label_body("{1, 2}"), label_body('"x" * 2_000_000'), label_body('"four"')]
    )
    report = runtime.search_sync(
        t.label, model, metric=t.score_label, budget=Budget(evaluations=4), parallel=2,
        executor=RayExecutor(), islands=1,
    )  # fmt: skip
    assert dict(report.rejections) == {"invalid_result": 2}, _rejected(t.label)
    assert report.best_score == 4.0 and t.label(4) == "four"
    messages = " | ".join(d.message for r in t.label.symbiont.revisions for d in r.diagnostics)
    assert "not JSON-serialisable" in messages and "over the limit of 1048576 bytes" in messages


def _closure():
    def inner(fn) -> float:
        return 1.0

    return inner


def test_a_metric_without_an_import_path_is_refused_before_anything_is_sent(
    ray_cluster, runtime
) -> None:
    namespace: dict = {"__name__": "__main__"}
    exec("def in_main(fn):\n    return 1.0\n", namespace)
    cases = [
        (lambda fn: 1.0, "is a lambda"),
        (_closure(), "defined inside another function (a closure)"),
        (namespace["in_main"], "defined in the script being run (__main__)"),
        (RayExecutor().evaluate, "is a bound method"),
    ]
    for metric, why in cases:
        executor = RayExecutor()
        model = ScriptedModel([peak_body(3.0)])
        with pytest.raises(ImportPathError) as info:
            runtime.search_sync(
                t.peak, model, metric=metric, budget=Budget(evaluations=2), executor=executor
            )
        text = str(info.value)
        assert "the metric must be importable on the workers" in text and why in text
        assert "'package.module:function'" in text
        assert executor.submitted == 0 and model.calls == []
    assert SearchRepository(runtime.store).latest(runtime._function_id(t.peak.symbiont)) is None
    # a check is held to the same rule
    with pytest.raises(ImportPathError, match="the check must be importable"):
        runtime.search_sync(
            t.peak, ScriptedModel([]), metric=t.score_peak, check=lambda fn: None,
            executor=RayExecutor(),
        )  # fmt: skip
    # a path that names nothing is refused as the search is set up, whatever the executor
    with pytest.raises(ValueError, match="module 'ray_targets' has no 'nothing_here'"):
        runtime.search_sync(t.peak, ScriptedModel([]), metric="ray_targets:nothing_here")


def test_import_paths_and_a_missing_ray(monkeypatch) -> None:
    assert import_path(t.score_peak) == "ray_targets:score_peak"
    assert import_path("ray_targets:score_peak") == "ray_targets:score_peak"
    with pytest.raises(ImportPathError, match="is not an import path"):
        import_path("ray_targets.score_peak")
    with pytest.raises(ImportPathError, match="module 'no_such_module_here' cannot be imported"):
        import_path("no_such_module_here:f")
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees without Ray
    with pytest.raises(ExecutorError, match=r"pip install 'symbiont\[ray\]'"):
        RayExecutor()


def test_a_metric_path_works_with_forked_trials_too(runtime) -> None:
    report = runtime.search_sync(
        t.peak, ScriptedModel([peak_body(3.0)]), metric="ray_targets:score_peak",
        budget=Budget(evaluations=2), executor=ForkedExecutor(),
    )  # fmt: skip
    assert report.best_score == pytest.approx(0.0)
    assert int(report.best.artifacts["ppid"]) == os.getpid()  # forked by this process


# -- capability runs on the cluster: the `ray` sandbox tier ------------------------------------

CAPABILITY = """
def double(x):
    return {"y": x * 2}

def spin(x):
    while True:
        pass

def not_json(x):
    return {1, 2}
"""


def test_capability_runs_go_to_the_cluster_in_the_process_tier(ray_cluster) -> None:
    from symbiont.sandbox import Limits, get_sandbox

    sandbox = get_sandbox("ray")
    try:
        result = sandbox.run(CAPABILITY, "double", '{"x": 21}', limits=Limits(timeout_s=5.0))
        assert result.ok and result.output == {"y": 42}, result.error
        assert result.tier == "ray/process"
        # the process tier's zygote was started by a Ray worker, not by this process
        zygotes = {
            pid: cmd
            for pid, cmd in _descendants(os.getpid()).items()
            if "symbiont.sandbox" in cmd and "-I -c" in cmd
        }
        assert zygotes, "no process-tier zygote below this process"
        parents = {  # of the zygotes (the processes they forked share their command line)
            int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1]) for p in zygotes
        } - set(zygotes)
        assert os.getpid() not in parents and all("ray::" in _cmdline(p) for p in parents)
        hung = sandbox.run(CAPABILITY, "spin", '{"x": 1}', limits=Limits(timeout_s=1.0))
        assert hung.error is not None and hung.error.kind == "timeout"
        bad = sandbox.run(CAPABILITY, "not_json", '{"x": 1}', limits=Limits(timeout_s=5.0))
        assert bad.error is not None and bad.error.kind == "invalid_output"
        assert "not JSON-serialisable" in bad.error.message
    finally:
        sandbox.close()  # it did not connect: the module's cluster stays up
    assert ray_cluster.is_initialized()
