"""Evolving programs as real processes against one store file: killed mid-run, or two at once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from symbiont.store import open_store

MODULE = '''
import symbiont

@symbiont.evolvable(timeout=2.0, typecheck=False)
def offset(x: float) -> float:
    """A value to minimise."""
    return (x - 3.0) ** 2 + 1.5
'''

# Evolves for ever with the offline proposer; prints each revision number once recorded.
EVOLVER = """
import sys
sys.path.insert(0, sys.argv[1])
import symbiont
from symbiont.models import MutationModel
import evolving

rt = symbiont.Runtime(store=sys.argv[2])
print("ready", flush=True)
if sys.argv[4] == "wait":
    sys.stdin.readline()
model = MutationModel(seed=int(sys.argv[3]))
def show(attempt):
    print(attempt.revision, flush=True)
for _ in range(int(sys.argv[5])):
    rt.evolve_sync(evolving.offset, model, metric=lambda fn: fn(0.0), direction="minimize",
                   attempts=5, on_attempt=show)
rt.close()
print("done", flush=True)
"""


def spawn(
    tmp: Path, seed: int, wait: bool, rounds: int, store: str | None = None
) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYMBIONT_", "OPENAI_"))}
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            EVOLVER,
            str(tmp),
            store or str(tmp / "store.db"),
            str(seed),
            "wait" if wait else "go",
            str(rounds),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def numbers(out: str) -> list[int]:
    return [int(x) for x in out.split() if x.isdigit()]


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    (tmp_path / "evolving.py").write_text(textwrap.dedent(MODULE))
    return tmp_path


def test_an_evolving_process_killed_at_a_random_point_loses_nothing(tmp: Path) -> None:
    proc = spawn(tmp, seed=4, wait=False, rounds=1000)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    time.sleep(random.Random(7).uniform(1.0, 2.0))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    # The same text stream as readline() (communicate() would miss lines it buffered).
    out = proc.stdout.read()
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert proc.returncode == -signal.SIGKILL, err
    reported = numbers(out)
    assert len(reported) >= 3, f"too little evolved before the kill: {err[-2000:]}"
    with open_store(tmp / "store.db") as store:
        assert store.integrity_check() == "ok"
        stored = {r.number for r in store.revisions("evolving.offset")}
        assert set(reported) <= stored, f"lost: {sorted(set(reported) - stored)}"
        assert 0 in stored


def test_four_processes_evolving_into_one_store_lose_nothing(tmp: Path, store_backend: str) -> None:
    """On a SQLite file and on a real PostgreSQL database (`Runtime(store=URL)`)."""
    with open_store(store_backend):
        pass  # the schema exists before the four start
    procs = [spawn(tmp, seed=s, wait=True, rounds=3, store=store_backend) for s in (1, 2, 3, 4)]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-2000:]
        assert "locked" not in err.lower(), err[-2000:]
        assert out.split()[-1] == "done"
    reported = [numbers(out) for out, _ in results]
    assert [len(r) for r in reported] == [15, 15, 15, 15]
    given = [n for r in reported for n in r]
    assert len(set(given)) == len(given)  # no number was handed to two processes
    with open_store(store_backend) as store:
        stored = [r.number for r in store.revisions("evolving.offset")]
        assert sorted(stored) == sorted({0, *given}) == list(range(len(given) + 1))
        assert len(store.lineages("evolving.offset")) == 1  # the declared body once
        (fn,) = store.lineages("evolving.offset")
        history = store.activations(fn.id)
        assert fn.active_number == history[-1].number
        active = store.get_revision("evolving.offset", fn.active_number)
        assert active.status == "accepted"
