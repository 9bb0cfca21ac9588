"""The wasm sandbox tier: per call, warm and cold, next to a plain in-process call.

Targets (issue 5): warm call ≤ 1 ms p50; cold call (new process, cached compiled
component) ≤ 300 ms. Also reports the one-time build (componentize-py + JIT compile) as
recorded when this machine built the runner; `--rebuild` measures a fresh build into a
temporary cache instead (~1 min).

Run: python benchmarks/bench_sandbox_wasm.py [--rebuild]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _report import percentile, write_section

SOURCE = "def add(a, b):\n    return a + b\n"
INPUT = '{"a": 2, "b": 40}'

COLD_SCRIPT = r"""
import json, sys, time
SOURCE, INPUT = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
from symbiont.sandbox.wasm import WasmSandbox
t1 = time.perf_counter()
box = WasmSandbox(pool_size=0)
r = box.run(SOURCE, "add", INPUT)
t2 = time.perf_counter()
assert r.output == 42, r.error
print(json.dumps({"import_s": t1 - t0, "first_call_s": t2 - t1}))
"""


def plain_add(a: int, b: int) -> int:
    return a + b


def ms(x: float) -> str:
    return f"{x * 1000:.2f}"


def measure_warm(n: int = 200) -> tuple[list[float], list[float], list[float]]:
    """(same source 20 ms apart, a new source each call 20 ms apart, back-to-back)."""
    from symbiont.sandbox.wasm import WasmSandbox

    box = WasmSandbox(pool_size=2)
    box.start()
    for _ in range(10):  # warm-up: load, fill the pool, settle the threads
        box.run(SOURCE, "add", INPUT)
        time.sleep(0.02)
    spaced: list[float] = []
    for _ in range(n):
        time.sleep(0.02)  # a realistic gap: the pool refills between calls
        t = time.perf_counter()
        result = box.run(SOURCE, "add", INPUT)
        spaced.append(time.perf_counter() - t)
        assert result.output == 42, result.error
    varied: list[float] = []
    for i in range(n // 2):
        source = f"def add(a, b):\n    return a + b + {i} - {i}\n"  # never seen before
        time.sleep(0.02)
        t = time.perf_counter()
        result = box.run(source, "add", INPUT)
        varied.append(time.perf_counter() - t)
        assert result.output == 42, result.error
    back_to_back: list[float] = []
    for _ in range(n // 2):
        t = time.perf_counter()
        box.run(SOURCE, "add", INPUT)
        back_to_back.append(time.perf_counter() - t)
    box.close()
    return spaced, varied, back_to_back


HOST_LOOP = (
    "from symbiont.host import now_ms\n\n"
    "def main(n):\n    for _ in range(n):\n        now_ms()\n    return n\n"
)


def measure_host_call(rounds: int = 15, n: int = 1000) -> float:
    """Seconds per `now_ms()` host call from the guest (JSON both ways, the raw callback)."""
    from symbiont.sandbox.wasm import WasmSandbox

    box = WasmSandbox(pool_size=2)
    box.run(HOST_LOOP, "main", '{"n": 10}')
    empty: list[float] = []
    loop: list[float] = []
    for _ in range(rounds):
        for count, into in ((0, empty), (n, loop)):
            time.sleep(0.02)
            t = time.perf_counter()
            result = box.run(HOST_LOOP, "main", json.dumps({"n": count}))
            into.append(time.perf_counter() - t)
            assert result.output == count, result.error
    box.close()
    return (percentile(loop, 50) - percentile(empty, 50)) / n


def _cold_env() -> dict[str, str]:
    """The child's environment: ordinary Python start-up, with the bytecode cache on.

    A session that sets PYTHONDONTWRITEBYTECODE would otherwise recompile every module
    without a cached .pyc on each start (~30 ms here) — not what a user's process pays.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def measure_cold(n: int = 9) -> tuple[list[float], list[dict[str, float]]]:
    walls: list[float] = []
    inner: list[dict[str, float]] = []
    env = _cold_env()
    for i in range(n + 1):  # the first run only writes the bytecode cache: not counted
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", COLD_SCRIPT, SOURCE, INPUT],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        wall = time.perf_counter() - t
        if i == 0:
            continue
        walls.append(wall)
        inner.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return walls, inner


def measure_rebuild() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as cache:
        script = (
            "from symbiont.sandbox import _wasm_build as b\n"
            "from symbiont.sandbox.wasm import ensure_runner\n"
            "ensure_runner(progress=lambda m: None)\n"
            "import json; print(json.dumps(b.build_timings()))\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "SYMBIONT_CACHE": cache},
        )
        return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> str:
    from symbiont.sandbox import _wasm_build
    from symbiont.sandbox.wasm import ensure_runner

    ensure_runner()  # builds on a machine without a cache (reported below)
    timings = measure_rebuild() if "--rebuild" in sys.argv else _wasm_build.build_timings()
    plain_ns = min(timeit.repeat("f(2, 40)", globals={"f": plain_add}, number=200_000, repeat=5))
    plain_ns = plain_ns / 200_000 * 1e9
    load_before = os.getloadavg()[0]
    spaced, varied, b2b = measure_warm()
    host_call_s = measure_host_call()
    walls, inner = measure_cold()
    warm50, warm95 = percentile(spaced, 50), percentile(spaced, 95)
    cold50 = percentile(walls, 50)
    first_call50 = percentile([d["first_call_s"] for d in inner], 50)
    import50 = percentile([d["import_s"] for d in inner], 50)
    build = timings.get("componentize_s")
    compile_s = timings.get("compile_s")
    build_txt = (
        f"{build:.1f} s + {compile_s:.1f} s JIT"
        if build and compile_s
        else "not recorded (run with --rebuild)"
    )

    def verdict(value: float, target: float) -> str:
        return "met" if value <= target else "NOT met"

    lines = [
        "## Sandbox: wasm tier (CPython in WebAssembly)",
        "",
        "| measure | figure | target |",
        "| --- | ---: | ---: |",
        f"| plain in-process call `add(2, 40)` | {plain_ns:.0f} ns | — |",
        f"| warm call p50 (pool ready, fresh instance) | {ms(warm50)} ms | ≤ 1 ms "
        f"({verdict(warm50, 0.001)}) |",
        f"| warm call p95 | {ms(warm95)} ms | — |",
        f"| warm call p50, a new source each call (no instance compiled it ahead) | "
        f"{ms(percentile(varied, 50))} ms | — |",
        f"| back-to-back calls p50 (pool drained: instantiation on the caller) | "
        f"{ms(percentile(b2b, 50))} ms | — |",
        f"| host call from the guest (`now_ms()`), per call | {host_call_s * 1e6:.1f} µs | — |",
        f"| cold call p50: new process, cached compiled runner (whole process) | "
        f"{ms(cold50)} ms | ≤ 300 ms ({verdict(cold50, 0.3)}) |",
        f"| … of which `import symbiont.sandbox.wasm` | {ms(import50)} ms | — |",
        f"| … of which load runner + instantiate + first call | {ms(first_call50)} ms | — |",
        f"| first build on this machine (componentize-py + JIT, once) | {build_txt} | — |",
        "",
        f"Warm: {len(spaced)} calls of one capability 20 ms apart through `WasmSandbox.run` "
        "(JSON in/out, epoch deadline, memory limit, host-function plumbing, a fresh "
        "instance each; the pool compiles the latest call's source ahead in a ready "
        f"instance), then {len(varied)} calls with a source never seen before. "
        f"Cold: {len(walls)} new `python -c` processes each making one call (wall time of "
        "the whole process, start-up and exit included; bytecode cache on, after one "
        "unmeasured run that writes it). Machine: 2 shared cores (a Firecracker VM: after "
        "20 ms idle the call's working set is cache-cold, ~0.8 ms vs ~0.15 ms back-to-back "
        "on one instance). "
        f"Load average when the warm calls started: {load_before:.1f}.",
        "",
        "Command: `python benchmarks/bench_sandbox_wasm.py` (`--rebuild` also times a fresh "
        "build into a temporary cache).",
    ]
    return write_section("sandbox_wasm", "\n".join(lines))


if __name__ == "__main__":
    print(main())
