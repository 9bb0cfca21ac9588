"""A failed check shows the model the check's assertion, never symbiont's own frames."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import check_frames_targets as t

import symbiont
from symbiont.models import ScriptedModel

WRONG = """```python
def shout(text: str) -> str:
    \"\"\"Return the text in capitals with one exclamation mark.\"\"\"
    return text.upper()
```"""


def check_shout(fn) -> None:
    got = fn("hi")
    assert got == "HI!", f"shout('hi') returned {got!r}, expected 'HI!'"


def test_check_failed_detail_has_the_assertion_and_no_symbiont_frame() -> None:
    rt = symbiont.Runtime(store=False)
    try:
        report = rt.evolve_sync(
            t.shout, ScriptedModel([WRONG]), prompt="shout", check=check_shout, attempts=1
        )
    finally:
        rt.close()
        t.shout.symbiont.activate(0)
    (attempt,) = report.attempts
    assert not attempt.accepted
    (diag,) = [d for d in attempt.diagnostics if d.stage == "evaluate"]
    text = f"{diag.message}\n{diag.detail or ''}"
    assert "shout('hi') returned 'HI', expected 'HI!'" in text
    assert "check_shout" in text  # the check's own frame is what the model should see
    package = str(Path(symbiont.__file__).parent)
    assert package not in text, text
