"""A search killed with SIGKILL in the middle resumes from the store; nothing committed is lost.

On both backends: a SQLite file and a real PostgreSQL database (the search's process opens
`Runtime(store="postgresql://...")`). The test reads the store through its repositories.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from symbiont.store import EvolvableStore, open_store

SCRIPT = Path(__file__).parent / "search_script.py"


def run(store: str, evaluations: int, resume: bool, seed: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            str(SCRIPT),
            store,
            str(evaluations),
            "1" if resume else "0",
            str(seed),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def snapshot(store: EvolvableStore) -> tuple[list[tuple], list[tuple], list[tuple]]:
    searches = sorted((r.id, r.status) for r in store.searches.recent(limit=100))
    rows = [
        (sid, c.idx, c.revision_number, c.kind, int(c.evaluated), c.score)
        for sid, _ in searches
        for c in store.searches.candidates(sid)
    ]
    (peak,) = store.find_functions("search_targets.peak")
    revisions = [(r.number, r.content_hash, r.status) for r in store.revisions_of(peak.id)]
    return searches, rows, revisions


def test_a_search_killed_mid_way_continues_with_everything_it_committed(
    store_backend: str,
) -> None:
    location = store_backend
    reader = open_store(location)  # the schema exists before the search starts
    proc = run(location, 10_000, resume=False, seed=11)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
        started = reader.searches.recent(limit=1)
        if started and sum(c.evaluated for c in reader.searches.candidates(started[0].id)) >= 10:
            break
    assert proc.poll() is None, proc.communicate()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    searches, rows, revisions = snapshot(reader)
    assert searches == [(1, "running")]  # killed: never marked finished
    done = sum(r[4] for r in rows)
    assert done >= 10
    best_before = max(r[5] for r in rows if r[5] is not None and r[3] in ("seed", "evaluated"))

    resumed = run(location, done + 6, resume=True, seed=12)
    out, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["search_id"] == 1 and result["resumed"] is True
    assert result["evaluations"] == done + 6, result
    assert result["best"] >= best_before
    after_searches, after_rows, after_revisions = snapshot(reader)
    reader.close()
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
