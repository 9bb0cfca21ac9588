"""`@evolvable` trials are confined by default; `trial="fork"` is the trusted, unconfined fork.

The check runs in the trial child like the candidate, so a check that writes a file shows
which authority the child had: none by default, the host's with `trial="fork"`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import trial_mode_targets as t

import symbiont
from symbiont.errors import DeclarationError
from symbiont.models import ScriptedModel

REPLY = """```python
def {name}(x: int) -> int:
    \"\"\"Return 2 * x.\"\"\"
    return 2 * x
```"""


def _evolve_with_writing_check(fn, marker: Path) -> symbiont.EvolveReport:
    def check(candidate) -> None:
        assert candidate(3) == 6
        marker.write_text("written by the trial child")

    rt = symbiont.Runtime(store=False)
    try:
        name = fn.__name__
        return rt.evolve_sync(
            fn, ScriptedModel([REPLY.format(name=name)]), prompt="x", check=check, attempts=1
        )
    finally:
        rt.close()
        fn.symbiont.activate(0)


def test_default_trial_is_confined_and_cannot_write(tmp_path: Path) -> None:
    assert t.confined_double.symbiont.options.trial == "confined"
    marker = tmp_path / "marker.txt"
    report = _evolve_with_writing_check(t.confined_double, marker)
    assert not marker.exists()
    assert not report.accepted
    text = " ".join(f"{d.message} {d.detail or ''}" for d in report.attempts[0].diagnostics)
    assert "PermissionError" in text or "Permission denied" in text or "Read-only" in text, text


def test_fork_trial_keeps_the_hosts_authority(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    report = _evolve_with_writing_check(t.trusted_double, marker)
    assert marker.read_text() == "written by the trial child"
    assert report.accepted


def test_unknown_trial_mode_is_refused_with_the_choices() -> None:
    with pytest.raises(DeclarationError, match="confined"):
        symbiont.evolvable(trial="sandbox")  # type: ignore[arg-type]
