"""The repository on both backends (SQLite, a real PostgreSQL): lineages, duplicates,
activation history, runs and cost; and what only the SQLite file has (PRAGMAs, busy locks)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from store_helpers import MakeRev, source_hash

from symbiont.errors import RevisionError, StoreError
from symbiont.signature import DeclaredParam, DeclaredSignature
from symbiont.store import (
    LATEST_VERSION,
    AttemptRecord,
    EvolvableStore,
    Pricing,
    SQLiteStore,
    default_store_path,
    open_store,
)

SRC0 = "def step(x: int) -> int:\n    return x\n"
SRC1 = "def step(x: int) -> int:\n    return x + 1\n"
SRC2 = "def step(x: int) -> int:\n    return x + 2\n"


def test_migrations_from_empty_create_the_schema(store_path: Path) -> None:
    assert not store_path.parent.exists()
    s = open_store(store_path)
    s.close()
    raw = sqlite3.connect(store_path)
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {
        "symbiont_meta",
        "functions",
        "revisions",
        "revision_parents",
        "activations",
        "evolve_runs",
        "evolve_attempts",
    } <= tables
    assert raw.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION >= 1
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("SELECT value FROM symbiont_meta WHERE key = 'application'").fetchone() == (
        "symbiont",
    )
    raw.close()


def test_connection_pragmas(sqlite_store: SQLiteStore) -> None:
    conn = sqlite_store._connection()
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 100  # then our own retry loop
    # NORMAL: in WAL mode every commit survives a crash of the process (module docstring)
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1


def test_synchronous_full_on_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def level(store: EvolvableStore) -> int:
        try:
            return int(store._connection().execute("PRAGMA synchronous").fetchone()[0])
        finally:
            store.close()

    assert level(SQLiteStore(tmp_path / "a.db", synchronous="FULL")) == 2
    monkeypatch.setenv("SYMBIONT_STORE_SYNC", "full")
    assert level(SQLiteStore(tmp_path / "b.db")) == 2
    monkeypatch.setenv("SYMBIONT_STORE_SYNC", "sometimes")
    with pytest.raises(StoreError, match="SYMBIONT_STORE_SYNC"):
        SQLiteStore(tmp_path / "c.db")


def test_default_store_path_follows_symbiont_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYMBIONT_HOME", str(tmp_path / "sh"))
    assert default_store_path() == tmp_path / "sh" / "symbiont.db"
    monkeypatch.delenv("SYMBIONT_HOME")
    monkeypatch.chdir(tmp_path)
    assert default_store_path() == tmp_path / ".symbiont" / "symbiont.db"
    s = open_store()
    s.close()
    assert (tmp_path / ".symbiont" / "symbiont.db").is_file()


def test_reopen_keeps_everything(store_backend: str, make_rev: MakeRev) -> None:
    s = open_store(store_backend)
    fr = s.ensure_function("ex.counter.step", "fp1", "def step(x: int) -> int:")
    s.add_revision(make_rev(fr.id, SRC0, origin="default", model=None))
    s.add_revision(
        make_rev(
            fr.id,
            SRC1,
            parents=(0,),
            score=0.5,
            metrics={"speed": 2.0},
            diagnostics=[{"stage": "trial", "kind": "slow", "message": "took long"}],
            reply="```python\n" + SRC1 + "```",
        )
    )
    s.set_active(fr.id, 1)
    s.close()

    s2 = open_store(store_backend)
    revs = s2.revisions("ex.counter.step", "fp1")
    assert [r.number for r in revs] == [0, 1]
    r1 = revs[1]
    assert r1.source == SRC1 and r1.parents == (0,) and r1.score == 0.5
    assert r1.metrics == {"speed": 2.0}
    assert r1.diagnostics == [{"stage": "trial", "kind": "slow", "message": "took long"}]
    assert r1.reply.startswith("```python") and r1.model == "test-model"
    assert r1.content_hash == source_hash(SRC1) and r1.created_at is not None
    active = s2.active_revision("ex.counter.step", "fp1")
    assert active is not None and active.number == 1
    assert s2.schema_version == LATEST_VERSION
    s2.close()


def test_lineage_with_crossover_parents(store: EvolvableStore, make_rev: MakeRev) -> None:
    fr = store.ensure_function("m.f", "fp", "def f(): ...")
    numbers = [
        store.add_revision(make_rev(fr.id, SRC0, origin="default")).number,
        store.add_revision(make_rev(fr.id, SRC1, parents=(0,))).number,
        store.add_revision(make_rev(fr.id, SRC2, parents=(0,), origin="mutation")).number,
        store.add_revision(
            make_rev(fr.id, "def f():\n    return 3\n", parents=(2, 1), origin="mutation")
        ).number,
    ]
    assert numbers == [0, 1, 2, 3]
    got = {r.number: r.parents for r in store.revisions("m.f")}
    assert got == {0: (), 1: (0,), 2: (0,), 3: (2, 1)}  # order of parents kept
    assert store.get_revision("m.f", 3).origin == "mutation"


def test_changed_fingerprint_starts_a_new_lineage_and_keeps_the_old(
    store: EvolvableStore, make_rev: MakeRev
) -> None:
    def sig(returns: str) -> DeclaredSignature:
        p = (DeclaredParam("x", "POSITIONAL_OR_KEYWORD", "int", None),)
        return DeclaredSignature("step", "step", "ex.counter", p, returns, "doc")

    old, new = sig("int"), sig("float")
    assert old.fingerprint() != new.fingerprint()
    f_old = store.ensure_function(old.key, old.fingerprint(), old.render())
    store.add_revision(make_rev(f_old.id, SRC0, origin="default"))
    store.add_revision(make_rev(f_old.id, SRC1, parents=(0,)))
    store.set_active(f_old.id, 1)
    time.sleep(0.01)
    f_new = store.ensure_function(new.key, new.fingerprint(), new.render())
    assert f_new.id != f_old.id
    assert f_new.active_number is None
    store.add_revision(make_rev(f_new.id, "def step(x: int) -> float:\n    return 1.0\n"))

    # The newest lineage is the default; the old one is still complete and readable.
    assert [r.source for r in store.revisions(old.key)] == [
        "def step(x: int) -> float:\n    return 1.0\n"
    ]
    assert [r.number for r in store.revisions(old.key, old.fingerprint())] == [0, 1]
    active_old = store.active_revision(old.key, old.fingerprint())
    assert active_old is not None and active_old.source == SRC1
    assert store.active_revision(new.key, new.fingerprint()) is None
    assert [f.fingerprint for f in store.lineages(old.key)] == [
        new.fingerprint(),
        old.fingerprint(),
    ]
    # Going back to the old signature makes its lineage the newest again, same row.
    time.sleep(0.01)
    again = store.ensure_function(old.key, old.fingerprint(), old.render())
    assert again.id == f_old.id and again.active_number == 1
    assert [r.number for r in store.revisions(old.key)] == [0, 1]


def test_duplicates_by_content_hash(store: EvolvableStore, make_rev: MakeRev) -> None:
    fr = store.ensure_function("m.f", "fp", "")
    other = store.ensure_function("m.g", "fp", "")
    store.add_revision(make_rev(fr.id, SRC0, origin="default"))
    store.add_revision(make_rev(fr.id, SRC1, parents=(0,)))
    store.add_revision(make_rev(fr.id, SRC1, parents=(1,), status="rejected"))
    first = store.find_by_hash(fr.id, source_hash(SRC1))
    assert first is not None and first.number == 1  # the earliest duplicate
    assert store.find_by_hash(fr.id, source_hash(SRC2)) is None
    assert store.find_by_hash(other.id, source_hash(SRC1)) is None  # per lineage


def test_duplicate_lookup_uses_the_hash_index(sqlite_store: SQLiteStore) -> None:
    plan = sqlite_store._connection().execute(
        "EXPLAIN QUERY PLAN SELECT * FROM revisions WHERE function_id = 1 AND content_hash = 'x'"
    )
    assert "revisions_by_hash" in " ".join(str(r) for r in plan)


def test_number_allocation_and_explicit_numbers(store: EvolvableStore, make_rev: MakeRev) -> None:
    fr = store.ensure_function("m.f", "fp", "")
    assert store.next_revision_number(fr.id) == 0
    r0 = store.add_revision(make_rev(fr.id, SRC0, number=0, origin="default"))
    assert r0.number == 0 and r0.id is not None
    # The same revision 0 recorded again (two programs starting at once) is not an error.
    again = store.add_revision(make_rev(fr.id, SRC0, number=0, origin="default"))
    assert again.id == r0.id
    with pytest.raises(RevisionError, match="already has a different revision 0"):
        store.add_revision(make_rev(fr.id, SRC1, number=0))
    assert store.next_revision_number(fr.id) == 1
    assert store.add_revision(make_rev(fr.id, SRC1, number=5)).number == 5
    assert store.add_revision(make_rev(fr.id, SRC2)).number == 6
    with pytest.raises(StoreError, match="no function with id 999"):
        store.add_revision(make_rev(999, SRC0))
    with pytest.raises(StoreError, match="origin must be one of"):
        store.add_revision(make_rev(fr.id, SRC0, origin="guess"))


def test_update_revision(store: EvolvableStore, make_rev: MakeRev) -> None:
    fr = store.ensure_function("m.f", "fp", "")
    store.add_revision(make_rev(fr.id, SRC1, score=None))
    diag = [{"stage": "evaluate", "kind": "worse", "message": "score fell"}]
    store.update_revision(fr.id, 0, status="rejected", score=0.25, metrics={"a": 1.0})
    store.update_revision(fr.id, 0, diagnostics=diag)
    r = store.get_revision("m.f", 0)
    assert (r.status, r.score, r.metrics, r.diagnostics) == ("rejected", 0.25, {"a": 1.0}, diag)
    with pytest.raises(RevisionError, match="cannot update revision 7"):
        store.update_revision(fr.id, 7, score=1.0)
    with pytest.raises(StoreError, match="status must be one of"):
        store.update_revision(fr.id, 0, status="active")


def test_set_active_refuses_rejected_and_unknown(store: EvolvableStore, make_rev: MakeRev) -> None:
    fr = store.ensure_function("m.f", "fp", "")
    store.add_revision(make_rev(fr.id, SRC0, origin="default"))
    store.add_revision(make_rev(fr.id, SRC1, status="rejected", stage="trial"))
    with pytest.raises(RevisionError, match="rejected at the trial stage"):
        store.set_active(fr.id, 1)
    with pytest.raises(RevisionError, match="no revision 4"):
        store.set_active(fr.id, 4)
    assert store.get_function(fr.id).active_number is None


def test_rollback_walks_back_through_activation_history(
    store: EvolvableStore, make_rev: MakeRev
) -> None:
    fr = store.ensure_function("m.f", "fp", "")
    for i in range(5):
        status = "rejected" if i == 3 else "accepted"
        store.add_revision(make_rev(fr.id, f"def f():\n    return {i}\n", status=status))
    for n in (0, 1, 2, 4):
        store.set_active(fr.id, n)
    assert store.previous_active(fr.id) == 2
    assert store.rollback(fr.id) == 2
    assert store.rollback(fr.id) == 1  # further back, not back to 4
    assert store.rollback(fr.id) == 0
    with pytest.raises(RevisionError, match="nothing to roll back to"):
        store.rollback(fr.id)
    assert store.rollback(fr.id, 4) == 4  # an explicit target
    with pytest.raises(RevisionError, match="rejected"):
        store.rollback(fr.id, 3)
    assert store.get_function(fr.id).active_number == 4
    reasons = [(a.number, a.reason) for a in store.activations(fr.id)]
    assert reasons == [
        (0, "activate"),
        (1, "activate"),
        (2, "activate"),
        (4, "activate"),
        (2, "rollback"),
        (1, "rollback"),
        (0, "rollback"),
        (4, "rollback"),
    ]


def test_rollback_falls_back_to_the_declared_body(store: EvolvableStore, make_rev: MakeRev) -> None:
    fr = store.ensure_function("m.f", "fp", "")
    store.add_revision(make_rev(fr.id, SRC0, origin="default"))
    store.add_revision(make_rev(fr.id, SRC1))
    store.set_active(fr.id, 1)  # activated directly, r0 never recorded as active
    assert store.rollback(fr.id) == 0


def test_find_functions_and_resolve_key(store: EvolvableStore) -> None:
    store.ensure_function("examples.counter.step", "a", "")
    store.ensure_function("examples.counter.step", "b", "")
    store.ensure_function("examples.fizz.step", "a", "")
    store.ensure_function("examples.fizz.fizzbuzz", "a", "")
    assert {f.fingerprint for f in store.find_functions("examples.counter.step")} == {"a", "b"}
    assert {f.key for f in store.find_functions("counter.step")} == {"examples.counter.step"}
    assert {f.key for f in store.find_functions("step")} == {
        "examples.counter.step",
        "examples.fizz.step",
    }
    assert store.find_functions("ep") == []  # suffixes end at a dot
    assert store.resolve_key("fizzbuzz") == "examples.fizz.fizzbuzz"
    with pytest.raises(RevisionError, match="several functions"):
        store.resolve_key("step")
    with pytest.raises(RevisionError, match=r"close matches: examples\.fizz\.fizzbuzz"):
        store.resolve_key("fizzbuz")


def test_runs_and_attempts_with_cost(store_backend: str, make_rev: MakeRev) -> None:
    s = open_store(
        store_backend, pricing=Pricing(price_per_1k_input=0.01, price_per_1k_output=0.03)
    )
    fr = s.ensure_function("m.f", "fp", "")
    s.add_revision(make_rev(fr.id, SRC0, origin="default"))
    run = s.start_run(fr.id, {"model": "gpt-x", "attempts": 3})

    def attempt(i: int, tin: int, tout: int, cost: float | None = None) -> AttemptRecord:
        return AttemptRecord(
            index=i,
            revision_number=i,
            stage="promote" if i == 2 else "typecheck",
            ok=i == 2,
            diagnostics=[],
            timings={"model": 1.0, "typecheck": 0.05},
            input_tokens=tin,
            output_tokens=tout,
            model_latency_s=1.0,
            retries=0,
            cost_usd=cost,
        )

    s.add_attempt(run, attempt(1, 1000, 500))  # 0.01 + 0.015 = 0.025
    s.add_attempt(run, attempt(2, 2000, 1000))  # 0.02 + 0.03 = 0.05
    s.add_attempt(run, attempt(3, 10, 10, cost=1.0))  # an explicit cost wins
    running = s.runs()[0]
    assert running.ended_at is None and running.outcome is None and running.duration_s is None
    s.finish_run(run, "accepted", 2)
    (rec,) = s.runs(key="m.f")
    assert rec.function_key == "m.f" and rec.config == {"attempts": 3, "model": "gpt-x"}
    assert (rec.attempts, rec.input_tokens, rec.output_tokens) == (3, 3010, 1510)
    assert rec.cost_usd == pytest.approx(1.075)
    assert rec.outcome == "accepted" and rec.accepted_number == 2
    assert rec.duration_s is not None and rec.duration_s >= 0
    detail = s.run(run)
    assert [a.cost_usd for a in detail.attempt_records] == pytest.approx([0.025, 0.05, 1.0])
    assert detail.attempt_records[1].timings == {"model": 1.0, "typecheck": 0.05}
    assert s.runs(key="m.other") == []
    s.close()

    # Without pricing no cost is invented.
    s2 = open_store(store_backend, pricing=None)
    s2.pricing = None
    run2 = s2.start_run(fr.id, {})
    s2.add_attempt(run2, attempt(1, 1000, 1000))
    assert s2.runs(limit=1)[0].cost_usd is None
    with pytest.raises(StoreError, match="no evolve run 12345"):
        s2.finish_run(12345, "x", None)
    s2.close()


def test_pricing_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Pricing.from_env({}) is None
    p = Pricing.from_env({"SYMBIONT_PRICE_IN": "0.002", "SYMBIONT_PRICE_OUT": "0.006"})
    assert p == Pricing(0.002, 0.006)
    assert p.cost(1500, 500) == pytest.approx(0.003 + 0.003)
    assert Pricing.from_env({"SYMBIONT_PRICE_OUT": "0.01"}) == Pricing(0.0, 0.01)
    with pytest.raises(StoreError, match="SYMBIONT_PRICE_IN='cheap' is not a number"):
        Pricing.from_env({"SYMBIONT_PRICE_IN": "cheap"})
    monkeypatch.setenv("SYMBIONT_PRICE_IN", "0.5")
    monkeypatch.delenv("SYMBIONT_PRICE_OUT", raising=False)
    assert Pricing.from_env() == Pricing(0.5, 0.0)


def test_open_store_reads_pricing_from_env(
    store_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYMBIONT_PRICE_IN", "1.0")
    monkeypatch.setenv("SYMBIONT_PRICE_OUT", "2.0")
    with open_store(store_backend) as s:
        assert s.pricing == Pricing(1.0, 2.0)


def test_threads_share_one_store(store: EvolvableStore, make_rev: MakeRev) -> None:
    fr = store.ensure_function("m.f", "fp", "")
    got: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        try:
            for i in range(40):
                rec = store.add_revision(make_rev(fr.id, f"def f():\n    return {t * 1000 + i}\n"))
                with lock:
                    got.append(rec.number)
                store.revisions("m.f")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(got) == list(range(160))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_gets_its_own_connection(store: EvolvableStore, make_rev: MakeRev) -> None:
    fr = store.ensure_function("m.f", "fp", "")
    store.add_revision(make_rev(fr.id, SRC0, origin="default"))
    pid = os.fork()
    if pid == 0:  # child: use the inherited store object, then leave without cleanup
        code = 1
        try:
            rec = store.add_revision(make_rev(fr.id, SRC1))
            code = 0 if rec.number == 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's connection still works and sees the child's write.
    assert [r.number for r in store.revisions("m.f")] == [0, 1]
    assert store.add_revision(make_rev(fr.id, SRC2)).number == 2
    assert [r.source for r in store.revisions("m.f")] == [SRC0, SRC1, SRC2]
    if isinstance(store, SQLiteStore):
        assert store.integrity_check() == "ok"


def test_busy_database_is_waited_for_not_surfaced(store_path: Path, make_rev: MakeRev) -> None:
    s = SQLiteStore(store_path, busy_timeout_s=0.05, lock_timeout_s=10.0)
    fr = s.ensure_function("m.f", "fp", "")
    blocker = sqlite3.connect(store_path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock for 0.5 s
    release = threading.Timer(0.5, lambda: blocker.execute("COMMIT"))
    release.start()
    t0 = time.monotonic()
    rec = s.add_revision(make_rev(fr.id, SRC0))
    assert rec.number == 0
    assert time.monotonic() - t0 >= 0.4  # it did wait for the other writer
    release.join()
    blocker.close()
    s.close()


def test_lock_held_too_long_gives_a_clear_store_error(store_path: Path, make_rev: MakeRev) -> None:
    s = SQLiteStore(store_path, busy_timeout_s=0.02, lock_timeout_s=0.3)
    fr = s.ensure_function("m.f", "fp", "")
    blocker = sqlite3.connect(store_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError) as info:
            s.add_revision(make_rev(fr.id, SRC0))
        message = str(info.value)
        assert str(store_path) in message and "stayed busy" in message
        assert "database is locked" not in message
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    # Nothing half-written; the store works again once the lock is gone.
    assert s.add_revision(make_rev(fr.id, SRC0)).number == 0
    s.close()


def test_closed_store_says_so(store: EvolvableStore) -> None:
    store.close()
    with pytest.raises(StoreError, match="is closed"):
        store.all_keys()
