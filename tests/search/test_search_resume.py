"""A search killed with SIGKILL in the middle resumes from the store; nothing committed is lost."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "search_script.py"


def run(store: Path, evaluations: int, resume: bool, seed: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            str(SCRIPT),
            str(store),
            str(evaluations),
            "1" if resume else "0",
            str(seed),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def snapshot(store: Path) -> tuple[list[tuple], list[tuple], list[tuple]]:
    conn = sqlite3.connect(store)
    try:
        searches = conn.execute("SELECT id, status FROM searches ORDER BY id").fetchall()
        rows = conn.execute(
            "SELECT search_id, idx, revision_number, kind, evaluated, score FROM search_candidates "
            "ORDER BY search_id, idx"
        ).fetchall()
        revisions = conn.execute(
            "SELECT number, content_hash, status FROM revisions ORDER BY number"
        ).fetchall()
    finally:
        conn.close()
    return searches, rows, revisions


def test_a_search_killed_mid_way_continues_with_everything_it_committed(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    proc = run(store, 10_000, resume=False, seed=11)
    deadline = time.monotonic() + 120
    evaluated = 0
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
        if not store.exists():
            continue
        try:
            conn = sqlite3.connect(store, timeout=5)
            evaluated = conn.execute(
                "SELECT COUNT(*) FROM search_candidates WHERE evaluated = 1"
            ).fetchone()[0]
            conn.close()
        except sqlite3.OperationalError:  # the schema is being created
            continue
        if evaluated >= 10:
            break
    assert proc.poll() is None, proc.communicate()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    searches, rows, revisions = snapshot(store)
    assert searches == [(1, "running")]  # killed: never marked finished
    done = sum(r[4] for r in rows)
    assert done >= 10
    best_before = max(r[5] for r in rows if r[5] is not None and r[3] in ("seed", "evaluated"))

    resumed = run(store, done + 6, resume=True, seed=12)
    out, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["search_id"] == 1 and result["resumed"] is True
    assert result["evaluations"] == done + 6, result
    assert result["best"] >= best_before
    after_searches, after_rows, after_revisions = snapshot(store)
    assert after_searches == [(1, "finished")]
    # every committed row and revision is still there, unchanged, and the new ones follow
    assert after_rows[: len(rows)] == rows
    assert [r[1] for r in after_rows] == list(range(len(after_rows)))
    assert sum(r[4] for r in after_rows) == done + 6
    assert after_revisions[: len(revisions)] == revisions
    # the resumed process brought the best back: it is active
    assert result["active"] == result["best_number"]


def test_resume_without_a_store_is_refused() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    import search_targets as t

    import symbiont
    from symbiont.models import ScriptedModel
    from symbiont.search import Budget

    with symbiont.Runtime(store=False) as rt, pytest.raises(symbiont.SymbiontError, match="store"):
        rt.search_sync(
            t.work,
            ScriptedModel([]),
            metric=t.score_work,
            resume=True,
            budget=Budget(evaluations=2),
        )
