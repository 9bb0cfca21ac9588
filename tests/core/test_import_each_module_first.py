"""Every module of symbiont imports cleanly as the *first* import of a fresh process.

An import cycle only shows up for some entry points (`import symbiont.agent.mutation` first
used to fail half-way through the store's migrations), so each module gets its own process.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import symbiont

# Modules that need optional extras or only load inside a sandbox guest.
_OPTIONAL_PREFIXES = ("symbiont.sandbox.guest",)


def _all_modules() -> list[str]:
    root = Path(symbiont.__file__).parent
    names = ["symbiont"]
    for info in pkgutil.walk_packages([str(root)], prefix="symbiont."):
        if not info.name.startswith(_OPTIONAL_PREFIXES):
            names.append(info.name)
    return sorted(names)


MODULES = _all_modules()


def test_the_module_list_covers_the_agents() -> None:
    assert "symbiont.agent.mutation" in MODULES
    assert "symbiont.library.library" in MODULES
    assert len(MODULES) > 40


def test_each_module_imports_first_in_a_fresh_process() -> None:
    failures = []
    for name in MODULES:
        done = subprocess.run(
            [sys.executable, "-c", f"import {name}"], capture_output=True, text=True
        )
        if done.returncode:
            last = (done.stderr.strip().splitlines() or ["?"])[-1]
            failures.append(f"{name}: {last}")
    assert not failures, "modules that fail as a first import:\n" + "\n".join(failures)
