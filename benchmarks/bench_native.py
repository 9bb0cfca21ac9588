"""Native evolvables (symbiont.native): compile time per candidate, call cost, kernel speed.

- per-candidate compile: distinct candidates through the `native` stage (Numba compile in a
  confined trial child: the child's compile time and the stage's wall time, fork included),
  then the host's compile at promotion (through the on-disk cache: a miss) and a load of the
  same kernel from the cache (what a resumed revision costs). Anchor: Symbiont ~120 ms.
- call: a native evolvable called from Python (a `NativeFunction`: partial's C call into the
  revision's dispatcher, no Python frame) vs. a plain `numba.njit` function with the same
  body and signature; target ≤ 1.1×. The previous mechanism (the declared function, a
  one-frame trampoline) is measured alongside. Interleaved rounds, medians of the per-round
  ratios and differences; and (when valgrind is on PATH, the default) the instructions per
  call counted by callgrind, which the machine's load does not move: plain and evolvable in
  the same process, once with an empty kernel cache directory and once with a warm one.
- kernel: examples/native_sim.py's diffusion step (400×400), declared body vs. evolved body
  vs. the declared body run as plain Python.

Run: python benchmarks/bench_native.py [--instructions | --no-instructions]
"""

from __future__ import annotations

import ast
import atexit
import functools
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path
from typing import Annotated

if "SYMBIONT_NATIVE_CACHE" not in os.environ:  # a cache of its own, removed at exit
    os.environ["SYMBIONT_NATIVE_CACHE"] = tempfile.mkdtemp(prefix="bench-native-")
    atexit.register(shutil.rmtree, os.environ["SYMBIONT_NATIVE_CACHE"], ignore_errors=True)
os.environ.setdefault("NUMBA_CACHE_DIR", os.environ["SYMBIONT_NATIVE_CACHE"])

import numba
import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))
from _report import percentile, write_section

import symbiont
from symbiont.native import Dims, compile_kernel
from symbiont.native._kernel import entry_point
from symbiont.pipeline import PipelineConfig, Target, run_pipeline

Vector = Annotated[npt.NDArray[np.float64], 1]
CVector = Annotated[npt.NDArray[np.float64], Dims(1, "C")]


@symbiont.evolvable(native=True, typecheck=False, timeout=60)
def add(x: float, y: float) -> float:
    return x + y


@symbiont.evolvable(native=True, typecheck=False, timeout=60)
def dot3(xs: Vector, ys: Vector) -> float:
    s = 0.0
    for i in range(3):
        s += xs[i] * ys[i]
    return s


@symbiont.evolvable(native=True, typecheck=False, timeout=60)
def total(xs: Vector) -> float:
    s = 0.0
    for i in range(xs.shape[0]):
        s += xs[i]
    return s


@symbiont.evolvable(native=True, typecheck=False, timeout=60)
def dot3c(xs: CVector, ys: CVector) -> float:
    s = 0.0
    for i in range(3):
        s += xs[i] * ys[i]
    return s


# The same bodies as plain `njit` functions (cached on disk: the callgrind children load them)
@numba.njit(add.symbiont.native_spec.signature, cache=True)
def plain_add(x, y):  # type: ignore[no-untyped-def]
    return x + y


@numba.njit(dot3.symbiont.native_spec.signature, cache=True)
def plain_dot3(xs, ys):  # type: ignore[no-untyped-def]
    s = 0.0
    for i in range(3):
        s += xs[i] * ys[i]
    return s


@numba.njit(total.symbiont.native_spec.signature, cache=True)
def plain_total(xs):  # type: ignore[no-untyped-def]
    s = 0.0
    for i in range(xs.shape[0]):
        s += xs[i]
    return s


@numba.njit(dot3c.symbiont.native_spec.signature, cache=True)
def plain_dot3c(xs, ys):  # type: ignore[no-untyped-def]
    s = 0.0
    for i in range(3):
        s += xs[i] * ys[i]
    return s


# The previous mechanism, for comparison: the declared function object, whose `__code__` is a
# one-frame trampoline (calling the dispatcher; with scalars only, the entry point), and a
# partial around the scalar entry point (cheaper, but it ignores keyword arguments).
dot3_trampoline = dot3.symbiont.fn
add_trampoline = add.symbiont.fn
add_entry_partial = functools.partial(entry_point(add.symbiont.native))


XS, YS, K1 = np.ones(3), np.ones(3), np.ones(1000)
CALLS = {  # call -> (evolvable statement, plain statement)
    "add(1.0, 2.0)": ("add(1.0, 2.0)", "plain_add(1.0, 2.0)"),
    "dot3(xs, ys), 3 elements": ("dot3(XS, YS)", "plain_dot3(XS, YS)"),
    "total(xs), 1,000 elements": ("total(K1)", "plain_total(K1)"),
}
INSTRUCTION_STATEMENTS = {
    "plain njit dot3": "plain_dot3(XS, YS)",
    "evolvable dot3 (NativeFunction → dispatcher)": "dot3(XS, YS)",
    "dot3: declared function, trampoline frame → dispatcher (before)": "dot3_trampoline(XS, YS)",
    "plain njit total": "plain_total(K1)",
    "evolvable total (NativeFunction → dispatcher)": "total(K1)",
    "plain njit add": "plain_add(1.0, 2.0)",
    "evolvable add (NativeFunction → dispatcher)": "add(1.0, 2.0)",
    "add: declared function, trampoline frame → entry point (before)": "add_trampoline(1.0, 2.0)",
    "add: partial → entry point (not used: ignores keywords)": "add_entry_partial(1.0, 2.0)",
    "plain njit dot3c (C-contiguous parameters)": "plain_dot3c(XS, YS)",
    "evolvable dot3c (NativeFunction → dispatcher)": "dot3c(XS, YS)",
}
KINDS = ("dot3c", "dot3", "total", "add")  # the kernel a statement's name is about


CANDIDATE = """
def dot3(xs: Vector, ys: Vector) -> float:
    s = {start}
    for i in range(xs.shape[0]):
        s += xs[i] * ys[i] * {scale}
    return s - {start}
"""


def compile_figures(n: int = 12) -> dict[str, list[float]]:
    target = Target.from_function(dot3, owned_names=dot3.symbiont.owned_names)
    config = PipelineConfig(typecheck=False)
    out: dict[str, list[float]] = {"child": [], "stage": [], "host": [], "load": []}
    for i in range(n):
        source = CANDIDATE.format(start=f"{i}.0", scale=f"1.{i:03d}")
        result = run_pipeline(f"```python\n{source}\n```", target, config)
        assert result.candidate is not None, result.diagnostics
        out["child"].append(result.timings["native_compile"])
        out["stage"].append(result.timings["native"])
        spec, g = dot3.symbiont.native_spec, dot3.__globals__
        first = compile_kernel(result.candidate.source, spec, g)  # host, at promotion
        again = compile_kernel(result.candidate.source, spec, g)  # a resumed revision
        assert not first.cache_hit and again.cache_hit
        out["host"].append(first.compile_s)
        out["load"].append(again.compile_s)
    return out


def per_call_ns(stmt: str, g: dict[str, object], number: int = 100_000) -> float:
    return min(timeit.Timer(stmt, globals=g).repeat(repeat=3, number=number)) / number * 1e9


def call_figures(rounds: int = 15) -> list[tuple[str, float, float, float, float]]:
    """(call, evolvable ns, plain ns, median ratio, median difference ns) per call kind."""
    g = globals()
    rows = []
    for call, (evolved, plain) in CALLS.items():
        e_ns, p_ns = [], []
        for _ in range(rounds):  # interleaved: drift of the machine hits both alike
            e_ns.append(per_call_ns(evolved, g, number=20_000))
            p_ns.append(per_call_ns(plain, g, number=20_000))
        pairs = list(zip(e_ns, p_ns, strict=True))
        ratio = statistics.median(e / p for e, p in pairs)
        diff = statistics.median(e - p for e, p in pairs)
        rows.append((call, statistics.median(e_ns), statistics.median(p_ns), ratio, diff))
    return rows


def _typeconv_bucket() -> dict[str, int]:
    """Where Numba's dispatcher looks up the C-contiguous → any-layout conversion of a
    1-D float64 array (what `dot3` and `total` pay on every call): the bucket of its
    `TCCMap`, `(code(C) ^ code(A)) mod 512`. Type codes are handed out in the order types are
    first made in a process, so they differ between a process that compiles its kernels and
    one that loads them; buckets below ≈ 64 are where the number conversions are kept."""
    from numba.core import types as nt

    c, a = nt.Array(nt.float64, 1, "C"), nt.Array(nt.float64, 1, "A")
    return {"code_C": c._code, "code_A": a._code, "bucket": (c._code ^ a._code) & 511}


def _callgrind_child(statements: list[str], small: int, large: int, rounds: int) -> None:
    """Run every statement `small` and `large` times, `rounds` times over, in this one
    process (under `valgrind --instr-atstart=no`), with callgrind's instrumentation on around
    each loop only and a dump after each: the parent reads the dumps in order. One process
    for all the statements, so they share its type codes (see `_typeconv_bucket`). Each loop
    is a function whose locals are the statement's names: a module-level loop would look
    each name up in the module's dict on every call, a cost that depends on the name's hash."""
    loops = []
    for statement in statements:
        names = sorted({n.id for n in ast.walk(ast.parse(statement)) if isinstance(n, ast.Name)})
        src = f"def _loop({', '.join(names)}, n):\n    for _ in range(n):\n        {statement}\n"
        ns: dict[str, object] = {}
        exec(compile(src, "<loop>", "exec"), globals(), ns)
        loops.append((ns["_loop"], [globals()[name] for name in names]))
    for loop, values in loops:
        loop(*values, 100)  # warm-up: specialises the loop, registers Numba's conversions
    pid = str(os.getpid())

    def control(*args: str) -> None:
        subprocess.run(["callgrind_control", *args, pid], capture_output=True, check=True)

    gc.collect()
    gc.disable()  # a collection landing in one loop and not another would count as calls
    for _ in range(rounds):
        for loop, values in loops:
            for n in (small, large):
                control("-i", "on")
                loop(*values, n)
                control("-i", "off")
                control("-d")
    gc.enable()
    print(json.dumps(_typeconv_bucket()))


def _callgrind_run(
    statements: dict[str, str], cache: str, small: int, large: int, rounds: int
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Instructions per call of each statement (one figure per round), all measured in one
    process whose kernel cache directory is `cache`, and that process's type codes."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [
                *(["setarch", platform.machine(), "-R"] if shutil.which("setarch") else []),
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={tmp}/cg.out",
                sys.executable,
                __file__,
                "--callgrind-child",
                json.dumps(list(statements.values())),
                str(small),
                str(large),
                str(rounds),
            ],
            capture_output=True,
            text=True,
            env={
                **os.environ,
                "PYTHONHASHSEED": "0",  # the same dict layouts in every run
                "SYMBIONT_NATIVE_CACHE": cache,
                "NUMBA_CACHE_DIR": cache,
            },
        )
        dumps = sorted(Path(tmp).glob("cg.out.*"), key=lambda p: int(p.suffix[1:]))
        totals = []
        for dump in dumps:
            line = next(x for x in dump.read_text().splitlines() if x.startswith("totals:"))
            totals.append(int(line.split()[1]))
    if out.returncode != 0 or len(totals) != 2 * rounds * len(statements):
        raise RuntimeError(f"callgrind run failed:\n{out.stdout[-1000:]}\n{out.stderr[-2000:]}")
    per_call: dict[str, list[float]] = {name: [] for name in statements}
    pairs = iter(zip(totals[::2], totals[1::2], strict=True))
    for _ in range(rounds):
        for name in statements:
            few, many = next(pairs)
            per_call[name].append((many - few) / (large - small))
    return per_call, json.loads(out.stdout.strip().splitlines()[-1])


def instruction_figures(
    small: int = 2_000, large: int = 7_000, rounds: int = 2
) -> list[tuple[str, dict[str, list[float]], dict[str, int]]]:
    """Instructions per call (the count for `large` calls minus the count for `small`,
    over the difference: the switching of the instrumentation costs the same in both) in
    two processes: one with an empty kernel cache directory (it compiles every kernel and
    plain function itself) and one with the directory it filled (it loads them all)."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-native-cg-") as cache:
        for label in ("fresh cache (compiles)", "warm cache (loads)"):
            counts, codes = _callgrind_run(INSTRUCTION_STATEMENTS, cache, small, large, rounds)
            runs.append((label, counts, codes))
    return runs


def _have_callgrind() -> bool:
    return all(shutil.which(tool) for tool in ("valgrind", "callgrind_control"))


def _want_instructions() -> bool:
    """Instruction counts by default when valgrind is there (so `make bench`, which runs
    this script without arguments, gets them); `--no-instructions` skips them."""
    return "--no-instructions" not in sys.argv[1:] and _have_callgrind()


def _plain_count(counts: dict[str, list[float]], kind: str) -> float:
    """Instructions per call of the plain `njit` function for `kind` (mean of the rounds)."""
    return statistics.mean(
        next(v for k, v in counts.items() if k.split()[:3] == ["plain", "njit", kind])
    )


def _instruction_lines(
    runs: list[tuple[str, dict[str, list[float]], dict[str, int]]],
) -> list[str]:
    def base(counts: dict[str, list[float]], name: str) -> float:
        kind = next(k for k in KINDS if k in name)
        return _plain_count(counts, kind)

    head = "| call | " + " | ".join(f"{label}: instructions | × plain" for label, _, _ in runs)
    rows = []
    for name in INSTRUCTION_STATEMENTS:
        cells = []
        for _, counts, _ in runs:
            n = statistics.mean(counts[name])
            cells.append(f"{n:.0f} | {n / base(counts, name):.3f}")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    spread = max(max(v) - min(v) for _, c, _ in runs for v in c.values())
    buckets = "; ".join(
        f"{label}: codes {codes['code_C']} and {codes['code_A']}, bucket {codes['bucket']}, "
        f"plain `dot3` {_plain_count(counts, 'dot3'):.0f} instructions"
        for label, counts, codes in runs
    )
    return [
        "Instructions per call (valgrind callgrind; independent of the load). Each column is "
        "one process (PYTHONHASHSEED=0, address randomisation off with `setarch -R`, the "
        "garbage collector off while measuring) that measures every statement, plain and "
        "evolvable alike, in a loop over local names, in "
        f"{len(next(iter(runs[0][1].values())))} interleaved rounds (rounds agree within "
        f"{spread:.1f} instructions): the first with an empty kernel cache directory, so it "
        "compiles every kernel and plain function itself, the second with the directory the "
        "first filled, so it loads them.",
        "",
        head + " |",
        "| --- |" + " ---: | ---: |" * len(runs),
        *rows,
        "",
        "Why a call's count depends on the process (and once on the kernel cache directory "
        "it loaded from): Numba's dispatcher, called with a C-contiguous array for an "
        "any-layout (`A`) parameter, looks the conversion up in its `TCCMap` on every call, "
        "once per array argument: a hash table of 512 buckets indexed by "
        "`code(C) ^ code(A)`, each bucket a vector scanned from its start. Type codes are "
        "handed out in the order a process first makes each type, so they differ between a "
        "process that compiles its kernels and one that loads them, and so does the bucket "
        "and its length (the first 64 buckets hold the number conversions). Here: "
        f"{buckets}. A plain `njit` function with the same signature in the same process "
        "pays exactly the same, so plain and evolvable are compared in one process. A "
        'parameter declared C-contiguous (`Dims(1, "C")`, the `dot3c` rows) called with '
        "a C-contiguous array matches exactly: no lookup.",
        "",
    ]


def kernel_figures() -> dict[str, float]:
    import native_sim

    h = native_sim.diffuse.symbiont
    target = Target.from_function(native_sim.diffuse, owned_names=h.owned_names)
    result = run_pipeline(
        f"```python\n{native_sim.FASTER}\n```", target, PipelineConfig(typecheck=False)
    )
    assert result.candidate is not None, result.diagnostics
    c = result.candidate
    rev = symbiont.Revision(
        number=h.next_number(),
        source=c.source,
        code=c.code,
        helpers_code=c.helpers_code,
        helper_names=c.helper_names,
    )
    h.add_revision(rev)
    h.activate(rev)
    native_sim.check(native_sim.diffuse)
    return native_sim.speedups()


def main() -> str:
    load = os.getloadavg()
    comp = compile_figures()
    calls = call_figures()
    load_calls = os.getloadavg()
    counts = instruction_figures() if _want_instructions() else None
    kern = kernel_figures()
    p50 = {k: percentile(v, 50) * 1e3 for k, v in comp.items()}
    p90 = {k: percentile(v, 90) * 1e3 for k, v in comp.items()}
    worst_wall = max(r for _, _, _, r, _ in calls)
    py, declared, active = kern["python_ms"], kern["declared_ms"], kern["active_ms"]
    count_lines = _instruction_lines(counts) if counts is not None else []
    if counts is not None:
        worst = max(
            statistics.mean(c[name]) / _plain_count(c, kind)
            for _, c, _ in counts
            for kind in KINDS
            for name in c
            if name.split()[:2] == ["evolvable", kind]
        )
        verdict = (
            f"Target ≤ 1.1× — worst measured **{worst:.3f}×** in instructions over every "
            f"kernel and both processes ({'met' if worst <= 1.1 else 'NOT met'}); wall ratios "
            f"on this shared machine {min(r for _, _, _, r, _ in calls):.2f}–{worst_wall:.2f}× "
            "(load above). "
        )
    else:
        verdict = (
            f"Target ≤ 1.1× — worst measured **{worst_wall:.3f}×** wall "
            f"({'met' if worst_wall <= 1.1 else 'NOT met'}; no instruction counts: valgrind "
            "not found, so this is the load-dependent wall ratio). "
        )
    lines = [
        "## Native evolvables (Numba)",
        "",
        f"Numba {numba.__version__}, NumPy {np.__version__}; load average "
        f"{load[0]:.1f} / {load[1]:.1f} (2 cores shared with other work).",
        "",
        f"### Compile per candidate ({len(comp['child'])} distinct candidates)",
        "",
        "| what | p50 ms | p90 ms |",
        "| --- | ---: | ---: |",
        f"| Numba compile in the trial child (`timings['native_compile']`) | {p50['child']:.1f} | {p90['child']:.1f} |",
        f"| `native` stage wall (fork, confine, compile, collect) | {p50['stage']:.1f} | {p90['stage']:.1f} |",
        f"| host compile at promotion (cache miss, written to disk) | {p50['host']:.1f} | {p90['host']:.1f} |",
        f"| same kernel loaded from the on-disk cache (a resumed revision) | {p50['load']:.1f} | {p90['load']:.1f} |",
        "",
        f"Anchor: Symbiont (Rust) ~120 ms compile per evolution — measured **{p50['child']:.0f} ms** "
        "p50 per candidate for the Numba compile itself. The first compile in a process also pays "
        "Numba's own warm-up; it is excluded here (the declarations compiled first).",
        "",
        "### Call from Python: native evolvable vs. plain `njit`",
        "",
        f"Interleaved rounds (15, each 3 × 20,000 calls per side, best of 3); load average "
        f"{load_calls[0]:.1f} after them.",
        "",
        "| call | evolvable ns | plain njit ns | × plain (median of per-round ratios) | "
        "evolvable − plain, ns (median) |",
        "| --- | ---: | ---: | ---: | ---: |",
        *[f"| `{c}` | {e:.0f} | {p:.0f} | {r:.3f} | {d:+.0f} |" for c, e, p, r, d in calls],
        "",
        *count_lines,
        verdict
        + "What callers hold is a `NativeFunction`, a `functools.partial` subclass with no bound arguments around the "
        "active revision's Numba dispatcher: the call goes from partial's C `tp_call` straight "
        "into the dispatcher's C `tp_call` (no Python frame), and promotion swaps the target "
        "with `partial.__setstate__`, one C call under the GIL. The rows marked *before* are "
        "the previous mechanism (the declared function, its `__code__` a one-frame trampoline, "
        "calling the dispatcher for arrays and the entry point for scalars). A partial around the scalar entry "
        "point would be cheaper than the dispatcher for `add`, but Numba's entry point ignores "
        "keyword arguments (`add(1.0, 2.0, y=5.0)` would return 3.0), so every kernel is "
        "called through its dispatcher, which converts and refuses arguments exactly as a "
        "plain `njit` function does. Native callers skip even that: `fn.symbiont.native` is "
        "the dispatcher itself, and `njit` code may call the evolvable by name (both freeze "
        "the kernel active when the caller compiles).",
        "",
        "### Kernel: examples/native_sim.py diffusion step (400×400)",
        "",
        "| body | ms per step |",
        "| --- | ---: |",
        f"| declared body, plain Python | {py:.1f} |",
        f"| declared body, Numba | {declared:.2f} |",
        f"| evolved body, Numba | {active:.2f} |",
        "",
        f"Evolved kernel: **{declared / active:.1f}×** the declared body, **{py / active:.0f}×** "
        f"plain Python (the declared body compiled is {py / declared:.0f}× plain Python).",
        "",
        "Command: `python benchmarks/bench_native.py` (instruction counts when valgrind is "
        "on PATH; `--no-instructions` skips them, `--instructions` insists on them)",
    ]
    return write_section("native", "\n".join(lines))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--callgrind-child"]:
        _callgrind_child(json.loads(sys.argv[2]), *map(int, sys.argv[3:6]))
    elif "--instructions" in sys.argv[1:] and not _have_callgrind():
        sys.exit("--instructions needs valgrind (callgrind) and callgrind_control on PATH")
    else:
        print(main())
