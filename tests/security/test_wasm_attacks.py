"""Attack suite: hostile capabilities against the wasm tier's time, memory and thread bounds.

A blocking wait inside the host (the real WASI sleep) cannot be interrupted by the epoch
deadline: each one used to leave a thread and a Store behind. Every attack here tries to
reach such a wait (or to make the host copy a huge argument) and must end on time with the
expected kind; the host must stay healthy (a benign call answers, threads and memory are
back where they were). The sleep attacks also run on the process tier, where they must end
at the deadline as well.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from symbiont.sandbox.base import Limits, Permissions, Sandbox, SandboxResult

TIERS = ["wasm", "process"]


def _status(key: str) -> int:
    """A number from /proc/self/status (kB for memory lines)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {key} in /proc/self/status")


def _make_sandbox(tier: str) -> Sandbox:
    if tier == "wasm":
        from symbiont.sandbox.wasm import WasmSandbox

        return WasmSandbox(pool_size=2)
    from symbiont.sandbox.process import ProcessSandbox

    return ProcessSandbox()


@pytest.fixture(scope="module", params=TIERS)
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    sb = _make_sandbox(request.param)
    warm = sb.run("def main():\n    return 1\n", "main", "{}", Permissions(), Limits(timeout_s=600))
    assert warm.ok, warm.error
    yield sb
    sb.close()


@pytest.fixture(scope="module")
def wasm() -> Iterator[Sandbox]:
    from symbiont.sandbox.wasm import WasmSandbox

    sb = WasmSandbox(pool_size=2)
    warm = sb.run("def main():\n    return 1\n", "main", "{}", Permissions(), Limits(timeout_s=600))
    assert warm.ok, warm.error
    yield sb
    sb.close()


def _run(sandbox: Sandbox, source: str, **limits: float) -> SandboxResult:
    return sandbox.run(source, "main", "{}", Permissions(), Limits(**limits))  # type: ignore[arg-type]


def _assert_healthy(sandbox: Sandbox) -> None:
    started = time.monotonic()
    result = sandbox.run("def main(a, b):\n    return a + b\n", "main", '{"a": 40, "b": 2}')
    assert result.ok and result.output == 42, result.error
    assert time.monotonic() - started < 2.0


_CELLS = "def _cells(fn):\n    return dict(zip(fn.__code__.co_freevars, fn.__closure__))\n"

# Each tries to wait inside the host past the call's limit. Outcome kinds: "timeout" when
# the wait happened and was cut at the deadline; otherwise the wait was refused in the guest
# (an exception, or a module the sandbox does not offer).
SLEEPERS = {
    "plain-sleep": "import time\n\ndef main():\n    time.sleep(60)\n",
    "infinite-sleep": "import time\n\ndef main():\n    time.sleep(float('inf'))\n",
    "sleep-and-retry": "import time\n\ndef main():\n    while True:\n        try:\n"
    "            time.sleep(30)\n        except BaseException:\n            pass\n",
    "closure": "import time\n" + _CELLS + "\ndef main():\n"
    "    real = _cells(time.sleep)['real_sleep'].cell_contents\n    real(60)\n",
    "select-timeout": "import select\n\ndef main():\n    select.select([], [], [], 60)\n",
    "poll-timeout": "import select\n\ndef main():\n    select.poll().poll(60_000)\n",
    "selectors": "import selectors\n\ndef main():\n    selectors.DefaultSelector().select(60)\n",
    "fresh-time-module": "import sys, _imp\n\ndef main():\n"
    "    spec = sys.modules['_frozen_importlib'].BuiltinImporter.find_spec('time')\n"
    "    _imp.create_builtin(spec).sleep(60)\n",
    "reimport-time": "import sys\n\ndef main():\n    del sys.modules['time']\n"
    "    import time\n    time.sleep(60)\n",
    "gc-hunt": "import gc\n\ndef main():\n"
    "    for obj in gc.get_objects():\n"
    "        if type(obj).__name__ == 'builtin_function_or_method' and obj.__name__ in "
    "('sleep', 'select', 'poll'):\n            obj(60) if obj.__name__ != 'select' "
    "else obj([], [], [], 60)\n    return 'nothing found'\n",
    "timed-lock": "import _thread\n\ndef main():\n    lock = _thread.allocate_lock()\n"
    "    lock.acquire()\n    return lock.acquire(timeout=60)\n",
}
WAIT_OUTCOMES = {"timeout", "exception", "unavailable"}


@pytest.mark.parametrize("name", sorted(SLEEPERS))
def test_no_blocking_wait_outlives_the_call(sandbox: Sandbox, name: str) -> None:
    threads = _status("Threads")
    started = time.monotonic()
    result = _run(sandbox, SLEEPERS[name], timeout_s=0.5)
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"{name}: a 0.5 s call took {elapsed:.1f} s"
    if result.ok:  # only attacks that found nothing to wait on may finish
        assert name in ("gc-hunt", "timed-lock"), result.output
    else:
        assert result.error.kind in WAIT_OUTCOMES, result.error
    if name in ("plain-sleep", "sleep-and-retry"):
        assert result.error is not None and result.error.kind == "timeout", result.error
    _assert_healthy(sandbox)
    assert _status("Threads") <= threads, "a thread was left behind"


def test_a_hundred_hostile_calls_leave_no_threads_or_memory(wasm: Sandbox) -> None:
    """After any timeout the instance, its Store and its thread are gone."""
    hostile = [
        SLEEPERS["plain-sleep"],
        SLEEPERS["sleep-and-retry"],
        "def main():\n    data = bytearray(40 * 1024 * 1024)\n    while True:\n        pass\n",
        "import time\n" + _CELLS + "\ndef main():\n    blob = 'x' * (30 * 1024 * 1024)\n"
        "    real = _cells(time.sleep)['real_sleep'].cell_contents\n    real(60)\n",
        SLEEPERS["select-timeout"],
    ]
    for source in hostile:  # warm: the first calls map code and fill the pool
        _run(wasm, source, timeout_s=0.1)
    _assert_healthy(wasm)
    threads, rss = _status("Threads"), _status("VmRSS")
    kinds: set[str] = set()
    started = time.monotonic()
    for i in range(100):
        result = _run(wasm, hostile[i % len(hostile)], timeout_s=0.1)
        assert result.error is not None
        kinds.add(result.error.kind)
    elapsed = time.monotonic() - started
    assert kinds <= {"timeout", "exception"}, kinds
    assert elapsed < 100 * 0.1 + 30, f"100 calls of 0.1 s took {elapsed:.1f} s"
    _assert_healthy(wasm)
    time.sleep(0.5)  # the pool thread drops the used instances
    assert _status("Threads") <= threads + 2, (threads, _status("Threads"))
    grown_mb = (_status("VmRSS") - rss) / 1024
    assert grown_mb < 200, f"host RSS grew by {grown_mb:.0f} MB over 100 hostile calls"


def _peak_mb(wasm: Sandbox, source: str) -> tuple[float, SandboxResult]:
    """Peak RSS growth of this process (MB) while running `source`."""
    _assert_healthy(wasm)
    time.sleep(0.3)
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    base = _status("VmHWM")
    result = wasm.run(
        source, "main", "{}", Permissions(), Limits(timeout_s=30, memory_bytes=768 << 20)
    )
    return (_status("VmHWM") - base) / 1024, result


HUGE_ARGS = {
    "raw-binding-log": "from wit_world.imports import host\n\ndef main():\n"
    "    s = 'x' * (100 * 1024 * 1024)\n    return host.call('log', s)[:300]\n",
    "raw-binding-read": "from wit_world.imports import host\n\ndef main():\n"
    "    s = 'x' * (100 * 1024 * 1024)\n    return host.call('read_file', s)[:300]\n",
    "raw-binding-unknown": "from wit_world.imports import host\n\ndef main():\n"
    "    s = 'x' * (100 * 1024 * 1024)\n    return host.call('no_such', s)[:300]\n",
}


@pytest.mark.parametrize("name", sorted(HUGE_ARGS))
def test_huge_host_call_arguments_are_refused_before_they_are_copied(
    wasm: Sandbox, name: str
) -> None:
    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("cannot reset the peak RSS here")
    # The guest's own copies: the string, its UTF-8 form and the canonical-ABI buffer the
    # bindings lower it into (all inside the guest's memory, which the memory limit bounds).
    baseline_source = (
        "def main():\n    s = 'x' * (100 * 1024 * 1024)\n    b = s.encode()\n"
        "    c = bytearray(b)\n    return len(c)\n"
    )
    own_mb, own = _peak_mb(wasm, baseline_source)  # what the guest's own copies cost
    assert own.ok, own.error
    peak_mb, result = _peak_mb(wasm, HUGE_ARGS[name])
    assert result.ok, result.error
    reply = json.loads(result.output)
    assert reply["error"]["kind"] == "too_large", reply
    # The one copy wasmtime makes to lift the argument is unavoidable; Python copies are not.
    assert peak_mb - own_mb < 150, f"host call cost {peak_mb - own_mb:.0f} MB beyond the guest's"
    _assert_healthy(wasm)


def test_the_guest_refuses_huge_arguments_itself(wasm: Sandbox) -> None:
    source = (
        "from symbiont.host import log, HostError\n\ndef main():\n    try:\n"
        "        log('x' * (70 * 1024 * 1024))\n    except HostError as exc:\n"
        "        return [exc.kind, str(exc)]\n"
    )
    result = wasm.run(source, "main", "{}", Permissions(), Limits(memory_bytes=512 << 20))
    assert result.ok, result.error
    assert result.output[0] == "too_large"
