"""A search candidate's one transaction (`SearchRepository.record_candidate`), on both backends.

The revision's number and the candidate's index are allocated by the INSERT statements
themselves (MAX + 1 under the lineage's and the search's locks), and the compare-and-set
activation reads the active number under the lineage's lock: two store objects writing one
store in turn must still get distinct, consecutive numbers and indexes, and a promotion
judged against a stale active revision must lose.
"""

from __future__ import annotations

import pytest
from store_helpers import MakeRev

from symbiont.errors import RevisionError, StoreError
from symbiont.store import EvolvableStore, open_store
from symbiont.store.searches import CandidateRecord


def started(store: EvolvableStore, make_rev: MakeRev) -> tuple[int, int]:
    """A lineage whose declared body r0 is active, and a search of it: (function id, search id)."""
    fid = store.ensure_function("m.step", "fp", "def step(x: int) -> int:").id
    store.add_revision(make_rev(fid, "def step(x: int) -> int:\n    return x\n", number=0))
    store.set_active(fid, 0)
    return fid, store.searches.start(fid, {"islands": 1})


def test_two_stores_interleaving_candidates_get_consecutive_numbers_and_indexes(
    store_backend: str, make_rev: MakeRev
) -> None:
    with open_store(store_backend) as a, open_store(store_backend) as b:
        fid, sid = started(a, make_rev)
        got = []
        for i in range(12):
            store = (a, b)[i % 2]
            # A rejection now and then: a candidate row without a revision takes an index too.
            revision = (
                None
                if i % 4 == 3
                else make_rev(fid, f"def step(x: int) -> int:\n    return x + {i}\n", parents=(0,))
            )
            kind = "duplicate" if revision is None else "evaluated"
            got.append(
                store.searches.record_candidate(
                    sid, CandidateRecord(0, kind, parent_number=0), revision
                )
            )
        numbers = [number for number, _idx, _active in got if number is not None]
        assert numbers == list(range(1, 10))
        assert [idx for _n, idx, _a in got] == list(range(12))
        stored = b.searches.candidates(sid)
        assert [c.idx for c in stored] == list(range(12))
        assert [c.revision_number for c in stored if c.kind == "evaluated"] == numbers
        assert [r.number for r in b.revisions_of(fid)] == list(range(10))
        assert all(r.parents == (0,) for r in b.revisions_of(fid)[1:])


def test_a_promotion_judged_against_a_stale_active_revision_loses(
    store_backend: str, make_rev: MakeRev
) -> None:
    with open_store(store_backend) as a, open_store(store_backend) as b:
        fid, sid = started(a, make_rev)

        def candidate(store, body: str, expected: int | None):  # type: ignore[no-untyped-def]
            rev = make_rev(fid, f"def step(x: int) -> int:\n    return {body}\n", parents=(0,))
            return store.searches.record_candidate(
                sid, CandidateRecord(0, "evaluated"), rev, promote_over=(expected,)
            )

        assert candidate(a, "x + 1", 0) == (1, 0, True)
        # b judged its candidate against r0 too, but a's r1 is active now: b's must not win.
        assert candidate(b, "x + 2", 0) == (2, 1, False)
        assert b.get_function(fid).active_number == 1
        assert candidate(b, "x + 3", 1) == (3, 2, True)
        assert [(x.number, x.reason) for x in a.activations(fid)] == [
            (0, "activate"),
            (1, "search"),
            (3, "search"),
        ]


def test_what_record_candidate_refuses(store_backend: str, make_rev: MakeRev) -> None:
    with open_store(store_backend) as s:
        fid, sid = started(s, make_rev)
        row = CandidateRecord(0, "evaluated")
        with pytest.raises(StoreError, match="no function with id 999"):
            s.searches.record_candidate(sid, row, make_rev(999, "def step(x): return 1\n"))
        with pytest.raises(StoreError, match=f"no search {sid + 7}"):
            s.searches.record_candidate(sid + 7, row, make_rev(fid, "def step(x): return 2\n"))
        rejected = make_rev(fid, "def step(x): return 3\n", status="rejected", stage="trial")
        with pytest.raises(RevisionError, match="rejected at the trial stage"):
            s.searches.record_candidate(sid, row, rejected, promote_over=(0,))
        # Each refusal rolled its whole transaction back: no revision, no row, r0 still active.
        assert [r.number for r in s.revisions_of(fid)] == [0]
        assert s.searches.candidates(sid) == []
        assert s.get_function(fid).active_number == 0


def test_a_batch_of_candidates_is_one_transaction(store_backend: str, make_rev: MakeRev) -> None:
    """`record_batch`: several candidates in one transaction, each as `record_candidate`
    would write it — numbers, indexes, parents, every promotion in the activation history,
    each compare-and-set judged against the batch's own earlier promotions — or, when one
    of them fails, none of them."""
    with open_store(store_backend) as a, open_store(store_backend) as b:
        fid, sid = started(a, make_rev)

        def rev(k: int, parent: int, status: str = "accepted"):  # type: ignore[no-untyped-def]
            body = f"def step(x: int) -> int:\n    return x + {k}\n"
            return make_rev(fid, body, parents=(parent,), status=status)

        def fill(batch):  # type: ignore[no-untyped-def]
            return [
                batch.record(CandidateRecord(0, "evaluated", parent_number=0), rev(1, 0),
                             promote_over=(0,)),
                batch.record(CandidateRecord(0, "duplicate", 1), None),
                batch.record(CandidateRecord(0, "evaluated", parent_number=1), rev(2, 1),
                             promote_over=(1,)),
                # judged against r1, but r2 is active now (promoted just above): it loses
                batch.record(CandidateRecord(0, "evaluated", parent_number=1), rev(3, 1),
                             promote_over=(1,)),
                batch.record(CandidateRecord(0, "trial", parent_number=2),
                             rev(4, 2, "rejected")),
            ]  # fmt: skip

        got = a.searches.record_batch(sid, fill)
        assert got == [(1, 0, True), (1, 1, False), (2, 2, True), (3, 3, False), (4, 4, False)]
        assert [(r.number, r.parents) for r in b.revisions_of(fid)] == [
            (0, ()), (1, (0,)), (2, (1,)), (3, (1,)), (4, (2,)),
        ]  # fmt: skip
        assert [c.idx for c in b.searches.candidates(sid)] == [0, 1, 2, 3, 4]
        assert b.get_function(fid).active_number == 2
        assert [(x.number, x.reason) for x in b.activations(fid)] == [
            (0, "activate"), (1, "search"), (2, "search"),
        ]  # fmt: skip

        def failing(batch):  # type: ignore[no-untyped-def]
            batch.record(CandidateRecord(0, "evaluated", parent_number=2), rev(5, 2),
                         promote_over=(2,))  # fmt: skip
            batch.record(CandidateRecord(0, "evaluated"), make_rev(999, "def step(x): return 6\n"))

        with pytest.raises(StoreError, match="no function with id 999"):
            a.searches.record_batch(sid, failing)
        assert [r.number for r in b.revisions_of(fid)] == [0, 1, 2, 3, 4]
        assert len(b.searches.candidates(sid)) == 5
        assert b.get_function(fid).active_number == 2
        assert len(b.activations(fid)) == 3
