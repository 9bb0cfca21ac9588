"""The wasm tier against the real runner component and real wasmtime.

The runner is built once per machine (tens of seconds the very first time, then cached
under the symbiont cache folder); the session fixture loads it once for all tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from symbiont.errors import CapabilityError
from symbiont.sandbox.base import HostCall, Limits, Permissions, Sandbox
from symbiont.sandbox.wasm import WasmSandbox, ensure_runner

try:  # the real host side, when present in this checkout
    from symbiont.sandbox.hostfns import HostFunctions
except ImportError:  # pragma: no cover - a minimal stand-in with the same contract
    HostFunctions = None  # type: ignore[assignment,misc]


class StandInHostFunctions:
    """Only `now_ms` and `log`, with the contract of `HostFunctions.dispatch`."""

    def __init__(self, permissions: Permissions, limits: Limits) -> None:
        self.calls: list[HostCall] = []
        self.logs: list[str] = []

    def dispatch(self, name: str, args_json: str) -> str:
        args = json.loads(args_json)
        if name == "now_ms":
            self.calls.append(HostCall(name, "", True))
            return json.dumps({"ok": 1234})
        if name == "log":
            self.calls.append(HostCall(name, "", True))
            self.logs.append(args["message"])
            return json.dumps({"ok": None})
        self.calls.append(HostCall(name, "", False, "denied: stand-in"))
        return json.dumps({"error": {"kind": "denied", "message": "not in the stand-in"}})


@pytest.fixture(scope="session")
def runner_path() -> Path:
    return ensure_runner()


@pytest.fixture(scope="session")
def sandbox(runner_path: Path) -> Iterator[WasmSandbox]:
    box = WasmSandbox(pool_size=2)
    yield box
    box.close()


def run(box: WasmSandbox, source: str, input_obj: object = None, entry: str = "main", **kw):
    limits = kw.pop("limits", None)
    permissions = kw.pop("permissions", None)
    return box.run(
        textwrap.dedent(source),
        entry,
        json.dumps({} if input_obj is None else input_obj),
        permissions,
        limits,
    )


def test_is_a_sandbox(sandbox: WasmSandbox) -> None:
    assert isinstance(sandbox, Sandbox)
    assert sandbox.tier == "wasm"


def test_add_two_numbers(sandbox: WasmSandbox) -> None:
    result = run(sandbox, "def main(a, b):\n    return a + b\n", {"a": 2, "b": 40})
    assert result.ok, result.error
    assert result.output == 42
    assert result.tier == "wasm"
    assert result.duration_s > 0


def test_json_round_trip(sandbox: WasmSandbox) -> None:
    value = {"text": "héllo ✓", "n": [1, 2.5, None, True], "nested": {"k": ["v"]}}
    result = run(
        sandbox, "def main(value):\n    return {'echo': value, 'n': len(value)}\n", {"value": value}
    )
    assert result.ok, result.error
    assert result.output == {"echo": value, "n": 3}


def test_exception_traceback_trimmed_to_capability(sandbox: WasmSandbox) -> None:
    source = """\
        def helper(x):
            raise ValueError(f"bad value {x}")

        def main(x):
            return helper(x)
    """
    result = run(sandbox, source, {"x": 7})
    assert result.error is not None
    assert result.error.kind == "exception"
    assert "ValueError: bad value 7" in result.error.message
    tb = result.error.traceback or ""
    frames = [ln.strip() for ln in tb.splitlines() if ln.strip().startswith("File ")]
    assert len(frames) == 2, tb
    assert all(f.startswith('File "<capability>"') for f in frames), tb
    assert 'raise ValueError(f"bad value {x}")' in tb
    assert "symbiont_guest" not in tb


def test_syntax_error_is_an_exception(sandbox: WasmSandbox) -> None:
    result = run(sandbox, "def main(:\n    pass\n")
    assert result.error is not None and result.error.kind == "exception"
    assert "SyntaxError" in result.error.message


def test_infinite_loop_times_out_and_sandbox_survives(sandbox: WasmSandbox) -> None:
    result = run(
        sandbox, "def main():\n    while True:\n        pass\n", limits=Limits(timeout_s=0.5)
    )
    assert result.error is not None and result.error.kind == "timeout"
    assert result.duration_s < 3.0
    after = run(sandbox, "def main():\n    return 'still here'\n")
    assert after.output == "still here"


def test_sleep_past_the_limit_times_out(sandbox: WasmSandbox) -> None:
    result = run(
        sandbox, "import time\n\ndef main():\n    time.sleep(60)\n", limits=Limits(timeout_s=0.5)
    )
    assert result.error is not None and result.error.kind == "timeout"
    assert result.duration_s < 3.0


def test_no_blocking_host_sleep_is_reachable(sandbox: WasmSandbox) -> None:
    # The guest's time.sleep used to keep the real WASI sleep in its closure (a blocking
    # wait inside the host, where no epoch check runs). Now the host serves the sleep and
    # ends it at the call's deadline; the original is gone.
    source = """\
        import time

        def main():
            return [time.sleep.__closure__, getattr(time.sleep, "__wrapped__", None)]
    """
    assert run(sandbox, source).output == [None, None]
    result = run(
        sandbox, "import time\n\ndef main():\n    time.sleep(3)\n", limits=Limits(timeout_s=0.3)
    )
    assert result.error is not None and result.error.kind == "timeout", result
    assert result.duration_s < 1.0
    after = run(sandbox, "def main():\n    return 'next call fine'\n")
    assert after.output == "next call fine"


def test_concurrent_calls_from_threads(sandbox: WasmSandbox) -> None:
    import threading

    outputs: dict[int, object] = {}

    def worker(i: int) -> None:
        outputs[i] = run(sandbox, "def main(i):\n    return i * 2\n", {"i": i}).output

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert outputs == {0: 0, 1: 2, 2: 4, 3: 6}


def test_host_functions_are_built_only_when_called(runner_path: Path) -> None:
    built: list[StandInHostFunctions] = []

    def factory(permissions: Permissions, limits: Limits) -> StandInHostFunctions:
        host = StandInHostFunctions(permissions, limits)
        built.append(host)
        return host

    with WasmSandbox(pool_size=0, host_functions=factory) as box:
        plain = run(box, "def main():\n    return 1\n")
        assert plain.output == 1 and plain.host_calls == [] and plain.logs == []
        assert built == []
        logged = run(box, "from symbiont.host import log\n\ndef main():\n    log('hi')\n")
        assert logged.ok, logged.error
        assert len(built) == 1 and logged.logs == ["hi"]


def test_a_failing_host_factory_is_reported(runner_path: Path) -> None:
    def factory(permissions: Permissions, limits: Limits) -> StandInHostFunctions:
        raise RuntimeError("no host side today")

    with WasmSandbox(pool_size=0, host_functions=factory) as box:
        with pytest.raises(RuntimeError, match="no host side today"):
            run(box, "from symbiont.host import now_ms\n\ndef main():\n    return now_ms()\n")
        assert run(box, "def main():\n    return 2\n").output == 2


def _until_prepared(box: WasmSandbox, source: str) -> bool:
    """Wait (briefly) until the pool holds an instance that compiled `source` ahead."""
    import time

    for _ in range(200):
        pool = box._pool
        if pool is not None and any(s.prepared == source for s in list(pool._slots)):
            return True
        time.sleep(0.01)
    return False


def test_repeated_calls_use_a_precompiled_instance(sandbox: WasmSandbox) -> None:
    source = textwrap.dedent(
        """\
        def helper(x):
            raise ValueError(f"bad value {x}")

        def main(x):
            if x < 0:
                return helper(x)
            return {"double": x * 2}
        """
    )
    for i in range(3):
        ok = sandbox.run(source, "main", json.dumps({"x": i}))
        assert ok.output == {"double": 2 * i}, ok.error
    assert _until_prepared(sandbox, source)
    failed = sandbox.run(source, "main", '{"x": -1}')  # runs the precompiled code
    assert failed.error is not None and failed.error.kind == "exception"
    tb = failed.error.traceback or ""
    assert 'raise ValueError(f"bad value {x}")' in tb and "symbiont_guest" not in tb
    assert [ln.strip() for ln in tb.splitlines() if ln.strip().startswith("File ")] == [
        'File "<capability>", line 6, in main',
        'File "<capability>", line 2, in helper',
    ]


def test_a_precompiled_instance_only_runs_its_own_source(sandbox: WasmSandbox) -> None:
    secret = "def main():\n    return 'SECRET-A-31337'\n"
    for _ in range(2):
        assert run(sandbox, secret).output == "SECRET-A-31337"
    assert _until_prepared(sandbox, secret)
    assert sandbox._pool is not None
    slot = sandbox._pool.take("def main():\n    return 'B'\n")
    try:
        assert slot.prepared is None  # never the instance that compiled the other source
    finally:
        sandbox._pool.done(slot)
    # And from the inside: a different source finds nothing of the first one's code.
    probe = """\
        import gc, sys

        def main():
            guest = sys.modules["symbiont_guest"]
            secret = "SECRET-A-" + str(31337)  # not a constant of this code
            found = [o for o in gc.get_objects() if isinstance(o, tuple) and secret in o]
            return [guest._prepared is None, len(found)]
    """
    assert run(sandbox, probe).output == [True, 0]


def test_a_syntax_error_is_reported_on_every_repeat(sandbox: WasmSandbox) -> None:
    for _ in range(3):
        result = run(sandbox, "def main(:\n    pass\n")
        assert result.error is not None and result.error.kind == "exception"
        assert "SyntaxError" in result.error.message


def test_memory_bomb(sandbox: WasmSandbox) -> None:
    source = "def main():\n    x = []\n    while True:\n        x.append(' ' * 1_000_000)\n"
    result = run(sandbox, source, limits=Limits(memory_bytes=64 * 1024 * 1024))
    assert result.error is not None and result.error.kind == "memory", result.error


def test_huge_output(sandbox: WasmSandbox) -> None:
    result = run(
        sandbox, "def main():\n    return 'x' * 3000\n", limits=Limits(max_output_bytes=1000)
    )
    assert result.error is not None and result.error.kind == "output_too_large"
    small = run(
        sandbox, "def main():\n    return 'x' * 500\n", limits=Limits(max_output_bytes=1000)
    )
    assert small.output == "x" * 500


def test_huge_print_output_is_capped(sandbox: WasmSandbox) -> None:
    source = "def main():\n    for _ in range(2000):\n        print('y' * 99)\n    return 1\n"
    result = run(sandbox, source, limits=Limits(max_log_bytes=10_000))
    assert result.error is not None and result.error.kind == "output_too_large"
    assert sum(len(line) + 1 for line in result.logs) <= 10_000 + 100


def test_print_goes_to_logs(sandbox: WasmSandbox) -> None:
    result = run(sandbox, "def main():\n    print('hello from wasm')\n    return 1\n")
    assert result.output == 1
    assert "hello from wasm" in result.logs


def test_numpy_is_unavailable(sandbox: WasmSandbox) -> None:
    result = run(sandbox, "import numpy\n\ndef main():\n    return 1\n")
    assert result.error is not None and result.error.kind == "unavailable"
    assert "numpy" in result.error.message and "process" in result.error.message


def test_non_json_result(sandbox: WasmSandbox) -> None:
    for body in ("return object()", "return float('nan')", "return {1, 2}"):
        result = run(sandbox, f"def main():\n    {body}\n")
        assert result.error is not None and result.error.kind == "invalid_output", body


def test_recursion_error_is_an_exception(sandbox: WasmSandbox) -> None:
    result = run(sandbox, "def main(n=0):\n    return main(n + 1)\n")
    assert result.error is not None and result.error.kind == "exception"
    assert "RecursionError" in result.error.message


def test_stack_overflow_in_c_does_not_kill_host(sandbox: WasmSandbox) -> None:
    source = (
        "def main():\n    x = []\n    for _ in range(1_000_000):\n        x = [x]\n"
        "    return len(repr(x))\n"
    )
    result = run(sandbox, source)
    assert result.error is not None and result.error.kind in ("crash", "exception")
    assert result.error.message
    assert run(sandbox, "def main():\n    return 5\n").output == 5


def test_no_host_environment(sandbox: WasmSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYMBIONT_TEST_SECRET", "hunter2")
    result = run(sandbox, "import os\n\ndef main():\n    return dict(os.environ)\n")
    assert result.ok, result.error
    assert "SYMBIONT_TEST_SECRET" not in result.output
    assert "hunter2" not in json.dumps(result.output)
    assert "PATH" not in result.output and "HOME" not in result.output


def test_host_files_are_not_reachable(sandbox: WasmSandbox) -> None:
    result = run(sandbox, "def main():\n    return open('/etc/passwd').read()\n")
    assert result.error is not None and result.error.kind in ("exception", "denied")
    listing = run(sandbox, "import os\n\ndef main():\n    return os.listdir('/')\n")
    assert listing.error is not None or listing.output == []


def test_no_sockets(sandbox: WasmSandbox) -> None:
    result = run(sandbox, "import socket\n\ndef main():\n    return 1\n")
    assert result.error is not None and result.error.kind == "unavailable"
    raw = run(
        sandbox,
        "import _socket\n\ndef main():\n"
        "    s = _socket.socket()\n    s.connect(('127.0.0.1', 9))\n    return 1\n",
    )
    assert raw.error is not None and raw.error.kind in ("denied", "exception")


def test_state_does_not_leak_between_calls(sandbox: WasmSandbox) -> None:
    source = """\
        import json
        counter = 0

        def main():
            global counter
            counter += 1
            json.symbiont_leak = getattr(json, "symbiont_leak", 0) + 1
            return [counter, json.symbiont_leak]
    """
    outputs = [run(sandbox, source).output for _ in range(3)]
    assert outputs == [[1, 1], [1, 1], [1, 1]]


def test_host_function_round_trip_stand_in() -> None:
    with WasmSandbox(pool_size=0, host_functions=StandInHostFunctions) as box:
        source = """\
            from symbiont.host import now_ms, log, read_file, HostDenied

            def main():
                log("first")
                t = now_ms()
                try:
                    read_file("x.txt")
                except HostDenied as exc:
                    return [t, str(exc), isinstance(exc, PermissionError)]
        """
        result = run(box, source)
        assert result.ok, result.error
        assert result.output == [1234, "not in the stand-in", True]
        assert result.logs == ["first"]
        assert [c.name for c in result.host_calls] == ["log", "now_ms", "read_file"]
        assert [c.allowed for c in result.host_calls] == [True, True, False]


@pytest.mark.skipif(HostFunctions is None, reason="symbiont.sandbox.hostfns not present")
def test_host_function_round_trip_real(sandbox: WasmSandbox, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.txt").write_text("forty-two")
    perms = Permissions(data_dir=data, read_files=True, write_files=True)
    source = """\
        from symbiont.host import read_file, write_file, list_files

        def main():
            text = read_file("in.txt")
            write_file("out.txt", text.upper())
            return sorted(list_files("."))
    """
    result = run(sandbox, source, permissions=perms)
    assert result.ok, result.error
    assert result.output == ["in.txt", "out.txt"]
    assert (data / "out.txt").read_text() == "FORTY-TWO"
    escape = run(
        sandbox,
        "from symbiont.host import read_file\n\n"
        "def main():\n    return read_file('../../etc/passwd')\n",
        permissions=perms,
    )
    assert escape.error is not None and escape.error.kind == "denied"
    assert any(not c.allowed for c in escape.host_calls)


def test_invalid_input_is_a_clear_error(sandbox: WasmSandbox) -> None:
    with pytest.raises(CapabilityError):
        sandbox.run("def main():\n    return 1\n", "main", "{not json")


def test_missing_entry(sandbox: WasmSandbox) -> None:
    result = run(sandbox, "def other():\n    return 1\n")
    assert result.error is not None and result.error.kind == "exception"
    assert "main" in result.error.message


def test_second_process_reuses_the_cache(runner_path: Path) -> None:
    script = (
        "from symbiont.sandbox.wasm import WasmSandbox\n"
        "msgs = []\n"
        "with WasmSandbox(pool_size=0, progress=msgs.append) as box:\n"
        "    r = box.run('def main(a):\\n    return a * 2\\n', 'main', '{\"a\": 21}')\n"
        "print(r.output, len(msgs))\n"
    )
    before = runner_path.stat().st_mtime_ns
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["42", "0"]  # the answer, and no build/compile message
    assert "building the wasm sandbox runner" not in proc.stderr
    assert runner_path.stat().st_mtime_ns == before


@pytest.mark.slow
def test_corrupt_compiled_cache_is_rebuilt(runner_path: Path, tmp_path: Path) -> None:
    """A garbage runner.cwasm is recompiled from runner.wasm, not a fatal error."""
    cache = tmp_path / "cache"
    target = cache / runner_path.parent.name
    target.mkdir(parents=True)
    (target / "runner.wasm").write_bytes(runner_path.read_bytes())
    (target / "runner.cwasm").write_bytes(b"\x7fELF this is not a compiled component")
    script = (
        "from symbiont.sandbox.wasm import WasmSandbox\n"
        "with WasmSandbox(pool_size=0) as box:\n"
        "    print(box.run('def main():\\n    return 7\\n', 'main', '{}').output)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "SYMBIONT_CACHE": str(cache)},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "7"
    assert "does not load" in proc.stderr and "recompiling" in proc.stderr
    assert (target / "runner.cwasm").stat().st_size > 1_000_000


def test_exit_without_result_is_a_crash(sandbox: WasmSandbox) -> None:
    result = run(sandbox, "import os\n\ndef main():\n    os._exit(0)\n")
    assert result.error is not None and result.error.kind == "crash"
    assert "without a result" in result.error.message
    assert run(sandbox, "def main():\n    return 'alive'\n").output == "alive"
