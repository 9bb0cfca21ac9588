"""`symbiont store migrate` round-trips a populated store: SQLite → PostgreSQL → SQLite.

The store is filled the way programs fill it: a real program (its own process) evolves a
function and runs a population search with the offline proposer; a Library adds and runs a
capability (a failing run too) and searches, which builds the retrieval index; an agent
transcript with steps; live failures. After the copy into a real PostgreSQL everything is
read back through the repositories and compared with the original, every table is compared
row by row, new rows get fresh ids, and the copy back into a new SQLite file holds exactly
the original rows.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import psycopg
import pytest

from symbiont.cli import main
from symbiont.embed import HashingEmbedder
from symbiont.errors import StoreError
from symbiont.library import Capability, Library
from symbiont.store import FailureRecord, open_store
from symbiont.store.transfer import TABLES, migrate

PROGRAM = textwrap.dedent(
    '''
    import sys
    import symbiont
    from symbiont.models.mutation import MutationModel
    from symbiont.search import Budget

    @symbiont.evolvable(timeout=5.0, typecheck=False)
    def peak(x: float) -> float:
        """A value to maximise at x = 3."""
        return -((x - 1.0) ** 2)

    def score(fn) -> float:
        return float(fn(3.0))

    rt = symbiont.Runtime(store=sys.argv[1])
    rt.evolve_sync(peak, MutationModel(seed=1), metric=score, attempts=4)
    rt.search_sync(peak, MutationModel(seed=2), metric=score, budget=Budget(evaluations=8))
    rt.close()
    '''
)

LOOKUP = '''
def lookup(key: str, limit: int = 3) -> dict:
    """Look a key up."""
    if key == "boom":
        raise KeyError(key)
    return {"key": key, "length": min(len(key), limit)}
'''
SUMMARY = (
    "Look up a dictionary key and report its length, capped at a limit. Input: key, limit. "
    "Output: the key and its capped length."
)
EXAMPLES = [{"input": {"key": "abcd"}, "expect": {"key": "abcd", "length": 3}}]


def populate(path: Path, tmp_path: Path) -> None:
    script = tmp_path / "prog.py"
    script.write_text(PROGRAM)
    done = subprocess.run(
        [sys.executable, str(script), str(path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    with Library(
        str(path), tier="inprocess", data_root=tmp_path / "data", typecheck=False,
        embedder=HashingEmbedder(),
    ) as lib:  # fmt: skip
        lib.add(Capability.from_source(LOOKUP, summary=SUMMARY, examples=EXAMPLES))
        assert lib.run("lookup", {"key": "abcdef"}).ok
        assert not lib.run("lookup", {"key": "boom"}).ok
        assert lib.search("length of a key")
    with open_store(path) as s:
        (fn,) = s.lineages(s.resolve_key("peak"))
        for i in range(3):
            s.add_failure(
                FailureRecord(fn.id, 0, 1000.0 + i, "exception", f"ValueError: {i}", "x=1", "tb")
            )
        tid = s.transcripts.start("task", "How long is abcdef?", model="scripted")
        s.transcripts.add_step(tid, 0, "retrieve", {"hits": ["lookup"]})
        s.transcripts.add_step(tid, 1, "model", {"text": "call lookup"}, input_tokens=12)
        s.transcripts.add_step(tid, 2, "tool", {"result": 3}, name="lookup", ok=True)
        s.transcripts.finish(tid, "answered", answer="3", capability_id="lookup")
        child = s.transcripts.start("mutation", "improve lookup", parent_id=tid)
        s.transcripts.finish(child, "failed", error="no better version")


def through_repositories(location: str) -> dict[str, Any]:
    """Everything the repositories say about a store, in comparable form."""
    with open_store(location) as s:
        out: dict[str, Any] = {"functions": [], "runs": [], "searches": [], "transcripts": []}
        for key in s.all_keys():
            for f in s.lineages(key):
                out["functions"].append(
                    (f, s.revisions_of(f.id), s.activations(f.id), s.failures(f.id))
                )
        out["runs"] = [s.run(r.id) for r in s.runs(limit=1000)]
        for rec in s.searches.recent(limit=1000):
            out["searches"].append((rec, s.searches.candidates(rec.id)))
        out["transcripts"] = [s.transcripts.get(t.id) for t in s.transcripts.list(limit=1000)]
        caps = s.capabilities
        out["capabilities"] = [(c, caps.versions(c.id)) for c in caps.list()]
    return out


def sqlite_rows(path: Path, table: str, columns: list[str]) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY 1, 2").fetchall()
    finally:
        conn.close()


def pg_rows(url: str, table: str, columns: list[str]) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY 1, 2").fetchall()


def sqlite_columns(path: Path, table: str) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
    finally:
        conn.close()


INDEX_DOC_COLUMNS = ["id", "name", "summary", "params", "doc_hash", "text_hash"]


def test_migrate_round_trips_a_populated_store(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    original = tmp_path / "local.db"
    populate(original, tmp_path)
    before = through_repositories(str(original))
    assert len(before["functions"]) == 1 and len(before["functions"][0][1]) > 5
    assert before["runs"] and before["searches"] and before["capabilities"]
    assert len(before["transcripts"]) == 2

    assert main(["store", "migrate", "--from", f"sqlite:{original}", "--to", pg_url]) == 0
    out = capsys.readouterr().out
    assert "copied" in out and "revisions" in out and "retrieval index" in out

    # Through the repositories: the same records, the same ids and numbers.
    assert through_repositories(pg_url) == before
    # Row by row, every table (the index by its documents and vectors).
    for table, _ in TABLES:
        columns = sqlite_columns(original, table)
        assert pg_rows(pg_url, table, columns) == sqlite_rows(original, table, columns), table
    assert pg_rows(pg_url, "idx_docs", INDEX_DOC_COLUMNS) == sqlite_rows(
        original, "idx_docs", INDEX_DOC_COLUMNS
    )
    local_vectors = {
        (i, e, h): json.dumps([round(float(x), 7) for x in memoryview(v).cast("f")])
        for i, e, h, v in sqlite_rows(
            original, "idx_embeddings", ["id", "embedder_id", "text_hash", "vector"]
        )
    }
    shared_vectors = {
        (i, e, h): json.dumps([round(float(x), 7) for x in v])
        for i, e, h, v in pg_rows(
            pg_url, "idx_embeddings", ["id", "embedder_id", "text_hash", "embedding::real[]"]
        )
    }
    assert shared_vectors == local_vectors and local_vectors

    # And back into a new SQLite file: exactly the original rows.
    back = tmp_path / "back" / "again.db"
    report = migrate(pg_url, f"sqlite:{back}")
    assert report.rows["revisions"] == len(before["functions"][0][1])
    for table, _ in TABLES:
        columns = sqlite_columns(original, table)
        assert sqlite_rows(back, table, columns) == sqlite_rows(original, table, columns), table
    assert sqlite_rows(back, "idx_docs", INDEX_DOC_COLUMNS) == sqlite_rows(
        original, "idx_docs", INDEX_DOC_COLUMNS
    )
    fts = ["id_words", "name", "summary", "params"]
    assert sqlite_rows(back, "idx_fts", fts) == sqlite_rows(original, "idx_fts", fts)
    assert not list(back.parent.glob(".again.db.migrating-*"))  # built aside, then renamed

    # The copy is usable: searched in the database, and new rows get ids after the copied.
    with Library(
        pg_url, tier="inprocess", data_root=tmp_path / "data", typecheck=False,
        embedder=HashingEmbedder(),
    ) as lib:  # fmt: skip
        assert [h.capability.id for h in lib.search("length of a key")] == ["lookup"]
        assert lib.run("lookup", {"key": "xy"}).ok
    with open_store(pg_url) as s:
        top = {t: max(r[0] for r in pg_rows(pg_url, t, ["id", "1"])) for t in ("functions",)}
        fresh = s.ensure_function("m.new", "fp", "def new() -> None:")
        assert fresh.id == top["functions"] + 1
        tid = s.transcripts.start("task", "after the copy")
        assert tid == max(t.id for t in before["transcripts"]) + 1
        run = s.start_run(fresh.id, {})
        assert run == max(r.id for r in before["runs"]) + 1


def test_a_target_with_data_is_refused_and_left_alone(tmp_path: Path, pg_url: str) -> None:
    source = tmp_path / "a.db"
    with open_store(source) as s:
        s.ensure_function("m.f", "fp", "def f() -> None:")
    with open_store(pg_url) as s:
        s.ensure_function("m.other", "fp", "def other() -> None:")
    with pytest.raises(StoreError, match=r"not empty \(1 functions\).*cannot be merged"):
        migrate(source, pg_url)
    with open_store(pg_url) as s:
        assert s.all_keys() == ["m.other"]
    # A SQLite target with data is refused the same way, and keeps its data.
    other = tmp_path / "b.db"
    with open_store(other) as s:
        s.ensure_function("m.g", "fp", "def g() -> None:")
    with pytest.raises(StoreError, match="not empty"):
        migrate(pg_url, other)
    with open_store(other) as s:
        assert s.all_keys() == ["m.g"]


def test_bad_arguments_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "none.db"
    code = main(["store", "migrate", "--from", f"sqlite:{missing}", "--to", str(tmp_path / "x.db")])
    err = capsys.readouterr().err
    assert code == 1 and f"no store at {missing}" in err and "Traceback" not in err
    assert not missing.exists()
    code = main(["store", "migrate", "--from", "mysql://h/db", "--to", str(tmp_path / "x.db")])
    assert code == 1 and "not a mysql:// URL" in capsys.readouterr().err
    same = tmp_path / "same.db"
    open_store(same).close()
    code = main(["store", "migrate", "--from", str(same), "--to", f"sqlite:{same}"])
    assert code == 1 and "the same store" in capsys.readouterr().err


def test_a_failed_copy_into_postgres_keeps_nothing(tmp_path: Path, pg_url: str) -> None:
    source = tmp_path / "a.db"
    with open_store(source) as s:
        fn = s.ensure_function("m.f", "fp", "def f() -> None:")
        s.start_run(fn.id, {})
        s.ensure_function("m.g", "fp", "def g() -> None:")
    # A NUL character: SQLite keeps it, PostgreSQL text cannot hold it.
    conn = sqlite3.connect(source)
    conn.execute("UPDATE evolve_runs SET outcome = ?", ("bad\x00byte",))
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="nothing was kept"):
        migrate(source, pg_url)
    with open_store(pg_url) as s:
        assert s.all_keys() == [] and s.runs() == []
