"""The on-disk kernel cache: a resumed revision in a new process loads, it does not compile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

KERNEL_MODULE = '''
from typing import Annotated

import numpy as np
import numpy.typing as npt

import symbiont


@symbiont.evolvable(native=True, typecheck=False, timeout=30)
def norm2(xs: Annotated[npt.NDArray[np.float64], 1]) -> float:
    """Sum of squares of xs."""
    s = 0.0
    for x in xs:
        s += x * x
    return s
'''

FIRST_RUN = '''
import json, sys
import numpy as np
import symbiont
from symbiont.models import ScriptedModel

rt = symbiont.Runtime(store=sys.argv[1])
import kern

reply = """```python
def norm2(xs: Annotated[npt.NDArray[np.float64], 1]) -> float:
    return (xs * xs).sum()
```"""
def check(fn):
    assert fn(np.array([3.0, 4.0])) == 25.0

report = rt.evolve_sync(kern.norm2, ScriptedModel([reply]), check=check, typecheck=False)
stats = kern.norm2.symbiont.native.stats
print(json.dumps({"accepted": report.ok, "active": kern.norm2.symbiont.active.number,
                  "value": kern.norm2(np.array([3.0, 4.0])),
                  "misses": sum(stats.cache_misses.values())}))
rt.close()
'''

SECOND_RUN = """
import json, sys
import numpy as np
import symbiont

rt = symbiont.Runtime(store=sys.argv[1])
import kern

kernel = kern.norm2.symbiont.native
print(json.dumps({"active": kern.norm2.symbiont.active.number,
                  "source": kernel.py_func.__code__.co_filename,
                  "value": kern.norm2(np.array([3.0, 4.0])),
                  "hits": sum(kernel.stats.cache_hits.values()),
                  "misses": sum(kernel.stats.cache_misses.values())}))
rt.close()
"""


def run(
    script: str, cwd: Path, cache: Path, store: Path | None = None, **env_extra: str
) -> dict[str, object]:
    env = {**os.environ, "SYMBIONT_NATIVE_CACHE": str(cache), "PYTHONPATH": str(cwd), **env_extra}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *([str(store)] if store else [])],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_resumed_revision_loads_its_kernel_from_the_disk_cache(tmp_path: Path) -> None:
    (tmp_path / "kern.py").write_text(KERNEL_MODULE)
    cache, store = tmp_path / "cache", tmp_path / "store.db"
    first = run(FIRST_RUN, tmp_path, cache, store)
    assert first == {"accepted": True, "active": 1, "value": 25.0, "misses": 1}
    second = run(SECOND_RUN, tmp_path, cache, store)
    assert second["active"] == 1 and second["value"] == 25.0
    assert str(second["source"]).startswith(str(cache))  # r1's kernel, from the cache dir
    assert second["hits"] == 1 and second["misses"] == 0  # loaded, not compiled


SAVED_BEFORE = """
import json
import kern
from symbiont.native._kernel import compile_kernel, is_cached

h = kern.norm2.symbiont
spec, g = h.native_spec, kern.norm2.__globals__
body = '''def norm2(xs: Annotated[npt.NDArray[np.float64], 1]) -> float:
    return (xs * xs).sum() + 1.0
'''
before = is_cached(body, spec, g)
kernel = compile_kernel(body, spec, g)
print(json.dumps({"before": before, "after": is_cached(body, spec, g),
                  "declared": is_cached(h.revisions[0].source, spec, g),
                  "on_disk": kernel.on_disk}))
"""


def test_a_saved_kernel_is_known_when_numba_keeps_its_index_under_numba_cache_dir(
    tmp_path: Path,
) -> None:
    """With $NUMBA_CACHE_DIR set, Numba writes a kernel's index there, not next to its
    source; the `native` stage must still know the body was compiled before."""
    (tmp_path / "kern.py").write_text(KERNEL_MODULE)
    numba_dir = tmp_path / "numba"
    seen = run(SAVED_BEFORE, tmp_path, tmp_path / "cache", NUMBA_CACHE_DIR=str(numba_dir))
    assert seen == {"before": False, "after": True, "declared": True, "on_disk": True}
    assert list(numba_dir.rglob("k_*.nbi"))  # the index really is under NUMBA_CACHE_DIR
    assert not list((tmp_path / "cache").rglob("*.nbi"))


def test_a_changed_module_constant_is_a_different_kernel() -> None:
    """Numba freezes a global into the machine code, so the cache key holds the simple
    constants the body reads: the same source under another WEIGHT is not the cached one."""
    import numpy as np
    from native_targets import weighted_sum

    from symbiont.native import compile_kernel, kernel_key

    h = weighted_sum.symbiont
    source, spec = h.revisions[0].source, h.native_spec
    weight_2 = dict(weighted_sum.__globals__)
    weight_3 = {**weight_2, "WEIGHT": 3.0}
    two, three = compile_kernel(source, spec, weight_2), compile_kernel(source, spec, weight_3)
    assert two.key == kernel_key(source, spec, weight_2) != three.key
    xs = np.ones(4)
    assert two.dispatcher(xs, 0.0) == 8.0 and three.dispatcher(xs, 0.0) == 12.0
    again = compile_kernel(source, spec, weight_3)  # same body, constants and signature
    assert again.key == three.key and again.cache_hit
    assert again.dispatcher(xs, 0.0) == 12.0
