"""Fixtures shared by the library tests."""

from __future__ import annotations

import pytest

from symbiont.errors import SandboxError


def _tier() -> str:
    """The process tier where this machine can run it, else inprocess."""
    from symbiont.sandbox import get_sandbox

    try:
        sandbox = get_sandbox("process")
        result = sandbox.run("def f() -> int:\n    return 1\n", "f", "{}")
        sandbox.close()
    except (SandboxError, OSError):
        return "inprocess"
    return "process" if result.ok else "inprocess"


@pytest.fixture(scope="module")
def tier() -> str:
    return _tier()
