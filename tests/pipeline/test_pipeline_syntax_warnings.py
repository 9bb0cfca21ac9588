"""SyntaxWarnings about a candidate's text stay off the program's stderr (issue 9, item 8).

Python warns while parsing or compiling `"abc" is "abc"` or the invalid escape `"\\d"`. Those
warnings are about the model's code: a host program running the pipeline (in a fresh process,
showing every warning, as `python -W default` does) must print nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent

PROGRAM = r'''
import pipeline_targets as pt
from symbiont.evolvable import content_hash
from symbiont.pipeline import PipelineConfig, Target, run_pipeline

reply = """```python
PATTERN = "BACKSLASHd+"

def step(state: State, k: int = 3) -> State:
    same = "abc" is "abc"
    return State(state.count + k if same else 0, state.name)
```""".replace("BACKSLASH", chr(92))
result = run_pipeline(reply, Target.from_function(pt.step), PipelineConfig(typecheck=False))
content_hash(result.candidate.source)
print("ok" if result.ok else [d.render() for d in result.diagnostics])
'''


def test_candidate_syntax_warnings_do_not_reach_the_programs_stderr() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    env.pop("PYTHONWARNINGS", None)
    out = subprocess.run(
        [sys.executable, "-W", "default", "-c", PROGRAM],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.stdout.strip() == "ok", out.stdout + out.stderr
    assert out.stderr == ""


def test_the_programs_own_syntax_warnings_are_left_alone() -> None:
    program = (
        "import symbiont.pipeline\ncompile('x = \"abc\" is \"abc\"', 'host_code.py', 'exec')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120
    )
    assert "SyntaxWarning" in out.stderr and "host_code.py" in out.stderr
