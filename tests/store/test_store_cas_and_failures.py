"""Compare-and-set activation, the declared-body record and the live-failure ring, on both
backends (a SQLite file, a real PostgreSQL) — including two processes writing one store at
once."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from store_helpers import MakeRev, start_together

from symbiont.store import EvolvableStore, FailureRecord, open_store
from symbiont.store.migrations import APPLICATION_ID, MIGRATIONS

SRC = "def f(x: int) -> int:\n    return x\n"


def lineage(store: EvolvableStore, make_rev: MakeRev) -> int:
    fn = store.ensure_function("m.f", "fp", "def f(x: int) -> int:")
    store.add_revision(make_rev(fn.id, SRC, number=0, origin="default", model=None))
    store.set_active(fn.id, 0)
    return fn.id


def test_set_active_if_promotes_only_over_the_expected_revision(
    store: EvolvableStore, make_rev: MakeRev
) -> None:
    fid = lineage(store, make_rev)
    one = store.add_revision(make_rev(fid, "def f(x: int) -> int:\n    return 1\n", parents=(0,)))
    two = store.add_revision(make_rev(fid, "def f(x: int) -> int:\n    return 2\n", parents=(0,)))
    assert store.set_active_if(fid, 0, one.number) is True
    # Evaluated against r0 too, but r1 was promoted in between: refused, r1 stands.
    assert store.set_active_if(fid, 0, two.number) is False
    assert store.get_function(fid).active_number == one.number
    assert [a.number for a in store.activations(fid)] == [0, one.number]
    # Against the revision that really is active, it goes through.
    assert store.set_active_if(fid, one.number, two.number, reason="evolve") is True
    assert store.get_function(fid).active_number == two.number
    assert store.activations(fid)[-1].reason == "evolve"


def test_set_active_if_still_refuses_rejected_revisions(
    store: EvolvableStore, make_rev: MakeRev
) -> None:
    from symbiont.errors import RevisionError

    fid = lineage(store, make_rev)
    bad = store.add_revision(make_rev(fid, "def f(x): ...\n", status="rejected", parents=(0,)))
    with pytest.raises(RevisionError, match="rejected"):
        store.set_active_if(fid, 0, bad.number)
    assert store.get_function(fid).active_number == 0


# Each process: open the store, wait for "go", add its own candidate over r0 and try to
# promote it over r0. Prints its revision number and whether it won.
RACER = textwrap.dedent(
    """
    import json, sys
    from symbiont.store import RevisionRecord, open_store
    store = open_store(sys.argv[1])
    fid = int(sys.argv[2])
    src = f"def f(x: int) -> int:\\n    return {sys.argv[3]}\\n"
    rec = store.add_revision(RevisionRecord(fid, -1, src, "", (0,), "model", None, "accepted",
                                            "promote", [], None, {}, "h" + sys.argv[3]))
    print("ready", flush=True)
    sys.stdin.readline()
    won = store.set_active_if(fid, 0, rec.number)
    print(json.dumps({"number": rec.number, "won": won}), flush=True)
    store.close()
    """
)


def test_two_processes_promoting_over_the_same_revision_one_wins(
    store_backend: str, make_rev: MakeRev
) -> None:
    with open_store(store_backend) as s:
        fid = lineage(s, make_rev)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYMBIONT_")}
    for _round in range(5):
        with open_store(store_backend) as s:
            s.set_active(fid, 0)
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", RACER, store_backend, str(fid), str(value)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, env=env,
            )
            for value in (1, 2)
        ]  # fmt: skip
        start_together(procs)  # both evaluated against r0; now both promote
        results = []
        for p in procs:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
        winners = [r for r in results if r["won"]]
        assert len(winners) == 1, results
        with open_store(store_backend) as s:
            assert s.get_function(fid).active_number == winners[0]["number"]
            assert s.activations(fid)[-1].number == winners[0]["number"]
            loser = next(r for r in results if not r["won"])
            assert loser["number"] not in [a.number for a in s.activations(fid)]


def test_the_declared_body_is_recorded_once_and_again_only_when_it_changes(
    store: EvolvableStore, make_rev: MakeRev
) -> None:
    fn = store.ensure_function("m.f", "fp", "def f(x: int) -> int:")
    first, created = store.record_declared_body(make_rev(fn.id, SRC, origin="default"))
    assert created and first.number == 0 and first.parents == ()
    again, created = store.record_declared_body(make_rev(fn.id, SRC, origin="default"))
    assert not created and again.number == 0
    store.add_revision(make_rev(fn.id, "def f(x: int) -> int:\n    return 5\n", parents=(0,)))
    edited = "def f(x: int) -> int:\n    return x * 2\n"
    new, created = store.record_declared_body(make_rev(fn.id, edited, origin="default"))
    assert created and new.number == 2 and new.parents == (0,)
    assert new.origin == "default" and store.get_revision("m.f", 2).source == edited
    # Going back to the first body is a change again (relative to the newest declared one).
    back, created = store.record_declared_body(make_rev(fn.id, SRC, origin="default"))
    assert created and back.number == 3 and back.parents == (2,)


def failure(fid: int, i: int) -> FailureRecord:
    return FailureRecord(
        function_id=fid, revision_number=i % 2, at=1000.0 + i, kind="exception",
        message=f"ValueError: call {i}", args=f"x={i}", traceback=f"Traceback ...\nValueError: {i}",
        diagnostic={"stage": "trial", "kind": "exception", "message": f"call {i}"}, pid=os.getpid(),
    )  # fmt: skip


def test_live_failures_are_a_ring_per_lineage(store: EvolvableStore, make_rev: MakeRev) -> None:
    fid = lineage(store, make_rev)
    other = store.ensure_function("m.g", "fp", "def g() -> None:").id
    store.add_failure(failure(other, 99), keep=3)
    for i in range(10):
        store.add_failure(failure(fid, i), keep=4)
    kept = store.failures(fid)
    assert [f.args for f in kept] == ["x=6", "x=7", "x=8", "x=9"]  # the newest 4, oldest first
    assert kept[-1].message == "ValueError: call 9" and kept[-1].revision_number == 1
    assert kept[-1].diagnostic["message"] == "call 9" and kept[-1].pid == os.getpid()
    assert [f.args for f in store.failures(fid, limit=2)] == ["x=8", "x=9"]
    assert [f.args for f in store.failures(other)] == ["x=99"]  # other lineages untouched


def test_a_version_3_file_gains_the_live_failure_table(tmp_path: Path, make_rev: MakeRev) -> None:
    path = tmp_path / "v3.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for m in MIGRATIONS[:3]:  # exactly what a version-3 symbiont wrote
        for statement in m.statements:
            conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 3")
    conn.close()
    with open_store(path) as s:
        assert s.schema_version >= 4
        fid = lineage(s, make_rev)
        s.add_failure(failure(fid, 1))
        assert len(s.failures(fid)) == 1
