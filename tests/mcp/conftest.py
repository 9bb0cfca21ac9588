"""Fixtures for the MCP server tests: a store with the HR capabilities and three test ones.

The folders are imported once per session (verification runs every example in the sandbox)
into a template home; each test gets a private copy of its store file and data folder, so a
test can deprecate, add and change without the others seeing it. The servers under test are
real `symbiont mcp` subprocesses that find the store through `SYMBIONT_HOME`, like every
other command.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mcp_helpers import HR_EXAMPLES, TEST_CAPABILITIES

from symbiont.errors import SandboxError
from symbiont.library import Library


def _process_tier_works() -> bool:
    from symbiont.sandbox import get_sandbox

    try:
        sandbox = get_sandbox("process")
        result = sandbox.run("def f() -> int:\n    return 1\n", "f", "{}")
        sandbox.close()
    except (SandboxError, OSError):
        return False
    return result.ok


@pytest.fixture(scope="session")
def mcp_seed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home (store file and data folder) with the HR and the test capabilities."""
    if not _process_tier_works():
        pytest.skip("the process sandbox tier is not available on this machine")
    root = tmp_path_factory.mktemp("mcp-seed")
    lib = Library(root / "symbiont.db", data_root=root / "data", tier="process", typecheck=False)
    try:
        for folder in (HR_EXAMPLES, TEST_CAPABILITIES):
            report = lib.import_dir(folder)
            assert not report.failed, report.failed
        lib.reindex()
    finally:
        lib.close()
    return root


@pytest.fixture
def home(mcp_seed: Path, tmp_path: Path) -> Path:
    """A private copy of the seeded home: `SYMBIONT_HOME` for the server under test."""
    home = tmp_path / "home"
    home.mkdir()
    for f in mcp_seed.iterdir():
        if f.is_file():
            shutil.copy2(f, home / f.name)
    shutil.copytree(mcp_seed / "data", home / "data")
    return home
