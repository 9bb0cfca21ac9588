"""A live simulation whose inner kernel is compiled by Numba and evolved for speed.

`diffuse` is one explicit step of 2-D heat diffusion on a periodic grid. It is declared
`native=True`: the declared body and every candidate run as machine code (Numba, nopython,
signature from the annotations). The simulation keeps stepping in a thread while `evolve`
asks the model for a faster body; a check keeps it correct (against NumPy), the metric is
the kernel's median time (`symbiont.native.time_kernel`), and an accepted body is swapped
in under the running simulation.

With no model configured, a scripted reply (a row-major loop without modulo in the
interior) stands in for one. Run: python examples/native_sim.py
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt

import symbiont
from symbiont.native import time_kernel

Grid = Annotated[npt.NDArray[np.float64], 2]
SIZE = 400  # cells per side
ALPHA = 0.2


@symbiont.evolvable(native=True, typecheck=False, timeout=60)
def diffuse(u: Grid, out: Grid, alpha: float) -> None:
    """One diffusion step: out = u + alpha * (sum of the 4 periodic neighbours - 4 u)."""
    n, m = u.shape
    for j in range(m):
        for i in range(n):
            up = u[(i - 1) % n, j]
            down = u[(i + 1) % n, j]
            left = u[i, (j - 1) % m]
            right = u[i, (j + 1) % m]
            out[i, j] = u[i, j] + alpha * (up + down + left + right - 4.0 * u[i, j])


FASTER = '''
def diffuse(u: Grid, out: Grid, alpha: float) -> None:
    """Row-major (the arrays are C order), no modulo inside: the edges wrap separately."""
    n, m = u.shape
    for i in range(n):
        iu = i - 1 if i > 0 else n - 1
        idn = i + 1 if i < n - 1 else 0
        row, above, below, dst = u[i], u[iu], u[idn], out[i]
        dst[0] = row[0] + alpha * (above[0] + below[0] + row[m - 1] + row[1] - 4.0 * row[0])
        for j in range(1, m - 1):
            c = row[j]
            dst[j] = c + alpha * (above[j] + below[j] + row[j - 1] + row[j + 1] - 4.0 * c)
        c = row[m - 1]
        dst[m - 1] = c + alpha * (above[m - 1] + below[m - 1] + row[m - 2] + row[0] - 4.0 * c)
'''


def reference(u: np.ndarray, alpha: float) -> np.ndarray:
    """The same step with NumPy, for the check."""
    neighbours = np.roll(u, 1, 0) + np.roll(u, -1, 0) + np.roll(u, 1, 1) + np.roll(u, -1, 1)
    return u + alpha * (neighbours - 4.0 * u)


def check(fn: Callable[..., Any]) -> None:
    rng = np.random.default_rng(3)
    for shape in ((5, 7), (32, 32), (3, 64)):
        u = rng.random(shape)
        out = np.full(shape, np.nan)
        fn(u, out, ALPHA)
        assert np.allclose(out, reference(u, ALPHA)), f"wrong step on a {shape} grid"


def kernel_ms(fn: Callable[..., Any]) -> symbiont.Score:
    u = np.random.default_rng(0).random((SIZE, SIZE))
    out = np.empty_like(u)
    timing = time_kernel(fn, u, out, ALPHA, warmup=2, repeats=7)
    return symbiont.Score(value=timing.median_s * 1e3, metrics={"best_ms": timing.best_s * 1e3})


class Simulation:
    """The live program: a hot plate that keeps diffusing in a thread."""

    def __init__(self, size: int = SIZE) -> None:
        self.u = np.zeros((size, size))
        self.u[size // 4 : size // 2, size // 4 : size // 2] = 100.0
        self.out = np.empty_like(self.u)
        self.steps = 0
        self.heat = float(self.u.sum())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            diffuse(self.u, self.out, ALPHA)
            self.u, self.out = self.out, self.u
            self.steps += 1

    def __enter__(self) -> Simulation:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def steps_per_s(self, seconds: float) -> float:
        start, t0 = self.steps, time.perf_counter()
        time.sleep(seconds)
        return (self.steps - start) / (time.perf_counter() - t0)


def speedups(size: int = SIZE) -> dict[str, float]:
    """Median ms per step: the declared body in plain Python, compiled, and the active one."""
    u = np.random.default_rng(1).random((size, size))
    out = np.empty_like(u)
    h = diffuse.symbiont
    declared_kernel = h.fn.__globals__[h.revision(0).helper_names[0]]
    plain_python = declared_kernel.py_func  # the same source, not compiled
    python = time_kernel(plain_python, u, out, ALPHA, warmup=0, repeats=3, number=1)
    return {
        "python_ms": python.median_s * 1e3,
        "declared_ms": time_kernel(declared_kernel, u, out, ALPHA).median_s * 1e3,
        "active_ms": time_kernel(diffuse, u, out, ALPHA).median_s * 1e3,
    }


def main(
    *,
    runtime: symbiont.Runtime | None = None,
    model: Any = None,
    attempts: int = 3,
    on_attempt: Any = None,
    measure_s: float = 1.0,
) -> dict[str, Any]:
    from symbiont.models import ScriptedModel

    if model is None or type(model).__name__ == "MutationModel":
        model = ScriptedModel([f"```python\n{FASTER}\n```"])  # a stand-in for a real model
    own = runtime is None
    rt = runtime or symbiont.Runtime(store=False)
    try:
        with Simulation() as sim:
            before = sim.steps_per_s(measure_s)
            report = rt.evolve_sync(
                diffuse,
                model,
                prompt="Make this diffusion step faster (it runs as Numba machine code); "
                "keep the result the same.",
                check=check,
                metric=kernel_ms,
                direction="minimize",
                accept="better",
                attempts=attempts,
                stop_on_accept=True,
                on_attempt=on_attempt,
            )
            after = sim.steps_per_s(measure_s)
            total_heat = float(sim.u.sum())
        return {
            "report": report,
            "steps_per_s_before": before,
            "steps_per_s_after": after,
            "heat_kept": abs(total_heat - sim.heat) / sim.heat < 1e-9,
            **speedups(),
        }
    finally:
        if own:
            rt.close()


if __name__ == "__main__":
    result = main()
    print(result["report"].summary())
    print(
        f"simulation: {result['steps_per_s_before']:.0f} → {result['steps_per_s_after']:.0f} "
        f"steps/s while running; heat conserved: {result['heat_kept']}"
    )
    py, d, a = result["python_ms"], result["declared_ms"], result["active_ms"]
    print(
        f"kernel ({SIZE}×{SIZE}): plain Python {py:.1f} ms, declared body compiled {d:.2f} ms, "
        f"evolved {a:.2f} ms — {d / a:.1f}× over the declared body, {py / a:.0f}× over Python"
    )
