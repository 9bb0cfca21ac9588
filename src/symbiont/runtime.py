"""`Runtime`: the evolvable functions a program declared, their store, and `evolve`.

    runtime = symbiont.Runtime()              # store in $SYMBIONT_HOME or ./.symbiont/
    report = await runtime.evolve(step, model, prompt="...", check=check_step)

A runtime opened on a store brings every evolvable back with its stored active revision
(same signature fingerprint) and records every candidate, accepted or not, with its parents.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import reprlib
import sys
import threading
import time
import traceback
import types
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from symbiont._identity import module_key, module_name_of_file
from symbiont.diagnostics import Diagnostic
from symbiont.errors import DeclarationError, RevisionError
from symbiont.evaluation import AcceptRule, Check, Direction, Metric
from symbiont.evolvable import Evolvable, Failure, Revision, handle, on_register, registered
from symbiont.evolve import AttemptReport, EvolveConfig, EvolveReport, run_evolve
from symbiont.models.base import Model

if TYPE_CHECKING:
    from symbiont.search.controller import SearchReport
    from symbiont.search.executors import Executor
    from symbiont.store import EvolvableStore

StoreArg = "EvolvableStore | str | Path | None | bool"
SourceChange = Literal["keep", "reset"]

# Live failures: how much of the arguments and the traceback a Failure keeps.
MAX_ARGS_REPR = 1000
MAX_TRACEBACK = 8000
_ARGS_REPR = reprlib.Repr()
_ARGS_REPR.maxlevel = 3
_ARGS_REPR.maxstring = 120
_ARGS_REPR.maxother = 120
_ARGS_REPR.maxlong = 60
for _name in ("maxlist", "maxtuple", "maxset", "maxfrozenset", "maxdeque", "maxarray", "maxdict"):
    setattr(_ARGS_REPR, _name, 8)

# What a start announces, once per process (several runtimes may attach one function).
_ANNOUNCED: set[tuple[str, str]] = set()


class Runtime:
    """Knows the evolvable functions, evolves them, persists and resumes their revisions.

    store: None opens the default store (`$SYMBIONT_STORE`, else `$SYMBIONT_HOME/symbiont.db`,
    else `./.symbiont/symbiont.db`); a path opens that SQLite file, a `postgresql://` URL a
    shared PostgreSQL store, an open store is used as is; False keeps everything in memory.
    resume: bring each evolvable up with its stored active revision.
    on_source_change: what a start does when a function's declared body differs from the
    one its stored revisions were made from. Either way the new body is recorded as a
    revision (origin `default`, parent: the previous declared body) and the start says so
    on stderr. "keep" (default) keeps the evolved active revision; "reset" makes the new
    declared body active. When nothing evolved was active, the new body becomes active in
    both modes. It is a Runtime option, next to `resume`, because it decides what a start
    brings back from the store — a property of the program's store, not of the declaration.
    capture_uncaught: also collect exceptions of evolvable functions that reach
    `sys.excepthook` / `threading.excepthook`, and asyncio's exception handler (a task whose
    exception nobody retrieved, a failing callback) (see `take_failures`).
    failure_ring: how many live failures are kept per function, in memory and in the store;
    older ones are dropped.
    """

    def __init__(
        self,
        store: Any = None,
        *,
        resume: bool = True,
        capture_uncaught: bool = False,
        on_source_change: SourceChange = "keep",
        failure_ring: int = 100,
    ) -> None:
        if on_source_change not in ("keep", "reset"):
            raise DeclarationError(
                f"on_source_change must be 'keep' or 'reset', not {on_source_change!r}"
            )
        if failure_ring < 1:
            raise DeclarationError(f"failure_ring must be at least 1, not {failure_ring}")
        self.store: EvolvableStore | None = _open_store(store)
        self.resume = resume
        self.on_source_change: SourceChange = on_source_change
        self.failure_ring = failure_ring
        self._pid = os.getpid()
        self._function_ids: dict[str, int] = {}
        self._lock = threading.Lock()
        self._failures: dict[str, deque[Failure]] = {}
        self._recorded: deque[BaseException] = deque(maxlen=64)  # attributed already
        self._store_warned = False
        self._restore_hooks: list[Callable[[], None]] = []
        self._unsubscribe = on_register(self._attach)
        for h in registered():
            self._attach(h)
        if capture_uncaught:
            self._install_excepthooks()

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        self._unsubscribe()
        for restore in reversed(self._restore_hooks):
            restore()
        self._restore_hooks.clear()
        if self.store is not None:
            self.store.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what the program declared --------------------------------------------------------
    @property
    def evolvables(self) -> list[Evolvable]:
        return registered()

    def signatures(self) -> list[str]:
        """Each evolvable's declared signature and docstring, rendered for a prompt."""
        return [h.signature.render() for h in registered()]

    def revisions(self, fn: Callable[..., Any]) -> list[Revision]:
        return list(handle(fn).revisions)

    def activate(self, fn: Callable[..., Any], number: int) -> Revision:
        """Make revision `number` live now (and at the next start, when there is a store)."""
        h = handle(fn)
        if not any(r.number == number for r in h.revisions):
            self._load_stored(h)  # e.g. recorded by another process since this one started
        rev = h.activate(number)
        self._set_active(h, rev)
        return rev

    def rollback(self, fn: Callable[..., Any]) -> Revision:
        """Re-activate the revision that was active before the current one."""
        h = handle(fn)
        rev = h.rollback()
        self._set_active(h, rev, reason="rollback")
        return rev

    # -- web UI (symbiont.ui) -------------------------------------------------------------
    def serve_ui(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = None,
        actions: bool = False,
        **options: Any,
    ) -> Any:
        """Serve the web UI over this runtime's store from a thread of this process.

        Returns a `symbiont.ui.RunningUI` (`.url`, `.stop()`). Pages update live while this
        process evolves or searches. With `actions=True`, activating a revision from a page
        swaps it into the live function at once (for functions this process declared).
        Loopback only unless a `token` is given. Further `options` are `UIConfig` fields.
        """
        from symbiont.ui import UIConfig, start_in_thread

        if self.store is None:
            raise DeclarationError("serve_ui needs a store; Runtime(store=False) keeps nothing")
        config = UIConfig(
            store_path=self.store.path,
            token=token,
            actions=actions,
            activate=self._activate_from_ui,
            store=self.store,
            **options,
        )
        return start_in_thread(config, host, port)

    def _activate_from_ui(self, function_id: int, number: int) -> str:
        for h in registered():
            if self._function_ids.get(h.key) == function_id:
                self.activate(h.fn, number)
                return f"revision {number} of {h.key} is live in this process now"
        assert self.store is not None
        self.store.set_active(function_id, number, reason="ui")
        return f"revision {number} is active in the store; its program takes it at its next start"

    # -- evolve ---------------------------------------------------------------------------
    async def evolve(
        self,
        fn: Callable[..., Any],
        model: Model | None = None,
        *,
        prompt: str = "",
        check: Check | None = None,
        metric: Metric | None = None,
        direction: Direction = "maximize",
        accept: AcceptRule = "not_worse",
        attempts: int = 10,
        stop_on_accept: bool | None = None,
        typecheck: bool | None = None,
        timeout: float | None = None,
        on_attempt: Callable[[AttemptReport], None] | None = None,
        **options: Any,
    ) -> EvolveReport:
        """Ask `model` for new bodies of `fn` until one is accepted (or attempts run out).

        A candidate is accepted when it passes every pipeline stage, its trial (in a forked
        child) raises nothing, `check(fn)` passes, and — with a metric — it scores no worse
        than the active revision (`accept="better"` demands strictly better). Without a
        model, the offline mutation proposer is used (announced once). Further `options` are
        `EvolveConfig` fields: `context`, `history`, `max_prompt_tokens`, `token_budget`,
        `max_reply_bytes`, `max_model_failures`, `max_retries`, `origin`.
        """
        if direction not in ("maximize", "minimize"):
            raise ValueError(f"direction must be 'maximize' or 'minimize', not {direction!r}")
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        if check is None and metric is None:
            raise ValueError("evolve needs a check, a metric, or both, to judge candidates")
        h = handle(fn)
        no_source = self._no_source_note(h, typecheck)
        if model is None:
            from symbiont.models import default_model

            model = default_model()
        config = EvolveConfig(
            prompt=prompt,
            check=check,
            metric=metric,
            direction=direction,
            accept=accept,
            attempts=attempts,
            stop_on_accept=stop_on_accept,
            typecheck=typecheck,
            timeout_s=timeout,
            **options,
        )
        report = await run_evolve(self, h, model, config, on_attempt=on_attempt)
        notes = getattr(report, "notes", None)
        if no_source and isinstance(notes, list) and no_source not in notes:
            notes.append(no_source)
        return report

    def evolve_sync(
        self, fn: Callable[..., Any], model: Model | None = None, **kwargs: Any
    ) -> EvolveReport:
        """`evolve` for code that is not async (runs its own event loop)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.evolve(fn, model, **kwargs))
        raise RuntimeError(
            "evolve_sync was called inside a running event loop; use `await runtime.evolve(...)`"
        )

    # -- search (symbiont.search) ---------------------------------------------------------
    async def search(
        self,
        fn: Callable[..., Any],
        model: Any = None,
        *,
        metric: Metric | str | None = None,
        check: Check | str | None = None,
        stages: Any = (),
        budget: Any = None,
        resume: bool = False,
        embedder: Any = None,
        on_progress: Callable[[SearchReport], None] | None = None,
        executor: Executor | None = None,
        **options: Any,
    ) -> SearchReport:
        """A population search over revisions of `fn`; returns a `SearchReport`.

        `model`: a Model, a list of models (an ensemble chosen per request by UCB1), or
        (model, Pricing) pairs; None: the offline mutation proposer. `stages`: a cascade of
        `Stage(metric, threshold)` (or (metric, threshold) pairs), cheapest first.
        `budget`: a `Budget` (default 100 evaluations). `resume`: continue the newest
        stored search of `fn`. Further `options` are `SearchConfig` fields: `prompt`,
        `direction`, `target`, `parallel`, `islands`, `migration_interval`, `features`,
        `selection`, `promote` ("best" | "never" | callable(candidate, active)), ...
        `metric`, `check` and stage metrics may be import paths ('package.module:function').
        `executor`: where the trials run; None: forked children of this process (the live
        state); `symbiont.search.RayExecutor(address=...)` sends them to a Ray cluster.
        """
        from symbiont.search.config import Budget, SearchConfig, Stage
        from symbiont.search.controller import SearchController

        h = handle(fn)
        if model is None:
            from symbiont.models import default_model

            model = default_model()
        cascade = tuple(
            s if isinstance(s, Stage) else Stage(*s) if isinstance(s, tuple) else Stage(s)
            for s in stages
        )
        config = SearchConfig(
            metric=metric,
            check=check,
            stages=cascade,
            budget=budget if budget is not None else Budget(),
            **options,
        )
        controller = SearchController(
            self,
            h,
            model,
            config,
            embedder=embedder,
            resume=resume,
            on_progress=on_progress,
            executor=executor,
        )
        return await controller.run()

    def search_sync(self, fn: Callable[..., Any], model: Any = None, **kwargs: Any) -> SearchReport:
        """`search` for code that is not async (runs its own event loop)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.search(fn, model, **kwargs))
        raise RuntimeError(
            "search_sync was called inside a running event loop; use `await runtime.search(...)`"
        )

    # -- failures of the live function ----------------------------------------------------
    def record_failure(self, exc: BaseException) -> bool:
        """Attribute `exc` to the evolvable whose code raised it; True if one did.

        Any revision counts, the declared body (r0) too; the innermost evolvable frame
        wins. The failure keeps the revision it hit, a bounded repr of that call's
        arguments and the traceback; it goes into the function's ring (the newest
        `failure_ring`), into the store, and into the function's next `evolve`. The same
        exception is recorded once, however many hooks see it.
        """
        from symbiont.trial import exception_diagnostic

        with self._lock:
            if any(e is exc for e in self._recorded):
                return True
        owners: dict[int, tuple[Evolvable, Revision]] = {}
        for h in registered():
            for r in h.revisions:
                if r.code is not None:
                    owners[id(r.code)] = (h, r)
        frames: list[types.FrameType] = []
        tb = exc.__traceback__
        while tb is not None:
            frames.append(tb.tb_frame)
            tb = tb.tb_next
        for frame in reversed(frames):  # innermost first
            owner = owners.get(id(frame.f_code))
            if owner is None or owner[1].code is not frame.f_code:
                continue
            h, rev = owner
            code = frame.f_code
            prefix = code.co_filename if code.co_filename.startswith("<") else None
            diag = exception_diagnostic(exc, frame_prefix=prefix, stage="trial")
            diag = Diagnostic(
                "trial",
                "exception",
                f"in the live program: {diag.message}",
                diag.line,
                diag.col,
                diag.excerpt,
                diag.detail,
            )
            failure = Failure(
                rev.number,
                diag,
                time.time(),
                args=_arguments_repr(frame),
                traceback=_traceback_text(exc),
                function=h.key,
            )
            with self._lock:
                self._recorded.append(exc)
                ring = self._failures.setdefault(h.key, deque(maxlen=self.failure_ring))
                ring.append(failure)
            self._persist_failure(h, failure)
            return True
        return False

    @contextlib.contextmanager
    def capture_failures(self) -> Iterator[None]:
        """Record (and re-raise) an exception raised by an evolvable inside the block.

        Inside a running event loop, the tasks created in the block are watched too: an
        exception a task ends with is recorded when the task finishes, whether or not
        anyone awaits it (asyncio still reports it as never retrieved if nobody does).
        """
        restore = self._watch_tasks()
        try:
            yield
        except Exception as exc:
            self.record_failure(exc)
            raise
        finally:
            restore()

    def take_failures(self, fn: Callable[..., Any] | None = None) -> list[Failure]:
        """The failures collected since the last call (for one function or all), cleared.

        The store keeps them (`Store.failures`); this only empties the in-memory ring.
        """
        keys = [handle(fn).key] if fn is not None else None
        out: list[Failure] = []
        with self._lock:
            for key in keys if keys is not None else list(self._failures):
                ring = self._failures.get(key)
                if ring:
                    out.extend(ring)
                    ring.clear()
        out.sort(key=lambda f: f.at)
        return out

    def _persist_failure(self, h: Evolvable, failure: Failure) -> None:
        # Never in a forked child (a trial): the store belongs to the live process.
        if self.store is None or os.getpid() != self._pid:
            return
        from symbiont.store import FailureRecord

        try:
            fid = self._function_id(h)
            if fid is None:
                return
            self.store.add_failure(
                FailureRecord(
                    function_id=fid,
                    revision_number=failure.revision,
                    at=failure.at,
                    kind=failure.diagnostic.kind,
                    message=failure.diagnostic.message,
                    args=failure.args,
                    traceback=failure.traceback,
                    diagnostic=failure.diagnostic.to_dict(),
                    pid=os.getpid(),
                ),
                keep=self.failure_ring,
            )
        except Exception as exc:  # a hook must never raise; say once why nothing was stored
            if not self._store_warned:
                self._store_warned = True
                print(
                    f"symbiont: could not store a live failure of {h.key}: "
                    f"{type(exc).__name__}: {exc}",
                    file=sys.stderr,
                )

    def _watch_tasks(self) -> Callable[[], None]:
        """In a running event loop: record the exceptions of tasks created from now on."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return lambda: None
        previous = loop.get_task_factory()

        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
            if previous is not None:
                task = previous(loop, coro, **kwargs)
            else:
                task = asyncio.Task(coro, loop=loop, **kwargs)
            task.add_done_callback(self._task_done)
            return task

        loop.set_task_factory(factory)

        def restore() -> None:
            if loop.get_task_factory() is factory:
                loop.set_task_factory(previous)

        return restore

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        if task.cancelled():
            return
        # Read without marking it retrieved, so asyncio still reports an unawaited failure.
        exc = getattr(task, "_exception", None) if hasattr(task, "_exception") else task.exception()
        if isinstance(exc, Exception):
            self.record_failure(exc)

    def _install_excepthooks(self) -> None:
        previous_sys = sys.excepthook
        previous_thread = threading.excepthook

        def sys_hook(
            tp: type[BaseException], value: BaseException, tb: types.TracebackType | None
        ) -> None:
            self.record_failure(value)
            previous_sys(tp, value, tb)

        def thread_hook(args: threading.ExceptHookArgs) -> None:
            if args.exc_value is not None:
                self.record_failure(args.exc_value)
            previous_thread(args)

        sys.excepthook = sys_hook
        threading.excepthook = thread_hook
        # asyncio hands what nobody handled (a task's exception never retrieved, a failing
        # callback) to its loop's exception handler, whose default logs it to the "asyncio"
        # logger with exc_info: listening there covers every loop, present and future.
        asyncio_handler = _AsyncioFailures(self.record_failure)
        asyncio_logger = logging.getLogger("asyncio")
        asyncio_logger.addHandler(asyncio_handler)

        def restore() -> None:
            sys.excepthook = previous_sys
            threading.excepthook = previous_thread
            asyncio_logger.removeHandler(asyncio_handler)

        self._restore_hooks.append(restore)

    # -- persistence (no-ops without a store) ---------------------------------------------
    def _attach(self, h: Evolvable) -> None:
        self._no_source_note(h, None)
        if self.store is None:
            return
        fr = self.store.ensure_function(h.key, _fingerprint(h), h.signature.render())
        with self._lock:
            self._function_ids[h.key] = fr.id
        declared = _declared_revision(h)
        # The declared body is the lineage's newest `default` revision: r0 the first time,
        # a new revision when the body was edited since (recorded once, atomically).
        rec, created = self.store.record_declared_body(_to_record(fr.id, declared, number=-1))
        _renumber_declared(h, declared, rec.number)
        if created and rec.number == 0:  # first time this lineage is seen
            self.store.set_active_if(fr.id, None, 0, reason="declared")
            return
        self._load_stored(h, fr.id)
        active = self.store.get_function(fr.id).active_number
        if created:
            active = self._declared_body_changed(h, fr.id, rec.number, rec.parents, active)
        if self.resume and active is not None and active != h.active.number:
            try:
                h.activate(active)
            except RevisionError as exc:
                print(
                    f"symbiont: {h.key}: could not resume revision {active}: {exc}; "
                    "keeping the declared body",
                    file=sys.stderr,
                )

    def _declared_body_changed(
        self, h: Evolvable, fid: int, number: int, parents: tuple[int, ...], active: int | None
    ) -> int | None:
        """Announce an edited declared body and apply `on_source_change`; the active number."""
        assert self.store is not None
        was = f"r{parents[0]}" if parents else "the stored one"
        head = (
            f"symbiont: {h.key}: the declared body changed since its stored revisions were "
            f"made (it was {was}); recorded the new body as r{number}"
        )
        evolved = active is not None and h.revision(active).origin != "default"
        if self.on_source_change == "reset" or not evolved:
            self.store.set_active(fid, number, reason="source change")
            why = (
                f"; on_source_change='reset': it is active (the evolved r{active} stays in the store)"
                if evolved
                else "; it is active"
            )
            print(head + why, file=sys.stderr)
            return number
        print(
            f"{head}; keeping the evolved r{active} active (on_source_change='keep'). Use the "
            f"new body with runtime.activate(fn, {number}), `symbiont rollback {h.key} "
            f"{number}`, or Runtime(on_source_change='reset')",
            file=sys.stderr,
        )
        return active

    def _load_stored(self, h: Evolvable, fid: int | None = None) -> None:
        """Add the lineage's stored revisions this process does not know yet to `h`."""
        if self.store is None:
            return
        fid = fid if fid is not None else self._function_id(h)
        if fid is None:
            return
        known = {r.number for r in h.revisions}
        for rec in self.store.revisions_of(fid):
            if rec.number not in known:
                h.add_revision(_from_record(rec))

    def _active_in_store(self, h: Evolvable) -> int | None:
        """The revision the store says is active (another process may have changed it)."""
        fid = self._function_id(h)
        if fid is None or self.store is None:
            return h.active.number
        return self.store.get_function(fid).active_number

    def _adopt_active(self, h: Evolvable) -> Revision:
        """Make the store's active revision live here too (after losing a compare-and-set,
        the other process's promotion stands, and this process follows it)."""
        number = self._active_in_store(h)
        if number is None or number == h.active.number:
            return h.active
        self._load_stored(h)
        return h.activate(number)

    def _no_source_note(self, h: Evolvable, typecheck: bool | None) -> str | None:
        """Say (once) that a function with no source file is not type-checked; the note."""
        if not (h.options.typecheck if typecheck is None else typecheck):
            return None
        code = getattr(h, "declared_code", None) or h.fn.__code__
        if module_name_of_file(code.co_filename) is not None:
            return None
        note = (
            f"{h.key} has no source file (it was defined in {code.co_filename}, e.g. by exec "
            "or in a REPL): its type check is skipped"
        )
        if (h.key, "no source") not in _ANNOUNCED:
            _ANNOUNCED.add((h.key, "no source"))
            print(f"symbiont: {note}", file=sys.stderr)
        return note

    def _function_id(self, h: Evolvable) -> int | None:
        if self.store is None:
            return None
        fid = self._function_ids.get(h.key)
        if fid is None:
            self._attach(h)
            fid = self._function_ids[h.key]
        return fid

    def _record(self, h: Evolvable, rev: Revision) -> None:
        """Give `rev` its number (from the store when there is one) and keep it."""
        fid = self._function_id(h)
        if fid is None or self.store is None:
            with self._lock:
                rev.number = h.next_number()
        else:
            rec = self.store.add_revision(_to_record(fid, rev, number=-1))
            rev.number = rec.number
        h.add_revision(rev)

    def _update_revision(self, h: Evolvable, rev: Revision) -> None:
        fid = self._function_id(h)
        if fid is not None and self.store is not None:
            self.store.update_revision(
                fid,
                rev.number,
                status=rev.status,
                score=rev.score,
                metrics=rev.metrics,
                diagnostics=[d.to_dict() for d in rev.diagnostics],
            )

    def _set_active(
        self,
        h: Evolvable,
        rev: Revision,
        reason: str = "activate",
        expected: int | None = None,
    ) -> bool:
        """Record `rev` as the active revision in the store; True if it now is.

        `expected` None: unconditional (the user's `activate` / `rollback`). `expected=N`
        (the active revision number when the attempt started, the one the candidate was
        evaluated against): a compare-and-set in one store transaction. False means another
        process promoted something else in between: its promotion stands, nothing was
        written, and the attempt is a conflict (`_adopt_active` follows the winner).
        Without a store: True.
        """
        fid = self._function_id(h)
        if fid is None or self.store is None:
            return True
        if expected is None:
            self.store.set_active(fid, rev.number, reason=reason)
            return True
        return self.store.set_active_if(fid, expected, rev.number, reason=reason)

    def _start_run(self, h: Evolvable, config: EvolveConfig, model: Model) -> int | None:
        fid = self._function_id(h)
        if fid is None or self.store is None:
            return None
        return self.store.start_run(
            fid,
            {
                "model": getattr(model, "name", type(model).__name__),
                "prompt": config.prompt,
                "attempts": config.attempts,
                "direction": config.direction,
                "accept": config.accept if isinstance(config.accept, str) else "custom",
                "check": getattr(config.check, "__name__", None),
                "metric": getattr(config.metric, "__name__", None),
            },
        )

    def _add_attempt(self, run_id: int | None, a: AttemptReport) -> None:
        if run_id is None or self.store is None:
            return
        from symbiont.store import AttemptRecord

        self.store.add_attempt(
            run_id,
            AttemptRecord(
                index=a.index,
                revision_number=a.revision,
                stage=a.stage,
                ok=a.accepted,
                diagnostics=[d.to_dict() for d in a.diagnostics],
                timings=dict(a.timings),
                input_tokens=a.input_tokens,
                output_tokens=a.output_tokens,
                model_latency_s=a.model_latency_s,
                retries=a.retries,
                cost_usd=None,
            ),
        )

    def _finish_run(self, run_id: int | None, report: EvolveReport) -> None:
        if run_id is None or self.store is None:
            return
        last = report.attempts[-1] if report.attempts else None
        if report.accepted:
            outcome = "accepted"
        elif last is not None and last.stage == "model" and not last.repeated:
            outcome = "error"  # the model could not be reached at all
        else:
            outcome = "exhausted"
        self.store.finish_run(run_id, outcome, report.accepted.number if report.accepted else None)


def _open_store(store: Any) -> EvolvableStore | None:
    if store is False:
        return None
    from symbiont.store import EvolvableStore, open_store

    if isinstance(store, EvolvableStore):
        return store
    if store is None or store is True:
        return open_store(None)
    if isinstance(store, str | Path):
        return open_store(store)
    raise DeclarationError(
        "store must be a file path, a postgresql:// URL, an open store, None or False, "
        f"not {store!r}"
    )


def _to_record(function_id: int, rev: Revision, number: int | None = None) -> Any:
    from symbiont.store import RevisionRecord

    return RevisionRecord(
        function_id=function_id,
        number=rev.number if number is None else number,
        source=rev.source,
        reply=rev.reply,
        parents=tuple(rev.parents),
        origin=rev.origin,
        model=rev.model,
        status=rev.status,
        stage=rev.stage,
        diagnostics=[d.to_dict() for d in rev.diagnostics],
        score=rev.score,
        metrics=dict(rev.metrics),
        content_hash=rev.content_hash,
        created_at=rev.created_at,
    )


def _from_record(rec: Any) -> Revision:
    return Revision(
        number=rec.number,
        source=rec.source,
        parents=tuple(rec.parents),
        origin=rec.origin,
        model=rec.model,
        status=rec.status,
        stage=rec.stage,
        diagnostics=tuple(Diagnostic.from_dict(d) for d in rec.diagnostics),
        score=rec.score,
        metrics=dict(rec.metrics),
        content_hash=rec.content_hash,
        reply=rec.reply,
        created_at=rec.created_at or time.time(),
    )


def _fingerprint(h: Evolvable) -> str:
    """The signature fingerprint with the launch-independent module name of the key (the
    signature's own module is `cProfile` when the script runs under `python -m cProfile`)."""
    import dataclasses

    module = module_key(h.fn, getattr(h, "declared_code", None))
    return dataclasses.replace(h.signature, module=module).fingerprint()


def _declared_revision(h: Evolvable) -> Revision:
    """The in-memory revision holding the declared body (its code object is the declared one)."""
    declared_code = getattr(h, "declared_code", None)
    for rev in h.revisions:
        if rev.origin == "default" and rev.code is not None and rev.code is declared_code:
            return rev
    return h.revision(0)


def _renumber_declared(h: Evolvable, declared: Revision, number: int) -> None:
    """Give the declared body the number the store keeps it under (0 unless it was edited).

    The earlier stored body then loads under its own number (r0 is always the first body
    the lineage was declared with), so in memory and in the store a number means one body.
    """
    if declared.number == number:
        return
    with h._lock:  # the handle's own lock: no call may see a half-renumbered list
        was_active = h.active is declared
        h.revisions[:] = [r for r in h.revisions if r is declared or r.number != number]
        declared.number = number
        h.revisions.sort(key=lambda r: r.number)
        if was_active:
            h._active = number


class _AsyncioFailures(logging.Handler):
    """Records the exceptions asyncio's default exception handler logs."""

    def __init__(self, record: Callable[[BaseException], bool]) -> None:
        super().__init__(logging.ERROR)
        self._record = record

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, Exception):
            with contextlib.suppress(Exception):
                self._record(exc)
        # A handler here hides logging's last-resort stderr output: keep the message visible
        # when nothing else would print it.
        last = logging.lastResort
        if (
            last
            and record.levelno >= last.level
            and not _other_handlers(logging.getLogger("asyncio"), self)
        ):
            last.handle(record)


def _other_handlers(logger: logging.Logger, but: logging.Handler) -> bool:
    current: logging.Logger | None = logger
    while current is not None:
        if any(h is not but for h in current.handlers):
            return True
        if not current.propagate:
            break
        current = current.parent  # type: ignore[assignment]
    return False


def _arguments_repr(frame: types.FrameType) -> str:
    """The call's arguments as `name=repr` (reprlib-bounded, at most MAX_ARGS_REPR chars)."""
    code = frame.f_code
    count = code.co_argcount + code.co_kwonlyargcount
    count += bool(code.co_flags & 0x04) + bool(code.co_flags & 0x08)  # *args, **kwargs
    values = frame.f_locals
    parts: list[str] = []
    for name in code.co_varnames[:count]:
        if name not in values:
            continue
        try:
            text = _ARGS_REPR.repr(values[name])
        except Exception:  # a __repr__ that raises must not hide the failure itself
            text = f"<{type(values[name]).__name__} object: repr failed>"
        parts.append(f"{name}={text}")
    out = ", ".join(parts)
    if len(out) > MAX_ARGS_REPR:
        out = out[: MAX_ARGS_REPR - 20] + f"… ({len(out)} chars)"
    return out


def _traceback_text(exc: BaseException) -> str:
    """The formatted traceback; when longer than MAX_TRACEBACK, its head and its innermost
    end (where the error is) are kept."""
    try:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:
        return f"{type(exc).__name__}: (the traceback could not be formatted)"
    if len(text) <= MAX_TRACEBACK:
        return text
    head, tail = MAX_TRACEBACK // 4, MAX_TRACEBACK * 3 // 4
    cut = len(text) - head - tail
    return f"{text[:head]}\n… ({cut} characters cut) …\n{text[-tail:]}"
