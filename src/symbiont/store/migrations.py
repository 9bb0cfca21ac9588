"""Versioned schema migrations of the SQLite store.

`MIGRATIONS` is an ordered list; migration N brings the schema from version N-1 to N, and
`PRAGMA user_version` records the version a file is at. `apply_migrations` runs every
pending migration in one transaction at open, so a file is either fully at the new version
or untouched. A file at a version newer than `LATEST_VERSION` is refused (an older symbiont
must not write into a schema it does not know).

Rules for adding a migration: append, never edit a released one; plain DDL/DML statements
(no `executescript`: it would commit the surrounding transaction); new columns get a
DEFAULT so rows written by older versions stay valid.

Why these tables
----------------
- `symbiont_meta` is the marker that tells our store from any other SQLite file: a file
  with tables but without it is foreign and is never touched. `PRAGMA application_id` is
  set as well, for tools like `file(1)`.
- `functions` is one row per *lineage*: (key, signature fingerprint). A changed signature
  gives a new row; the old lineage stays readable. Revision numbers are per row.
- `revisions` keeps every candidate, accepted or rejected, with source, raw reply, origin,
  model, stage, diagnostics (JSON), score, metrics (JSON) and a content hash (indexed, for
  exact-duplicate detection). `revision_parents` lists parents in order (several for
  crossover); a separate table, so "children of r3" is an index lookup.
- `activations` is the append-only history of which revision was made active and why; the
  current one is also cached in `functions.active_number`. `rollback` replays it as a stack.
- `evolve_runs` / `evolve_attempts`: one evolve call and its attempts with stage timings,
  tokens, model latency, retries and cost.
- `live_failures` (migration 4): exceptions the live function raised in a program, with the
  revision they hit, a bounded repr of the arguments, the traceback and the pid. A ring per
  lineage (the newest N), trimmed in the insert's transaction, so it never grows unbounded.
- Activation by several processes is a compare-and-set (`set_active_if`): no extra table,
  the check and the write are one IMMEDIATE transaction on `functions.active_number`.
- An edited declared body is a new revision of origin `default` whose parent is the
  previous declared body (`record_declared_body`): the newest `default` revision is always
  the body the program declares now.

Plan for later migrations (NOT created here; the capability library and agents add them)
-----------------------------------------------------------------------------------------
Capabilities reuse this file so one store holds a program's whole history. Names are
prefixed to keep the two faces apart (`evolve_*` vs `capability_*`, `agent_*`)::

    -- 2: capability library (issue 4)
    capabilities(
        id TEXT PRIMARY KEY,                 -- stable slug, e.g. 'get_salary_details'
        name TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active','legacy','deprecated')),
        replaced_by TEXT REFERENCES capabilities(id),
        deprecated_reason TEXT,
        current_version INTEGER,             -- capability_versions.version
        created_at REAL NOT NULL, updated_at REAL NOT NULL)
    capability_versions(
        capability_id TEXT NOT NULL REFERENCES capabilities(id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        source TEXT NOT NULL, summary TEXT NOT NULL,
        input_schema TEXT NOT NULL, output_schema TEXT NOT NULL,   -- JSON Schema
        examples TEXT NOT NULL DEFAULT '[]', permissions TEXT NOT NULL DEFAULT '{}',
        content_hash TEXT NOT NULL, created_at REAL NOT NULL,
        PRIMARY KEY (capability_id, version))
    capability_parents(capability_id, version, position, parent_id, parent_version)
    capability_runs(id INTEGER PRIMARY KEY, capability_id, version, started_at, duration_s,
        ok INTEGER, error TEXT, input TEXT, output TEXT, transcript_id INTEGER NULL)
    capability_stats(capability_id PRIMARY KEY, runs, failures, consecutive_failures,
        p50_latency_s, last_error, last_run_at)   -- maintained in the same transaction
                                                  -- as the capability_runs insert
    capability_embeddings(capability_id, version, embedder_id TEXT, dim INTEGER,
        vector BLOB,                         -- little-endian float32, dim*4 bytes
        PRIMARY KEY (capability_id, version, embedder_id))
        -- re-computed only when embedder_id changes
    capability_fts: FTS5 virtual table over (id, name, summary, params), content= the
        versions table, kept in sync by triggers (BM25 for the lexical half of search)

    -- 3: agent transcripts (issue 6)
    agent_transcripts(id INTEGER PRIMARY KEY, task TEXT, kind TEXT CHECK (kind IN
        ('task','mutation')), parent_transcript_id INTEGER NULL, model TEXT, started_at,
        ended_at, outcome TEXT, steps INTEGER, input_tokens, output_tokens, cost_usd)
    agent_steps(transcript_id REFERENCES agent_transcripts(id) ON DELETE CASCADE,
        idx INTEGER, role TEXT, content TEXT, tool_name TEXT, tool_args TEXT (JSON),
        tool_result TEXT (JSON), input_tokens, output_tokens, latency_s, at REAL,
        PRIMARY KEY (transcript_id, idx))

A PostgreSQL backend maps the same tables one to one (REAL -> double precision,
BLOB vector -> pgvector `vector(dim)`, FTS5 -> tsvector), behind `symbiont.store.Store`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

# 'SYMB' as a big-endian 32-bit integer: identifies our files in the SQLite header.
APPLICATION_ID = 0x53594D42
MARKER_TABLE = "symbiont_meta"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "functions, revisions, activations, evolve runs",
        (
            f"""CREATE TABLE {MARKER_TABLE} (
                key TEXT PRIMARY KEY,
                value TEXT NOT NULL
            )""",
            f"""INSERT INTO {MARKER_TABLE} (key, value) VALUES
                ('application', 'symbiont'),
                ('created_at', CAST((julianday('now') - 2440587.5) * 86400.0 AS TEXT))""",
            """CREATE TABLE functions (
                id INTEGER PRIMARY KEY,
                key TEXT NOT NULL,
                fingerprint TEXT NOT NULL,
                signature_text TEXT NOT NULL,
                created_at REAL NOT NULL,
                last_seen_at REAL NOT NULL,
                active_number INTEGER,
                UNIQUE (key, fingerprint)
            )""",
            """CREATE TABLE revisions (
                id INTEGER PRIMARY KEY,
                function_id INTEGER NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
                number INTEGER NOT NULL CHECK (number >= 0),
                source TEXT NOT NULL,
                reply TEXT NOT NULL DEFAULT '',
                origin TEXT NOT NULL
                    CHECK (origin IN ('default', 'model', 'mutation', 'manual')),
                model TEXT,
                status TEXT NOT NULL CHECK (status IN ('accepted', 'rejected')),
                stage TEXT NOT NULL,
                diagnostics TEXT NOT NULL DEFAULT '[]',
                score REAL,
                metrics TEXT NOT NULL DEFAULT '{}',
                content_hash TEXT NOT NULL,
                created_at REAL NOT NULL,
                UNIQUE (function_id, number)
            )""",
            "CREATE INDEX revisions_by_hash ON revisions (function_id, content_hash)",
            """CREATE TABLE revision_parents (
                function_id INTEGER NOT NULL,
                number INTEGER NOT NULL,
                position INTEGER NOT NULL,
                parent_number INTEGER NOT NULL,
                PRIMARY KEY (function_id, number, position),
                FOREIGN KEY (function_id, number)
                    REFERENCES revisions (function_id, number) ON DELETE CASCADE
            )""",
            """CREATE INDEX revision_children
                ON revision_parents (function_id, parent_number)""",
            """CREATE TABLE activations (
                id INTEGER PRIMARY KEY,
                function_id INTEGER NOT NULL,
                number INTEGER NOT NULL,
                reason TEXT NOT NULL,
                at REAL NOT NULL,
                FOREIGN KEY (function_id, number)
                    REFERENCES revisions (function_id, number) ON DELETE CASCADE
            )""",
            "CREATE INDEX activations_by_function ON activations (function_id, id)",
            """CREATE TABLE evolve_runs (
                id INTEGER PRIMARY KEY,
                function_id INTEGER NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
                config TEXT NOT NULL DEFAULT '{}',
                started_at REAL NOT NULL,
                ended_at REAL,
                outcome TEXT,
                accepted_number INTEGER
            )""",
            "CREATE INDEX evolve_runs_by_start ON evolve_runs (started_at)",
            """CREATE TABLE evolve_attempts (
                run_id INTEGER NOT NULL REFERENCES evolve_runs(id) ON DELETE CASCADE,
                idx INTEGER NOT NULL,
                revision_number INTEGER,
                stage TEXT NOT NULL,
                ok INTEGER NOT NULL,
                diagnostics TEXT NOT NULL DEFAULT '[]',
                timings TEXT NOT NULL DEFAULT '{}',
                input_tokens INTEGER NOT NULL DEFAULT 0,
                output_tokens INTEGER NOT NULL DEFAULT 0,
                model_latency_s REAL NOT NULL DEFAULT 0,
                retries INTEGER NOT NULL DEFAULT 0,
                cost_usd REAL,
                created_at REAL NOT NULL,
                PRIMARY KEY (run_id, idx)
            )""",
        ),
    ),
]

# 2: the capability library's tables (issue 4). Their DDL lives next to the repository that
# uses them (`store/sqlite_capabilities.py`); every statement is `IF NOT EXISTS`, so files
# where a Library created them before this migration existed upgrade cleanly.
from symbiont.store.sqlite_capabilities import CAPABILITY_DDL  # noqa: E402

MIGRATIONS.append(Migration(2, "capability library", tuple(CAPABILITY_DDL)))

# 3: agent transcripts (issue 6), the same way (`store/sqlite_transcripts.py`).
from symbiont.store.sqlite_transcripts import TRANSCRIPT_DDL  # noqa: E402

MIGRATIONS.append(Migration(3, "agent transcripts", tuple(TRANSCRIPT_DDL)))

# 4: live failures (issue 9): exceptions the promoted function raised in a program, with
# the revision they hit, a bounded repr of the arguments and the traceback. A ring per
# lineage: `SQLiteStore.add_failure` trims to the newest N in the same transaction.
MIGRATIONS.append(
    Migration(
        4,
        "live failures",
        (
            """CREATE TABLE live_failures (
                id INTEGER PRIMARY KEY,
                function_id INTEGER NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
                revision_number INTEGER NOT NULL,
                at REAL NOT NULL,
                kind TEXT NOT NULL,
                message TEXT NOT NULL,
                args TEXT NOT NULL DEFAULT '',
                traceback TEXT NOT NULL DEFAULT '',
                diagnostic TEXT NOT NULL DEFAULT '{}',
                pid INTEGER
            )""",
            "CREATE INDEX live_failures_by_function ON live_failures (function_id, id)",
        ),
    )
)

# 5: population searches (issue 12): a search record and one row per candidate, written in
# the candidate revision's transaction. DDL next to its repository (`store/searches.py`).
from symbiont.store.searches import SEARCH_DDL  # noqa: E402  (plain DDL strings)

MIGRATIONS.append(Migration(5, "population searches", SEARCH_DDL))

LATEST_VERSION = MIGRATIONS[-1].version if MIGRATIONS else 0


def _check_ordered() -> None:
    for i, m in enumerate(MIGRATIONS, start=1):
        if m.version != i:
            raise RuntimeError(f"migration {m.name!r} has version {m.version}, expected {i}")


_check_ordered()


def pending(current: int) -> list[Migration]:
    return [m for m in MIGRATIONS if m.version > current]


def apply_migrations(conn: sqlite3.Connection) -> int:
    """Bring `conn`'s database to `LATEST_VERSION` in one IMMEDIATE transaction.

    The version is re-read inside the transaction, so two processes opening a new store at
    once apply each migration exactly once. Returns the version the file is at afterwards.
    The caller has already refused files that are foreign or newer than we know.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = int(conn.execute("PRAGMA user_version").fetchone()[0])
        todo = pending(current)
        for m in todo:
            for statement in m.statements:
                conn.execute(statement)
        if todo:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {todo[-1].version}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return todo[-1].version if todo else current
