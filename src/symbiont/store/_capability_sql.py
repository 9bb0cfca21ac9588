"""The capability tables in SQL both engines read: one `CapabilityStore` for SQLite and
PostgreSQL (`symbiont.store.capabilities` says what each method promises).

The tables have the same names and columns in both engines (migration 2 of
`symbiont.store.migrations` and of `symbiont.store.pg.schema`), and every statement here is
in the dialect both read: `?` placeholders, `INSERT ... ON CONFLICT`, `RETURNING`, window
functions. So, like `symbiont.store.evolvables.EvolvableStore`, the repository is written
once over the store's `_write(op, what)` / `_read(op)`: `op(conn)` runs in one transaction
(SQLite: IMMEDIATE, the store's lock and busy retries; PostgreSQL: `?` become `%s`, a
serialization failure or deadlock retries the whole `op`, so every `op` may run again from
the start). The backend modules only name it: `sqlite_capabilities`, `pg.capabilities`.

JSON fields (schemas, permissions, parents, examples) are TEXT in both engines, written
with `json.dumps` and read with `json.loads`, so a capability reads back equal whichever
backend stored it.
"""

from __future__ import annotations

import builtins
import json
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from symbiont.library.capability import (
    Capability,
    CapabilityPermissions,
    CapabilityStats,
    Example,
    now,
)
from symbiont.store.capabilities import LATENCY_WINDOW, CapabilityRun, CapabilityVersion

_CAP_FIELDS = (
    "name, summary, entry, source, input_schema, output_schema, permissions, version, "
    "parents, status, status_reason, replaced_by, updated_at"
)
_COLUMNS = (
    "c.id, c.name, c.summary, c.entry, c.source, c.input_schema, c.output_schema, "
    "c.permissions, c.version, c.parents, c.status, c.status_reason, c.replaced_by, "
    "c.created_at, c.updated_at, s.runs, s.failures, s.consecutive_failures, s.last_error, "
    "s.last_run_at"
)
_FROM = "FROM capabilities c LEFT JOIN capability_stats s ON s.capability_id = c.id"
_STATS_ROW = "INSERT INTO capability_stats (capability_id) VALUES (?) ON CONFLICT DO NOTHING"


def _fields(cap: Capability) -> tuple[Any, ...]:
    """The values of `_CAP_FIELDS`, in order."""
    return (
        cap.name,
        cap.summary,
        cap.entry,
        cap.source,
        json.dumps(cap.input_schema),
        json.dumps(cap.output_schema),
        json.dumps(cap.permissions.to_dict()),
        cap.version,
        json.dumps(list(cap.parents)),
        cap.status,
        cap.status_reason,
        cap.replaced_by,
        cap.updated_at,
    )


def _capability(
    row: Sequence[Any], examples: Sequence[str], durations: Sequence[float]
) -> Capability:
    stats = CapabilityStats(
        runs=int(row[15] or 0),
        failures=int(row[16] or 0),
        consecutive_failures=int(row[17] or 0),
        p50_latency_s=statistics.median(durations) if durations else None,
        last_error=row[18],
        last_run_at=row[19],
    )
    return Capability(
        id=row[0],
        name=row[1],
        summary=row[2],
        entry=row[3],
        source=row[4],
        input_schema=json.loads(row[5]),
        output_schema=json.loads(row[6]),
        permissions=CapabilityPermissions.from_dict(json.loads(row[7])),
        examples=tuple(Example.from_dict(json.loads(spec)) for spec in examples),
        version=int(row[8]),
        parents=tuple(json.loads(row[9])),
        status=row[10],
        status_reason=row[11],
        replaced_by=row[12],
        stats=stats,
        created_at=float(row[13]),
        updated_at=float(row[14]),
    )


def _write_content(tx: Any, cap: Capability, version: int) -> None:
    """The examples and the version row of `cap` as `version` (inside the caller's write)."""
    examples = [ex.to_dict() for ex in cap.examples]
    tx.execute("DELETE FROM capability_examples WHERE capability_id = ?", (cap.id,))
    tx.executemany(
        "INSERT INTO capability_examples (capability_id, position, spec) VALUES (?, ?, ?)",
        [(cap.id, i, json.dumps(e)) for i, e in enumerate(examples)],
    )
    tx.execute(
        "INSERT INTO capability_versions (capability_id, version, source, summary, entry, "
        "input_schema, output_schema, permissions, examples, parents, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (capability_id, version) DO UPDATE SET source = excluded.source, "
        "summary = excluded.summary, entry = excluded.entry, "
        "input_schema = excluded.input_schema, output_schema = excluded.output_schema, "
        "permissions = excluded.permissions, examples = excluded.examples, "
        "parents = excluded.parents, created_at = excluded.created_at",
        (
            cap.id,
            version,
            cap.source,
            cap.summary,
            cap.entry,
            json.dumps(cap.input_schema),
            json.dumps(cap.output_schema),
            json.dumps(cap.permissions.to_dict()),
            json.dumps(examples),
            json.dumps(list(cap.parents)),
            cap.updated_at,
        ),
    )


def _insert(tx: Any, cap: Capability) -> bool:
    inserted = tx.execute(
        f"INSERT INTO capabilities ({_CAP_FIELDS}, id, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        (*_fields(cap), cap.id, cap.created_at),
    ).rowcount
    if not inserted:
        return False
    tx.execute(_STATS_ROW, (cap.id,))
    _write_content(tx, cap, cap.version)
    return True


class SqlCapabilityStore:
    """`symbiont.store.capabilities.CapabilityStore` over a store's transactions (either engine)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.store.path)!r})"

    def close(self) -> None:
        """Nothing to release: the store owns the connection."""

    # -- writing -------------------------------------------------------------------------
    def add(self, cap: Capability) -> bool:
        return self.store._write(lambda tx: _insert(tx, cap), "storing a capability")

    def add_version(self, cap: Capability) -> int | None:
        def op(tx: Any) -> int | None:
            fields = _CAP_FIELDS.replace("version, ", "")
            values = tuple(v for i, v in enumerate(_fields(cap)) if i != 7)  # all but version
            assignments = ", ".join(f"{f} = ?" for f in fields.split(", "))
            row = tx.execute(
                f"UPDATE capabilities SET {assignments}, version = version + 1 "
                "WHERE id = ? RETURNING version",
                (*values, cap.id),
            ).fetchone()
            if row is None:
                return None
            version = int(row[0])
            _write_content(tx, cap, version)
            tx.execute(_STATS_ROW, (cap.id,))
            tx.execute(
                "UPDATE capability_stats SET consecutive_failures = 0 WHERE capability_id = ?",
                (cap.id,),
            )
            return version

        return self.store._write(op, "storing a capability version")

    def supersede(self, old_id: str, new: Capability, reason: str) -> bool:
        def op(tx: Any) -> bool:
            if not _insert(tx, new):
                return False
            tx.execute(
                "UPDATE capabilities SET status = 'legacy', replaced_by = ?, status_reason = ?, "
                "updated_at = ? WHERE id = ?",
                (new.id, reason, new.updated_at, old_id),
            )
            return True

        return self.store._write(op, "replacing a capability")

    def record_run(
        self, run: CapabilityRun, *, deprecate_after: int, reason: Callable[[int, str], str]
    ) -> bool:
        def op(tx: Any) -> bool:
            tx.execute(
                "INSERT INTO capability_runs (capability_id, version, started_at, duration_s, "
                "ok, error_kind, error, tier, forced) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.capability_id,
                    run.version,
                    run.started_at,
                    run.duration_s,
                    int(run.ok),
                    run.error_kind,
                    run.error,
                    run.tier,
                    int(run.forced),
                ),
            )
            tx.execute(_STATS_ROW, (run.capability_id,))
            if run.ok:
                tx.execute(
                    "UPDATE capability_stats SET runs = runs + 1, consecutive_failures = 0, "
                    "last_run_at = ? WHERE capability_id = ?",
                    (run.started_at, run.capability_id),
                )
                return False
            if not run.counted:  # the streak neither grows nor ends
                tx.execute(
                    "UPDATE capability_stats SET runs = runs + 1, last_run_at = ? "
                    "WHERE capability_id = ?",
                    (run.started_at, run.capability_id),
                )
                return False
            # One statement reads and writes the row (PostgreSQL holds its row lock to the
            # commit; SQLite's IMMEDIATE transaction holds the file's): no lost increment.
            (streak,) = tx.execute(
                "UPDATE capability_stats SET runs = runs + 1, failures = failures + 1, "
                "consecutive_failures = consecutive_failures + 1, last_error = ?, "
                "last_run_at = ? WHERE capability_id = ? RETURNING consecutive_failures",
                (run.error, run.started_at, run.capability_id),
            ).fetchone()
            if streak < deprecate_after:
                return False
            # Only an active one is deprecated: of several failures that reach the
            # threshold at once, the first to commit flips it and the others see it done.
            return bool(
                tx.execute(
                    "UPDATE capabilities SET status = 'deprecated', status_reason = ?, "
                    "updated_at = ? WHERE id = ? AND status = 'active'",
                    (reason(int(streak), run.error or ""), now(), run.capability_id),
                ).rowcount
            )

        return self.store._write(op, "recording a capability run")

    def deprecate(self, cap_id: str, reason: str) -> bool:
        return self._update(
            "UPDATE capabilities SET status = 'deprecated', status_reason = ?, updated_at = ? "
            "WHERE id = ?",
            (reason, now(), cap_id),
            "deprecating a capability",
        )

    def restore(self, cap_id: str) -> bool:
        def op(tx: Any) -> bool:
            found = tx.execute(
                "UPDATE capabilities SET status = 'active', status_reason = NULL, "
                "replaced_by = NULL, updated_at = ? WHERE id = ?",
                (now(), cap_id),
            ).rowcount
            tx.execute(
                "UPDATE capability_stats SET consecutive_failures = 0 WHERE capability_id = ?",
                (cap_id,),
            )
            return bool(found)

        return self.store._write(op, "restoring a capability")

    def set_status(
        self, cap_id: str, status: str, reason: str | None, replaced_by: str | None
    ) -> bool:
        return self._update(
            "UPDATE capabilities SET status = ?, status_reason = ?, replaced_by = ?, "
            "updated_at = ? WHERE id = ?",
            (status, reason, replaced_by, now(), cap_id),
            "setting a capability's status",
        )

    def _update(self, sql: str, params: Sequence[Any], what: str) -> bool:
        return self.store._write(lambda tx: bool(tx.execute(sql, params).rowcount), what)

    # -- reading -------------------------------------------------------------------------
    def get(self, cap_id: str) -> Capability | None:
        def op(tx: Any) -> Capability | None:
            row = tx.execute(f"SELECT {_COLUMNS} {_FROM} WHERE c.id = ?", (cap_id,)).fetchone()
            if row is None:
                return None
            examples = [
                r[0]
                for r in tx.execute(
                    "SELECT spec FROM capability_examples WHERE capability_id = ? "
                    "ORDER BY position",
                    (cap_id,),
                ).fetchall()
            ]
            durations = [
                r[0]
                for r in tx.execute(
                    "SELECT duration_s FROM capability_runs WHERE capability_id = ? "
                    "ORDER BY id DESC LIMIT ?",
                    (cap_id, LATENCY_WINDOW),
                ).fetchall()
            ]
            return _capability(row, examples, durations)

        return self.store._read(op)

    def list(self, status: str | None = None) -> builtins.list[Capability]:
        """Three queries whatever the number of capabilities (rows, examples, latencies);
        sorted by id in Python, so both backends list in the same order."""
        where, params = ("WHERE c.status = ?", (status,)) if status else ("", ())

        def op(tx: Any) -> builtins.list[Capability]:
            rows = tx.execute(f"SELECT {_COLUMNS} {_FROM} {where}", params).fetchall()
            examples: dict[str, builtins.list[str]] = {}
            for cid, spec in tx.execute(
                "SELECT e.capability_id, e.spec FROM capability_examples e "
                f"JOIN capabilities c ON c.id = e.capability_id {where} ORDER BY e.position",
                params,
            ).fetchall():
                examples.setdefault(cid, []).append(spec)
            durations: dict[str, builtins.list[float]] = {}
            for cid, seconds in tx.execute(
                "SELECT r.capability_id, r.duration_s FROM (SELECT capability_id, duration_s, "
                "ROW_NUMBER() OVER (PARTITION BY capability_id ORDER BY id DESC) AS n "
                "FROM capability_runs) r JOIN capabilities c ON c.id = r.capability_id "
                f"WHERE r.n <= ?{' AND c.status = ?' if status else ''}",
                (LATENCY_WINDOW, *params),
            ).fetchall():
                durations.setdefault(cid, []).append(seconds)
            # sorted here, not by the database: the same order whatever its collation
            return [
                _capability(r, examples.get(r[0], ()), durations.get(r[0], ()))
                for r in sorted(rows, key=lambda r: r[0])
            ]

        return self.store._read(op)

    def ids(self, statuses: Sequence[str] | None = None) -> builtins.list[str]:
        if statuses is not None and not statuses:
            return []
        where = f"WHERE status IN ({', '.join('?' * len(statuses))})" if statuses else ""
        rows = self.store._read(
            lambda tx: tx.execute(
                f"SELECT id FROM capabilities {where}", tuple(statuses or ())
            ).fetchall()
        )
        return sorted(r[0] for r in rows)

    def contains(self, cap_id: str) -> bool:
        return bool(
            self.store._read(
                lambda tx: tx.execute(
                    "SELECT 1 FROM capabilities WHERE id = ?", (cap_id,)
                ).fetchone()
            )
        )

    def versions(self, cap_id: str) -> builtins.list[CapabilityVersion]:
        rows = self.store._read(
            lambda tx: tx.execute(
                "SELECT version, source, summary, created_at FROM capability_versions "
                "WHERE capability_id = ? ORDER BY version",
                (cap_id,),
            ).fetchall()
        )
        return [CapabilityVersion(int(v), s, m, float(t)) for v, s, m, t in rows]

    def content_version(self) -> tuple[Any, ...]:
        row = self.store._read(
            lambda tx: tx.execute(
                "SELECT count(*), max(created_at), sum(version) FROM capability_versions"
            ).fetchone()
        )
        return tuple(row)
