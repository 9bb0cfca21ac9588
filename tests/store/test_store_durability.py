"""Durability and concurrency with real processes: SIGKILL mid-write, two writers at once.

On both backends (a SQLite file, a real PostgreSQL database); the file checks (WAL replay,
PRAGMA integrity_check) are SQLite's own."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from store_helpers import start_together

from symbiont.store import open_store

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")

# A writer that behaves like an evolving program: it records candidates one after another
# (realistic size: source, reply and diagnostics) and reports each number once committed.
WRITER = textwrap.dedent(
    """
    import sys, time
    from symbiont.store import RevisionRecord, open_store

    path, name, count, wait = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "wait"
    store = open_store(path)
    fn = store.ensure_function("examples.counter.step", "fp0", "def step(x: int) -> int:")
    body = "\\n".join(f"    y{i} = x * {i}  # {name}" for i in range(60))
    diag = [{"stage": "typecheck", "kind": "type", "message": "m" * 200, "line": 3}]
    print("ready", flush=True)
    if wait:  # start writing only when the parent says so (both writers at once)
        sys.stdin.readline()
    for i in range(count):
        source = f"def step(x: int) -> int:\\n{body}\\n    return x + {i}\\n"
        rec = store.add_revision(RevisionRecord(
            function_id=fn.id, number=-1, source=source, reply="```python\\n" + source + "```",
            parents=(max(0, i - 1),), origin="model", model=name,
            status="accepted" if i % 3 else "rejected", stage="promote", diagnostics=diag,
            score=float(i), metrics={"i": float(i)}, content_hash=f"{name}-{i}",
        ))
        if i % 4 == 0:
            store.update_revision(fn.id, rec.number, score=float(i) + 0.5)
        print(rec.number, flush=True)
        if wait:
            time.sleep(0.002)  # like an evolve loop, which writes between model calls
    store.close()
    print("done", flush=True)
    """
)


def spawn(path: Path | str, name: str, count: int, wait: bool) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), name, str(count), "wait" if wait else "go"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def reported_numbers(stdout: str) -> list[int]:
    return [int(line) for line in stdout.split() if line.isdigit()]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_at_a_random_point_loses_no_reported_revision(
    tmp_path: Path, store_backend: str, seed: int
) -> None:
    rng = random.Random(seed)
    sqlite = not store_backend.startswith("postgresql://")
    path: Path | str = tmp_path / "store" / "symbiont.db" if sqlite else store_backend
    proc = spawn(path, "killed", 100_000, wait=False)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    # Kill somewhere in the middle of the stream of writes (not at a line boundary we chose).
    time.sleep(rng.uniform(0.05, 0.6))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    # Read through the same text stream as readline(): communicate() reads the raw pipe and
    # would miss lines readline() already buffered.
    out = proc.stdout.read()
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert proc.returncode == -signal.SIGKILL, err
    numbers = reported_numbers(out)
    assert len(numbers) >= 3, f"the child wrote too little before the kill: {err}"
    assert numbers == list(range(len(numbers)))

    if sqlite:  # a plain SQLite connection first (it replays the WAL), then our store
        raw = sqlite3.connect(path)
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        raw.close()
    with open_store(path) as store:
        if sqlite:
            assert store.integrity_check() == "ok"  # type: ignore[attr-defined]
        stored = {r.number: r for r in store.revisions("examples.counter.step")}
        missing = set(numbers) - set(stored)
        assert not missing, f"reported as committed but lost: {sorted(missing)[:10]}"
        # Anything beyond the last reported number is at most the one in flight.
        assert max(stored) <= max(numbers) + 1
        last = stored[numbers[-1]]
        assert last.source.endswith(f"return x + {numbers[-1]}\n")
        assert last.diagnostics[0]["line"] == 3
        # The store is writable after the crash.
        fr = store.ensure_function("examples.counter.step", "fp0", "")
        assert store.next_revision_number(fr.id) == max(stored) + 1


def test_two_writers_at_once_lose_nothing_and_never_see_locked(
    tmp_path: Path, store_backend: str
) -> None:
    sqlite = not store_backend.startswith("postgresql://")
    # Neither process finds a store (a file, or tables in the database): both create it.
    path: Path | str = tmp_path / "shared" / "symbiont.db" if sqlite else store_backend
    count = 150
    procs = [spawn(path, name, count, wait=True) for name in ("alpha", "beta")]
    start_together(procs)  # both opened (and created) the store; now write
    results = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
        assert "locked" not in err.lower() and "busy" not in err.lower(), err
        assert out.split()[-1] == "done"
    a = reported_numbers(results[0][0])
    b = reported_numbers(results[1][0])
    assert len(a) == len(b) == count
    assert not set(a) & set(b), "two writers were given the same revision number"
    assert sorted(a + b) == list(range(2 * count))
    # They really interleaved (otherwise this test proves nothing about concurrency).
    assert min(b) < max(a) and min(a) < max(b)

    with open_store(path) as store:
        if sqlite:
            assert store.integrity_check() == "ok"  # type: ignore[attr-defined]
        revs = store.revisions("examples.counter.step")
        assert len(store.lineages("examples.counter.step")) == 1
        assert [r.number for r in revs] == list(range(2 * count))
        by_model = {r.number: r.model for r in revs}
        assert {n for n, m in by_model.items() if m == "alpha"} == set(a)
        assert {n for n, m in by_model.items() if m == "beta"} == set(b)
