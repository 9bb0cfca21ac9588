"""Evolved revisions survive a restart: a new process comes up with the stored active one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

MODULE = '''
import symbiont

@symbiont.evolvable(timeout=2.0)
def step(state: dict[str, int]) -> None:
    """Advance state["counter"] by one step."""
    state["counter"] += 1
'''

MODULE_CHANGED_SIGNATURE = MODULE.replace(
    "def step(state: dict[str, int]) -> None:",
    "def step(state: dict[str, int], by: int = 1) -> None:",
)

SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import symbiont
from symbiont.models import ScriptedModel
import resumable

rt = symbiont.Runtime(store=sys.argv[2], resume=sys.argv[3] == "resume")
h = resumable.step.symbiont
out = {"active_at_start": h.active.number}
state = {"counter": 0}
resumable.step(state)
out["increment_at_start"] = state["counter"]
if sys.argv[4] == "evolve":
    reply = "```python\\ndef step(state: dict[str, int]) -> None:\\n    state['counter'] += 7\\n```"
    def check(fn):
        s = {"counter": 0}; fn(s); assert s["counter"] == 7
    report = rt.evolve_sync(resumable.step, ScriptedModel([reply]), check=check)
    out["accepted"] = report.accepted.number
out["revisions"] = [(r.number, r.status) for r in h.revisions]
rt.close()
print(json.dumps(out))
"""


def run(tmp: Path, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYMBIONT_", "OPENAI_"))}
    proc = subprocess.run(
        [sys.executable, str(tmp / "script.py"), str(tmp), str(tmp / "store.db"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    (tmp_path / "resumable.py").write_text(textwrap.dedent(MODULE))
    (tmp_path / "script.py").write_text(SCRIPT)
    return tmp_path


def test_a_restarted_program_resumes_the_evolved_revision(tmp: Path) -> None:
    first = run(tmp, "resume", "evolve")
    assert first["active_at_start"] == 0 and first["increment_at_start"] == 1
    accepted = first["accepted"]
    assert accepted >= 1
    second = run(tmp, "resume", "idle")
    assert second["active_at_start"] == accepted
    assert second["increment_at_start"] == 7  # the evolved body runs without any evolve
    assert [accepted, "accepted"] in second["revisions"]
    third = run(tmp, "fresh", "idle")  # resume switched off
    assert third["active_at_start"] == 0 and third["increment_at_start"] == 1


def test_a_rollback_in_the_store_takes_effect_at_the_next_start(tmp: Path) -> None:
    from symbiont.store import open_store

    accepted = run(tmp, "resume", "evolve")["accepted"]
    store = open_store(tmp / "store.db")
    fn = store.find_functions("resumable.step")[0]
    store.rollback(fn.id, 0)
    store.close()
    after = run(tmp, "resume", "idle")
    assert after["active_at_start"] == 0 and after["increment_at_start"] == 1
    assert [accepted, "accepted"] in after["revisions"]  # nothing was lost


def test_a_changed_signature_starts_a_new_lineage_and_keeps_the_old(tmp: Path) -> None:
    from symbiont.store import open_store

    accepted = run(tmp, "resume", "evolve")["accepted"]
    (tmp / "resumable.py").write_text(textwrap.dedent(MODULE_CHANGED_SIGNATURE))
    after = run(tmp, "resume", "idle")
    assert after["active_at_start"] == 0 and after["revisions"] == [[0, "accepted"]]
    store = open_store(tmp / "store.db")
    lineages = store.lineages("resumable.step")
    assert len(lineages) == 2
    old = [rec for rec in lineages if rec.active_number == accepted]
    assert old and store.get_revision("resumable.step", accepted, old[0].fingerprint).source
    store.close()
