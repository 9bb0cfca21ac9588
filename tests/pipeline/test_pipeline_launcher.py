"""Run under a launcher (`python -m cProfile script.py`), a function's target is still its
script: the type check reads the script's source and prompts name the script's module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    '''
    import json
    import symbiont
    from symbiont.pipeline._target import Target

    @symbiont.evolvable(timeout=2.0)
    def halve(x: float) -> float:
        """Half of x."""
        return x / 2

    if __name__ == "__main__":
        t = Target.from_function(halve)
        print("RESULT " + json.dumps({
            "path": t.module_path,
            "module": t.signature.module,
            "has_source": t.module_source is not None and "def halve" in t.module_source,
            "span": t.function_span,
        }))
    '''
)


LAUNCHERS = [[], ["-m", "cProfile", "-o", "/dev/null"], ["-m", "trace", "--count", "-C", "{tmp}"]]


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_target_is_the_script_whatever_launches_it(tmp_path: Path, launcher: list[str]) -> None:
    script = tmp_path / "halving.py"
    script.write_text(SCRIPT)
    args = [a.replace("{tmp}", str(tmp_path)) for a in launcher]
    proc = subprocess.run(
        [sys.executable, *args, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={
            "PATH": "/usr/bin:/bin",
            "SYMBIONT_HOME": str(tmp_path / "home"),
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        },
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line is not None, proc.stdout + proc.stderr
    got = json.loads(line[len("RESULT ") :])
    assert got["path"] == str(script)
    assert got["module"] == "halving"
    assert got["has_source"] is True
    assert got["span"] is not None
