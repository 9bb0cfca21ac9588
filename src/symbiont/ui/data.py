"""What the UI reads: the store, the library and the transcripts, opened lazily and safely.

A store file that does not exist yet is not created (the UI is read-only until actions are
turned on): pages say there is nothing yet, and the next request looks again, so a program
that creates the store later shows up without a restart. A `postgresql://` URL is opened as
it is (the database exists already). A file that is not a symbiont
store gives a `StoreUnavailable` with the store's own message.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from symbiont.errors import SymbiontError

if TYPE_CHECKING:
    from symbiont.library import Library
    from symbiont.store import EvolvableStore
    from symbiont.store.searches import SearchRepository
    from symbiont.store.transcripts import TranscriptStore


class StoreUnavailable(SymbiontError):
    """The store file is missing or cannot be read as a symbiont store."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


class Data:
    """Opens the store on first use; shares one store, library and transcript reader."""

    def __init__(
        self,
        store_path: Path | str,
        *,
        data_root: str | Path | None = None,
        tier: str | None = None,
        store: EvolvableStore | None = None,
    ) -> None:
        from symbiont.store import store_location
        from symbiont.store.pg import redact

        # A file Path, or a postgresql:// URL (opened with its password, shown without).
        self._location = store.path if store is not None else store_location(store_path)
        self.path = redact(self._location) if isinstance(self._location, str) else self._location
        self.data_root = data_root
        self.tier = tier
        self._store = store
        self._owns_store = store is None
        self._library: Library | None = None
        self._transcripts: TranscriptStore | None = None
        self._searches: SearchRepository | None = None
        self._lock = threading.RLock()

    def store(self) -> EvolvableStore:
        with self._lock:
            if self._store is None:
                if isinstance(self.path, Path) and not self.path.exists():
                    raise StoreUnavailable(f"there is no store at {self.path} yet", missing=True)
                from symbiont.store import open_store

                try:
                    self._store = open_store(self._location)
                except SymbiontError as exc:
                    raise StoreUnavailable(str(exc)) from exc
            return self._store

    def library(self) -> Library:
        with self._lock:
            if self._library is None:
                from symbiont.library import Library

                self._library = Library(self.store(), data_root=self.data_root, tier=self.tier)
            return self._library

    def transcripts(self) -> TranscriptStore:
        with self._lock:
            if self._transcripts is None:
                self._transcripts = self.store().transcripts
            return self._transcripts

    def searches(self) -> SearchRepository | None:
        """The population-search tables, or None in a build without them."""
        with self._lock:
            if self._searches is None:
                self._searches = self.store().searches
            return self._searches

    def close(self) -> None:
        with self._lock:
            if self._library is not None:  # (the transcripts belong to the store)
                # closing is best effort; the process is ending
                with contextlib.suppress(Exception):
                    self._library.close()
            if self._store is not None and self._owns_store:
                self._store.close()
            self._library = self._transcripts = self._store = None
            self._searches = None


def recent_searches(data: Data, limit: int = 200, key: str | None = None) -> list[Any]:
    """The newest population searches (of `key`), or [] in a build without searches."""
    repo = data.searches()
    if repo is None:
        return []
    return list(repo.recent(limit=limit, key=key))


def overview_counts(data: Data) -> dict[str, Any]:
    """How many of each thing the store holds (for the overview page)."""
    store = data.store()
    keys = store.all_keys()
    lineages = [f for k in keys for f in store.lineages(k)]
    caps = data.library().list()
    statuses: dict[str, int] = {}
    for c in caps:
        statuses[c.status] = statuses.get(c.status, 0) + 1
    return {
        "functions": len(keys),
        "lineages": len(lineages),
        "revisions": sum(len(store.revisions_of(f.id)) for f in lineages),
        "runs": len(store.runs(limit=10_000)),
        "capabilities": len(caps),
        "capability_statuses": statuses,
        "transcripts": len(data.transcripts().list(limit=10_000)),
        "searches": len(recent_searches(data, limit=10_000)),
    }
