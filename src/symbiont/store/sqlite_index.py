"""The retrieval index's persistence in the SQLite store: documents, embeddings, FTS5.

`symbiont.library.index.CapabilityIndex` ranks capabilities; this class is all it asks of
SQLite (`SQLiteStore.index_storage()`). On SQLite the ranking itself happens in the
index's process: it loads the vectors into one in-memory matrix (`load`) and either asks
FTS5 for BM25 (`lexical`) or rebuilds FTS5's bm25() over in-memory postings made from the
FTS5 rows (`lexical_rows`, with FTS5's own tokenizer: `stemmer`). Another process's writes
reach that snapshot when the index is reloaded.

Tables, created idempotently (not by the store's migrations: the `idx_` prefix keeps them
apart from the store's own tables, and `symbiont store migrate` copies them like any other):

- `idx_docs`: one row per document; `num` is also its rowid in `idx_fts`;
- `idx_embeddings`: a little-endian float32 vector per (document, embedder id), with the
  hash of the text it was computed from, so it is recomputed only when either changes;
- `idx_fts`: FTS5 (`porter unicode61`) over the id's words, name, summary and parameter
  names, identifiers split into words by the index.

Every write is one IMMEDIATE transaction of the store (its busy waits and retries), so
several processes can write the same file.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from symbiont.errors import StoreError

if TYPE_CHECKING:
    from symbiont.store.sqlite import SQLiteStore

INDEX_DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS idx_docs (
        num INTEGER PRIMARY KEY,          -- also the rowid of the document in idx_fts
        id TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        summary TEXT NOT NULL,
        params TEXT NOT NULL,             -- JSON list of parameter names
        doc_hash TEXT NOT NULL,           -- of every field: FTS row is current
        text_hash TEXT NOT NULL           -- of the embedded text
    )""",
    """CREATE TABLE IF NOT EXISTS idx_embeddings (
        id TEXT NOT NULL,
        embedder_id TEXT NOT NULL,
        text_hash TEXT NOT NULL,
        dim INTEGER NOT NULL,
        vector BLOB NOT NULL,             -- little-endian float32, L2-normalised
        PRIMARY KEY (id, embedder_id)
    )""",
    """CREATE VIRTUAL TABLE IF NOT EXISTS idx_fts USING fts5(
        id_words, name, summary, params, tokenize = 'porter unicode61'
    )""",
)

# (id, name, summary, params as JSON, doc_hash, text_hash, the four FTS5 column texts)
DocRow = tuple[str, str, str, str, str, str, tuple[str, str, str, str]]
# (id, text_hash, unit vector)
VectorRow = tuple[str, str, np.ndarray]


class FtsStemmer:
    """Words → FTS5 terms, through FTS5's own `porter unicode61` tokenizer (cached).

    Runs in a private in-memory database so the store's connection and transactions are
    never touched; a word may yield several terms (a character unicode61 treats as a
    separator) or none. `known` maps every word looked up to its terms.
    """

    def __init__(self) -> None:
        self._conn = sqlite3.connect(":memory:", check_same_thread=False)
        self._conn.execute(
            "CREATE VIRTUAL TABLE words USING fts5(word, tokenize = 'porter unicode61')"
        )
        self._conn.execute("CREATE VIRTUAL TABLE wv USING fts5vocab(words, 'instance')")
        self.known: dict[str, tuple[str, ...]] = {}  # word → its terms

    def learn(self, words: Iterable[str]) -> None:
        """Look up the terms of the words not seen yet, in one batch."""
        known = self.known
        ask: dict[str, None] = {}
        alias: list[tuple[str, str]] = []
        for w in dict.fromkeys(words):
            if w in known:
                continue
            if w.isascii():  # unicode61 folds ASCII case like lower(); porter leaves
                low = w.lower()  # tokens of 1-2 characters and digit-only ones alone
                if len(low) < 3 or low.isdigit():
                    known[w] = (low,)
                    continue
                if low != w:
                    alias.append((w, low))
                    if low in known:
                        continue
                    w = low
            ask[w] = None
        if ask:
            new = list(ask)
            self._conn.execute("DELETE FROM words")
            self._conn.executemany("INSERT INTO words (rowid, word) VALUES (?, ?)", enumerate(new))
            found: dict[int, list[str]] = {}
            for doc, term in self._conn.execute("SELECT doc, term FROM wv ORDER BY doc, offset"):
                found.setdefault(doc, []).append(term)
            for i, w in enumerate(new):
                known[w] = tuple(found.get(i, ()))
        for w, low in alias:
            known[w] = known[low]

    def __getitem__(self, word: str) -> tuple[str, ...]:
        if word not in self.known:
            self.learn([word])
        return self.known[word]


class SQLiteIndexStorage:
    """The idx_ tables of one SQLite store, for one `CapabilityIndex` (see module doc)."""

    searches_in_database = False  # the index ranks in memory and reloads to see others
    lexical_score_name = "bm25"

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self._create_tables()

    def _create_tables(self) -> None:
        def op(conn: sqlite3.Connection) -> None:
            try:
                for ddl in INDEX_DDL:
                    conn.execute(ddl)
            except sqlite3.OperationalError as e:
                if "fts5" in str(e):
                    raise StoreError(
                        "the capability index needs SQLite's FTS5 extension, which this "
                        f"sqlite3 ({sqlite3.sqlite_version}) lacks"
                    ) from e
                raise

        self.store._write(op, "creating the capability index tables")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self.store._read(lambda c: c.execute(sql, params).fetchall())

    # -- documents ------------------------------------------------------------------------
    def load(self, embedder_id: str) -> list[tuple[int, str, str, str, bytes | None]]:
        """Every document as (num, id, doc_hash, text_hash, vector bytes or None), in num
        order; the vector is this embedder's for the document's current text, if stored."""
        return self._read(
            """SELECT d.num, d.id, d.doc_hash, d.text_hash, e.vector
               FROM idx_docs d LEFT JOIN idx_embeddings e
                 ON e.id = d.id AND e.embedder_id = ? AND e.text_hash = d.text_hash
               ORDER BY d.num""",
            (embedder_id,),
        )

    def get_many(self, ids: Sequence[str]) -> list[tuple[str, str, str, str]]:
        """(id, name, summary, params as JSON) of the stored documents among `ids`."""
        return self._read(
            "SELECT id, name, summary, params FROM idx_docs"
            " WHERE id IN (SELECT value FROM json_each(?)) ORDER BY num",
            (json.dumps(list(ids)),),
        )

    def stored_vectors(self, embedder_id: str, wanted: dict[str, str]) -> dict[str, np.ndarray]:
        """The stored vectors of this embedder for {id: text_hash}, where the hash matches."""
        if not wanted:
            return {}
        rows = self._read(
            "SELECT id, text_hash, vector FROM idx_embeddings WHERE embedder_id = ?"
            " AND id IN (SELECT value FROM json_each(?))",
            (embedder_id, json.dumps(list(wanted))),
        )
        return {i: np.frombuffer(v, dtype="<f4") for i, h, v in rows if wanted.get(i) == h}

    def write(
        self, docs: Sequence[DocRow], vectors: Sequence[VectorRow], embedder_id: str
    ) -> dict[str, int]:
        """Upsert documents (and their FTS5 rows) and vectors in one transaction; returns
        each document's num."""

        def op(conn: sqlite3.Connection) -> dict[str, int]:
            nums: dict[str, int] = {}
            for doc_id, name, summary, params, doc_hash, text_hash, texts in docs:
                num = conn.execute(
                    """INSERT INTO idx_docs (id, name, summary, params, doc_hash, text_hash)
                       VALUES (?, ?, ?, ?, ?, ?)
                       ON CONFLICT(id) DO UPDATE SET name = excluded.name,
                         summary = excluded.summary, params = excluded.params,
                         doc_hash = excluded.doc_hash, text_hash = excluded.text_hash
                       RETURNING num""",
                    (doc_id, name, summary, params, doc_hash, text_hash),
                ).fetchall()[0][0]  # fetchall: a pending RETURNING blocks COMMIT
                nums[doc_id] = num
                conn.execute("DELETE FROM idx_fts WHERE rowid = ?", (num,))
                conn.execute(
                    "INSERT INTO idx_fts (rowid, id_words, name, summary, params)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (num, *texts),
                )
            conn.executemany(
                "INSERT OR REPLACE INTO idx_embeddings (id, embedder_id, text_hash, dim,"
                " vector) VALUES (?, ?, ?, ?, ?)",
                [
                    (i, embedder_id, h, v.shape[0], np.asarray(v, dtype="<f4").tobytes())
                    for i, h, v in vectors
                ],
            )
            return nums

        return self.store._write(op, "writing the capability index")

    def remove(self, doc_id: str) -> bool:
        """Delete a document, its FTS5 row and its vectors; False if it was not stored."""

        def op(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT num FROM idx_docs WHERE id = ?", (doc_id,)).fetchone()
            if row is None:
                return False
            conn.execute("DELETE FROM idx_docs WHERE num = ?", (row[0],))
            conn.execute("DELETE FROM idx_fts WHERE rowid = ?", (row[0],))
            conn.execute("DELETE FROM idx_embeddings WHERE id = ?", (doc_id,))
            return True

        return self.store._write(op, f"removing {doc_id!r} from the capability index")

    # -- lexical --------------------------------------------------------------------------
    def lexical(
        self, terms: Sequence[str], depth: int, excluded: Iterable[str]
    ) -> list[tuple[str, float]]:
        """FTS5 BM25 for an OR of the words: the `depth` best (id, -bm25()), excluded ids
        masked inside the query, before LIMIT (never post-filtered)."""
        match = " OR ".join(f'"{t}"' for t in terms)  # words are [^\W_]+: nothing to escape
        inner = "SELECT rowid, -bm25(idx_fts) AS s FROM idx_fts WHERE idx_fts MATCH ?"
        args: tuple[object, ...] = (match,)
        gone = list(excluded)
        if gone:
            inner += (
                " AND rowid NOT IN (SELECT num FROM idx_docs"
                " WHERE id IN (SELECT value FROM json_each(?)))"
            )
            args += (json.dumps(gone),)
        return self._read(
            f"SELECT d.id, t.s FROM ({inner} ORDER BY s DESC, rowid LIMIT ?) t"
            " JOIN idx_docs d ON d.num = t.rowid ORDER BY t.s DESC, t.rowid",
            (*args, depth),
        )

    def lexical_texts(self, ids: Sequence[str]) -> dict[str, list[str]]:
        """The FTS5 column texts of each document, to say which words matched."""
        rows = self._read(
            "SELECT d.id, f.id_words, f.name, f.summary, f.params FROM idx_fts f"
            " JOIN idx_docs d ON d.num = f.rowid WHERE d.id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(ids)),),
        )
        return {r[0]: [t or "" for t in r[1:]] for r in rows}

    def lexical_rows(self) -> list[tuple[int, str, str, str, str]]:
        """Every FTS5 row as (num, id_words, name, summary, params): for in-memory postings."""
        return self._read("SELECT rowid, id_words, name, summary, params FROM idx_fts")

    def stemmer(self) -> FtsStemmer:
        """A word → terms mapper with FTS5's tokenizer (postings must hold FTS5's terms)."""
        return FtsStemmer()
