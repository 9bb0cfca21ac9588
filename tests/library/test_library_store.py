"""The capability repository (`store.capabilities`) on both backends, and the library's
decisions under concurrency: several processes failing one capability at once deprecate it
exactly once and lose no run; several storing versions at once get distinct numbers.

Real stores: a SQLite file and a fresh database on a real PostgreSQL 18 (`store_backend`);
real processes (subprocess), the real library and the in-process sandbox tier.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from symbiont.library import Capability
from symbiont.store import open_store
from symbiont.store.capabilities import CapabilityRun

SOURCE = 'def echo(text: str) -> str:\n    """Echo."""\n    return text\n'
SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string"}},
    "required": ["text"],
    "additionalProperties": False,
}


def capability(cap_id: str = "echo", **changes: object) -> Capability:
    cap = Capability.from_source(
        SOURCE,
        id=cap_id,
        entry="echo",
        summary="Echo a text back unchanged, as it was given.",
        examples=[{"input": {"text": "a"}, "expect": "a"}],
    ).with_(input_schema=SCHEMA, output_schema={"type": "string"}, created_at=1.0, updated_at=1.0)
    return cap.with_(**changes) if changes else cap


def failure(cap_id: str = "echo", *, counted: bool = True, error: str = "boom") -> CapabilityRun:
    return CapabilityRun(cap_id, 1, time.time(), 0.01, ok=False, counted=counted, error=error)


def success(cap_id: str = "echo", seconds: float = 0.01) -> CapabilityRun:
    return CapabilityRun(cap_id, 1, time.time(), seconds, ok=True)


def reason(streak: int, error: str) -> str:
    return f"failed {streak} times in a row; last error: {error}"


@pytest.fixture
def repo(store_backend: str) -> Iterator[object]:
    store = open_store(store_backend)
    yield store.capabilities
    store.close()


def test_a_capability_reads_back_as_stored_and_an_id_is_taken_once(repo: object) -> None:
    cap = capability(parents=("older",), permissions={"read_files": True, "data": "hr"})
    assert repo.add(cap) is True
    got = repo.get("echo")
    assert got is not None
    assert (got.source, got.summary, got.entry, got.parents) == (
        cap.source,
        cap.summary,
        "echo",
        ("older",),
    )
    assert got.input_schema == SCHEMA and got.permissions == cap.permissions
    assert got.examples == cap.examples and got.version == 1 and got.status == "active"
    assert (got.stats.runs, got.stats.failures, got.stats.p50_latency_s) == (0, 0, None)
    # the same id again: refused without an error, nothing overwritten
    assert repo.add(capability(summary="Another summary of a different echo function.")) is False
    assert repo.get("echo").summary == cap.summary
    assert repo.get("nope") is None and not repo.contains("nope") and repo.contains("echo")
    assert [v.version for v in repo.versions("echo")] == [1] and repo.versions("nope") == []


def test_versions_are_numbered_by_the_store_and_keep_their_sources(repo: object) -> None:
    repo.add(capability())
    repo.record_run(failure(), deprecate_after=5, reason=reason)
    v2 = capability(source=SOURCE.replace("return text", "return text + ''"))
    assert repo.add_version(v2.with_(version=99)) == 2  # the given number is not trusted
    assert repo.add_version(capability(summary="Echo the given text back, a third way.")) == 3
    assert repo.add_version(capability("missing")) is None
    got = repo.get("echo")
    assert got.version == 3 and got.summary == "Echo the given text back, a third way."
    assert got.stats.consecutive_failures == 0 and got.stats.failures == 1  # streak restarted
    versions = repo.versions("echo")
    assert [v.version for v in versions] == [1, 2, 3]
    assert "text + ''" in versions[1].source and "text + ''" not in versions[0].source


def test_supersede_makes_the_old_one_legacy_in_the_same_write(repo: object) -> None:
    repo.add(capability("old"))
    repo.add(capability("taken"))
    assert repo.supersede("old", capability("taken"), "replaced by taken") is False
    assert repo.get("old").status == "active"  # nothing written
    assert repo.supersede("old", capability("new", parents=("old",)), "replaced by new")
    old, new = repo.get("old"), repo.get("new")
    assert (old.status, old.replaced_by, old.status_reason) == ("legacy", "new", "replaced by new")
    assert (new.status, new.parents) == ("active", ("old",))


def test_outcomes_and_the_deprecation_decision(repo: object) -> None:
    repo.add(capability())
    repo.add(capability("legacy_one", status="legacy"))
    assert repo.record_run(success(seconds=0.5), deprecate_after=2, reason=reason) is False
    assert repo.record_run(failure(counted=False), deprecate_after=2, reason=reason) is False
    assert repo.record_run(failure(error="first"), deprecate_after=2, reason=reason) is False
    stats = repo.get("echo").stats
    assert (stats.runs, stats.failures, stats.consecutive_failures) == (3, 1, 1)
    assert stats.last_error == "first" and stats.p50_latency_s == pytest.approx(0.01)
    assert repo.record_run(failure(error="second"), deprecate_after=2, reason=reason) is True
    got = repo.get("echo")
    assert got.status == "deprecated"
    assert got.status_reason == "failed 2 times in a row; last error: second"
    # already deprecated: a further failure counts but decides nothing
    assert repo.record_run(failure(), deprecate_after=2, reason=reason) is False
    assert repo.get("echo").stats.consecutive_failures == 3
    # only an active capability is deprecated automatically
    for _ in range(3):
        assert repo.record_run(failure("legacy_one"), deprecate_after=2, reason=reason) is False
    assert repo.get("legacy_one").status == "legacy"
    assert repo.restore("echo") is True and repo.restore("nope") is False
    restored = repo.get("echo")
    assert (restored.status, restored.status_reason, restored.stats.consecutive_failures) == (
        "active",
        None,
        0,
    )


def test_status_changes_and_listings(repo: object) -> None:
    ids = ["b", "a-b", "a_b", "a.b", "ab", "a0"]
    for cap_id in ids:
        repo.add(capability(cap_id))
    # sorted as Python sorts, whatever the database's collation
    assert [c.id for c in repo.list()] == sorted(ids) == repo.ids()
    assert repo.deprecate("a_b", "by hand") is True and repo.deprecate("zz", "x") is False
    assert repo.set_status("ab", "legacy", "old", "b") is True
    assert repo.ids(["deprecated", "legacy"]) == ["a_b", "ab"] and repo.ids([]) == []
    assert [c.id for c in repo.list("deprecated")] == ["a_b"]
    legacy = repo.list("legacy")[0]
    assert (legacy.status_reason, legacy.replaced_by) == ("old", "b")
    assert all(c.examples for c in repo.list())  # examples come with every listed capability
    repo.record_run(success("b", 0.2), deprecate_after=2, reason=reason)
    repo.record_run(success("b", 0.4), deprecate_after=2, reason=reason)
    listed = {c.id: c for c in repo.list()}
    assert listed["b"].stats.p50_latency_s == pytest.approx(0.3) and listed["b"].stats.runs == 2
    assert listed["a0"].stats.p50_latency_s is None


def test_the_content_version_changes_with_content_only(repo: object) -> None:
    empty = repo.content_version()
    repo.add(capability())
    added = repo.content_version()
    assert added != empty
    repo.record_run(failure(), deprecate_after=1, reason=reason)  # deprecates it
    repo.restore("echo")
    assert repo.content_version() == added  # runs and status changes are not content
    repo.add_version(capability(summary="Echo a text back, now as version two."))
    assert repo.content_version() != added


# -- several processes at once ---------------------------------------------------------------

PROCESSES = 4
RUNS_EACH = 25
THRESHOLD = 10

FAIL_MANY = """
import json, os, sys, time
from symbiont.embed import HashingEmbedder
from symbiont.library import Library
store, data, go, runs, threshold = sys.argv[1:6]
with Library(store, tier="inprocess", data_root=data, typecheck=False,
             embedder=HashingEmbedder(), deprecate_after=int(threshold)) as lib:
    lib.get("crash")  # connected and migrated before the start signal
    open(go + f".ready-{os.getpid()}", "w").close()
    while not os.path.exists(go):
        time.sleep(0.005)
    outcomes = [lib.run("crash", {"text": "x"}, force=True) for _ in range(int(runs))]
print(json.dumps([[r.counted, r.deprecated_now] for r in outcomes]))
"""

CRASH = 'def crash(text: str) -> str:\n    """Fail."""\n    raise ValueError("it broke: " + text)\n'


def _start_together(script: str, args: list[str], go: Path) -> list[str]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    # every process connects, says it is ready, then waits for the signal: they all start
    # their writes at the same moment
    deadline = time.monotonic() + 120
    while len(list(go.parent.glob(go.name + ".ready-*"))) < PROCESSES:
        assert time.monotonic() < deadline, "the writers did not all start"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.02)
    go.touch()
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        outputs.append(out.strip().splitlines()[-1])
    return outputs


def test_concurrent_failures_deprecate_exactly_once_and_lose_no_run(
    store_backend: str, tmp_path: Path
) -> None:
    from symbiont.library import Library

    with Library(store_backend, tier="inprocess", data_root=tmp_path, typecheck=False) as lib:
        # stored without its examples running: they would fail, that is the point
        crash = capability("crash", source=CRASH, entry="crash", created_at=2.0, updated_at=2.0)
        assert lib.store.capabilities.add(crash)
    go = tmp_path / "go"
    args = [store_backend, str(tmp_path), str(go), str(RUNS_EACH), str(THRESHOLD)]
    outputs = _start_together(FAIL_MANY, args, go)
    outcomes = [tuple(o) for out in outputs for o in json.loads(out)]
    assert len(outcomes) == PROCESSES * RUNS_EACH
    assert all(counted for counted, _ in outcomes)
    assert sum(deprecated for _, deprecated in outcomes) == 1  # decided exactly once
    with Library(store_backend, tier="inprocess", data_root=tmp_path, typecheck=False) as lib:
        cap = lib.get("crash")
        total = PROCESSES * RUNS_EACH
        assert (cap.stats.runs, cap.stats.failures, cap.stats.consecutive_failures) == (
            total,
            total,
            total,
        )
        assert cap.status == "deprecated"
        # the run that made the streak THRESHOLD decided it: no other could overtake it
        assert (cap.status_reason or "").startswith(f"failed {THRESHOLD} times in a row")


NEW_VERSIONS = """
import json, os, sys, time
from symbiont.library import Capability
from symbiont.store import open_store
store_url, go, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = open_store(store_url)
repo = store.capabilities
base = repo.get("echo")
open(go + f".ready-{os.getpid()}", "w").close()
while not os.path.exists(go):
    time.sleep(0.005)
numbers = [repo.add_version(base.with_(summary=f"Echo the text back, edit {os.getpid()}-{i}."))
           for i in range(count)]
store.close()
print(json.dumps(numbers))
"""


def test_concurrent_new_versions_get_distinct_numbers(store_backend: str, tmp_path: Path) -> None:
    store = open_store(store_backend)
    try:
        assert store.capabilities.add(capability())
    finally:
        store.close()
    go = tmp_path / "go"
    each = 5
    outputs = _start_together(NEW_VERSIONS, [store_backend, str(go), str(each)], go)
    numbers = sorted(n for out in outputs for n in json.loads(out))
    assert numbers == list(range(2, 2 + PROCESSES * each))  # no number twice, none skipped
    store = open_store(store_backend)
    try:
        versions = store.capabilities.versions("echo")
        assert [v.version for v in versions] == list(range(1, 2 + PROCESSES * each))
        assert len({v.summary for v in versions}) == len(versions)  # each write kept its own
        assert store.capabilities.get("echo").version == 1 + PROCESSES * each
    finally:
        store.close()
