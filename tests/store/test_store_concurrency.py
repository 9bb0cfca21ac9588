"""Four processes evolving one function in one store at the same moment lose nothing.

Each process records the declared body (all four at once: it must be stored once), then
adds N candidates with `number=-1` and promotes each accepted one by compare-and-set over
the active revision it last saw, records a live failure now and then, and reports what the
store gave it. On PostgreSQL the writers really run concurrently (the lineage's row lock
decides); on SQLite they take turns on the file's write lock. Either way: numbers 0..4N
with no gap and no duplicate, each revision exactly as its writer wrote it, an activation
history that holds exactly the promotions that were reported won, and a failure ring that
never overflows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from store_helpers import start_together

from symbiont.store import FailureRecord, open_store

N = 40
PROCESSES = 4
KEEP = 5

WORKER = textwrap.dedent(
    """
    import json, os, sys
    from symbiont.store import FailureRecord, RevisionRecord, open_store

    where, name, n, keep = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    store = open_store(where)
    fn = store.ensure_function("m.step", "fp", "def step(x: int) -> int:")
    print("ready", flush=True)
    sys.stdin.readline()  # all four start together
    body = "def step(x: int) -> int:\\n    return x\\n"
    r0, created = store.record_declared_body(RevisionRecord(
        fn.id, -1, body, "", (), "default", None, "accepted", "promote", [], None, {}, "h-default"))
    # Only while nothing is active yet (another process may have promoted already).
    declared = created and store.set_active_if(fn.id, None, r0.number, reason="declared")
    numbers, won = [], []
    seen = store.get_function(fn.id).active_number
    for i in range(n):
        accepted = i % 3 != 2
        src = f"def step(x: int) -> int:\\n    return x + {i}  # {name}\\n"
        rec = store.add_revision(RevisionRecord(
            fn.id, -1, src, "reply " + name, (seen if seen is not None else 0,), "model", name,
            "accepted" if accepted else "rejected", "promote" if accepted else "trial",
            [], float(i), {"i": float(i)}, f"{name}-{i}"))
        numbers.append(rec.number)
        if accepted:
            if store.set_active_if(fn.id, seen, rec.number, reason=name):
                won.append(rec.number)
            seen = store.get_function(fn.id).active_number
        if i % 4 == 0:
            store.add_failure(FailureRecord(fn.id, rec.number, float(i), "exception",
                                            f"ValueError: {name} {i}", "", "", pid=os.getpid()),
                              keep=keep)
    print(json.dumps({"created": created, "declared": declared, "r0": r0.number,
                      "numbers": numbers, "won": won}))
    store.close()
    """
)


def test_four_processes_evolving_one_function_lose_nothing(store_backend: str) -> None:
    with open_store(store_backend) as s:  # the schema exists before the race
        s.ensure_function("m.step", "fp", "def step(x: int) -> int:")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYMBIONT_")}
    names = [f"p{i}" for i in range(PROCESSES)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, store_backend, name, str(N), str(KEEP)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env,
        )
        for name in names
    ]  # fmt: skip
    start_together(procs)
    reports = {}
    for name, p in zip(names, procs, strict=True):
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        reports[name] = json.loads(out.strip().splitlines()[-1])

    # The declared body: recorded once, as r0, by exactly one of the four.
    assert sum(r["created"] for r in reports.values()) == 1
    assert {r["r0"] for r in reports.values()} == {0}
    # Numbers: every process got N distinct ones; together exactly 1..4N.
    given = [n for r in reports.values() for n in r["numbers"]]
    assert all(len(r["numbers"]) == N for r in reports.values())
    assert sorted(given) == list(range(1, PROCESSES * N + 1))

    with open_store(store_backend) as s:
        (fn,) = s.lineages("m.step")
        revisions = s.revisions_of(fn.id)
        assert [r.number for r in revisions] == list(range(PROCESSES * N + 1))
        by_number = {r.number: r for r in revisions}
        for name, report in reports.items():
            for i, number in enumerate(report["numbers"]):
                rev = by_number[number]  # exactly what that process wrote, under its number
                assert rev.content_hash == f"{name}-{i}" and rev.model == name
                assert rev.source.endswith(f"return x + {i}  # {name}\n")
                assert rev.reply == "reply " + name and rev.score == float(i)
                assert rev.status == ("rejected" if i % 3 == 2 else "accepted")
                assert len(rev.parents) == 1 and rev.parents[0] < number
        # Activations: exactly the promotions reported as won (and the declared body's, if
        # its compare-and-set came first), each once.
        history = s.activations(fn.id)
        won = {(n, name) for name, r in reports.items() for n in r["won"]}
        won |= {(0, "declared") for r in reports.values() if r["declared"]}
        assert {(a.number, a.reason) for a in history} == won
        assert len(history) == len(won) and len(won) >= 2
        assert all(by_number[a.number].status == "accepted" for a in history)
        assert fn.active_number == history[-1].number
        active = s.active_revision("m.step", "fp")
        assert active is not None and active.number == fn.active_number
        # The failure ring: the newest KEEP of the 4 * ceil(N / 4) recorded.
        failures = s.failures(fn.id)
        assert len(failures) == KEEP
        assert [f.id for f in failures] == sorted(f.id for f in failures)
        s.add_failure(
            FailureRecord(fn.id, 0, 0.0, "exception", "ValueError: last", "", ""), keep=KEEP
        )
        assert len(s.failures(fn.id)) == KEEP  # still a ring
