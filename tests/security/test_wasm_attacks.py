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


# -- hashing: flooding, and hash order as a channel between calls ------------------------------
#
# Every wasm instance starts from one snapshot, so `hash()` of a string is the same in all of
# them (the secret is drawn once per build; docs/security.md says why it cannot be drawn per
# instance). What that could give an attacker, tried here: colliding keys that slow a call,
# and a way to carry something from one call to the next through hash order or interning.


def _fnv_multicollision(stages: int) -> list[str]:
    """2**stages strings with one hash under every secret of CPython's 32-bit FNV (the
    string hash of CPython built for wasm32, `sys.hash_info.algorithm == 'fnv'`).

    FNV there mixes 4-byte words as x = (1000003 * x) ^ word; words that differ only in
    bit 31 make states that differ only in bit 31 (the multiplier is odd), which the next
    word, flipped in bit 31 too, cancels: the pair of words can be swapped for its flipped
    twin whatever the secret. Latin-1 characters keep one byte per character.
    """
    pairs = [
        (f"ab{chr(97 + i)}d" + "efgh", f"ab{chr(97 + i)}\xe4" + "efg\xe8") for i in range(stages)
    ]
    keys = [""]
    for plain, flipped in pairs:
        keys = [k + plain for k in keys] + [k + flipped for k in keys]
    return [k + "tail" for k in keys]


def _flood_keys(tier: str, n_log2: int) -> list[object]:
    """Keys that all collide in the tier's hash tables, built without knowing its secret:
    the FNV multicollision on wasm; on the process tier (SipHash for strings) integers,
    whose hash is the value modulo 2**61 - 1 under every seed."""
    if tier == "wasm":
        return _fnv_multicollision(n_log2)
    return [k * (2**61 - 1) for k in range(1, 2**n_log2 + 1)]


VICTIM = "def main(keys):\n    return len(set(keys))\n"


def test_flood_keys_collide_whatever_the_secret(sandbox: Sandbox) -> None:
    """The claim the docs make: these keys need no knowledge of the instance's secret."""
    keys = _flood_keys(sandbox.tier, 6)
    source = "def main(keys):\n    return len({hash(k) for k in keys})\n"
    result = sandbox.run(source, "main", json.dumps({"keys": keys}))
    assert result.ok, result.error
    assert result.output == 1, "the flood keys do not all collide on this tier"


def test_a_hash_flood_costs_only_the_flooded_call(sandbox: Sandbox) -> None:
    """A benign capability fed colliding keys (2**15 on the process tier, 2**13 on wasm:
    quadratic set building) runs into its own time limit; a call of another capability
    meanwhile answers as usual, and the host is as before."""
    import threading

    keys = _flood_keys(sandbox.tier, 13 if sandbox.tier == "wasm" else 15)
    threads = _status("Threads")
    flooded: list[SandboxResult] = []
    started = time.monotonic()
    worker = threading.Thread(
        target=lambda: flooded.append(
            sandbox.run(
                VICTIM, "main", json.dumps({"keys": keys}), Permissions(), Limits(timeout_s=1.0)
            )
        )
    )
    worker.start()
    time.sleep(0.3)
    _assert_healthy(sandbox)  # while the flood runs
    worker.join(30)
    elapsed = time.monotonic() - started
    assert flooded and flooded[0].error is not None, "the flooded call finished: no flood"
    assert flooded[0].error.kind == "timeout", flooded[0].error
    assert elapsed < 6.0, f"a 1 s call under a hash flood took {elapsed:.1f} s"
    _assert_healthy(sandbox)
    time.sleep(0.3)
    assert _status("Threads") <= threads + 2, (threads, _status("Threads"))


_WRITER = (
    "import sys, builtins, json\n"
    "def main(bit):\n"
    "    if bit:\n"
    "        kept = [sys.intern('mark%d' % i) for i in range(20000)]\n"
    "        json._planted = {'mark%d' % i for i in range(5000)}\n"
    "        builtins._planted = kept\n"
    "        sys.modules['_planted'] = json\n"
    "    return bit\n"
)
_PROBE = (
    "import sys, builtins\n"
    "def main():\n"
    "    fresh = ['mark%d' % i for i in (1, 2, 3, 40, 500, 19999)]\n"
    "    return {\n"
    "        'hash': [hash(s) for s in fresh],\n"
    "        'order': list({''.join(['k', str(i)]) for i in range(64)}),\n"
    "        'mixed': list({'append', 'json', 'sys', ''.join(['app', 'end2']), 'mark7'}),\n"
    "        'interned': [sys.intern(s) is s for s in fresh],\n"
    "        'planted': [hasattr(builtins, '_planted'), '_planted' in sys.modules,\n"
    "                    hasattr(sys.modules['json'], '_planted')],\n"
    "    }\n"
)


def test_nothing_passes_from_one_call_to_the_next_through_hashing(sandbox: Sandbox) -> None:
    """A call tries to leave a bit for the next one: interning 20,000 strings (would the
    next call's `sys.intern` hand back an older object?), a large set in a module, names
    in builtins. The next call's hashes, set orders and interning are the same whichever
    bit was left, and the same as in a call after none."""
    probe = sandbox.run(_PROBE, "main", "{}")
    assert probe.ok, probe.error
    seen = []
    for bit in (1, 0, 1):
        wrote = sandbox.run(_WRITER, "main", json.dumps({"bit": bit}))
        assert wrote.ok and wrote.output == bit, wrote.error
        after = sandbox.run(_PROBE, "main", "{}")
        assert after.ok, after.error
        seen.append(after.output)
    assert probe.output["interned"] == [True] * 6 and probe.output["planted"] == [False] * 3
    for output in seen:
        assert output == probe.output
