"""Executors: where a search's evaluations run.

A search evaluates every candidate in a trial. By default (`ForkedExecutor`) the trial is a
forked child of the live process: the candidate is judged against the program's real state
and nothing expensive is rebuilt. Some searches do not need that state and have evaluations
that cost more than one machine's cores can give; `RayExecutor` sends those to a Ray cluster.

A Ray worker is another process, usually on another machine, so the evaluation must be
*stateless*: everything it needs is named by an import path and rebuilt on the worker.

* the evolvable function, the check and every metric are sent as `module:qualname` strings
  (a function object is accepted when it resolves back to itself by that path; a lambda, a
  closure, a bound method or anything defined in `__main__` is refused before anything is
  sent, with the reason);
* the candidate travels as its source text and is compiled on the worker against a fresh
  import of the function's module (the module's state as importing it leaves it, not the
  live program's);
* the worker evaluates it exactly as `ForkedExecutor` does here (`evaluator.evaluate`):
  with the function's trial mode, timeout and memory limit, in a forked and confined child
  of the Ray worker (RLIMIT_AS, SIGKILL at the deadline, crashes as diagnostics, the trial's
  result as JSON capped at the same size); the `Evaluation` comes back to the driver as
  JSON text;
* failures of Ray itself become rejections, never a hung search: a worker that dies is a
  `crash`, a task killed by Ray's memory monitor is `memory`. The task is a streaming
  generator that says when its trial starts, so the two waits are bounded apart: a task that
  does not start within `start_timeout_s` (a busy cluster, a worker's start, imports) is
  cancelled as `unavailable`; one whose trial outlives its timeout plus `grace_s` (possible
  only with `trial="inprocess"`, where no forked child can be killed) is cancelled — which
  kills its worker — as a `timeout`. Ray's own retries are off (`max_retries=0`): a candidate
  that crashes a worker is not run again.

Ray is imported lazily: `symbiont` does not need it unless a `RayExecutor` is made. Results
cross from worker to driver as JSON text, never as pickled objects of the candidate's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import importlib
import json
import resource
import time
import types
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from symbiont import _ray
from symbiont.diagnostics import Diagnostic
from symbiont.errors import SymbiontError
from symbiont.evaluation import Score
from symbiont.search.config import SearchConfig, Stage
from symbiont.search.evaluator import Evaluation, evaluate

if TYPE_CHECKING:
    from symbiont.evaluation import Check
    from symbiont.evolvable import Evolvable

MAX_IN_FLIGHT = 256  # evaluations one RayExecutor waits for at once (threads, mostly asleep)

__all__ = [
    "Executor",
    "ExecutorError",
    "ForkedExecutor",
    "ImportPathError",
    "RayExecutor",
    "import_path",
    "resolve",
]


class ExecutorError(SymbiontError):
    """An executor cannot run a search's evaluations (Ray missing or unreachable, ...)."""


class ImportPathError(ExecutorError, ValueError):
    """A function that must be named by an import path cannot be (lambda, closure, __main__)."""


@runtime_checkable
class Executor(Protocol):
    """Runs the trials of one search. `open` is called once, before the seed's evaluation:
    it refuses what it cannot run (raising `ExecutorError`) before anything is evaluated.
    `evaluate` is blocking (the controller calls it off the event loop's thread, up to
    `parallel` at once) and never raises for anything the candidate does. Optional: an
    `evaluate_async` with the same arguments, which the controller awaits instead, and a
    `close()`, which it calls when the search ends (workers or threads kept per search)."""

    name: str

    def open(self, handle: Evolvable, config: SearchConfig) -> None: ...

    def evaluate(
        self,
        handle: Evolvable,
        candidate: Any,
        check: Check | None,
        stages: tuple[Stage, ...],
        *,
        maximize: bool,
        timeout_s: float,
    ) -> Evaluation: ...


class ForkedExecutor:
    """The default: each trial is a forked child of the live process (confined unless the
    evolvable says `trial="fork"` or `"inprocess"`), judged against the program's state."""

    name = "forked"

    def open(self, handle: Evolvable, config: SearchConfig) -> None:
        return None

    def evaluate(
        self,
        handle: Evolvable,
        candidate: Any,
        check: Check | None,
        stages: tuple[Stage, ...],
        *,
        maximize: bool,
        timeout_s: float,
    ) -> Evaluation:
        return evaluate(handle, candidate, check, stages, maximize=maximize, timeout_s=timeout_s)


# -- import paths ------------------------------------------------------------------------------


def resolve(path: str, what: str = "function") -> Any:
    """The object `module:qualname` names (`pkg.mod:fn`, `pkg.mod:Class.method`)."""
    module_name, sep, qualname = path.partition(":")
    if not sep or not module_name or not qualname:
        raise ImportPathError(
            f"{what} {path!r} is not an import path: write 'package.module:function'"
        )
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module failing as it is imported
        raise ImportPathError(
            f"{what} {path!r}: module {module_name!r} cannot be imported "
            f"({type(exc).__name__}: {exc})"
        ) from None
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportPathError(
                f"{what} {path!r}: module {module_name!r} has no {qualname!r}"
            ) from None
    if not callable(obj):
        raise ImportPathError(f"{what} {path!r} is a {type(obj).__name__}, not a function")
    return obj


def import_path(obj: Any, what: str = "function") -> str:
    """The `module:qualname` path by which a worker imports `obj` (a path is checked and
    returned); `ImportPathError` saying what is needed when there is none."""
    if isinstance(obj, str):
        resolve(obj, what)
        return obj
    need = (
        f"{what} must be importable on the workers: a module-level function of an importable "
        "module, or its path as 'package.module:function'"
    )
    if isinstance(obj, types.MethodType):
        raise ImportPathError(f"{need}; {obj!r} is a bound method")
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise ImportPathError(f"{need}; {obj!r} has no __module__ and __qualname__")
    if "<lambda>" in qualname:
        raise ImportPathError(f"{need}; {module}.{qualname} is a lambda")
    if "<locals>" in qualname:
        raise ImportPathError(
            f"{need}; {module}.{qualname} is defined inside another function (a closure)"
        )
    if module == "__main__":
        raise ImportPathError(
            f"{need}; {qualname} is defined in the script being run (__main__), which a "
            "worker cannot import: move it into a module"
        )
    path = f"{module}:{qualname}"
    if resolve(path, what) is not obj:
        raise ImportPathError(f"{need}; {path} names another object than the one given")
    return path


# -- Ray -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Plan:
    """What every task of one search carries besides the candidate."""

    function: str
    check: str | None
    stages: tuple[tuple[str, float | None, str], ...]


class RayExecutor:
    """Evaluate candidates on a Ray cluster (see the module's docstring for the rules).

    `address`: the cluster (`"auto"`, `"ray://host:10001"`, ...); None starts a local one
    when the program has not connected to Ray yet. A program that called `ray.init` itself
    keeps its connection and the executor uses it. `init_options` go to `ray.init`;
    `num_cpus` is what one evaluation reserves. `start_timeout_s`: how long a task may wait
    to start (queueing, a worker's start, imports); `grace_s`: how much longer than the
    trial's timeout a started trial may take before its task is cancelled. `task_options` go
    to Ray's `.options()` (say `{"memory": 2 << 30}` or `runtime_env`).
    Counts: `submitted` tasks, `cpu_s` CPU the trials used on the workers.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: float = 1.0,
        start_timeout_s: float = 120.0,
        grace_s: float = 2.0,
        init_options: dict[str, Any] | None = None,
        task_options: dict[str, Any] | None = None,
    ) -> None:
        # at once: a missing Ray is said before a search starts
        self._ray = _ray.import_ray("RayExecutor", ExecutorError)
        for name, value in (("start_timeout_s", start_timeout_s), ("grace_s", grace_s)):
            if not (isinstance(value, int | float) and value >= 0):
                raise ValueError(f"{name} must be a number of seconds ≥ 0, not {value!r}")
        if not (isinstance(num_cpus, int | float) and num_cpus > 0):
            raise ValueError(f"num_cpus must be positive, not {num_cpus!r}")
        self.address = address
        self.num_cpus = float(num_cpus)
        self.start_timeout_s = float(start_timeout_s)
        self.grace_s = float(grace_s)
        self.init_options = dict(init_options or {})
        self.task_options = dict(task_options or {})
        self.submitted = 0
        self.cpu_s = 0.0
        self._plans: dict[str, _Plan] = {}
        self._remote: Any = None
        self._connected_here = False
        self._threads: ThreadPoolExecutor | None = None

    def open(self, handle: Evolvable, config: SearchConfig) -> None:
        """Check that every part of the evaluation has an import path, then connect."""
        if handle.options.native:
            raise ExecutorError(
                f"{handle.key} is a native (Numba) evolvable; RayExecutor evaluates plain "
                "Python functions only"
            )
        plan = _Plan(
            import_path(handle.fn, f"the evolvable function {handle.key}"),
            import_path(config.check, "the check") if config.check is not None else None,
            tuple(
                (
                    import_path(s.metric, "the metric" if not config.stages else f"stage {i}"),
                    s.threshold,
                    s.name or getattr(s.metric, "__name__", f"stage {i}"),
                )
                for i, s in enumerate(config.all_stages, 1)
            ),
        )
        self._connect()
        self._plans[handle.key] = plan

    def _connect(self) -> None:
        if _ray.connect(self._ray, self.address, self.init_options, ExecutorError):
            self._connected_here = True
        if self._remote is None:
            self._remote = self._ray.remote(_evaluate_on_worker).options(
                num_cpus=self.num_cpus, max_retries=0, retry_exceptions=False, **self.task_options
            )

    async def evaluate_async(
        self,
        handle: Evolvable,
        candidate: Any,
        check: Check | None,
        stages: tuple[Stage, ...],
        *,
        maximize: bool,
        timeout_s: float,
    ) -> Evaluation:
        """`evaluate` in a thread of the executor's own (the controller awaits this when
        it is there): a cluster takes more candidates in flight than the event loop's
        default pool has threads (cores + 4), and each thread only waits on Ray."""
        if self._threads is None:
            self._threads = ThreadPoolExecutor(
                max_workers=MAX_IN_FLIGHT, thread_name_prefix="symbiont-ray"
            )
        call = functools.partial(
            self.evaluate, handle, candidate, check, stages, maximize=maximize, timeout_s=timeout_s
        )
        return await asyncio.get_running_loop().run_in_executor(self._threads, call)

    def close(self) -> None:
        """The search is over: its waiting threads end (the connection stays for the next
        search; `shutdown` ends it)."""
        if self._threads is not None:
            self._threads.shutdown(wait=False)
            self._threads = None

    def shutdown(self) -> None:
        """Disconnect from Ray, if this executor connected (a program's own `ray.init`
        connection is left alone)."""
        self.close()
        if self._connected_here:
            self._ray.shutdown()
            self._connected_here = False
        self._remote = None

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def evaluate(
        self,
        handle: Evolvable,
        candidate: Any,
        check: Check | None,
        stages: tuple[Stage, ...],
        *,
        maximize: bool,
        timeout_s: float,
    ) -> Evaluation:
        plan = self._plans.get(handle.key)
        if plan is None or self._remote is None:
            raise ExecutorError(f"RayExecutor.open was not called for {handle.key}")
        if candidate is not None:
            source: str | None = candidate.source
        else:  # the active revision; the declared body is what the worker imports
            active = handle.active
            source = None if active.number == 0 else active.source
        options = handle.options
        task = {
            "function": plan.function,
            "source": source,
            "check": plan.check,
            "stages": plan.stages,
            "maximize": maximize,
            "timeout_s": timeout_s,
            "memory_mb": options.memory_mb,
            "trial": options.trial,
        }
        stream = self._remote.remote(json.dumps(task))
        self.submitted += 1
        return self._wait(stream, timeout_s)

    def _wait(self, stream: Any, timeout_s: float) -> Evaluation:
        started = time.perf_counter()
        outcome = _ray.collect(
            self._ray,
            stream,
            start_timeout_s=self.start_timeout_s,
            run_s=timeout_s,
            grace_s=self.grace_s,
            what="the trial",
        )
        evaluation, cpu_s = _evaluation_from_json(outcome.text)
        self.cpu_s += cpu_s
        if evaluation is not None:
            return evaluation
        kind, message = outcome.kind, outcome.message
        if outcome.text is not None:
            kind, message = "invalid_result", "the Ray worker's report was garbled"
        elif kind == "timeout":
            message += "; the candidate may loop forever or be far too slow"
        diag = Diagnostic("trial", kind, message)
        return Evaluation(False, None, 0, kind, diag, time.perf_counter() - started)


# -- the worker's side ---------------------------------------------------------------------------

# function path → (function, Target), built once per worker process
_TARGETS: dict[str, tuple[Any, Any]] = {}


def _worker_target(path: str) -> tuple[Any, Any]:
    """The function as the worker imports it, and its pipeline `Target`."""
    hit = _TARGETS.get(path)
    if hit is None:
        from symbiont.evolvable import handle
        from symbiont.pipeline import Target

        fn = resolve(path, "the evolvable function")
        h = handle(fn)
        target = dataclasses.replace(
            Target.from_function(fn, owned_names=h.owned_names), declared_code=h.declared_code
        )
        hit = _TARGETS[path] = (fn, target)
    return hit


def _compile_on_worker(source: str, target: Any) -> Any:
    """The candidate, parsed and compiled against the worker's module (the driver's
    pipeline has passed it already; the policy and type check are not run again)."""
    from symbiont.pipeline import check_signature, compile_candidate, parse_source
    from symbiont.pipeline.signature import typing_aliases_in

    tree = parse_source(source)
    node = check_signature(
        tree, target.signature, source, typing_aliases=typing_aliases_in(target.globals)
    )
    return compile_candidate(tree, node, source, target)


def _evaluate_on_worker(task_json: str) -> Iterator[str]:
    """A Ray task (a streaming generator): one candidate's evaluation, as `ForkedExecutor`
    runs it locally. Yields `_ray.STARTED` when the trial is about to run, then the
    `Evaluation` as JSON text (with the trial's CPU seconds); only the latter when the
    evaluation could not be prepared."""
    from symbiont.evolvable import handle

    started = time.perf_counter()
    try:
        task = json.loads(task_json)
        fn, target = _worker_target(task["function"])
        h = handle(fn)
        h.options = dataclasses.replace(h.options, memory_mb=task["memory_mb"], trial=task["trial"])
        check = resolve(task["check"], "the check") if task["check"] else None
        stages = tuple(
            Stage(resolve(path, "the metric"), threshold, name)
            for path, threshold, name in task["stages"]
        )
        candidate = None
        if task["source"] is not None:
            candidate = _compile_on_worker(task["source"], target)
    except Exception as exc:
        message = str(exc).strip() or type(exc).__name__
        diag = Diagnostic(
            "trial",
            "exit",
            "the Ray worker could not prepare the evaluation (is the same code installed "
            f"on the workers?): {message}",
        )
        failure = Evaluation(False, None, 0, "exit", diag, time.perf_counter() - started)
        yield _evaluation_to_json(failure, 0.0)
        return
    yield _ray.STARTED
    cpu0 = _cpu_now()
    evaluation = evaluate(
        h,
        candidate,
        check,
        stages,
        maximize=bool(task["maximize"]),
        timeout_s=float(task["timeout_s"]),
    )
    yield _evaluation_to_json(evaluation, _cpu_now() - cpu0)


def _cpu_now() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _evaluation_to_json(evaluation: Evaluation, cpu_s: float) -> str:
    e = evaluation
    return json.dumps(
        {
            "ok": e.ok,
            "score": e.score.to_dict() if e.score is not None else None,
            "stages_run": e.stages_run,
            "kind": e.kind,
            "diagnostic": e.diagnostic.to_dict() if e.diagnostic is not None else None,
            "duration_s": e.duration_s,
            "cpu_s": cpu_s,
        },
        separators=(",", ":"),
    )


def _evaluation_from_json(text: Any) -> tuple[Evaluation | None, float]:
    """The worker's report and the trial's CPU seconds; None when it is not well-formed."""
    try:
        data = json.loads(text)
        score, diag = data["score"], data["diagnostic"]
        evaluation = Evaluation(
            ok=bool(data["ok"]),
            score=Score.from_dict(score) if score is not None else None,
            stages_run=int(data["stages_run"]),
            kind=str(data["kind"]),
            diagnostic=Diagnostic.from_dict(diag) if diag is not None else None,
            duration_s=float(data["duration_s"]),
        )
        return evaluation, float(data.get("cpu_s", 0.0))
    except (TypeError, ValueError, KeyError, AttributeError):
        return None, 0.0
