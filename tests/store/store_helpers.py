"""Helpers shared by the store tests (a uniquely named module, so imports cannot clash)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from symbiont.store import RevisionRecord

MakeRev = Callable[..., RevisionRecord]


def source_hash(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:16]
