"""Fixtures for the UI tests: one store filled by the real runtime per session, servers on it.

The store holds the HR library and the scripted agent demo's transcripts (the demo imports
the HR folder, verifying each capability in the sandbox: done once per session) and two
evolves by the real runtime in a process of their own (`ui_targets.py`). Tests that change
the store (run, deprecate, activate, live evolve) undo what they change or only add to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ui_helpers import Server, fill_store, ui_server


@pytest.fixture(scope="session")
def ui_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("ui-home")
    fill_store(home)
    return home


@pytest.fixture(scope="session")
def ui_store(ui_home: Path) -> Path:
    return ui_home / "symbiont.db"


@pytest.fixture(scope="session")
def server(ui_home: Path, ui_store: Path) -> Iterator[Server]:
    """`symbiont ui --allow-actions` on the filled store."""
    with ui_server(ui_home, "--allow-actions", store=ui_store) as s:
        yield s


@pytest.fixture(scope="session")
def readonly_server(ui_home: Path, ui_store: Path) -> Iterator[Server]:
    with ui_server(ui_home, store=ui_store) as s:
        yield s
