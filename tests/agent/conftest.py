"""Fixtures for the agent tests: a library with the HR capabilities, per test.

The HR folder is imported once per session (its type checks take seconds) into a template
store; each test gets its own copy of that store file and of the data folder, so tests can
change data, deprecate and add capabilities without seeing each other. The embedder and the
process-tier sandbox are shared: both are stateless between calls.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_helpers import HR_EXAMPLES

from symbiont.library import Library
from symbiont.sandbox import get_sandbox


@pytest.fixture(scope="session")
def shared_embedder() -> Any:
    from symbiont.embed import default_embedder

    return default_embedder()


@pytest.fixture(scope="session")
def shared_sandbox() -> Iterator[Any]:
    sandbox = get_sandbox("process")
    yield sandbox
    sandbox.close()


@pytest.fixture(scope="session")
def hr_seed(
    tmp_path_factory: pytest.TempPathFactory, shared_embedder: Any, shared_sandbox: Any
) -> Path:
    """A store with the twelve HR capabilities imported, and their data folder."""
    root = tmp_path_factory.mktemp("hr-seed")
    lib = Library(
        root / "symbiont.db",
        data_root=root / "data",
        embedder=shared_embedder,
        sandbox=shared_sandbox,
        typecheck=False,  # the examples are trusted; this keeps the session start short
    )
    try:
        report = lib.import_dir(HR_EXAMPLES)
        assert not report.failed, report.failed
        assert "get_salary_details" in report.added
    finally:
        lib.close()
    return root


@pytest.fixture
def hr_home(hr_seed: Path, tmp_path: Path) -> Path:
    """A private copy of the seeded store file and data folder."""
    home = tmp_path / "home"
    home.mkdir()
    for f in hr_seed.iterdir():
        if f.is_file():
            shutil.copy2(f, home / f.name)
    shutil.copytree(hr_seed / "data", home / "data")
    return home


@pytest.fixture
def hr_library(hr_home: Path, shared_embedder: Any, shared_sandbox: Any) -> Iterator[Library]:
    lib = Library(
        hr_home / "symbiont.db",
        data_root=hr_home / "data",
        embedder=shared_embedder,
        sandbox=shared_sandbox,
        tier="process",
    )
    yield lib
    lib.close()


@pytest.fixture
def hr_database(hr_home: Path) -> Path:
    return hr_home / "data" / "hr" / "employee_database.json"
