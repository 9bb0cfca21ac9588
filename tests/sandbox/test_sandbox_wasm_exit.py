"""A wasm call abandoned after its deadline does not outlive the program's exit unawaited.

The call's thread still runs (inside a host function, then wasm until the epoch deadline
traps it); were the interpreter finalized under it, wasmtime would run on freed state. The
program's exit waits for it, so the host function below gets to finish and say so.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

PROGRAM = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from symbiont.sandbox.base import Limits, Permissions
    from symbiont.sandbox.hostfns import HostFunctions
    from symbiont.sandbox.wasm import WasmSandbox

    marker = Path(sys.argv[1])

    class StallingHost(HostFunctions):
        # A host-side stall past the call's deadline (a bug in a host function, say).
        def dispatch(self, name, args_json):
            time.sleep(3.0)
            marker.write_text("the stalled host call returned")
            return super().dispatch(name, args_json)

    box = WasmSandbox(host_functions=StallingHost)
    source = "from symbiont.host import now_ms\\n\\ndef main():\\n    return now_ms()\\n"
    result = box.run(source, "main", "{}", Permissions(), Limits(timeout_s=1.0))
    print("KIND", result.error.kind if result.error else "ok", flush=True)
    """
)


def test_exit_waits_for_an_abandoned_call(tmp_path: Path) -> None:
    marker = tmp_path / "returned.txt"
    script = tmp_path / "abandon.py"
    script.write_text(PROGRAM)
    proc = subprocess.run(
        [sys.executable, str(script), str(marker)], capture_output=True, text=True, timeout=300
    )
    assert "KIND timeout" in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert marker.read_text() == "the stalled host call returned"
