"""`Runtime`: the evolvable functions a program declared, their store, and `evolve`.

    runtime = symbiont.Runtime()              # store in $SYMBIONT_HOME or ./.symbiont/
    report = await runtime.evolve(step, model, prompt="...", check=check_step)

A runtime opened on a store brings every evolvable back with its stored active revision
(same signature fingerprint) and records every candidate, accepted or not, with its parents.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from symbiont.diagnostics import Diagnostic
from symbiont.errors import DeclarationError, RevisionError
from symbiont.evaluation import AcceptRule, Check, Direction, Metric
from symbiont.evolvable import Evolvable, Failure, Revision, handle, on_register, registered
from symbiont.evolve import AttemptReport, EvolveConfig, EvolveReport, run_evolve
from symbiont.models.base import Model

if TYPE_CHECKING:
    from symbiont.store import SQLiteStore

StoreArg = "SQLiteStore | str | Path | None | bool"


class Runtime:
    """Knows the evolvable functions, evolves them, persists and resumes their revisions.

    store: None opens the default store (`$SYMBIONT_HOME/symbiont.db`, else
    `./.symbiont/symbiont.db`); a path opens that file; False keeps everything in memory.
    resume: bring each evolvable up with its stored active revision.
    capture_uncaught: also collect exceptions of active revisions that reach
    `sys.excepthook` / `threading.excepthook` (see `take_failures`).
    """

    def __init__(
        self,
        store: Any = None,
        *,
        resume: bool = True,
        capture_uncaught: bool = False,
    ) -> None:
        self.store: SQLiteStore | None = _open_store(store)
        self.resume = resume
        self._function_ids: dict[str, int] = {}
        self._lock = threading.Lock()
        self._unsubscribe = on_register(self._attach)
        for h in registered():
            self._attach(h)
        self._restore_hooks: list[Callable[[], None]] = []
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
        rev = h.activate(number)
        self._set_active(h, rev)
        return rev

    def rollback(self, fn: Callable[..., Any]) -> Revision:
        """Re-activate the revision that was active before the current one."""
        h = handle(fn)
        rev = h.rollback()
        self._set_active(h, rev, reason="rollback")
        return rev

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
    ) -> EvolveReport:
        """Ask `model` for new bodies of `fn` until one is accepted (or attempts run out).

        A candidate is accepted when it passes every pipeline stage, its trial (in a forked
        child) raises nothing, `check(fn)` passes, and — with a metric — it scores no worse
        than the active revision (`accept="better"` demands strictly better). Without a
        model, the offline mutation proposer is used (announced once).
        """
        if direction not in ("maximize", "minimize"):
            raise ValueError(f"direction must be 'maximize' or 'minimize', not {direction!r}")
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        if check is None and metric is None:
            raise ValueError("evolve needs a check, a metric, or both, to judge candidates")
        h = handle(fn)
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
        )
        return await run_evolve(self, h, model, config, on_attempt=on_attempt)

    def evolve_sync(self, fn: Callable[..., Any], model: Model | None = None, **kwargs: Any) -> EvolveReport:
        """`evolve` for code that is not async (runs its own event loop)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.evolve(fn, model, **kwargs))
        raise RuntimeError("evolve_sync was called inside a running event loop; use `await runtime.evolve(...)`")

    # -- failures of the live function ----------------------------------------------------
    def record_failure(self, exc: BaseException) -> bool:
        """Attribute `exc` to the evolvable whose active code raised it; True if one did.

        Its diagnostic is fed into that function's next `evolve` automatically.
        """
        from symbiont.trial import exception_diagnostic

        tb = exc.__traceback__
        codes: list[types.CodeType] = []
        while tb is not None:
            codes.append(tb.tb_frame.f_code)
            tb = tb.tb_next
        for h in registered():
            for code in reversed(codes):  # innermost first
                rev = next((r for r in h.revisions if r.code is code), None)
                if rev is not None:
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
                    h.failures.append(Failure(rev.number, diag, time.time()))
                    return True
        return False

    @contextlib.contextmanager
    def capture_failures(self) -> Iterator[None]:
        """Record (and re-raise) an exception raised by an evolvable inside the block."""
        try:
            yield
        except Exception as exc:
            self.record_failure(exc)
            raise

    def take_failures(self, fn: Callable[..., Any] | None = None) -> list[Failure]:
        """The failures collected since the last call (for one function or all), cleared."""
        out: list[Failure] = []
        handles = [handle(fn)] if fn is not None else registered()
        for h in handles:
            out.extend(h.failures)
            h.failures.clear()
        return out

    def _install_excepthooks(self) -> None:
        previous_sys = sys.excepthook
        previous_thread = threading.excepthook

        def sys_hook(tp: type[BaseException], value: BaseException, tb: types.TracebackType | None) -> None:
            self.record_failure(value)
            previous_sys(tp, value, tb)

        def thread_hook(args: threading.ExceptHookArgs) -> None:
            if args.exc_value is not None:
                self.record_failure(args.exc_value)
            previous_thread(args)

        sys.excepthook = sys_hook
        threading.excepthook = thread_hook

        def restore() -> None:
            sys.excepthook = previous_sys
            threading.excepthook = previous_thread

        self._restore_hooks.append(restore)

    # -- persistence (no-ops without a store) ---------------------------------------------
    def _attach(self, h: Evolvable) -> None:
        if self.store is None:
            return
        fr = self.store.ensure_function(h.key, h.signature.fingerprint(), h.signature.render())
        with self._lock:
            self._function_ids[h.key] = fr.id
        stored = self.store.revisions(h.key, h.signature.fingerprint())
        if not stored:
            # First time this lineage is seen: revision 0 is the declared default body.
            rev0 = h.revision(0)
            self.store.add_revision(_to_record(fr.id, rev0))
            self.store.set_active(fr.id, 0)
            return
        known = {r.number for r in h.revisions}
        for rec in stored:
            if rec.number not in known:
                h.add_revision(_from_record(rec))
        if self.resume and fr.active_number not in (None, h.active.number):
            try:
                h.activate(fr.active_number)
            except RevisionError as exc:
                print(
                    f"symbiont: {h.key}: could not resume revision {fr.active_number}: {exc}; "
                    "keeping the declared body",
                    file=sys.stderr,
                )

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

    def _set_active(self, h: Evolvable, rev: Revision, reason: str = "activate") -> None:
        fid = self._function_id(h)
        if fid is not None and self.store is not None:
            self.store.set_active(fid, rev.number, reason=reason)

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


def _open_store(store: Any) -> SQLiteStore | None:
    if store is False:
        return None
    from symbiont.store import SQLiteStore, open_store

    if isinstance(store, SQLiteStore):
        return store
    if store is None or store is True:
        return open_store(None)
    if isinstance(store, str | Path):
        return open_store(store)
    raise DeclarationError(f"store must be a path, a SQLiteStore, None or False, not {store!r}")


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
