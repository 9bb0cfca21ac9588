"""Shared by every part that opens the store file with its own connection (the library, the
agent transcripts): one way to connect, one way to ride out a busy database."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, foreign keys on,
    usable from several threads behind the caller's own lock."""
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


def retry_busy(op: Callable[[], T], attempts: int = 50) -> T:
    """Run `op`, retrying with exponential backoff while SQLite says the file is locked or
    busy, so users never see "database is locked"."""
    delay = 0.01
    for i in range(attempts):
        try:
            return op()
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if ("locked" not in text and "busy" not in text) or i == attempts - 1:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
    raise AssertionError("unreachable")
