"""The evolvable-function repository, written once for both backends.

`EvolvableStore` implements the whole `symbiont.store.Store` protocol (lineages, revisions,
activations, rollback, live failures, evolve runs) in the SQL that SQLite and PostgreSQL
both speak: `?` placeholders (turned into psycopg's `%s` by the PostgreSQL store),
`INSERT ... RETURNING`, `ON CONFLICT ... DO UPDATE`, no engine-specific functions. A
backend supplies only what really differs:

- `_write(op, what)` / `_read(op)`: run `op(conn)` in one transaction, where `conn` has
  `execute(sql, params)` returning a cursor and `executemany(sql, rows)`;
- `_for_update`: appended to the "does this function exist" query that opens every write to
  a lineage. SQLite's IMMEDIATE transaction already holds the file's single write lock, so
  it is empty there; PostgreSQL runs writers concurrently, so it is `FOR UPDATE`: the
  function's row stays locked until the transaction ends, and revision numbers (MAX + 1),
  the compare-and-set activation and the failure ring are decided by one writer at a time
  per lineage — across processes and machines — while other lineages proceed in parallel.

Orderings are by integers, or done in Python (text keys), so both backends return the same
lists whatever the database's collation. A `RETURNING` statement is read with `fetchall`: a
SQLite statement not read to its end would still be pending at COMMIT.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar

from symbiont.errors import CorruptStoreError, RevisionError, StoreError
from symbiont.store.records import (
    ORIGINS,
    STATUSES,
    ActivationRecord,
    AttemptRecord,
    FailureRecord,
    FunctionRecord,
    RevisionRecord,
    RunRecord,
)

if TYPE_CHECKING:
    from symbiont.store.repository import Store
    from symbiont.store.searches import SearchRepository

T = TypeVar("T")


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Any: ...


class Sql(Protocol):
    """What a repository needs of a connection inside a transaction."""

    def execute(self, sql: str, params: Any = ..., /) -> Cursor: ...

    def executemany(self, sql: str, rows: Iterable[Any], /) -> Any: ...


@dataclass(frozen=True, slots=True)
class Pricing:
    """USD per 1,000 tokens, to turn an attempt's token counts into a cost."""

    price_per_1k_input: float
    price_per_1k_output: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (
            input_tokens / 1000.0 * self.price_per_1k_input
            + output_tokens / 1000.0 * self.price_per_1k_output
        )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Pricing | None:
        """From `SYMBIONT_PRICE_IN` / `SYMBIONT_PRICE_OUT` (USD per 1k tokens); None if unset.

        Setting only one of them prices the other kind of token at zero.
        """
        env = os.environ if environ is None else environ
        values: dict[str, float] = {}
        for name in ("SYMBIONT_PRICE_IN", "SYMBIONT_PRICE_OUT"):
            raw = env.get(name, "").strip()
            if not raw:
                continue
            try:
                value = float(raw)
            except ValueError:
                raise StoreError(
                    f"{name}={raw!r} is not a number; set it to the price in USD per 1,000 "
                    "tokens, e.g. 0.005"
                ) from None
            if not math.isfinite(value) or value < 0:
                raise StoreError(
                    f"{name}={raw!r} must be a non-negative price in USD per 1k tokens"
                )
            values[name] = value
        if not values:
            return None
        return cls(values.get("SYMBIONT_PRICE_IN", 0.0), values.get("SYMBIONT_PRICE_OUT", 0.0))


# One encoder for every write: `json.dumps` with options builds a new encoder per call.
_ENCODE = json.JSONEncoder(sort_keys=True, allow_nan=True).encode


def dumps(value: Any) -> str:
    """JSON as the store keeps it (sorted keys; NaN allowed, as Python writes it)."""
    if not value and isinstance(value, list | dict):  # most diagnostics and metrics
        return "[]" if isinstance(value, list) else "{}"
    return _ENCODE(value)


def score_value(value: float | None) -> float | None:
    """NaN is stored as NULL on every backend (SQLite would do so anyway; PostgreSQL would
    keep a NaN), so both read back None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


class EvolvableStore:
    """The `Store` protocol over a backend's `_write` / `_read` (see the module docstring)."""

    path: Path | str  # where the store is, for messages (a PostgreSQL URL has no password)
    pricing: Pricing | None
    _for_update: str = ""
    # The backend's other repositories, each in its own module (one seam: no SQL above
    # symbiont.store): the capability library's records and the agent transcripts.
    capabilities: Any
    transcripts: Any

    # -- what a backend provides -----------------------------------------------------------
    def _write(self, op: Callable[[Any], T], what: str = "writing") -> T:
        raise NotImplementedError

    def _read(self, op: Callable[[Any], T]) -> T:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def index_storage(self) -> Any:
        """A new persistence handle for one retrieval index."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @functools.cached_property
    def searches(self) -> SearchRepository:
        """Population searches and their candidates (`symbiont.store.searches`)."""
        from symbiont.store.searches import SearchRepository

        return SearchRepository(self)

    def _lock_function(self, conn: Sql, function_id: int) -> bool:
        """Whether the function exists; inside a write, also the lineage's lock (module doc)."""
        return self._lock_lineage(conn, function_id) is not None

    def _lock_lineage(self, conn: Sql, function_id: int) -> tuple[int | None] | None:
        """The function's `(active_number,)`, None if there is no such function; inside a
        write, also the lineage's lock — so the active number read here stays true until
        the transaction ends (a compare-and-set needs no second read)."""
        row = conn.execute(
            f"SELECT active_number FROM functions WHERE id = ?{self._for_update}", (function_id,)
        ).fetchone()
        return None if row is None else (row[0],)

    # -- functions ------------------------------------------------------------------------
    def ensure_function(self, key: str, fingerprint: str, signature_text: str) -> FunctionRecord:
        """The lineage for (key, fingerprint), created on first sight; marks it last seen now.

        A changed fingerprint gives a new lineage; the earlier one stays, readable.
        """
        if not key or not fingerprint:
            raise StoreError("a function needs a non-empty key and signature fingerprint")
        now = time.time()

        def op(conn: Sql) -> FunctionRecord:
            row = conn.execute(
                f"""INSERT INTO functions (key, fingerprint, signature_text, created_at,
                       last_seen_at)
                    VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (key, fingerprint) DO UPDATE
                    SET signature_text = excluded.signature_text,
                        last_seen_at = excluded.last_seen_at
                    RETURNING {_FUNCTION_COLUMNS}""",
                (key, fingerprint, signature_text, now, now),
            ).fetchall()[0]
            return _function(row)

        return self._write(op)

    def get_function(self, function_id: int) -> FunctionRecord:
        row = self._read(
            lambda c: c.execute(
                f"SELECT {_FUNCTION_COLUMNS} FROM functions WHERE id = ?", (function_id,)
            ).fetchone()
        )
        if row is None:
            raise RevisionError(f"the store {self.path} has no function with id {function_id}")
        return _function(row)

    def lineages(self, key: str) -> list[FunctionRecord]:
        """Every lineage of `key`, the one a program declared most recently first."""
        rows = self._read(
            lambda c: c.execute(
                f"""SELECT {_FUNCTION_COLUMNS} FROM functions WHERE key = ?
                    ORDER BY last_seen_at DESC, id DESC""",
                (key,),
            ).fetchall()
        )
        return [_function(r) for r in rows]

    def all_keys(self) -> list[str]:
        rows = self._read(lambda c: c.execute("SELECT DISTINCT key FROM functions").fetchall())
        return sorted(r[0] for r in rows)

    def find_functions(self, pattern: str) -> list[FunctionRecord]:
        """Lineages whose key is `pattern`, else whose key ends with `.pattern`.

        So "step", "counter.step" and "examples.counter.step" all find
        `examples.counter.step`; callers decide what to do when several keys match.
        """
        pattern = pattern.strip()
        if not pattern:
            return []
        exact = self.lineages(pattern)
        if exact:
            return exact
        like = "%." + pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._read(
            lambda c: c.execute(
                f"""SELECT {_FUNCTION_COLUMNS} FROM functions WHERE key LIKE ? ESCAPE '\\'
                    ORDER BY last_seen_at DESC, id DESC""",
                (like,),
            ).fetchall()
        )
        # LIKE ignores ASCII case in SQLite and not in PostgreSQL: compare exactly here.
        found = [_function(r) for r in rows if r[1].endswith("." + pattern)]
        return sorted(found, key=lambda f: f.key)  # stable: newest lineage first per key

    def resolve_key(self, pattern: str) -> str:
        """The one function key `pattern` names; RevisionError with close matches otherwise."""
        found = self.find_functions(pattern)
        keys = sorted({f.key for f in found})
        if len(keys) == 1:
            return keys[0]
        if len(keys) > 1:
            raise RevisionError(
                f"{pattern!r} matches several functions in {self.path}: {', '.join(keys)}; "
                "give more of the name"
            )
        known = self.all_keys()
        if not known:
            raise RevisionError(
                f"no function {pattern!r}: the store {self.path} has no functions yet "
                "(run a program that declares an @evolvable with this store first)"
            )
        candidates = {k: k for k in known}
        for k in known:  # also match against suffixes, so "stpe" finds "counter.step"
            parts = k.split(".")
            for i in range(1, len(parts)):
                candidates.setdefault(".".join(parts[i:]), k)
        close = difflib.get_close_matches(pattern, list(candidates), n=5, cutoff=0.5)
        suggestions = list(dict.fromkeys(candidates[c] for c in close))
        hint = (
            f"close matches: {', '.join(suggestions)}"
            if suggestions
            else f"known functions: {', '.join(known[:10])}" + (", ..." if len(known) > 10 else "")
        )
        raise RevisionError(f"no function {pattern!r} in the store {self.path}; {hint}")

    def _lineage(self, conn: Sql, key: str, fingerprint: str | None) -> FunctionRecord | None:
        if fingerprint is None:
            row = conn.execute(
                f"""SELECT {_FUNCTION_COLUMNS} FROM functions WHERE key = ?
                    ORDER BY last_seen_at DESC, id DESC LIMIT 1""",
                (key,),
            ).fetchone()
        else:
            row = conn.execute(
                f"SELECT {_FUNCTION_COLUMNS} FROM functions WHERE key = ? AND fingerprint = ?",
                (key, fingerprint),
            ).fetchone()
        return _function(row) if row else None

    # -- revisions ------------------------------------------------------------------------
    def add_revision(self, rev: RevisionRecord) -> RevisionRecord:
        """Insert `rev`; returns it with `id`, `created_at` (and `number`) filled in.

        `number == -1` allocates the next number inside the write transaction, so two
        processes adding revisions to one function at once never collide. Re-adding an
        existing number with the same content hash returns the stored one (two programs
        starting at once both record revision 0); a different content is an error.
        """
        self._check_revision(rev)

        def op(conn: Sql) -> RevisionRecord:
            if not self._lock_function(conn, rev.function_id):
                raise StoreError(
                    f"cannot add a revision: the store {self.path} has no function with id "
                    f"{rev.function_id} (call ensure_function first)"
                )
            number: int | None = rev.number
            if number == -1:
                number = None  # the next one, allocated by the INSERT itself
            else:
                existing = conn.execute(
                    f"SELECT {_REVISION_COLUMNS} FROM revisions WHERE function_id = ? AND number = ?",
                    (rev.function_id, number),
                ).fetchone()
                if existing is not None:
                    stored = self._revision(conn, existing)
                    if stored.content_hash == rev.content_hash and stored.origin == rev.origin:
                        return stored
                    raise RevisionError(
                        f"function id {rev.function_id} already has a different revision "
                        f"{number}; pass number=-1 to get the next free number"
                    )
            return _insert_revision(conn, rev, number)

        return self._write(op)

    def _check_revision(self, rev: RevisionRecord) -> None:
        if rev.origin not in ORIGINS:
            raise StoreError(
                f"revision origin must be one of {', '.join(ORIGINS)}, not {rev.origin!r}"
            )
        if rev.status not in STATUSES:
            raise StoreError(
                f"revision status must be one of {', '.join(STATUSES)}, not {rev.status!r}"
            )
        if rev.number < -1:
            raise StoreError(f"revision number must be >= 0 (or -1 to allocate), not {rev.number}")

    def record_declared_body(self, rev: RevisionRecord) -> tuple[RevisionRecord, bool]:
        """Make sure the lineage's newest `default` revision is the declared body `rev`.

        In one transaction: when the newest revision of origin `default` has `rev`'s content
        hash, it is returned with False; otherwise `rev` is added under the next number (0
        for a new lineage), with that earlier default body as its parent, and returned with
        True. Two processes starting at once with the same edited body record it once.
        """
        if rev.origin != "default":
            raise StoreError(f"a declared body has origin 'default', not {rev.origin!r}")
        self._check_revision(rev)

        def op(conn: Sql) -> tuple[RevisionRecord, bool]:
            if not self._lock_function(conn, rev.function_id):
                raise StoreError(
                    f"cannot record a declared body: the store {self.path} has no function "
                    f"with id {rev.function_id} (call ensure_function first)"
                )
            row = conn.execute(
                f"""SELECT {_REVISION_COLUMNS} FROM revisions
                    WHERE function_id = ? AND origin = 'default' ORDER BY number DESC LIMIT 1""",
                (rev.function_id,),
            ).fetchone()
            latest = self._revision(conn, row) if row is not None else None
            if latest is not None and latest.content_hash == rev.content_hash:
                return latest, False
            parents = (latest.number,) if latest is not None else ()
            return _insert_revision(conn, replace(rev, parents=parents)), True

        return self._write(op)

    def update_revision(
        self,
        function_id: int,
        number: int,
        *,
        status: str | None = None,
        score: float | None = None,
        metrics: dict[str, float] | None = None,
        diagnostics: list[dict[str, Any]] | None = None,
    ) -> None:
        """Change what is known about a revision after its trial; None leaves a field as is."""
        if status is not None and status not in STATUSES:
            raise StoreError(
                f"revision status must be one of {', '.join(STATUSES)}, not {status!r}"
            )
        sets: list[str] = []
        values: list[Any] = []
        if status is not None:
            sets.append("status = ?")
            values.append(status)
        if score is not None:
            sets.append("score = ?")
            values.append(score_value(score))
        if metrics is not None:
            sets.append("metrics = ?")
            values.append(dumps(dict(metrics)))
        if diagnostics is not None:
            sets.append("diagnostics = ?")
            values.append(dumps(list(diagnostics)))

        def op(conn: Sql) -> None:
            if sets:
                cur = conn.execute(
                    f"UPDATE revisions SET {', '.join(sets)} WHERE function_id = ? AND number = ?",
                    (*values, function_id, number),
                )
                found = cur.rowcount > 0
            else:
                found = (
                    conn.execute(
                        "SELECT 1 FROM revisions WHERE function_id = ? AND number = ?",
                        (function_id, number),
                    ).fetchone()
                    is not None
                )
            if not found:
                raise RevisionError(
                    f"cannot update revision {number} of function id {function_id}: not in "
                    f"the store {self.path}"
                )

        self._write(op)

    def next_revision_number(self, function_id: int) -> int:
        """The number the next revision would get now (use `number=-1` to insert atomically)."""
        return self._read(lambda c: _next_number(c, function_id))

    def revisions(self, key: str, fingerprint: str | None = None) -> list[RevisionRecord]:
        """Every revision of a lineage in number order; None: the newest lineage of `key`."""

        def op(conn: Sql) -> list[RevisionRecord]:
            fr = self._lineage(conn, key, fingerprint)
            return [] if fr is None else self._revisions_of(conn, fr.id)

        return self._read(op)

    def revisions_of(self, function_id: int) -> list[RevisionRecord]:
        return self._read(lambda c: self._revisions_of(c, function_id))

    def get_revision(self, key: str, number: int, fingerprint: str | None = None) -> RevisionRecord:
        def op(conn: Sql) -> RevisionRecord:
            fr = self._lineage(conn, key, fingerprint)
            if fr is None:
                raise RevisionError(f"no function {key!r} in the store {self.path}")
            row = conn.execute(
                f"SELECT {_REVISION_COLUMNS} FROM revisions WHERE function_id = ? AND number = ?",
                (fr.id, number),
            ).fetchone()
            if row is None:
                top = _next_number(conn, fr.id) - 1
                have = f"it has revisions 0–{top}" if top >= 0 else "it has no revisions"
                raise RevisionError(f"{key} has no revision {number}; {have}")
            return self._revision(conn, row)

        return self._read(op)

    def find_by_hash(self, function_id: int, content_hash: str) -> RevisionRecord | None:
        """The earliest revision of this lineage with exactly this content hash, if any."""

        def op(conn: Sql) -> RevisionRecord | None:
            row = conn.execute(
                f"""SELECT {_REVISION_COLUMNS} FROM revisions
                    WHERE function_id = ? AND content_hash = ? ORDER BY number LIMIT 1""",
                (function_id, content_hash),
            ).fetchone()
            return self._revision(conn, row) if row else None

        return self._read(op)

    def _revisions_of(self, conn: Sql, function_id: int) -> list[RevisionRecord]:
        parents: dict[int, list[int]] = {}
        for number, parent in conn.execute(
            """SELECT number, parent_number FROM revision_parents WHERE function_id = ?
               ORDER BY number, position""",
            (function_id,),
        ).fetchall():
            parents.setdefault(number, []).append(parent)
        rows = conn.execute(
            f"SELECT {_REVISION_COLUMNS} FROM revisions WHERE function_id = ? ORDER BY number",
            (function_id,),
        ).fetchall()
        return [self._revision(conn, r, parents.get(r[1], [])) for r in rows]

    def _revision(
        self, conn: Sql, row: tuple[Any, ...], parents: Iterable[int] | None = None
    ) -> RevisionRecord:
        (
            function_id, number, source, reply, origin, model, status, stage,
            diagnostics, score, metrics, content_hash, created_at, rid,
        ) = row  # fmt: skip
        if parents is None:
            parents = [
                p
                for (p,) in conn.execute(
                    """SELECT parent_number FROM revision_parents
                       WHERE function_id = ? AND number = ? ORDER BY position""",
                    (function_id, number),
                ).fetchall()
            ]
        where = f"revision {number} of function id {function_id}"
        return RevisionRecord(
            function_id=function_id,
            number=number,
            source=source,
            reply=reply,
            parents=tuple(parents),
            origin=origin,
            model=model,
            status=status,
            stage=stage,
            diagnostics=self._json(diagnostics, list, where),
            score=score,
            metrics=self._json(metrics, dict, where),
            content_hash=content_hash,
            created_at=created_at,
            id=rid,
        )

    def _json(self, text: str, kind: type, where: str) -> Any:
        try:
            value = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise CorruptStoreError(
                f"the store {self.path} has unreadable JSON in {where}: {exc}"
            ) from exc
        if not isinstance(value, kind):
            raise CorruptStoreError(
                f"the store {self.path} has a {type(value).__name__} where a {kind.__name__} "
                f"belongs in {where}"
            )
        return value

    # -- activation -----------------------------------------------------------------------
    def set_active(self, function_id: int, number: int, *, reason: str = "activate") -> None:
        """Make accepted revision `number` the lineage's active one (used at the next start).

        Each change is also appended to the activation history, which `rollback` replays.
        """
        self._write(lambda c: self._set_active(c, function_id, number, reason))

    def set_active_if(
        self,
        function_id: int,
        expected_active: int | None,
        new: int,
        *,
        reason: str = "activate",
    ) -> bool:
        """Compare-and-set: make `new` active only if `expected_active` still is; True if so.

        Read and write happen in one transaction holding the lineage's lock, so of two
        processes that evaluated candidates against the same active revision, exactly one
        promotes; the other gets False and the winner's activation stands. `expected_active`
        None means "no revision is active yet". Setting the revision that is already active
        is True.
        """

        def op(conn: Sql) -> bool:
            row = conn.execute(
                f"SELECT active_number FROM functions WHERE id = ?{self._for_update}",
                (function_id,),
            ).fetchone()
            if row is None:
                raise RevisionError(f"the store {self.path} has no function with id {function_id}")
            active = row[0]
            if active == new:
                return True
            if active != expected_active:
                return False
            self._set_active(conn, function_id, new, reason)
            return True

        return self._write(op)

    def _set_active(self, conn: Sql, function_id: int, number: int, reason: str) -> None:
        if not self._lock_function(conn, function_id):
            raise RevisionError(f"the store {self.path} has no function with id {function_id}")
        key, active, status, stage = conn.execute(
            """SELECT f.key, f.active_number, r.status, r.stage FROM functions f
               LEFT JOIN revisions r ON r.function_id = f.id AND r.number = ?
               WHERE f.id = ?""",
            (number, function_id),
        ).fetchone()
        if status is None:
            raise RevisionError(f"{key} has no revision {number} in the store {self.path}")
        if status != "accepted":
            raise RevisionError(
                f"{key} revision {number} was rejected at the {stage} stage and cannot be made active"
            )
        if active == number:
            return
        activate(conn, function_id, number, reason)

    def active_revision(self, key: str, fingerprint: str) -> RevisionRecord | None:
        def op(conn: Sql) -> RevisionRecord | None:
            row = conn.execute(
                f"""SELECT {_REVISION_COLUMNS_R} FROM functions f
                    JOIN revisions r ON r.function_id = f.id AND r.number = f.active_number
                    WHERE f.key = ? AND f.fingerprint = ?""",
                (key, fingerprint),
            ).fetchone()
            return self._revision(conn, row) if row else None

        return self._read(op)

    def activations(self, function_id: int) -> list[ActivationRecord]:
        rows = self._read(
            lambda c: c.execute(
                """SELECT function_id, number, reason, at FROM activations
                   WHERE function_id = ? ORDER BY id""",
                (function_id,),
            ).fetchall()
        )
        return [ActivationRecord(*r) for r in rows]

    def previous_active(self, function_id: int) -> int | None:
        """The revision `rollback` without a number would activate; None if there is none."""
        return self._read(lambda c: _previous_active(c, function_id))

    def rollback(self, function_id: int, number: int | None = None) -> int:
        """Activate `number`, or the previously active accepted revision; returns it.

        The activation history is replayed as a stack (an activation pushes, a rollback pops
        back to its target), so repeated rollbacks walk further back instead of flipping
        between two revisions — as `Evolvable.rollback` does in memory.
        """

        def op(conn: Sql) -> int:
            target = number
            if target is None:
                self._lock_function(conn, function_id)
                target = _previous_active(conn, function_id)
                if target is None:
                    key = conn.execute(
                        "SELECT key FROM functions WHERE id = ?", (function_id,)
                    ).fetchone()
                    raise RevisionError(
                        f"{key[0] if key else function_id}: nothing to roll back to (no earlier "
                        "accepted revision was active)"
                    )
            self._set_active(conn, function_id, target, "rollback")
            return target

        return self._write(op)

    # -- live failures ----------------------------------------------------------------------
    def add_failure(self, failure: FailureRecord, *, keep: int = 100) -> FailureRecord:
        """Record a live failure; only the newest `keep` of its lineage are kept (a ring).

        The insert and the trim are one transaction holding the lineage's lock, so the ring
        never holds more than `keep` rows, whatever several processes do at once.
        """
        if keep < 1:
            raise StoreError(f"keep must be at least 1, not {keep}")

        def op(conn: Sql) -> FailureRecord:
            if not self._lock_function(conn, failure.function_id):
                raise StoreError(
                    f"cannot record a failure: the store {self.path} has no function with id "
                    f"{failure.function_id}"
                )
            (rid,) = conn.execute(
                """INSERT INTO live_failures (function_id, revision_number, at, kind, message,
                       args, traceback, diagnostic, pid)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id""",
                (
                    failure.function_id,
                    failure.revision_number,
                    failure.at,
                    failure.kind,
                    failure.message,
                    failure.args,
                    failure.traceback,
                    dumps(dict(failure.diagnostic)),
                    failure.pid,
                ),
            ).fetchall()[0]
            conn.execute(
                """DELETE FROM live_failures WHERE function_id = ? AND id NOT IN (
                       SELECT id FROM live_failures WHERE function_id = ?
                       ORDER BY id DESC LIMIT ?)""",
                (failure.function_id, failure.function_id, keep),
            )
            return replace(failure, id=rid)

        return self._write(op)

    def failures(self, function_id: int, limit: int | None = None) -> list[FailureRecord]:
        """The lineage's recorded live failures, oldest first (the newest `limit` if given)."""
        newest = "" if limit is None or limit < 0 else f" LIMIT {int(limit)}"
        rows = self._read(
            lambda c: c.execute(
                f"""SELECT function_id, revision_number, at, kind, message, args, traceback,
                           diagnostic, pid, id
                    FROM live_failures WHERE function_id = ? ORDER BY id DESC{newest}""",
                (function_id,),
            ).fetchall()
        )
        return [
            FailureRecord(
                function_id=fid,
                revision_number=number,
                at=at,
                kind=kind,
                message=message,
                args=args,
                traceback=tb,
                diagnostic=self._json(diagnostic, dict, f"live failure {rid}"),
                pid=pid,
                id=rid,
            )
            for (fid, number, at, kind, message, args, tb, diagnostic, pid, rid) in reversed(rows)
        ]

    # -- evolve runs ----------------------------------------------------------------------
    def start_run(self, function_id: int, config: dict[str, Any]) -> int:
        now = time.time()

        def op(conn: Sql) -> int:
            (rid,) = conn.execute(
                "INSERT INTO evolve_runs (function_id, config, started_at) VALUES (?, ?, ?) "
                "RETURNING id",
                (function_id, json.dumps(config, sort_keys=True, default=str), now),
            ).fetchall()[0]
            return int(rid)

        return self._write(op)

    def add_attempt(self, run_id: int, attempt: AttemptRecord) -> None:
        """Record one attempt; its cost comes from the store's pricing when not given.

        Reporting the same attempt index again replaces the earlier report.
        """
        cost = attempt.cost_usd
        if cost is None and self.pricing is not None:
            cost = self.pricing.cost(attempt.input_tokens or 0, attempt.output_tokens or 0)
        columns = (
            "run_id", "idx", "revision_number", "stage", "ok", "diagnostics", "timings",
            "input_tokens", "output_tokens", "model_latency_s", "retries", "cost_usd",
            "created_at",
        )  # fmt: skip
        replaced = ", ".join(f"{c} = excluded.{c}" for c in columns[2:])

        def op(conn: Sql) -> None:
            if conn.execute("SELECT 1 FROM evolve_runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise StoreError(f"no evolve run {run_id} in the store {self.path}")
            conn.execute(
                f"""INSERT INTO evolve_attempts ({", ".join(columns)})
                    VALUES ({", ".join("?" for _ in columns)})
                    ON CONFLICT (run_id, idx) DO UPDATE SET {replaced}""",
                (
                    run_id,
                    attempt.index,
                    attempt.revision_number,
                    attempt.stage,
                    1 if attempt.ok else 0,
                    dumps(list(attempt.diagnostics)),
                    dumps(dict(attempt.timings)),
                    int(attempt.input_tokens or 0),
                    int(attempt.output_tokens or 0),
                    float(attempt.model_latency_s or 0.0),
                    int(attempt.retries or 0),
                    cost,
                    time.time(),
                ),
            )

        self._write(op)

    def finish_run(self, run_id: int, outcome: str, accepted_number: int | None) -> None:
        now = time.time()

        def op(conn: Sql) -> None:
            cur = conn.execute(
                "UPDATE evolve_runs SET ended_at = ?, outcome = ?, accepted_number = ? WHERE id = ?",
                (now, outcome, accepted_number, run_id),
            )
            if cur.rowcount == 0:
                raise StoreError(f"no evolve run {run_id} in the store {self.path}")

        self._write(op)

    def runs(self, limit: int = 20, key: str | None = None) -> list[RunRecord]:
        """The most recent evolve runs (newest first), optionally of one function key."""
        where, args = ("WHERE f.key = ?", (key,)) if key is not None else ("", ())
        rows = self._read(
            lambda c: c.execute(
                f"{_RUNS_QUERY} {where} GROUP BY r.id, f.key "
                "ORDER BY r.started_at DESC, r.id DESC LIMIT ?",
                (*args, int(limit)),
            ).fetchall()
        )
        return [self._run(r) for r in rows]

    def run(self, run_id: int) -> RunRecord:
        """One run with its attempt records."""

        def op(conn: Sql) -> RunRecord:
            row = conn.execute(
                f"{_RUNS_QUERY} WHERE r.id = ? GROUP BY r.id, f.key", (run_id,)
            ).fetchone()
            if row is None:
                raise StoreError(f"no evolve run {run_id} in the store {self.path}")
            rec = self._run(row)
            where = f"attempts of run {run_id}"
            for a in conn.execute(
                """SELECT idx, revision_number, stage, ok, diagnostics, timings, input_tokens,
                          output_tokens, model_latency_s, retries, cost_usd
                   FROM evolve_attempts WHERE run_id = ? ORDER BY idx""",
                (run_id,),
            ).fetchall():
                rec.attempt_records.append(
                    AttemptRecord(
                        index=a[0],
                        revision_number=a[1],
                        stage=a[2],
                        ok=bool(a[3]),
                        diagnostics=self._json(a[4], list, where),
                        timings=self._json(a[5], dict, where),
                        input_tokens=a[6],
                        output_tokens=a[7],
                        model_latency_s=a[8],
                        retries=a[9],
                        cost_usd=a[10],
                    )
                )
            return rec

        return self._read(op)

    def _run(self, row: tuple[Any, ...]) -> RunRecord:
        (rid, key, config, started, ended, outcome, accepted, fid, n, tin, tout, cost) = row
        return RunRecord(
            id=rid,
            function_key=key,
            config=self._json(config, dict, f"evolve run {rid}"),
            started_at=started,
            ended_at=ended,
            outcome=outcome,
            accepted_number=accepted,
            attempts=n,
            input_tokens=tin,
            output_tokens=tout,
            cost_usd=cost,
            duration_s=(ended - started) if ended is not None else None,
            function_id=fid,
        )


# -- helpers (inside the caller's transaction) -----------------------------------------------

_FUNCTION_COLUMNS = "id, key, fingerprint, signature_text, created_at, active_number, last_seen_at"
_REVISION_FIELDS = (
    "function_id", "number", "source", "reply", "origin", "model", "status", "stage",
    "diagnostics", "score", "metrics", "content_hash", "created_at", "id",
)  # fmt: skip
_REVISION_COLUMNS = ", ".join(_REVISION_FIELDS)
_REVISION_COLUMNS_R = ", ".join(f"r.{c}" for c in _REVISION_FIELDS)
# Sums of integer columns are NUMERIC in PostgreSQL: cast back to integers.
_RUNS_QUERY = """
    SELECT r.id, f.key, r.config, r.started_at, r.ended_at, r.outcome, r.accepted_number,
           r.function_id, COUNT(a.idx), CAST(COALESCE(SUM(a.input_tokens), 0) AS BIGINT),
           CAST(COALESCE(SUM(a.output_tokens), 0) AS BIGINT), SUM(a.cost_usd)
    FROM evolve_runs r
    JOIN functions f ON f.id = r.function_id
    LEFT JOIN evolve_attempts a ON a.run_id = r.id
"""


def _function(row: tuple[Any, ...]) -> FunctionRecord:
    return FunctionRecord(*row)


def next_number(conn: Sql, function_id: int) -> int:
    """The next revision number of a lineage (hold its lock when inserting with it)."""
    row = conn.execute(
        "SELECT COALESCE(MAX(number) + 1, 0) FROM revisions WHERE function_id = ?",
        (function_id,),
    ).fetchone()
    return int(row[0])


_next_number = next_number


_INSERT_REVISION = """INSERT INTO revisions (function_id, number, source, reply, origin, model,
        status, stage, diagnostics, score, metrics, content_hash, created_at)
    VALUES (?, {number}, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id, number"""
_INSERT_NUMBERED = _INSERT_REVISION.format(number="?")
# The next number read by the INSERT itself (one statement: the index's last entry, + 1).
_INSERT_NEXT = _INSERT_REVISION.format(
    number="(SELECT COALESCE(MAX(number) + 1, 0) FROM revisions WHERE function_id = ?)"
)


def insert_revision(conn: Sql, rev: RevisionRecord, number: int | None = None) -> RevisionRecord:
    """Insert `rev` as revision `number` with its parents (inside the caller's transaction);
    `rev` with its number, id and creation time.

    `number` None: the lineage's next number (MAX + 1), allocated by the INSERT statement
    itself; the caller holds the lineage's lock (see the module docstring), so no other
    writer can take the same number before the commit.
    """
    rid, number, created, parents = insert_revision_row(conn, rev, number)
    return replace(
        rev,
        number=number,
        id=rid,
        created_at=created,
        parents=parents,
        diagnostics=list(rev.diagnostics),
        metrics=dict(rev.metrics),
    )


def insert_revision_row(
    conn: Sql,
    rev: RevisionRecord,
    number: int | None = None,
    *,
    parents_to: list[tuple[int, int, int, int]] | None = None,
) -> tuple[int, int, float, tuple[int, ...]]:
    """`insert_revision` without building the stored record: (id, number, created_at,
    parents), for a caller that needs only the number (a search's candidate). With
    `parents_to`, the parent rows are appended to it for the caller to insert later in the
    same transaction (`insert_parent_rows`: one statement for many revisions)."""
    created = rev.created_at if rev.created_at is not None else time.time()
    parents = tuple(int(p) for p in rev.parents)
    rid, number = conn.execute(
        _INSERT_NEXT if number is None else _INSERT_NUMBERED,
        (
            rev.function_id,
            rev.function_id if number is None else number,
            rev.source,
            rev.reply or "",
            rev.origin,
            rev.model,
            rev.status,
            rev.stage,
            dumps(list(rev.diagnostics)),
            score_value(rev.score),
            dumps(dict(rev.metrics)),
            rev.content_hash,
            created,
        ),
    ).fetchall()[0]
    rows = [(rev.function_id, int(number), i, p) for i, p in enumerate(parents)]
    if parents_to is not None:
        parents_to.extend(rows)
    else:
        insert_parent_rows(conn, rows)
    return int(rid), int(number), created, parents


def insert_parent_rows(conn: Sql, rows: list[tuple[int, int, int, int]]) -> None:
    """(function id, number, position, parent number) rows of `revision_parents`, in one
    statement (one round trip to a server), whatever the crossover."""
    for start in range(0, len(rows), 200):  # within SQLite's 999 bound parameters
        part = rows[start : start + 200]
        conn.execute(
            "INSERT INTO revision_parents (function_id, number, position, parent_number) "
            "VALUES " + ", ".join("(?, ?, ?, ?)" for _ in part),
            [x for row in part for x in row],
        )


_insert_revision = insert_revision


def activate(conn: Sql, function_id: int, number: int, reason: str) -> None:
    """Make `number` the lineage's active revision and append it to the activation history
    (the caller holds the lineage's lock and has checked that the revision is accepted)."""
    record_activations(conn, [(function_id, number, reason, time.time())])


def record_activations(conn: Sql, activations: list[tuple[int, int, str, float]]) -> None:
    """`activate` for several (function id, number, reason, time) in order: each one goes
    into the history, and each lineage's active number is set once, to its last one."""
    for function_id, number in {a[0]: a[1] for a in activations}.items():
        conn.execute("UPDATE functions SET active_number = ? WHERE id = ?", (number, function_id))
    conn.executemany(
        "INSERT INTO activations (function_id, number, reason, at) VALUES (?, ?, ?, ?)",
        activations,
    )


def _activation_stack(conn: Sql, function_id: int) -> list[int]:
    stack: list[int] = []
    for number, reason in conn.execute(
        "SELECT number, reason FROM activations WHERE function_id = ? ORDER BY id",
        (function_id,),
    ).fetchall():
        if reason == "rollback" and number in stack:
            while stack[-1] != number:
                stack.pop()
        elif not stack or stack[-1] != number:
            stack.append(number)
    return stack


def _previous_active(conn: Sql, function_id: int) -> int | None:
    row = conn.execute(
        "SELECT active_number FROM functions WHERE id = ?", (function_id,)
    ).fetchone()
    if row is None:
        return None
    active = row[0]
    stack = _activation_stack(conn, function_id)
    if active is not None and (not stack or stack[-1] != active):
        stack.append(active)
    accepted = {
        n
        for (n,) in conn.execute(
            "SELECT number FROM revisions WHERE function_id = ? AND status = 'accepted'",
            (function_id,),
        ).fetchall()
    }
    for n in reversed(stack[:-1]):
        if n != active and n in accepted:
            return n
    # Nothing earlier was active: fall back to the declared body, like Evolvable.rollback.
    if active not in (None, 0) and 0 in accepted:
        return 0
    return None


if TYPE_CHECKING:

    def _implements_the_protocol(store: EvolvableStore) -> Store:
        return store  # mypy/ty check that every EvolvableStore satisfies symbiont.store.Store
