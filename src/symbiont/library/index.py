"""Capability retrieval: cosine + keyword search, fused by reciprocal rank fusion.

`CapabilityIndex` keeps, for every document (a capability's id, name, summary and parameter
names), its embedding — persisted next to the embedder's id and a hash of the embedded
text, and recomputed only when either changes (the Self-Evolving Agent Runtime re-embeds
everything at every start) — and its words for keyword search, with identifiers split
into words (`get_salary_details` → "get salary details").

Persistence goes through the store (`store.index_storage()`; no SQL here), and where the
ranking happens depends on the backend:

- **SQLite** (`symbiont.store.sqlite_index`, the embedded default): the index is an
  in-memory view of the tables, loaded at construction and updated incrementally by this
  process's writes; another process's writes are seen after `reload()`. Semantic search is
  one matrix-vector product over a contiguous float32 matrix (amortised growth,
  swap-remove) and an `argpartition`; lexical search is FTS5's BM25 (porter stemming).
- **PostgreSQL** (`symbiont.store.pg.index`, a team sharing one library): nothing is kept
  in memory; both lists are ranked in the database (pgvector HNSW for cosine, full-text
  search with `ts_rank` for keywords), so a search sees what every process stored.

Either way the two lists are fused here by the same weighted reciprocal rank fusion
(`RRF_K`, `RRF_WEIGHTS`, `FUSION_DEPTH`); excluded ids are masked *before* each list's
top-k is taken (so deprecated capabilities can never crowd out the live ones), and each
`Hit` says why it matched.

Large in-memory indexes (`fast_min_docs`, 20k documents by default) switch both halves to
fast paths that return the same scores:

- semantic: a first pass over a compact copy of the matrix projected on its leading
  principal directions (uncentred, fitted on up to 20k rows; `fast_dims` = 64 of them for
  MiniLM-like vectors: 100k × 64 float32 is 26 MB instead of 154 MB, one BLAS
  matrix-vector product) picks `fast_candidates` (1,500) rows, which are then re-ranked by
  *exact* float32 cosine, so returned scores are exact and only recall is approximate
  (measured by benchmarks/bench_retrieval.py). The projection is kept in sync by
  upsert/remove and refitted when the index has doubled or halved since the fit. The
  number of directions grows (×1.5, ×2, ×3, up to half the dimension) until they hold
  `FAST_MIN_ENERGY` of the energy; when none does (isotropic vectors, e.g. random ones,
  where no low-dimensional pass can rank well), the exact scan is kept;
- lexical: FTS5's bm25() is computed row by row by an auxiliary function, ~1-2 µs for every
  document matching any query word (tens of thousands at 100k). An in-memory inverted index
  (`_Bm25`, postings as numpy arrays, built lazily from the FTS5 rows, which stay the
  persisted source, and then updated incrementally) evaluates the same formula (FTS5's
  bm25: k1 = 1.2, b = 0.75, IDF floored at 1e-6, per-row length over all columns) over the
  same porter-stemmed terms (stems come from FTS5's own tokenizer) and the same tie order
  (rowid); tests check its scores against FTS5's.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from typing import Any, Literal, Protocol

import numpy as np

from symbiont.embed.base import Embedder, EmbeddingError
from symbiont.errors import CapabilityError

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

# Fast paths for large indexes (see the module docstring; figures in benchmarks/results).
FAST_MIN_DOCS = 20_000  # below this the exact scan and FTS5 are already fast
FAST_DIMS = 64  # leading principal directions kept by the compact first pass (or more)
FAST_CANDIDATES = 1500  # rows re-ranked exactly (at least 4 × the depth asked for)
FAST_MIN_ENERGY = 0.6  # share of the energy the directions must hold, else exact scan
FAST_MIN_RECALL = 0.99  # recall@10 the first pass must show on stored rows, else wider
_FIT_SAMPLE = 20_000  # rows the principal directions are fitted on
_PROBES = 64  # stored rows used as queries to measure that recall
BM25_K1, BM25_B = 1.2, 0.75  # FTS5's bm25() constants
# Building the postings costs ~30 µs per document (3 s at 100k on the benchmark machine):
# a process searching once (the CLI) should not pay it. Like renting skis until their
# price is spent, the index answers from FTS5 until its FTS5 queries have cost as much
# as the build would, then builds (or at once, after `prepare()`).
_BM25_BUILD_S_PER_DOC = 30e-6
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


@lru_cache(maxsize=1 << 16)  # `why` stems every word of the top hits: the same few recur
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


def _lexical_columns(doc: IndexDoc) -> tuple[str, str, str, str]:
    """The texts keyword search matches: id words, name words, summary, parameter words."""
    return (
        " ".join(split_words(doc.id)),
        " ".join(split_words(doc.name)),
        doc.summary,
        " ".join(" ".join(split_words(p)) for p in doc.params),
    )


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


class Stemmer(Protocol):
    """Words → the backend's lexical terms (for in-memory postings that must match it)."""

    known: dict[str, tuple[str, ...]]

    def learn(self, words: Iterable[str]) -> None: ...

    def __getitem__(self, word: str) -> tuple[str, ...]: ...


class IndexStorage(Protocol):
    """What the index needs from a store (`store.index_storage()`), on every backend.

    Documents travel as rows (id, name, summary, params as JSON, doc_hash, text_hash, the
    lexical column texts: id words, name words, summary, parameter words), vectors as
    (id, text_hash, float32 unit vector). `searches_in_database` says which of the two
    extensions below the storage offers.
    """

    searches_in_database: bool
    lexical_score_name: str  # shown in `Hit.why`: "bm25", "ts_rank"

    def get_many(self, ids: Sequence[str]) -> list[tuple[str, str, str, str]]: ...

    def stored_vectors(self, embedder_id: str, wanted: dict[str, str]) -> dict[str, np.ndarray]: ...

    def write(
        self, docs: Sequence[Any], vectors: Sequence[Any], embedder_id: str
    ) -> dict[str, int]: ...

    def remove(self, doc_id: str) -> bool: ...

    def lexical(
        self, terms: Sequence[str], depth: int, excluded: Sequence[str]
    ) -> list[tuple[str, float]]: ...

    def lexical_texts(self, ids: Sequence[str]) -> dict[str, list[str]]: ...


class SnapshotStorage(IndexStorage, Protocol):
    """`searches_in_database = False` (SQLite): the index ranks over an in-memory view."""

    def load(self, embedder_id: str) -> list[tuple[int, str, str, str, bytes | None]]: ...

    def lexical_rows(self) -> list[tuple[int, str, str, str, str]]: ...

    def stemmer(self) -> Stemmer: ...


class SearchingStorage(IndexStorage, Protocol):
    """`searches_in_database = True` (PostgreSQL): the database ranks; nothing in memory."""

    def count(self) -> int: ...

    def ids(self) -> list[str]: ...

    def contains(self, doc_id: str) -> bool: ...

    def hashes(self, ids: Sequence[str]) -> dict[str, tuple[str, str]]: ...

    def dimension(self, embedder_id: str) -> int | None: ...

    def missing(self, embedder_id: str) -> list[str]: ...

    def vector(self, embedder_id: str, doc_id: str) -> np.ndarray | None: ...

    def rank(
        self,
        embedder_id: str,
        qv: np.ndarray | None,
        terms: Sequence[str],
        depth: int,
        excluded: Sequence[str],
    ) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]: ...

    def similarities(
        self, embedder_id: str, qv: np.ndarray, ids: Sequence[str]
    ) -> dict[str, float]: ...


def _storage_of(target: object) -> IndexStorage:
    """A store's index storage, given the store or the storage itself."""
    make = getattr(target, "index_storage", None)
    if callable(make):
        target = make()
    needed = ("searches_in_database", "get_many", "write", "remove", "lexical")
    if not all(hasattr(target, name) for name in needed):
        raise CapabilityError(
            "CapabilityIndex needs a store (open_store(...)) or its index_storage(), "
            f"not {type(target).__name__}"
        )
    return target  # type: ignore[return-value]


def _probe_recall(exact: np.ndarray, proj: np.ndarray, probe: np.ndarray, wanted: int) -> float:
    """Recall@10 of the first pass (top `wanted` by projected score, re-ranked exactly)
    for stored rows used as queries; `exact` holds their exact scores, one column each."""
    n, k = exact.shape[0], min(10, exact.shape[0] - 1)
    if wanted >= n - 1 or k < 1:
        return 1.0
    first = proj @ proj[probe].T
    first[probe, np.arange(probe.shape[0])] = -np.inf
    cand = np.argpartition(first, n - wanted, axis=0)[n - wanted :]
    cand_exact = np.take_along_axis(exact, cand, axis=0)
    got = np.take_along_axis(cand, np.argpartition(cand_exact, wanted - k, axis=0)[wanted - k :], 0)
    want = np.argpartition(exact, n - k, axis=0)[n - k :]
    hits = sum(len(set(g) & set(w)) for g, w in zip(got.T.tolist(), want.T.tolist(), strict=True))
    return hits / (k * probe.shape[0])


class _Bm25:
    """FTS5's bm25() over the FTS5 rows, from postings kept in memory as numpy arrays.

    Documents live in slots (a removed or replaced document leaves a dead slot, compacted
    by a rebuild). Each term keeps (slots, term frequency) arrays; additions wait in a list
    of arrays and removals are filtered out when the term is next queried. Tokenising is
    vectorised over a batch: one regex pass per document, then numpy.
    """

    def __init__(self, stemmer: Stemmer) -> None:
        self.stem = stemmer
        self.slot_of: dict[int, int] = {}  # FTS rowid (idx_docs.num) → slot
        self.nums = np.zeros(0, dtype=np.int64)  # slot → rowid
        self.dl = np.zeros(0, dtype=np.float64)  # slot → tokens over all columns
        self.alive = np.zeros(0, dtype=bool)
        self.size = 0  # slots used
        self.n_alive = 0
        self.total = 0  # tokens over the live documents
        self.term_id: dict[str, int] = {}
        self.postings: list[tuple[np.ndarray, np.ndarray] | None] = []  # by term id
        self.pending: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        self.filtered: list[int] = []  # by term id: `removals` when last filtered
        self.removals = 0
        self.writes = 0  # the BM25 weights below depend on the average length: any write
        self.weights: dict[int, tuple[int, np.ndarray]] = {}  # term id → (writes, weights)

    def _tid(self, term: str) -> int:
        tid = self.term_id.get(term)
        if tid is None:
            tid = self.term_id[term] = len(self.postings)
            self.postings.append(None)
            self.filtered.append(self.removals)
        return tid

    def add_many(self, rows: Sequence[tuple[int, Sequence[str | None]]]) -> None:
        """Index rows (rowid, column texts); a rowid already present is replaced."""
        for num, _ in rows:
            self.remove(num)
        if not rows:
            return
        self.writes += 1
        n = len(rows)
        # Case is left to FTS5's tokenizer (which folds it) through the word → terms map.
        per_doc = [_WORD.findall(" ".join(t or "" for t in texts)) for _, texts in rows]
        flat = list(chain.from_iterable(per_doc))
        wid: dict[str, int] = dict.fromkeys(flat, 0)
        words = list(wid)
        wid.update(zip(words, range(len(words)), strict=True))
        ids = np.fromiter(map(wid.__getitem__, flat), np.int64, len(flat))
        self.stem.learn(words)
        known, tid = self.stem.known, self._tid
        word_terms = [[tid(t) for t in known[w]] for w in words]
        n_terms = np.fromiter(map(len, word_terms), np.int64, len(words))
        term_flat = np.fromiter(chain.from_iterable(word_terms), np.int64, int(n_terms.sum()))
        doc_of = np.repeat(np.arange(n), np.fromiter(map(len, per_doc), np.int64, n))
        if (n_terms == 1).all():
            terms = term_flat[ids]
        else:  # a word unicode61 splits in several terms (or none)
            count = n_terms[ids]
            doc_of = np.repeat(doc_of, count)
            first = np.concatenate(([0], np.cumsum(n_terms)[:-1]))[ids]
            offset = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
            terms = term_flat[np.repeat(first, count) + offset]
        slots = np.arange(self.size, self.size + n)
        need = self.size + n
        if need > self.nums.shape[0]:
            cap = max(1024, need, 2 * self.nums.shape[0])
            for name in ("nums", "dl", "alive"):
                grown = np.zeros(cap, dtype=getattr(self, name).dtype)
                grown[: self.size] = getattr(self, name)[: self.size]
                setattr(self, name, grown)
        dl = np.bincount(doc_of, minlength=n)
        self.nums[slots] = [num for num, _ in rows]
        self.dl[slots] = dl
        self.alive[slots] = True
        self.slot_of.update(zip((num for num, _ in rows), slots.tolist(), strict=True))
        self.size = need
        self.n_alive += n
        self.total += int(dl.sum())
        keys, tf = np.unique(terms * n + doc_of, return_counts=True)  # by term, then doc
        key_term = keys // n
        cuts = np.flatnonzero(np.diff(key_term)) + 1
        for lo, hi in zip(
            np.concatenate(([0], cuts)).tolist(),
            np.append(cuts, keys.shape[0]).tolist(),
            strict=True,
        ):
            self.pending.setdefault(int(key_term[lo]), []).append(
                (slots[keys[lo:hi] % n], tf[lo:hi].astype(np.float64))
            )

    def remove(self, num: int) -> None:
        slot = self.slot_of.pop(num, None)
        if slot is None:
            return
        self.alive[slot] = False
        self.n_alive -= 1
        self.total -= int(self.dl[slot])
        self.removals += 1
        self.writes += 1

    @property
    def wasted(self) -> int:
        """Dead slots: a rebuild is due when they outnumber the live ones."""
        return self.size - self.n_alive

    def _postings(self, tid: int) -> tuple[np.ndarray, np.ndarray]:
        arrays = self.postings[tid]
        add = self.pending.pop(tid, None)
        if add is not None:
            if arrays is not None:
                add.insert(0, arrays)
            arrays = (
                np.concatenate([a[0] for a in add]) if len(add) > 1 else add[0][0],
                np.concatenate([a[1] for a in add]) if len(add) > 1 else add[0][1],
            )
        if arrays is None:
            arrays = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))
        if self.filtered[tid] != self.removals:
            self.filtered[tid] = self.removals
            keep = self.alive[arrays[0]]
            arrays = (arrays[0][keep], arrays[1][keep])
        self.postings[tid] = arrays
        return arrays

    def search(
        self, phrases: list[str], depth: int, excluded_nums: Collection[int]
    ) -> list[tuple[int, float]]:
        """The `depth` best (rowid, score) for an OR of one-term phrases, score = -bm25()."""
        if self.n_alive == 0:
            return []
        n_row = float(self.n_alive)
        avgdl = float(self.total) / n_row
        k1, b = BM25_K1, BM25_B
        acc = np.zeros(self.size, dtype=np.float64)  # > 0 exactly for the matching rows
        for term in phrases:  # in phrase order, as FTS5 sums them
            tid = self.term_id.get(term)
            if tid is None:
                continue
            slots, tf = self._postings(tid)
            n_hit = slots.shape[0]
            if n_hit == 0:
                continue
            idf = math.log((n_row - n_hit + 0.5) / (n_hit + 0.5))
            if idf <= 0.0:
                idf = 1e-6
            cached = self.weights.get(tid)
            if cached is None or cached[0] != self.writes:
                w = (tf * (k1 + 1.0)) / (tf + k1 * (1 - b + b * self.dl[slots] / avgdl))
                cached = self.weights[tid] = (self.writes, w)
            acc[slots] += idf * cached[1]  # FTS5: idf * (f * (k1 + 1) / (f + k1 * (...)))
        if excluded_nums:
            acc[[self.slot_of[n] for n in excluded_nums if n in self.slot_of]] = 0.0
        cand = np.flatnonzero(acc > 0.0)  # a bool mask: ~5× faster than on the floats
        if cand.shape[0] > depth:  # keep every tie of the depth-th score, then order exactly
            s = acc[cand]
            cut = np.partition(s, s.shape[0] - depth)[s.shape[0] - depth]
            cand = cand[s >= cut]
        order = np.lexsort((self.nums[cand], -acc[cand]))[:depth]
        top = cand[order]
        return list(zip(self.nums[top].tolist(), acc[top].tolist(), strict=True))


class CapabilityIndex:
    """Hybrid (semantic + keyword) index over capability documents, persisted in a store.

    `CapabilityIndex(store, embedder)` or `CapabilityIndex(store.index_storage(), embedder)`.
    """

    _dim: int | None  # of the stored vectors (None: none yet)

    def __init__(
        self,
        storage: object,
        embedder: Embedder,
        *,
        rrf_k: float = RRF_K,
        weights: tuple[float, float] = RRF_WEIGHTS,
        fusion_depth: int = FUSION_DEPTH,
        fast_min_docs: int = FAST_MIN_DOCS,
        fast_dims: int = FAST_DIMS,
        fast_candidates: int = FAST_CANDIDATES,
    ) -> None:
        self.storage = _storage_of(storage)
        # True (PostgreSQL): both lists are ranked by the database and nothing below is
        # kept in memory; False (SQLite): the in-memory snapshot below answers.
        self.in_database = bool(self.storage.searches_in_database)
        self.embedder = embedder
        self.rrf_k = float(rrf_k)
        self.weights = (float(weights[0]), float(weights[1]))  # (semantic, lexical)
        self.fusion_depth = int(fusion_depth)
        self.fast_min_docs = int(fast_min_docs)  # from this size on, the fast paths are used
        self.fast_dims = int(fast_dims)
        self.fast_candidates = int(fast_candidates)
        self.embed_calls = 0  # texts embedded by this index (documents, not queries)
        self._stemmer_: Stemmer | None = None  # made on first use (large indexes only)
        self.reload()

    @property
    def _snapshot(self) -> SnapshotStorage:
        return self.storage  # type: ignore[return-value]

    @property
    def _database(self) -> SearchingStorage:
        return self.storage  # type: ignore[return-value]

    # ------------------------------------------------------------------ loading

    def reload(self) -> None:
        """Catch up with the stored documents; embed documents lacking a vector.

        A document lacks a vector when it was never embedded by this embedder, its text
        changed, or its stored vector has another dimension: only those are embedded.
        In memory (SQLite), this also rebuilds the matrix from the tables, so that writes
        of other processes are seen; in the database (PostgreSQL) searches see them anyway.
        """
        self._reset()
        if self.in_database:
            self._dim = self._database.dimension(self.embedder.id)
            missing = self._database.missing(self.embedder.id)
        else:
            missing = self._load()
        if missing:
            self._write(self._docs(missing), force_embed=True)

    def _reset(self) -> None:
        self._ids: list[str] = []
        self._row: dict[str, int] = {}
        self._num: dict[str, int] = {}
        self._id_of_num: dict[int, str] = {}
        self._doc_hash: dict[str, str] = {}
        self._text_hash: dict[str, str] = {}
        self._mat = np.zeros((0, 0), dtype=np.float32)
        self._scores = np.zeros(0, dtype=np.float32)
        self._n = 0
        self._dim = None
        self._basis: np.ndarray | None = None  # dim × fast_dims principal directions
        self._proj = np.zeros((0, 0), dtype=np.float32)  # rows of _mat @ _basis
        self._pscores = np.zeros(0, dtype=np.float32)
        self._fit_n = 0  # documents when the basis was fitted (0: never)
        self.fast_energy: float | None = None  # energy share held by the basis
        self.fast_recall: float | None = None  # its recall@10 on stored rows as queries
        self._bm25: _Bm25 | None = None  # built once FTS5 has cost as much (see above)
        self._fts_seconds = 0.0  # spent in FTS5 BM25 queries since the last reload

    def _load(self) -> list[str]:
        """Fill the in-memory matrix from the tables; returns the ids lacking a vector."""
        rows = self._snapshot.load(self.embedder.id)
        have = [(n, i, dh, th, v) for n, i, dh, th, v in rows if v is not None]
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
        return [r[1] for r in rows if r[1] not in loaded]

    def _docs(self, ids: Sequence[str]) -> list[IndexDoc]:
        return [
            IndexDoc(r[0], r[1], r[2], tuple(json.loads(r[3]))) for r in self.storage.get_many(ids)
        ]

    def prepare(self) -> None:
        """Build the fast paths' structures now rather than during searches.

        For processes that will search a large in-memory index many times (an agent, a
        server): fits the compact projection and builds the in-memory BM25 postings, which
        searches otherwise do lazily (the postings only once FTS5 has cost as much).
        Does nothing below `fast_min_docs` documents, or when the database ranks.
        """
        if self.in_database or self._n < self.fast_min_docs or self._dim is None:
            return
        self._fast_ready()
        if self._bm25 is None:
            self._bm25 = self._build_bm25()

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
            if self._basis is not None:
                proj = np.zeros((cap, self._basis.shape[1]), dtype=np.float32)
                proj[: self._n] = self._proj[: self._n]
                self._proj = proj
                self._pscores = np.zeros(cap, dtype=np.float32)

    def _set_row(self, row: int, v: np.ndarray) -> None:
        """Write one vector into the matrix and, when there is one, its compact copy."""
        self._mat[row] = v
        if self._basis is not None:
            self._proj[row] = self._mat[row] @ self._basis

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
        if self.in_database and latest:
            stored = self._database.hashes(list(latest))
            current = {i: h[0] for i, h in stored.items()}
        else:
            current = self._doc_hash
        changed = [d for d in latest.values() if current.get(d.id) != _doc_hash(d)]
        if changed:
            self._write(changed, force_embed=False)
        return len(changed)

    def _write(self, docs: Sequence[IndexDoc], *, force_embed: bool) -> None:
        text_hash = {d.id: _sha(embedding_text(d)) for d in docs}
        if force_embed or self.in_database:
            need = list(docs)
        else:  # the snapshot knows which texts changed
            need = [d for d in docs if self._text_hash.get(d.id) != text_hash[d.id]]
        # A vector this embedder already made for this text (another process, a re-add).
        stored = self.storage.stored_vectors(
            self.embedder.id, {d.id: text_hash[d.id] for d in need}
        )
        vectors = {i: v for i, v in stored.items() if self._dim is None or v.shape[0] == self._dim}
        to_embed = [d for d in need if d.id not in vectors]
        fresh: list[tuple[str, str, np.ndarray]] = []
        if to_embed:
            mat = self._embed([embedding_text(d) for d in to_embed])
            for d, v in zip(to_embed, mat, strict=True):
                vectors[d.id] = v
                fresh.append((d.id, text_hash[d.id], v))
        dims = {v.shape[0] for v in vectors.values()}
        if len(dims) > 1 or (self._dim is not None and dims and dims != {self._dim}):
            raise EmbeddingError(
                f"embedder {self.embedder.id!r} produced vectors of dimensions {sorted(dims)}"
                + (f", the index holds {self._dim}" if self._dim is not None else "")
            )
        rows = [
            (
                d.id,
                d.name,
                d.summary,
                json.dumps(list(d.params)),
                _doc_hash(d),
                text_hash[d.id],
                _lexical_columns(d),
            )
            for d in docs
        ]
        nums = self.storage.write(rows, fresh, self.embedder.id)
        if self.in_database:
            if self._dim is None and dims:
                self._dim = next(iter(dims))
            return
        # The tables are committed: mirror them in memory.
        if vectors:
            dim = next(iter(dims))
            new = sum(1 for i in vectors if i not in self._row)
            self._ensure_capacity(self._n + new, dim)
        for d in docs:
            v = vectors.get(d.id)
            if d.id in self._row:
                if v is not None:
                    self._set_row(self._row[d.id], v)
                self._doc_hash[d.id] = _doc_hash(d)
                self._text_hash[d.id] = text_hash[d.id]
            else:
                assert v is not None  # new documents are always in `need`
                self._set_row(self._n, v)
                self._n += 1
                self._add_meta(d.id, nums[d.id], _doc_hash(d), text_hash[d.id])
        if self._bm25 is not None:
            self._bm25.add_many([(nums[d.id], _lexical_columns(d)) for d in docs])

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
        if self.in_database:
            return self.storage.remove(doc_id)
        if doc_id not in self._row:
            return False
        num = self._num[doc_id]
        self.storage.remove(doc_id)
        row = self._row.pop(doc_id)
        last = self._n - 1
        if row != last:  # swap-remove: the last row fills the hole
            moved = self._ids[last]
            self._mat[row] = self._mat[last]
            if self._basis is not None:
                self._proj[row] = self._proj[last]
            self._ids[row] = moved
            self._row[moved] = row
        self._ids.pop()
        self._n -= 1
        del self._id_of_num[num], self._num[doc_id], self._doc_hash[doc_id]
        del self._text_hash[doc_id]
        if self._bm25 is not None:
            self._bm25.remove(num)
        return True

    # ------------------------------------------------------------------ reads

    def __len__(self) -> int:
        return self._database.count() if self.in_database else self._n

    def __contains__(self, doc_id: object) -> bool:
        if self.in_database:
            return isinstance(doc_id, str) and self._database.contains(doc_id)
        return doc_id in self._row

    def ids(self) -> list[str]:
        """Indexed ids, sorted."""
        return self._database.ids() if self.in_database else sorted(self._ids)

    def get(self, doc_id: str) -> IndexDoc | None:
        docs = self._docs([doc_id])
        return docs[0] if docs else None

    def vector(self, doc_id: str) -> np.ndarray:
        """A copy of the stored unit vector of a document (KeyError if absent)."""
        if self.in_database:
            v = self._database.vector(self.embedder.id, doc_id)
            if v is None:
                raise KeyError(doc_id)
            return v
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
        if self.in_database:
            if self._dim is None:  # another process may have stored the first vectors
                self._dim = self._database.dimension(self.embedder.id)
            excluded = {i for i in exclude if isinstance(i, str)}
        elif self._n == 0:
            return []
        else:
            excluded = {i for i in exclude if i in self._row}
        depth = k if mode != "hybrid" else max(k, self.fusion_depth)

        qv: np.ndarray | None = None
        if mode != "lexical" and self._dim is not None:
            qv = self._query_vector(query, query_vector)
        terms = self._query_terms(query) if mode != "semantic" else []
        if self.in_database:  # both lists in one round trip
            found = self._database.rank(self.embedder.id, qv, terms, depth, sorted(excluded))
            sem, lex = ({i: (r, s) for r, (i, s) in enumerate(f, 1)} for f in found)
        else:
            sem = self._semantic(qv, depth, excluded) if qv is not None else {}
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
        beyond = self._beyond_depth([i for i, _ in ranked if i not in sem], qv)
        hits = []
        for doc_id, score in ranked:
            s_rank, s_score = sem.get(doc_id, (None, beyond.get(doc_id)))
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

    def _beyond_depth(self, ids: list[str], qv: np.ndarray | None) -> dict[str, float]:
        """Cosine of hits that only the lexical list ranked (beyond the fusion depth)."""
        if qv is None or not ids:
            return {}
        if self.in_database:
            return self._database.similarities(self.embedder.id, qv, ids)
        return {i: float(self._mat[self._row[i]] @ qv) for i in ids}

    def _query_vector(self, query: str, query_vector: np.ndarray | None) -> np.ndarray:
        assert self._dim is not None
        if query_vector is None:
            return self._embed_query(query)
        qv = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        if qv.shape[0] != self._dim or not np.isfinite(qv).all():
            raise CapabilityError(
                f"query_vector must be {self._dim} finite floats, got shape "
                f"{np.shape(query_vector)}"
            )
        return qv

    def _semantic(
        self, qv: np.ndarray, depth: int, excluded: set[str]
    ) -> dict[str, tuple[int, float]]:
        """The `depth` best rows by cosine: {id: (rank, exact score)}, excluded ids masked.

        Large indexes scan the compact projection first and re-rank its best
        `fast_candidates` rows exactly; the others scan the whole matrix.
        """
        n = self._n
        live = n - len(excluded)
        m = min(depth, live)
        if m <= 0:
            return {}
        masked = [self._row[i] for i in excluded]
        wanted = max(self.fast_candidates, 4 * depth)
        if n >= self.fast_min_docs and wanted < live and self._fast_ready():
            assert self._basis is not None
            first = self._pscores[:n]
            np.dot(self._proj[:n], qv @ self._basis, out=first)
            if masked:
                first[masked] = -np.inf  # before the candidates are chosen
            rows = np.argpartition(first, n - wanted)[n - wanted :]
            scores = self._mat[rows] @ qv  # exact float32 cosine of the candidates
        else:
            scores = self._scores[:n]
            np.dot(self._mat[:n], qv, out=scores)
            if masked:
                scores[masked] = -np.inf
            rows = np.arange(n)
        if rows.shape[0] > m:
            pick = np.argpartition(scores, rows.shape[0] - m)[rows.shape[0] - m :]
            rows, scores = rows[pick], scores[pick]
        order = np.lexsort((rows, -scores))
        return {
            self._ids[r]: (rank, float(s))
            for rank, (r, s) in enumerate(zip(rows[order], scores[order], strict=True), 1)
        }

    def _fast_ready(self) -> bool:
        """Fit the compact projection if due; True when the fast semantic path applies."""
        n = self._n
        if self._fit_n == 0 or n > 2 * self._fit_n or 2 * n < self._fit_n:
            self._fit_projection()
        return self._basis is not None

    def _fit_projection(self) -> None:
        """Leading eigenvectors of the (uncentred) second moment of the stored vectors.

        Uncentred because the first pass approximates dot products, not distances to the
        mean. Fitted on an evenly spaced sample of at most `_FIT_SAMPLE` rows. Keeps the
        fewest of `fast_dims` × 1, 1.5, 2, 3 directions (at most half the dimension) that
        hold `FAST_MIN_ENERGY` of the energy; none when no such count does. Isotropic
        vectors never qualify: m of d directions hold about m/d ≤ 1/2 of their energy.
        """
        assert self._dim is not None
        n, dim = self._n, self._dim
        sample = self._mat[: n : max(1, n // _FIT_SAMPLE)].astype(np.float64)
        eigvals, eigvecs = np.linalg.eigh(sample.T @ sample)
        order = np.argsort(eigvals)[::-1]
        total = float(eigvals.sum())
        share = np.cumsum(eigvals[order]) / total if total > 0 else np.zeros(dim)
        self._fit_n = n
        self._basis = None
        self._proj = np.zeros((0, 0), dtype=np.float32)
        tiers = [t for t in (2, 3, 4, 6) if self.fast_dims * t // 2 <= dim // 2]
        self.fast_energy = float(share[min(self.fast_dims, dim) - 1])
        self.fast_recall = None
        probe = np.linspace(0, n - 1, min(n, _PROBES)).astype(np.int64)
        exact: np.ndarray | None = None
        for dims in (self.fast_dims * t // 2 for t in tiers):
            self.fast_energy = float(share[dims - 1])
            if self.fast_energy < FAST_MIN_ENERGY:
                continue
            basis = np.ascontiguousarray(eigvecs[:, order[:dims]], dtype=np.float32)
            proj = self._mat[:n] @ basis
            if exact is None:
                exact = self._mat[:n] @ self._mat[probe].T
                exact[probe, np.arange(probe.shape[0])] = -np.inf  # not its own neighbour
            self.fast_recall = _probe_recall(exact, proj, probe, self.fast_candidates)
            if self.fast_recall >= FAST_MIN_RECALL:
                break
        else:
            return
        self._basis = basis
        cap = self._mat.shape[0]
        self._proj = np.zeros((cap, dims), dtype=np.float32)
        self._proj[:n] = proj
        self._pscores = np.zeros(cap, dtype=np.float32)

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
        due = self._fts_seconds >= _BM25_BUILD_S_PER_DOC * self._n
        if self._n >= self.fast_min_docs and (self._bm25 is not None or due):
            fast = self._lexical_fast(terms, depth, excluded)
            if fast is not None:
                out: dict[str, tuple[int, float]] = {}
                for num, score in fast:
                    out[self._id_of_num[num]] = (len(out) + 1, score)
                return out
        started = time.perf_counter()
        rows = self.storage.lexical(terms, depth, sorted(excluded))
        out = {}
        for doc_id, score in rows:
            if doc_id in self._row:  # else written by another process since our reload()
                out[doc_id] = (len(out) + 1, float(score))
        self._fts_seconds += time.perf_counter() - started
        return out

    def _lexical_fast(
        self, terms: list[str], depth: int, excluded: set[str]
    ) -> list[tuple[int, float]] | None:
        """BM25 from the in-memory postings, or None when FTS5 must answer itself (a query
        word its tokenizer splits in several terms: a phrase, which postings cannot match)."""
        phrases = []
        for t in terms:
            stems = self._stemmer()[t]
            if len(stems) != 1:
                return None
            phrases.append(stems[0])
        bm25 = self._bm25
        if bm25 is None or bm25.wasted > max(1000, bm25.n_alive):
            bm25 = self._bm25 = self._build_bm25()
        return bm25.search(phrases, depth, [self._num[i] for i in excluded])

    def _stemmer(self) -> Stemmer:
        if self._stemmer_ is None:
            self._stemmer_ = self._snapshot.stemmer()
        return self._stemmer_

    def _build_bm25(self) -> _Bm25:
        rows = self._snapshot.lexical_rows()
        bm25 = _Bm25(self._stemmer())
        known = self._id_of_num
        bm25.add_many([(r[0], r[1:]) for r in rows if r[0] in known])
        return bm25

    def _matched_terms(self, doc_ids: list[str], terms: list[str]) -> dict[str, list[str]]:
        """The words of each document that matched the keyword query, for `Hit.why`.

        Compared through a light suffix-stripping stem, not the backend's stemmer (FTS5's
        highlight() re-runs the whole MATCH, ~0.3 ms per document); this only explains.
        """
        if not doc_ids or not terms:
            return {}
        wanted = {_light_stem(t) for t in terms}
        out: dict[str, list[str]] = {}
        for doc_id, texts in self.storage.lexical_texts(doc_ids).items():
            words: dict[str, None] = {}
            for text in texts:
                for w in split_words(text or ""):
                    if _light_stem(w) in wanted:
                        words.setdefault(w, None)
            out[doc_id] = list(words)
        return out

    def _why(
        self,
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
                label = self.storage.lexical_score_name
                parts.append(
                    f"lexical #{l_rank} ({label} {l_score:.3g}" + (f": {shown})" if shown else ")")
                )
            else:
                parts.append("no keyword match")
        return ", ".join(parts)
