"""Capability retrieval: exact cosine + BM25, fused by reciprocal rank fusion.

`CapabilityIndex` keeps, for every document (a capability's id, name, summary and parameter
names):

- its embedding, persisted in `idx_embeddings` next to the embedder's id and a hash of the
  embedded text, and recomputed only when either changes (the Self-Evolving Agent Runtime
  re-embeds everything at every start);
- a row of one contiguous float32 matrix in memory, loaded at construction and then updated
  incrementally (amortised growth, swap-remove), so semantic search is one matrix-vector
  product and an `argpartition`;
- a row of an SQLite FTS5 table (`idx_fts`, porter stemming) for BM25 over the id, name,
  summary and parameter names, with identifiers split into words
  (`get_salary_details` → "get salary details").

`search` masks excluded ids *before* taking the top-k (so deprecated capabilities can never
crowd out the live ones), and each `Hit` says why it matched.

Tables: `idx_docs`, `idx_embeddings`, `idx_fts`, created idempotently in whatever
`sqlite3.Connection` the index is given. The index owns them for now; the store's migrations
may adopt them later (the `idx_` prefix keeps them apart from the store's own tables).
Writes run inside a SAVEPOINT: they commit on their own when the connection is idle, and
join the caller's transaction when one is open.

One `CapabilityIndex` per connection is the in-memory view of the tables; if another
process writes to the same file, call `reload()`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sqlite3
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np

from symbiont.embed.base import Embedder, EmbeddingError
from symbiont.errors import CapabilityError, StoreError

Mode = Literal["hybrid", "semantic", "lexical"]
MODES: tuple[str, ...] = ("hybrid", "semantic", "lexical")

# Reciprocal rank fusion: score = w_sem / (RRF_K + semantic rank) + w_lex / (RRF_K + lexical
# rank). The textbook constant is 60 (Cormack et al., 2009) with equal weights; on MetaTool
# that fusion lost to semantic search alone (Recall@5 0.744 vs 0.765), because BM25 is much
# the weaker list there and k=60 flattens the ranks. A small grid on 1,500 MetaTool queries
# *disjoint from the reported sample* (`python benchmarks/bench_retrieval.py --tune`) chose
# k=5 with the lexical list weighted 0.5 (Recall@5 0.801 on that split).
RRF_K = 5.0
RRF_WEIGHTS = (1.0, 0.5)  # (semantic, lexical)
FUSION_DEPTH = 100  # candidates taken from each list before fusing (at least k)
_EXPLAIN = 10  # hits whose matched words are listed in `why`

_WORD = re.compile(r"[^\W_]+", re.UNICODE)  # "_" separates words in snake_case ids
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

# Words that say nothing about which capability fits; kept out of the BM25 query so that
# "how much is employee E007 paid" does not match every summary containing "is".
STOPWORDS = frozenset(
    """a about above after again all am an and any are as at be been before being below
    between both but by can could did do does doing down during each few for from further
    had has have having he her here hers him his how i if in into is it its itself just me
    more most my no nor not now of off on once only or other our out over own please same
    she should so some such than that the their them then there these they this those
    through to too under until up very was we were what when where which while who whom
    why will with would you your yours""".split()  # noqa: SIM905
)


def _light_stem(word: str) -> str:
    """Crude English suffix stripping, only to explain which words matched."""
    for suffix in ("ing", "ies", "ied", "es", "ed", "ly", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def split_words(text: str) -> list[str]:
    """Lower-cased words; snake_case and camelCase identifiers are split into their words."""
    return [w.lower() for w in _WORD.findall(_CAMEL.sub(" ", text))]


@dataclass(frozen=True)
class IndexDoc:
    """What the index knows of a capability: enough to embed it and to match keywords."""

    id: str
    name: str
    summary: str
    params: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hit:
    """One search result. Ranks start at 1; None means "not among that list's candidates"."""

    id: str
    score: float  # fused RRF score in hybrid mode, else the cosine or BM25 score
    semantic_score: float | None
    semantic_rank: int | None
    lexical_score: float | None
    lexical_rank: int | None
    why: str


def embedding_text(doc: IndexDoc) -> str:
    """The text that is embedded: readable name, summary, then parameter names."""
    text = f"{' '.join(split_words(doc.name)) or doc.name}: {doc.summary}".strip()
    if doc.params:
        text += " Parameters: " + ", ".join(" ".join(split_words(p)) for p in doc.params) + "."
    return text


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _doc_hash(doc: IndexDoc) -> str:
    return _sha(json.dumps([doc.id, doc.name, doc.summary, list(doc.params)]))


def _check_doc(doc: object) -> IndexDoc:
    if not isinstance(doc, IndexDoc):
        raise CapabilityError(f"index documents must be IndexDoc, got {type(doc).__name__}")
    if not isinstance(doc.id, str) or not doc.id.strip():
        raise CapabilityError(f"index document id must be a non-empty string, got {doc.id!r}")
    for field in ("name", "summary"):
        if not isinstance(getattr(doc, field), str):
            raise CapabilityError(f"index document {doc.id!r}: {field} must be a string")
    if not isinstance(doc.params, tuple) or not all(isinstance(p, str) for p in doc.params):
        raise CapabilityError(f"index document {doc.id!r}: params must be a tuple of strings")
    return doc


_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS idx_docs (
        num INTEGER PRIMARY KEY,          -- also the rowid of the document in idx_fts
        id TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        summary TEXT NOT NULL,
        params TEXT NOT NULL,             -- JSON list of parameter names
        doc_hash TEXT NOT NULL,           -- of every field: FTS row is current
        text_hash TEXT NOT NULL           -- of embedding_text(doc)
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


class CapabilityIndex:
    """Hybrid (semantic + BM25) index over capability documents, persisted in SQLite."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        embedder: Embedder,
        *,
        rrf_k: float = RRF_K,
        weights: tuple[float, float] = RRF_WEIGHTS,
        fusion_depth: int = FUSION_DEPTH,
    ) -> None:
        self.conn = conn
        self.embedder = embedder
        self.rrf_k = float(rrf_k)
        self.weights = (float(weights[0]), float(weights[1]))  # (semantic, lexical)
        self.fusion_depth = int(fusion_depth)
        self.embed_calls = 0  # texts embedded by this index (documents, not queries)
        self._create_tables()
        self.reload()

    # ------------------------------------------------------------------ storage

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        try:
            self.conn.execute("SAVEPOINT idx_write")
        except sqlite3.Error as e:
            raise StoreError(f"capability index: cannot start a write: {e}") from e
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK TO idx_write")
            self.conn.execute("RELEASE idx_write")
            raise
        else:
            self.conn.execute("RELEASE idx_write")

    def _create_tables(self) -> None:
        try:
            with self._atomic():
                for ddl in _SCHEMA:
                    self.conn.execute(ddl)
        except sqlite3.OperationalError as e:
            if "fts5" in str(e):
                raise StoreError(
                    "capability index needs SQLite's FTS5 extension, which this "
                    f"sqlite3 ({sqlite3.sqlite_version}) lacks"
                ) from e
            raise StoreError(f"capability index: cannot create its tables: {e}") from e

    def reload(self) -> None:
        """(Re)build the in-memory matrix from the tables; embed documents lacking a vector.

        A document lacks a vector when it was never embedded by this embedder, its text
        changed, or its stored vector has another dimension: only those are embedded.
        """
        try:
            rows = self.conn.execute(
                """SELECT d.num, d.id, d.doc_hash, d.text_hash, e.vector
                   FROM idx_docs d LEFT JOIN idx_embeddings e
                     ON e.id = d.id AND e.embedder_id = ? AND e.text_hash = d.text_hash
                   ORDER BY d.num""",
                (self.embedder.id,),
            ).fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"capability index: cannot read idx_docs: {e}") from e
        self._ids: list[str] = []
        self._row: dict[str, int] = {}
        self._num: dict[str, int] = {}
        self._id_of_num: dict[int, str] = {}
        self._doc_hash: dict[str, str] = {}
        self._text_hash: dict[str, str] = {}
        self._mat = np.zeros((0, 0), dtype=np.float32)
        self._scores = np.zeros(0, dtype=np.float32)
        self._n = 0
        self._dim: int | None = None
        have = [r for r in rows if r[4] is not None]
        sizes = {len(r[4]) for r in have}
        if len(sizes) > 1:  # mixed dimensions under one embedder id: keep the commonest
            common = max(sizes, key=lambda s: sum(len(r[4]) == s for r in have))
            have = [r for r in have if len(r[4]) == common]
        if have:
            dim = len(have[0][4]) // 4
            block = np.frombuffer(b"".join(r[4] for r in have), dtype="<f4").reshape(-1, dim)
            self._ensure_capacity(len(have), dim)
            self._mat[: len(have)] = block
            for r in have:
                self._add_meta(r[1], r[0], r[2], r[3])
            self._n = len(have)
        loaded = {r[1] for r in have}
        missing = [r[1] for r in rows if r[1] not in loaded]
        if missing:
            docs = [d for d in (self.get(i) for i in missing) if d is not None]
            self._write(docs, force_embed=True)

    def _add_meta(self, doc_id: str, num: int, doc_hash: str, text_hash: str) -> None:
        self._row[doc_id] = len(self._ids)
        self._ids.append(doc_id)
        self._num[doc_id] = num
        self._id_of_num[num] = doc_id
        self._doc_hash[doc_id] = doc_hash
        self._text_hash[doc_id] = text_hash

    def _ensure_capacity(self, rows: int, dim: int) -> None:
        if self._dim is None:
            self._dim = dim
            self._mat = np.zeros((0, dim), dtype=np.float32)
        elif dim != self._dim:
            raise EmbeddingError(
                f"embedder {self.embedder.id!r} returned dimension {dim}, the index holds {self._dim}"
            )
        if rows > self._mat.shape[0]:
            cap = max(16, rows, 2 * self._mat.shape[0])
            grown = np.zeros((cap, dim), dtype=np.float32)
            grown[: self._n] = self._mat[: self._n]
            self._mat = grown
            self._scores = np.zeros(cap, dtype=np.float32)

    # ------------------------------------------------------------------ writes

    def upsert(self, doc: IndexDoc) -> None:
        """Add or replace one document (embedded only if new or its text changed)."""
        self.upsert_many([doc])

    def upsert_many(self, docs: Iterable[IndexDoc]) -> int:
        """Add or replace documents; embeds the new/changed ones in one batch.

        Returns how many documents were written (unchanged ones are skipped).
        """
        latest: dict[str, IndexDoc] = {}
        for d in docs:
            latest[_check_doc(d).id] = d  # the last version of an id wins
        changed = [d for d in latest.values() if self._doc_hash.get(d.id) != _doc_hash(d)]
        if changed:
            self._write(changed, force_embed=False)
        return len(changed)

    def _write(self, docs: Sequence[IndexDoc], *, force_embed: bool) -> None:
        text_hash = {d.id: _sha(embedding_text(d)) for d in docs}
        need = [d for d in docs if force_embed or self._text_hash.get(d.id) != text_hash[d.id]]
        vectors: dict[str, np.ndarray] = {}
        # A vector this embedder already made for this text (another process, a re-add).
        to_embed = []
        for d in need:
            row = self.conn.execute(
                "SELECT vector FROM idx_embeddings WHERE id = ? AND embedder_id = ?"
                " AND text_hash = ?",
                (d.id, self.embedder.id, text_hash[d.id]),
            ).fetchone()
            if row is not None and (self._dim is None or len(row[0]) == 4 * self._dim):
                vectors[d.id] = np.frombuffer(row[0], dtype="<f4")
            else:
                to_embed.append(d)
        fresh: list[tuple[str, str, int, bytes]] = []
        if to_embed:
            mat = self._embed([embedding_text(d) for d in to_embed])
            for d, v in zip(to_embed, mat, strict=True):
                vectors[d.id] = v
                fresh.append((d.id, text_hash[d.id], v.shape[0], v.astype("<f4").tobytes()))
        dims = {v.shape[0] for v in vectors.values()}
        if len(dims) > 1 or (self._dim is not None and dims and dims != {self._dim}):
            raise EmbeddingError(
                f"embedder {self.embedder.id!r} produced vectors of dimensions {sorted(dims)}"
                + (f", the index holds {self._dim}" if self._dim is not None else "")
            )
        nums: dict[str, int] = {}
        try:
            with self._atomic():
                for d in docs:
                    params = json.dumps(list(d.params))
                    num = self.conn.execute(
                        """INSERT INTO idx_docs (id, name, summary, params, doc_hash, text_hash)
                           VALUES (?, ?, ?, ?, ?, ?)
                           ON CONFLICT(id) DO UPDATE SET name = excluded.name,
                             summary = excluded.summary, params = excluded.params,
                             doc_hash = excluded.doc_hash, text_hash = excluded.text_hash
                           RETURNING num""",
                        (d.id, d.name, d.summary, params, _doc_hash(d), text_hash[d.id]),
                    ).fetchall()[0][0]  # fetchall: a pending RETURNING blocks RELEASE
                    nums[d.id] = num
                    self.conn.execute("DELETE FROM idx_fts WHERE rowid = ?", (num,))
                    self.conn.execute(
                        "INSERT INTO idx_fts (rowid, id_words, name, summary, params)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (
                            num,
                            " ".join(split_words(d.id)),
                            " ".join(split_words(d.name)),
                            d.summary,
                            " ".join(" ".join(split_words(p)) for p in d.params),
                        ),
                    )
                self.conn.executemany(
                    "INSERT OR REPLACE INTO idx_embeddings (id, embedder_id, text_hash, dim,"
                    " vector) VALUES (?, ?, ?, ?, ?)",
                    [(i, self.embedder.id, h, n, b) for i, h, n, b in fresh],
                )
        except sqlite3.Error as e:
            raise StoreError(f"capability index: cannot write documents: {e}") from e
        # The database is committed (or joined the caller's transaction): mirror it in memory.
        if vectors:
            dim = next(iter(dims))
            new = sum(1 for i in vectors if i not in self._row)
            self._ensure_capacity(self._n + new, dim)
        for d in docs:
            v = vectors.get(d.id)
            if d.id in self._row:
                if v is not None:
                    self._mat[self._row[d.id]] = v
                self._doc_hash[d.id] = _doc_hash(d)
                self._text_hash[d.id] = text_hash[d.id]
            else:
                assert v is not None  # new documents are always in `need`
                self._mat[self._n] = v
                self._n += 1
                self._add_meta(d.id, nums[d.id], _doc_hash(d), text_hash[d.id])

    def _embed(self, texts: list[str]) -> np.ndarray:
        try:
            mat = np.asarray(self.embedder.embed(texts), dtype=np.float32)
        except EmbeddingError:
            raise
        except Exception as e:  # an embedder from outside symbiont failing its own way
            raise EmbeddingError(f"embedder {self.embedder.id!r} failed: {e}") from e
        self.embed_calls += len(texts)
        if mat.ndim != 2 or mat.shape[0] != len(texts) or not np.isfinite(mat).all():
            raise EmbeddingError(
                f"embedder {self.embedder.id!r} returned shape {mat.shape} "
                f"(or non-finite values) for {len(texts)} texts"
            )
        return mat

    def remove(self, doc_id: str) -> bool:
        """Remove a document; returns False if it was not indexed."""
        if doc_id not in self._row:
            return False
        num = self._num[doc_id]
        try:
            with self._atomic():
                self.conn.execute("DELETE FROM idx_docs WHERE num = ?", (num,))
                self.conn.execute("DELETE FROM idx_fts WHERE rowid = ?", (num,))
                self.conn.execute("DELETE FROM idx_embeddings WHERE id = ?", (doc_id,))
        except sqlite3.Error as e:
            raise StoreError(f"capability index: cannot remove {doc_id!r}: {e}") from e
        row = self._row.pop(doc_id)
        last = self._n - 1
        if row != last:  # swap-remove: the last row fills the hole
            moved = self._ids[last]
            self._mat[row] = self._mat[last]
            self._ids[row] = moved
            self._row[moved] = row
        self._ids.pop()
        self._n -= 1
        del self._id_of_num[num], self._num[doc_id], self._doc_hash[doc_id]
        del self._text_hash[doc_id]
        return True

    # ------------------------------------------------------------------ reads

    def __len__(self) -> int:
        return self._n

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._row

    def ids(self) -> list[str]:
        """Indexed ids, sorted."""
        return sorted(self._ids)

    def get(self, doc_id: str) -> IndexDoc | None:
        row = self.conn.execute(
            "SELECT id, name, summary, params FROM idx_docs WHERE id = ?", (doc_id,)
        ).fetchone()
        if row is None:
            return None
        return IndexDoc(row[0], row[1], row[2], tuple(json.loads(row[3])))

    def vector(self, doc_id: str) -> np.ndarray:
        """A copy of the stored unit vector of a document (KeyError if absent)."""
        return self._mat[self._row[doc_id]].copy()

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        mode: Mode = "hybrid",
        exclude: Collection[str] = (),
        query_vector: np.ndarray | None = None,
    ) -> list[Hit]:
        """The k best documents for `query`, excluded ids masked out before ranking.

        `query_vector` skips embedding the query (it must come from the same embedder).
        """
        if not isinstance(query, str):
            raise CapabilityError(f"search query must be a string, got {type(query).__name__}")
        if mode not in MODES:
            raise CapabilityError(f"search mode must be one of {', '.join(MODES)}, not {mode!r}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise CapabilityError(f"search k must be a positive int, got {k!r}")
        if isinstance(exclude, str):
            raise CapabilityError("search exclude must be a collection of ids, not one string")
        if self._n == 0:
            return []
        excluded = {i for i in exclude if i in self._row}
        depth = k if mode != "hybrid" else max(k, self.fusion_depth)

        sem: dict[str, tuple[int, float]] = {}
        scores: np.ndarray | None = None
        if mode != "lexical":
            scores = self._semantic_scores(query, query_vector)
            if excluded:
                scores[[self._row[i] for i in excluded]] = -np.inf
            m = min(depth, self._n - len(excluded))
            if m > 0:
                top = np.argpartition(scores, self._n - m)[self._n - m :]
                top = top[np.lexsort((top, -scores[top]))]
                sem = {self._ids[r]: (rank, float(scores[r])) for rank, r in enumerate(top, 1)}
        lex: dict[str, tuple[int, float]] = {}
        terms: list[str] = []
        if mode != "semantic":
            terms = self._query_terms(query)
            lex = self._lexical(terms, depth, excluded)

        if mode == "semantic":
            ranked = [(i, s) for i, (_, s) in sem.items()]
        elif mode == "lexical":
            ranked = [(i, s) for i, (_, s) in lex.items()]
        else:
            ws, wl = self.weights
            fused: dict[str, float] = {}
            for i, (rank, _) in sem.items():
                fused[i] = ws / (self.rrf_k + rank)
            for i, (rank, _) in lex.items():
                fused[i] = fused.get(i, 0.0) + wl / (self.rrf_k + rank)
            ranked = sorted(fused.items(), key=lambda x: (-x[1], x[0]))
        ranked = ranked[:k]
        explained = [i for i, _ in ranked[:_EXPLAIN] if i in lex]  # words for the top ones
        matched = self._matched_terms(explained, terms)
        hits = []
        for doc_id, score in ranked:
            s_rank, s_score = sem.get(doc_id, (None, None))
            if s_score is None and scores is not None:  # beyond the fusion depth: score only
                s_score = float(scores[self._row[doc_id]])
            l_rank, l_score = lex.get(doc_id, (None, None))
            hits.append(
                Hit(
                    id=doc_id,
                    score=float(score),
                    semantic_score=s_score,
                    semantic_rank=s_rank,
                    lexical_score=l_score,
                    lexical_rank=l_rank,
                    why=self._why(mode, s_rank, s_score, l_rank, l_score, matched.get(doc_id)),
                )
            )
        return hits

    def _semantic_scores(self, query: str, query_vector: np.ndarray | None) -> np.ndarray:
        assert self._dim is not None
        if query_vector is None:
            qv = self._embed_query(query)
        else:
            qv = np.asarray(query_vector, dtype=np.float32).reshape(-1)
            if qv.shape[0] != self._dim or not np.isfinite(qv).all():
                raise CapabilityError(
                    f"query_vector must be {self._dim} finite floats, got shape "
                    f"{np.shape(query_vector)}"
                )
        out = self._scores[: self._n]
        np.dot(self._mat[: self._n], qv, out=out)
        return out

    def _embed_query(self, query: str) -> np.ndarray:
        try:
            qv = np.asarray(self.embedder.embed([query]), dtype=np.float32)
        except EmbeddingError:
            raise
        except Exception as e:
            raise EmbeddingError(f"embedder {self.embedder.id!r} failed: {e}") from e
        if qv.shape != (1, self._dim):
            raise EmbeddingError(
                f"embedder {self.embedder.id!r} returned shape {qv.shape} for one query, "
                f"the index holds dimension {self._dim}"
            )
        return qv[0]

    @staticmethod
    def _query_terms(query: str) -> list[str]:
        seen: dict[str, None] = {}
        for w in split_words(query):
            if w not in STOPWORDS:
                seen.setdefault(w, None)
        return list(seen)

    def _lexical(
        self, terms: list[str], depth: int, excluded: set[str]
    ) -> dict[str, tuple[int, float]]:
        if not terms:
            return {}
        match = " OR ".join(f'"{t}"' for t in terms)  # words are [^\W_]+: nothing to escape
        sql = "SELECT rowid, -bm25(idx_fts) AS s FROM idx_fts WHERE idx_fts MATCH ?"
        args: tuple[object, ...] = (match,)
        if excluded:  # masked inside the query, before LIMIT: never post-filtered
            sql += " AND rowid NOT IN (SELECT value FROM json_each(?))"
            args += (json.dumps([self._num[i] for i in excluded]),)
        rows = self.conn.execute(sql + " ORDER BY s DESC, rowid LIMIT ?", (*args, depth)).fetchall()
        out: dict[str, tuple[int, float]] = {}
        for num, score in rows:
            doc_id = self._id_of_num.get(num)
            if doc_id is not None:  # written by another process since our reload()
                out[doc_id] = (len(out) + 1, float(score))
        return out

    def _matched_terms(self, doc_ids: list[str], terms: list[str]) -> dict[str, list[str]]:
        """The words of each document that matched the BM25 query, for `Hit.why`.

        Compared through a light suffix-stripping stem, not FTS5's porter stemmer: FTS5's
        highlight() re-runs the whole MATCH (~0.3 ms per document); this only explains.
        """
        if not doc_ids or not terms:
            return {}
        wanted = {_light_stem(t) for t in terms}
        rows = self.conn.execute(
            "SELECT rowid, id_words, name, summary, params FROM idx_fts"
            " WHERE rowid IN (SELECT value FROM json_each(?))",
            (json.dumps([self._num[i] for i in doc_ids]),),
        ).fetchall()
        out: dict[str, list[str]] = {}
        for num, *texts in rows:
            words: dict[str, None] = {}
            for text in texts:
                for w in split_words(text or ""):
                    if _light_stem(w) in wanted:
                        words.setdefault(w, None)
            out[self._id_of_num[num]] = list(words)
        return out

    @staticmethod
    def _why(
        mode: str,
        s_rank: int | None,
        s_score: float | None,
        l_rank: int | None,
        l_score: float | None,
        words: list[str] | None,
    ) -> str:
        parts = []
        if mode != "lexical":
            if s_rank is not None and s_score is not None:
                parts.append(f"semantic #{s_rank} (cos {s_score:.2f})")
            elif s_score is not None and math.isfinite(s_score):
                parts.append(f"semantic beyond top candidates (cos {s_score:.2f})")
        if mode != "semantic":
            if l_rank is not None and l_score is not None:
                shown = ", ".join((words or [])[:6])
                parts.append(
                    f"lexical #{l_rank} (bm25 {l_score:.3g}" + (f": {shown})" if shown else ")")
                )
            else:
                parts.append("no keyword match")
        return ", ".join(parts)
