"""Fixtures of the search tests.

`peak_runtime`: a runtime on a fresh SQLite file, for searches over `search_targets.peak`;
afterwards `peak` is put back to its declared body with no other revision.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import search_targets as t

import symbiont
from symbiont.testing import reset


@pytest.fixture
def peak_runtime(tmp_path: Path) -> Iterator[symbiont.Runtime]:
    rt = symbiont.Runtime(store=tmp_path / "s.db")
    yield rt
    rt.close()
    reset(t.peak)
