"""The retrieval index's persistence *and ranking* in PostgreSQL (pgvector + full-text search).

`symbiont.library.index.CapabilityIndex` asks this class (`PostgresStore.index_storage()`)
for everything persisted, and, since a team's processes share one library, for the two
ranked lists it fuses: nothing is snapshotted in memory, so a search sees every capability
any process stored, committed before the search began.

- **Semantic**: `ORDER BY embedding <=> query LIMIT depth` (cosine distance) over
  `idx_embeddings`, answered by an HNSW index. The `embedding` column has no fixed
  dimension (one library may hold vectors of several embedders), so each (dimension,
  embedder id) gets its own *partial expression* index on `embedding::vector(dim)`,
  created in the transaction that first stores such vectors (after inserting them, so a
  bulk load builds the graph in one pass; under an advisory lock, so two processes never
  race to create it). The query names the dimension and embedder id as literals, so the
  planner can match the partial index. `hnsw.ef_search` is `EF_SEARCH` (400, for recall;
  see there) or the depth asked for if larger, and excluded ids (deprecated capabilities) are filtered inside
  the index scan with pgvector's iterative scan (`hnsw.iterative_scan = strict_order`):
  the scan goes on until `depth` live rows are found, so excluded ones never crowd out
  live ones. If it still returns fewer than asked (fewer live rows than the depth, or the
  iterative scan's tuple limit reached), the same query runs again as an exact scan.
- **Lexical**: a generated `tsvector` (`english`: Snowball stemming, English stopwords)
  over `lexemes` (the id's words, name, summary and parameter names, identifiers split
  into words, as the SQLite index's FTS5 columns), GIN-indexed; ranked by `ts_rank` with
  length normalisation (1 + log of the document's length). The query is the same OR of
  non-stopword words as on SQLite. It is not BM25 (`ts_rank` has no IDF: a common word
  counts as much as a rare one), so lexical ranks differ from the SQLite backend's; on
  MetaTool, lexical search alone finds a little less, hybrid as much
  (benchmarks/results/retrieval_pg.md).
  `ts_rank` is computed for every matching row (a GIN index finds them), so its cost grows
  with how many documents share a query word.

Vectors cross the wire in pgvector's binary format (2-byte dimension, 2 unused bytes,
big-endian float32s); bulk writes go through COPY into a temporary table, then one
INSERT ... ON CONFLICT.
"""

from __future__ import annotations

import hashlib
import re
import struct
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from psycopg import sql
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format

if TYPE_CHECKING:
    from symbiont.store.pg.connection import PgDatabase

# HNSW candidate list, raised to the depth asked for (up to EF_SEARCH_MAX). pgvector's
# default, 40, and even 100 miss many true neighbours in a large library: over 100k
# MiniLM-like vectors, recall@10 was 0.74 at 100, 0.87 at 200, 0.95 at 400, 0.98 at 800
# (benchmarks/bench_retrieval_pg.py); 400 costs about 3× the time of 100.
EF_SEARCH = 400
EF_SEARCH_MAX = 1000  # pgvector's ceiling
EXACT_BELOW = 10_000  # embeddings (planner's estimate) under which search scans exactly
# Arbitrary constant: the advisory lock under which HNSW indexes are created ('SYIX').
_HNSW_LOCK = 0x53594958
_WORDS = re.compile(r"[^\W_]+")  # as the index's split_words: "_" separates words

# (id, name, summary, params as JSON, doc_hash, text_hash, the lexical column texts)
DocRow = tuple[str, str, str, str, str, str, tuple[str, ...]]
# (id, text_hash, unit vector)
VectorRow = tuple[str, str, np.ndarray]


class _VectorDumper(Dumper):
    """numpy vector → pgvector binary (`oid` is set per database, see `_adapters`)."""

    format = Format.BINARY

    def dump(self, obj: Any) -> bytes:
        a = np.ascontiguousarray(obj, dtype=">f4").reshape(-1)
        return struct.pack(">HH", a.shape[0], 0) + a.tobytes()


class _VectorLoader(Loader):
    """pgvector binary → float32 numpy vector."""

    format = Format.BINARY

    def load(self, data: Any) -> np.ndarray:
        (dim,) = struct.unpack_from(">H", data)
        return np.frombuffer(data, dtype=">f4", count=dim, offset=4).astype(np.float32)


def hnsw_index_name(dim: int, embedder_id: str) -> str:
    """The partial HNSW index of one (dimension, embedder id): a valid, short identifier."""
    digest = hashlib.sha256(embedder_id.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"idx_embeddings_hnsw_{dim}_{digest}"


def _tsquery(terms: Iterable[str]) -> str:
    # Words are [^\W_]+ (letters and digits): no tsquery operator or quote to escape.
    return " | ".join(terms)


def semantic_query(embedder_id: str, dim: int, *, excluding: bool) -> sql.Composed:
    """The nearest-neighbour query; parameters: the query vector, [the excluded ids,] the
    depth. The dimension and embedder id are literals, so that the planner can match the
    partial HNSW index of that (dimension, embedder id)."""
    where = sql.SQL("embedder_id = {} AND dim = {}").format(
        sql.Literal(embedder_id), sql.Literal(dim)
    )
    if excluding:
        where += sql.SQL(" AND id <> ALL(%s::text[])")
    return sql.SQL(
        "SELECT id, 1 - d FROM (SELECT id, embedding::vector({dim}) <=> %s AS d"
        " FROM idx_embeddings WHERE {where} ORDER BY d LIMIT %s) nearest ORDER BY d, id"
    ).format(dim=sql.Literal(dim), where=where)


def lexical_query(*, excluding: bool) -> str:
    """The full-text query; parameters: the tsquery text, [the excluded ids,] the depth."""
    return (
        "SELECT id, ts_rank(tsv, q, 1) AS s FROM idx_docs, to_tsquery('english', %s) AS q"
        " WHERE tsv @@ q"
        + (" AND id <> ALL(%s::text[])" if excluding else "")
        + " ORDER BY s DESC, num LIMIT %s"
    )


class PgIndexStorage:
    """The idx_ tables of one PostgreSQL store; ranks in the database (see module doc)."""

    searches_in_database = True  # no in-memory snapshot: every search sees every process
    lexical_score_name = "ts_rank"

    def __init__(self, store: Any) -> None:
        self.store = store
        self.db: PgDatabase = store.db
        self.ef_search = EF_SEARCH
        # True: rank by a sequential scan, never the HNSW index (exact; the reference the
        # benchmark measures the index's recall against).
        self.exact_scan = False
        self._lock = threading.Lock()
        self._dumper: type[Dumper] | None = None  # _VectorDumper with this database's oid
        self._indexed: set[str] = set()  # HNSW indexes known to exist

    # -- plumbing -------------------------------------------------------------------------
    def _adapters(self, cur: Any) -> Any:
        """Teach this cursor pgvector's binary format (the type's oid is per database)."""
        if self._dumper is None:
            cur.execute("SELECT 'vector'::regtype::oid")
            oid = int(cur.fetchone()[0])
            with self._lock:
                self._dumper = type("VectorDumper", (_VectorDumper,), {"oid": oid})
        cur.adapters.register_dumper(np.ndarray, self._dumper)
        cur.adapters.register_loader(self._dumper.oid, _VectorLoader)
        return cur

    def _run(self, what: str, op: Any) -> Any:
        """`op(cursor)` in one transaction, retried on serialization failures."""
        return self.db.write(lambda cur: op(self._adapters(cur)), what)

    def _rows(self, query: Any, params: Sequence[Any] = (), *, binary: bool = False) -> list:
        def op(cur: Any) -> list:
            cur.execute(query, params, binary=binary)
            return cur.fetchall()

        return self._run("reading the capability index", op)

    # -- documents ------------------------------------------------------------------------
    def count(self) -> int:
        return int(self._rows("SELECT count(*) FROM idx_docs")[0][0])

    def ids(self) -> list[str]:
        return [r[0] for r in self._rows("SELECT id FROM idx_docs ORDER BY id")]

    def contains(self, doc_id: str) -> bool:
        return bool(self._rows("SELECT 1 FROM idx_docs WHERE id = %s", (doc_id,)))

    def get_many(self, ids: Sequence[str]) -> list[tuple[str, str, str, str]]:
        """(id, name, summary, params as JSON) of the stored documents among `ids`."""
        return self._rows(
            "SELECT id, name, summary, params FROM idx_docs WHERE id = ANY(%s::text[])"
            " ORDER BY num",
            (list(ids),),
        )

    def hashes(self, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """{id: (doc_hash, text_hash)} of the stored documents among `ids`."""
        rows = self._rows(
            "SELECT id, doc_hash, text_hash FROM idx_docs WHERE id = ANY(%s::text[])",
            (list(ids),),
        )
        return {r[0]: (r[1], r[2]) for r in rows}

    def dimension(self, embedder_id: str) -> int | None:
        """The dimension of this embedder's stored vectors (None: it stored none)."""
        rows = self._rows(
            "SELECT dim FROM idx_embeddings WHERE embedder_id = %s LIMIT 1", (embedder_id,)
        )
        return int(rows[0][0]) if rows else None

    def missing(self, embedder_id: str) -> list[str]:
        """Documents without this embedder's vector of their current text."""
        rows = self._rows(
            """SELECT d.id FROM idx_docs d WHERE NOT EXISTS (
                 SELECT 1 FROM idx_embeddings e WHERE e.id = d.id AND e.embedder_id = %s
                   AND e.text_hash = d.text_hash)
               ORDER BY d.num""",
            (embedder_id,),
        )
        return [r[0] for r in rows]

    def vector(self, embedder_id: str, doc_id: str) -> np.ndarray | None:
        rows = self._rows(
            "SELECT embedding FROM idx_embeddings WHERE id = %s AND embedder_id = %s",
            (doc_id, embedder_id),
            binary=True,
        )
        return rows[0][0] if rows else None

    def stored_vectors(self, embedder_id: str, wanted: dict[str, str]) -> dict[str, np.ndarray]:
        """The stored vectors of this embedder for {id: text_hash}, where the hash matches."""
        if not wanted:
            return {}
        rows = self._rows(
            "SELECT id, text_hash, embedding FROM idx_embeddings WHERE embedder_id = %s"
            " AND id = ANY(%s::text[])",
            (embedder_id, list(wanted)),
            binary=True,
        )
        return {i: v for i, h, v in rows if wanted.get(i) == h}

    def write(
        self, docs: Sequence[DocRow], vectors: Sequence[VectorRow], embedder_id: str
    ) -> dict[str, int]:
        """Upsert documents and vectors in one transaction (COPY into temporary tables, then
        one INSERT ... ON CONFLICT each); creates the HNSW index of a (dimension, embedder)
        seen for the first time. Returns each document's num."""
        dims = sorted({int(v.shape[0]) for _, _, v in vectors})
        new = [(d, n) for d in dims if (n := hnsw_index_name(d, embedder_id)) not in self._indexed]

        def op(cur: Any) -> dict[str, int]:
            create: list[tuple[int, str]] = []
            if new:  # first thing in the transaction: we hold no lock others could wait on
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_HNSW_LOCK,))
                cur.execute(
                    "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
                    " AND tablename = 'idx_embeddings'"
                )
                have = {r[0] for r in cur.fetchall()}
                create = [(d, n) for d, n in new if n not in have]
            nums = self._write_docs(cur, docs)
            if vectors:
                self._write_vectors(cur, vectors, embedder_id)
            for dim, name in create:
                self._create_hnsw(cur, dim, name, embedder_id, len(vectors))
            return nums

        nums = self._run("writing the capability index", op)
        self._indexed.update(n for _, n in new)
        return nums

    @staticmethod
    def _write_docs(cur: Any, docs: Sequence[DocRow]) -> dict[str, int]:
        cur.execute(
            """CREATE TEMPORARY TABLE idx_stage_docs (id text, name text, summary text,
                 params text, doc_hash text, text_hash text, lexemes text) ON COMMIT DROP"""
        )
        with cur.copy(
            "COPY idx_stage_docs (id, name, summary, params, doc_hash, text_hash, lexemes)"
            " FROM STDIN"
        ) as copy:
            for doc_id, name, summary, params, doc_hash, text_hash, texts in docs:
                lexemes = " ".join(_WORDS.findall(" ".join(texts)))
                copy.write_row((doc_id, name, summary, params, doc_hash, text_hash, lexemes))
        cur.execute(
            """INSERT INTO idx_docs (id, name, summary, params, doc_hash, text_hash, lexemes)
               SELECT id, name, summary, params, doc_hash, text_hash, lexemes
               FROM idx_stage_docs
               ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name,
                 summary = EXCLUDED.summary, params = EXCLUDED.params,
                 doc_hash = EXCLUDED.doc_hash, text_hash = EXCLUDED.text_hash,
                 lexemes = EXCLUDED.lexemes
               RETURNING id, num"""
        )
        return {r[0]: int(r[1]) for r in cur.fetchall()}

    def _write_vectors(self, cur: Any, vectors: Sequence[VectorRow], embedder_id: str) -> None:
        assert self._dumper is not None
        cur.execute(
            """CREATE TEMPORARY TABLE idx_stage_vectors (id text, text_hash text, dim integer,
                 embedding vector) ON COMMIT DROP"""
        )
        with cur.copy(
            "COPY idx_stage_vectors (id, text_hash, dim, embedding) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["text", "text", "int4", self._dumper.oid])
            for doc_id, text_hash, v in vectors:
                copy.write_row((doc_id, text_hash, int(v.shape[0]), v))
        cur.execute(
            """INSERT INTO idx_embeddings (id, embedder_id, text_hash, dim, embedding)
               SELECT id, %s, text_hash, dim, embedding FROM idx_stage_vectors
               ON CONFLICT (id, embedder_id) DO UPDATE SET text_hash = EXCLUDED.text_hash,
                 dim = EXCLUDED.dim, embedding = EXCLUDED.embedding""",
            (embedder_id,),
        )

    @staticmethod
    def _create_hnsw(cur: Any, dim: int, name: str, embedder_id: str, rows: int) -> None:
        # Building the graph in memory is several times faster than spilling to disk: ask
        # for what the new vectors need (about 1.5 × vector + links per row), up to 1 GB,
        # never less than the server's setting; SET LOCAL ends with the transaction.
        need_kb = min(1 << 20, rows * (4 * dim + 512) * 3 // 2 // 1024)
        cur.execute(
            "SELECT set_config('maintenance_work_mem', GREATEST(pg_size_bytes("
            "current_setting('maintenance_work_mem')) / 1024, %s)::text || 'kB', true)",
            (need_kb,),
        )
        cur.execute(
            sql.SQL(
                "CREATE INDEX IF NOT EXISTS {name} ON idx_embeddings USING hnsw"
                " ((embedding::vector({dim})) vector_cosine_ops)"
                " WHERE dim = {dim} AND embedder_id = {embedder}"
            ).format(
                name=sql.Identifier(name), dim=sql.Literal(dim), embedder=sql.Literal(embedder_id)
            )
        )

    def remove(self, doc_id: str) -> bool:
        """Delete a document and its vectors; False if it was not stored."""

        def op(cur: Any) -> bool:
            cur.execute("DELETE FROM idx_docs WHERE id = %s RETURNING num", (doc_id,))
            found = cur.fetchone() is not None
            cur.execute("DELETE FROM idx_embeddings WHERE id = %s", (doc_id,))
            return found

        return self._run(f"removing {doc_id!r} from the capability index", op)

    # -- ranking --------------------------------------------------------------------------
    def rank(
        self,
        embedder_id: str,
        qv: np.ndarray | None,
        terms: Sequence[str],
        depth: int,
        excluded: Sequence[str],
    ) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        """Both ranked lists, `depth` long, excluded ids skipped before the limit:
        semantic [(id, cosine)] for the query vector (none when `qv` is None), lexical
        [(id, ts_rank)] for an OR of the words (none when there are no words).

        One transaction; its statements go out in one pipeline (one round trip to the
        server instead of one per statement)."""
        sem_sql = lex_sql = None
        sem_params: list[Any] = []
        lex_params: list[Any] = []
        if qv is not None:
            sem_sql = semantic_query(embedder_id, int(qv.shape[0]), excluding=bool(excluded))
            sem_params = [qv, *([list(excluded)] if excluded else []), depth]
        if terms:
            lex_sql = lexical_query(excluding=bool(excluded))
            lex_params = [_tsquery(terms), *([list(excluded)] if excluded else []), depth]
        if sem_sql is None and lex_sql is None:
            return [], []
        ef = min(EF_SEARCH_MAX, max(self.ef_search, depth))

        def op(cur: Any) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
            conn = cur.connection
            with conn.cursor() as sem_cur, conn.cursor() as lex_cur:
                self._adapters(sem_cur)
                with conn.pipeline():
                    # A custom plan at every execution: psycopg prepares statements run
                    # often, and a generic plan made while index scans were off (the exact
                    # scan below) would otherwise be reused for every later search.
                    cur.execute(
                        "SELECT set_config('plan_cache_mode', 'force_custom_plan', true),"
                        " set_config('hnsw.ef_search', %s, true),"
                        " set_config('hnsw.iterative_scan', 'strict_order', true),"
                        # Exact below EXACT_BELOW rows (as the embedded index is): HNSW
                        # is approximate, and a small library scans in well under a ms.
                        " set_config('enable_indexscan', CASE WHEN %s OR (SELECT reltuples"
                        " FROM pg_class WHERE oid = 'idx_embeddings'::regclass) < %s"
                        " THEN 'off' ELSE 'on' END, true)",
                        (str(ef), self.exact_scan, EXACT_BELOW),
                    )
                    if sem_sql is not None:
                        sem_cur.execute(sem_sql, sem_params)
                    if lex_sql is not None:
                        lex_cur.execute(lex_sql, lex_params)
                sem = sem_cur.fetchall() if sem_sql is not None else []
                lex = lex_cur.fetchall() if lex_sql is not None else []
            if sem_sql is not None and len(sem) < depth and not self.exact_scan:
                # Fewer live rows than asked, or the iterative scan gave up: scan exactly.
                cur.execute("SELECT set_config('enable_indexscan', 'off', true)")
                cur.execute(sem_sql, sem_params)
                sem = cur.fetchall()
            return (
                [(r[0], float(r[1])) for r in sem],
                [(r[0], float(r[1])) for r in lex],
            )

        return self._run("searching the capability index", op)

    def lexical(
        self, terms: Sequence[str], depth: int, excluded: Sequence[str]
    ) -> list[tuple[str, float]]:
        """Full-text search for an OR of the words: the `depth` best (id, ts_rank)."""
        return self.rank("", None, terms, depth, excluded)[1]

    def similarities(
        self, embedder_id: str, qv: np.ndarray, ids: Sequence[str]
    ) -> dict[str, float]:
        """Cosine of the query with the stored vectors of `ids` (those beyond the depth)."""
        if not ids:
            return {}
        rows = self._rows(
            sql.SQL(
                "SELECT id, 1 - (embedding::vector({dim}) <=> %s) FROM idx_embeddings"
                " WHERE embedder_id = %s AND dim = {dim} AND id = ANY(%s::text[])"
            ).format(dim=sql.Literal(int(qv.shape[0]))),
            (qv, embedder_id, list(ids)),
        )
        return {r[0]: float(r[1]) for r in rows}

    def lexical_texts(self, ids: Sequence[str]) -> dict[str, list[str]]:
        """The words each document is matched on, to say which words matched."""
        rows = self._rows(
            "SELECT id, lexemes FROM idx_docs WHERE id = ANY(%s::text[])", (list(ids),)
        )
        return {r[0]: [r[1]] for r in rows}
