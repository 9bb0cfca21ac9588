"""Resume through the real runtime: a program started again comes up with the stored revision.

Each "program start" is a fresh Python process, as for a user. A revision is written into
the store between two starts (as `symbiont rollback` or another process would), so the
second start must take it from the store, not from memory. On both backends: a SQLite file
and a real PostgreSQL database (`Runtime(store="postgresql://...")`).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from store_helpers import source_hash

from symbiont.cli import main
from symbiont.store import RevisionRecord, open_store

PROGRAM = textwrap.dedent(
    '''
    import sys
    import symbiont

    @symbiont.evolvable
    def double(x: int) -> int:
        """Twice x."""
        return x + x + 1  # the declared body is wrong on purpose

    rt = symbiont.Runtime(store=sys.argv[1])
    print(double.symbiont.active.number, double(10), flush=True)
    rt.close()
    '''
)
FIXED = 'def double(x: int) -> int:\n    """Twice x."""\n    return 2 * x\n'


def start_program(tmp_path: Path, store: str) -> tuple[int, int]:
    script = tmp_path / "prog.py"
    script.write_text(PROGRAM)
    done = subprocess.run(
        [sys.executable, str(script), store], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    active, result = done.stdout.split()
    return int(active), int(result)


def test_next_start_resumes_the_stored_active_revision(
    tmp_path: Path, store_backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store_path = store_backend
    assert start_program(tmp_path, store_path) == (0, 21)  # first start: the declared body

    with open_store(store_path) as s:
        (fr,) = s.find_functions("prog.double")
        assert [r.number for r in s.revisions(fr.key)] == [0]  # r0 was recorded
        rec = s.add_revision(
            RevisionRecord(
                function_id=fr.id, number=-1, source=FIXED, reply="", parents=(0,),
                origin="manual", model=None, status="accepted", stage="promote",
                diagnostics=[], score=None, metrics={}, content_hash=source_hash(FIXED),
            )
        )  # fmt: skip
        s.set_active(fr.id, rec.number)

    assert start_program(tmp_path, store_path) == (1, 20)  # resumed with r1

    assert main(["rollback", "double", "--store", store_path]) == 0
    assert "now r0" in capsys.readouterr().out
    assert start_program(tmp_path, store_path) == (0, 21)  # the rollback took effect
