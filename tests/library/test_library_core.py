"""Library: verified before stored, input validation, outcomes, deprecation, legacy, folders.

Each test that touches the store runs on both backends (`store_backend`: a SQLite file, a
real PostgreSQL); the real pipeline and a real sandbox tier (inprocess here, for speed; the
HR CLI test uses the process tier), and a real subprocess for "survives a restart".
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from library_backends import is_postgres, needs_search, searchable

from symbiont.embed import HashingEmbedder
from symbiont.library import (
    Capability,
    CapabilityDeprecated,
    CapabilityNotFound,
    CapabilityRefused,
    InvalidInput,
    Library,
)
from symbiont.library.folders import read_capability_dir

HR = Path(__file__).resolve().parents[2] / "examples" / "hr"

LOOKUP = '''
def lookup(key: str, limit: int = 3) -> dict:
    """Look a key up."""
    if key == "bad":
        return {"error": f"no entry for {key}"}
    if key == "boom":
        raise KeyError(key)
    return {"key": key, "length": min(len(key), limit)}
'''
LOOKUP_SUMMARY = (
    "Look up a dictionary key and report its length, capped at a limit. Input: key, "
    "limit. Output: the key and its capped length."
)
LOOKUP_EXAMPLES = [
    {"input": {"key": "abcd"}, "expect": {"key": "abcd", "length": 3}},
    {"input": {"key": "bad"}, "check": {"error": "no entry"}},
]


def lookup_capability(**changes: object) -> Capability:
    cap = Capability.from_source(LOOKUP, summary=LOOKUP_SUMMARY, examples=LOOKUP_EXAMPLES)
    return cap.with_(**changes) if changes else cap


def open_library(store: object, data: Path, **options: object) -> Library:
    """A library on `store` (a path, a URL or an open store) with its data under `data`."""
    opts: dict[str, object] = {
        "tier": "inprocess",
        "data_root": data / "data",
        "typecheck": False,
        "embedder": HashingEmbedder(),
    }
    opts.update(options)
    return Library(store, **opts)  # type: ignore[arg-type]


@pytest.fixture
def lib(store_backend: str, tmp_path: Path) -> Iterator[Library]:
    with open_library(store_backend, tmp_path) as library:
        yield library


@pytest.fixture
def sqlite_lib(tmp_path: Path) -> Iterator[Library]:
    """For checks made before anything is stored (the build stages): one backend is enough."""
    with open_library(tmp_path / "store.db", tmp_path) as library:
        yield library


# -- verified before stored ---------------------------------------------------------------
def test_add_stores_a_passing_capability_with_derived_schemas(lib: Library) -> None:
    stored = lib.add(lookup_capability())
    assert stored.id == "lookup" and stored.version == 1 and stored.status == "active"
    assert stored.input_schema["required"] == ["key"]
    assert stored.input_schema["properties"]["limit"] == {"type": "integer", "default": 3}
    assert lib.get("lookup").examples == stored.examples
    assert [c.id for c in lib.list()] == ["lookup"]


def test_add_refuses_a_capability_whose_example_fails_showing_it(lib: Library) -> None:
    cap = lookup_capability(
        examples=(
            *lookup_capability().examples,
            *Capability.from_source(
                LOOKUP,
                examples=[
                    {"input": {"key": "xy", "limit": 5}, "expect": {"key": "xy", "length": 5}}
                ],
            ).examples,
        )
    )
    with pytest.raises(CapabilityRefused) as info:
        lib.add(cap)
    message = str(info.value)
    assert "1 of 3 example(s) failed" in message
    assert 'input:    {"key": "xy", "limit": 5}' in message
    assert 'expected: {"key": "xy", "length": 5}' in message
    assert 'got:      {"key": "xy", "length": 2}' in message
    assert len(info.value.failures) == 1 and info.value.failures[0].index == 2
    assert "lookup" not in lib


def test_add_refuses_an_exception_in_an_example(lib: Library) -> None:
    cap = lookup_capability(examples=lookup_capability().examples[:1]).with_(
        examples=Capability.from_source(
            LOOKUP, examples=[{"input": {"key": "boom"}, "expect": {}}]
        ).examples
    )
    with pytest.raises(CapabilityRefused, match="KeyError"):
        lib.add(cap)


def test_add_refuses_a_capability_failing_the_policy_stage(lib: Library) -> None:
    cap = lookup_capability(source="import subprocess\n" + LOOKUP)
    with pytest.raises(CapabilityRefused) as info:
        lib.add(cap)
    assert info.value.diagnostics[0].stage == "policy"
    assert "subprocess" in str(info.value)
    assert "lookup" not in lib


def test_add_refuses_a_capability_failing_the_type_check(tmp_path: Path) -> None:
    bad = LOOKUP.replace("min(len(key), limit)", "key + limit")
    with open_library(tmp_path / "store.db", tmp_path, typecheck=True) as lib:
        with pytest.raises(CapabilityRefused) as info:
            lib.add(lookup_capability(source=bad))
        assert info.value.diagnostics[0].stage == "typecheck"
        assert "key + limit" in str(info.value)  # the caret excerpt of the offending line
        assert "lookup" not in lib


def test_add_refuses_syntax_errors_missing_examples_and_empty_summaries(lib: Library) -> None:
    with pytest.raises(CapabilityRefused, match="parse stage"):
        lib.add(lookup_capability(source=LOOKUP.replace("dict:", "dict")))
    with pytest.raises(CapabilityRefused, match="no examples"):
        lib.add(lookup_capability(examples=()))
    with pytest.raises(Exception, match="says nothing"):
        lib.add(lookup_capability(summary="Implemented successfully"))
    assert lib.list() == []


# -- running ------------------------------------------------------------------------------
def test_run_validates_input_naming_the_field_and_records_nothing(lib: Library) -> None:
    lib.add(lookup_capability())
    with pytest.raises(InvalidInput, match="missing the required field 'key'"):
        lib.run("lookup", {})
    with pytest.raises(InvalidInput, match="input field 'limit': expected integer, got string"):
        lib.run("lookup", {"key": "a", "limit": "3"})
    with pytest.raises(InvalidInput, match="unknown field 'colour'"):
        lib.run("lookup", {"key": "a", "colour": "red"})
    with pytest.raises(InvalidInput, match="line 1, column 9"):
        lib.run("lookup", '{"key": }')
    assert lib.get("lookup").stats.runs == 0


def test_run_records_outcomes_and_only_the_capabilitys_own_failures_count(lib: Library) -> None:
    lib.add(lookup_capability())
    ok = lib.run("lookup", '{"key": "abcdef", "limit": 10}')
    assert ok.ok and ok.output == {"key": "abcdef", "length": 6}
    # an error value its example declares ("no entry"): a failed call, not a fault
    bad = lib.run("lookup", {"key": "bad"})
    assert (
        not bad.ok and bad.error_kind == "error_value" and "no entry for bad" in (bad.error or "")
    )
    assert bad.blame == "declared" and not bad.counted
    stats = lib.get("lookup").stats
    assert (stats.runs, stats.failures, stats.consecutive_failures) == (2, 0, 0)
    # an exception in its code counts
    boom = lib.run("lookup", {"key": "boom"})
    assert not boom.ok and boom.error_kind == "exception" and boom.counted
    stats = lib.get("lookup").stats
    assert (stats.runs, stats.failures, stats.consecutive_failures) == (3, 1, 1)
    assert "boom" in (stats.last_error or "")
    assert stats.p50_latency_s is not None
    assert lib.run("lookup", {"key": "x"}).ok
    assert lib.get("lookup").stats.consecutive_failures == 0  # a success ends the streak
    assert lib.get("lookup").status == "active"


def test_unknown_capability_suggests_close_ids(lib: Library) -> None:
    lib.add(lookup_capability())
    with pytest.raises(CapabilityNotFound, match="did you mean lookup"):
        lib.run("lokup", {})


# -- deprecation, across processes ----------------------------------------------------------
FAIL_TWICE = """
import json, sys
from symbiont.embed import HashingEmbedder
from symbiont.library import Library
with Library(sys.argv[1], tier="inprocess", data_root=sys.argv[2], typecheck=False,
             embedder=HashingEmbedder()) as lib:
    first = lib.run("lookup", {"key": "boom"})
    second = lib.run("lookup", {"key": "boom"})
    print(json.dumps([first.ok, first.deprecated_now, second.ok, second.deprecated_now,
                      second.error_kind]))
"""


def test_deprecation_after_two_failures_survives_a_new_process(
    store_backend: str, tmp_path: Path
) -> None:
    search = searchable(store_backend)
    with open_library(store_backend, tmp_path) as lib:
        lib.add(lookup_capability())
        if search:
            hits = lib.search("look up a key and its length")
            assert [r.capability.id for r in hits] == ["lookup"]
    proc = subprocess.run(
        [sys.executable, "-c", FAIL_TWICE, store_backend, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [
        False,
        False,
        False,
        True,
        "exception",
    ]
    with open_library(store_backend, tmp_path) as lib:  # a fresh Library on the same store
        cap = lib.get("lookup")
        assert cap.status == "deprecated"
        assert "failed 2 times in a row" in (cap.status_reason or "")
        assert (cap.stats.runs, cap.stats.failures, cap.stats.consecutive_failures) == (2, 2, 2)
        if search:
            assert lib.search("look up a key and its length") == []
        assert [c.id for c in lib.list(status="deprecated")] == ["lookup"]
        with pytest.raises(CapabilityDeprecated, match="refuses to run unless forced"):
            lib.run("lookup", {"key": "abc"})
        forced = lib.run("lookup", {"key": "abc"}, force=True)
        assert forced.ok and forced.forced
        assert lib.get("lookup").status == "deprecated"  # forcing does not revive it
        restored = lib.restore("lookup")
        assert restored.status == "active" and restored.status_reason is None
        assert restored.stats.consecutive_failures == 0 and restored.stats.runs == 3
        if search:
            hits = lib.search("look up a key and its length")
            assert [r.capability.id for r in hits] == ["lookup"]


def test_deprecate_by_hand_hides_from_search_before_top_k(store_backend: str, lib: Library) -> None:
    needs_search(store_backend)
    lib.add(lookup_capability())
    other = Capability.from_source(
        LOOKUP.replace("def lookup", "def lookup2"),
        summary=LOOKUP_SUMMARY.replace("Look up", "Find"),
        examples=LOOKUP_EXAMPLES,
    )
    lib.add(other)
    assert {r.capability.id for r in lib.search("look up a key", k=2)} == {"lookup", "lookup2"}
    lib.deprecate("lookup", "superseded in tests")
    hits = lib.search("look up a key", k=1)
    assert [h.capability.id for h in hits] == ["lookup2"]  # k=1 still yields a usable one
    assert lib.get("lookup").status_reason == "superseded in tests"


# -- legacy and versions ------------------------------------------------------------------
def test_replace_by_another_id_marks_the_old_one_legacy(store_backend: str, lib: Library) -> None:
    lib.add(lookup_capability())
    newer = Capability.from_source(
        LOOKUP.replace("def lookup", "def lookup_v2").replace("limit: int = 3", "limit: int = 4"),
        summary=LOOKUP_SUMMARY,
        examples=[{"input": {"key": "abcdef"}, "expect": {"key": "abcdef", "length": 4}}],
    )
    stored = lib.replace("lookup", newer)
    assert stored.parents == ("lookup",)
    old = lib.get("lookup")
    assert (old.status, old.replaced_by) == ("legacy", "lookup_v2")
    assert old.status_reason == "replaced by lookup_v2"
    assert [c.id for c in lib.list(status="active")] == ["lookup_v2"]
    if searchable(store_backend):
        assert [r.capability.id for r in lib.search("look up a key")] == ["lookup_v2"]
        assert {r.capability.id for r in lib.search("look up a key", include_legacy=True)} == {
            "lookup",
            "lookup_v2",
        }
    assert lib.run("lookup", {"key": "abcd"}).ok  # legacy still runs
    with pytest.raises(Exception, match="'lookup_v2' already exists"):
        lib.replace("lookup", newer)


def test_replace_under_the_same_id_is_a_new_version(lib: Library) -> None:
    lib.add(lookup_capability())
    v2 = lookup_capability(
        source=LOOKUP.replace("limit: int = 3", "limit: int = 2"),
        examples=[{"input": {"key": "abcd"}, "expect": {"key": "abcd", "length": 2}}],
    )
    with pytest.raises(Exception, match=r"Library\.replace\('lookup', new\)"):
        lib.add(v2)
    lib.run("lookup", {"key": "boom"})  # a failure streak of 1, which a new version restarts
    stored = lib.replace("lookup", v2)
    assert stored.version == 2 and stored.stats.consecutive_failures == 0
    assert stored.examples == v2.examples
    versions = lib.versions("lookup")
    assert [v["version"] for v in versions] == [1, 2]
    assert "limit: int = 2" in versions[1]["source"] and "limit: int = 3" in versions[0]["source"]
    assert lib.run("lookup", {"key": "abcd"}).output == {"key": "abcd", "length": 2}
    assert lib.add(v2).version == 2  # adding identical content again is a no-op


# -- folders ------------------------------------------------------------------------------
def test_import_export_round_trip_with_seed_data(store_backend: str, tmp_path: Path) -> None:
    seed = (HR / "data" / "hr" / "employee_database.json").read_bytes()
    with open_library(store_backend, tmp_path / "a") as lib:
        report = lib.import_dir(HR)
        assert report.failed == []
        assert len(report.added) == 12 and report.seeded == ["hr/employee_database.json"]
        data = lib.data_dir("update_employee_salary") / "employee_database.json"
        # the update capabilities' examples ran against a scratch copy, not the real data
        assert data.read_bytes() == seed
        data.write_text(data.read_text().replace('"Greta"', '"Gretchen"'))
        again = lib.import_dir(HR)
        assert sorted(again.unchanged) == sorted(report.added) and again.seeded == []
        assert "Gretchen" in data.read_text()  # existing data is never overwritten
        written = lib.export_dir(tmp_path / "out")
        assert len(written) == 12
    for folder in written:
        original = read_capability_dir(HR / folder.name)
        exported = read_capability_dir(folder)
        assert (folder / "capability.py").read_text() == (
            HR / folder.name / "capability.py"
        ).read_text()
        assert exported.examples == original.examples
        assert exported.summary.split() == original.summary.split()
        assert exported.permissions == original.permissions
    with open_library(tmp_path / "b" / "store.db", tmp_path / "b") as fresh:
        (tmp_path / "out" / "data").mkdir()
        (tmp_path / "out" / "data" / "hr").mkdir()
        (tmp_path / "out" / "data" / "hr" / "employee_database.json").write_bytes(seed)
        report = fresh.import_dir(tmp_path / "out")
        assert report.failed == [] and len(report.added) == 12
        assert (
            fresh.run("get_leave_balance", {"employee_id": "E007"}).output["remaining_days"] == 14
        )


def test_import_reports_a_refused_folder_and_keeps_the_rest(
    store_backend: str, tmp_path: Path
) -> None:
    root = tmp_path / "caps"
    good = root / "lookup"
    good.mkdir(parents=True)
    (good / "capability.py").write_text(LOOKUP)
    (good / "capability.toml").write_text(
        textwrap.dedent(
            f"""\
            id = "lookup"
            summary = "{LOOKUP_SUMMARY}"
            [[examples]]
            input = {{ key = "ab" }}
            expect = {{ key = "ab", length = 2 }}
            """
        )
    )
    bad = root / "broken"
    bad.mkdir()
    (bad / "capability.py").write_text(LOOKUP.replace("def lookup", "def broken"))
    (bad / "capability.toml").write_text(
        f'id = "broken"\nsummary = "{LOOKUP_SUMMARY}"\n[[examples]]\ninput = {{ key = "ab" }}\nexpect = 99\n'
    )
    with open_library(store_backend, tmp_path) as lib:
        report = lib.import_dir(root)
        assert report.added == ["lookup"]
        assert report.failed[0][0].endswith("broken")
        assert "expected: 99" in report.failed[0][1]


def test_output_of_the_wrong_type_is_a_failure(sqlite_lib: Library) -> None:
    lib = sqlite_lib
    src = 'def shout(text: str) -> int:\n    """Upper-case."""\n    return text.upper()  # type: ignore\n'
    cap = Capability.from_source(
        src,
        summary="Shout a text back in upper case letters. Input: text. Output: the shouted text.",
        examples=[{"input": {"text": "hi"}, "expect": "HI"}],
    )
    with pytest.raises(CapabilityRefused, match="does not fit the declared return type"):
        lib.add(cap)


def test_library_on_an_open_store_and_a_capability_added_by_another_process(
    store_backend: str, tmp_path: Path
) -> None:
    from symbiont.store import open_store

    search = searchable(store_backend)
    store = open_store(store_backend)
    lib = Library(
        store=store,
        tier="inprocess",
        data_root=tmp_path / "data",
        typecheck=False,
        embedder=HashingEmbedder(),
    )
    lib.add(lookup_capability())
    if search:
        assert [r.capability.id for r in lib.search("look up a key")] == ["lookup"]
    script = (
        "import sys\n"
        "from symbiont.embed import HashingEmbedder\n"
        "from symbiont.library import Capability, Library\n"
        "src = 'def shout(text: str) -> str:\\n    return text.upper()\\n'\n"
        "with Library(sys.argv[1], tier='inprocess', typecheck=False, embedder=HashingEmbedder(),"
        " data_root=sys.argv[2]) as lib:\n"
        "    lib.add(Capability.from_source(src, summary='Shout a text back in upper case letters,"
        " loudly. Input: text. Output: the shouted text.',"
        " examples=[{'input': {'text': 'hi'}, 'expect': 'HI'}]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, store_backend, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "shout" in lib and lib.get("shout").version == 1
    if search:
        # the long-lived library notices the new content and searches it without a restart
        assert lib.search("shout this text in upper case", k=1)[0].capability.id == "shout"
    lib.close()
    # the store stays open and usable
    assert [c.id for c in store.capabilities.list()] == ["lookup", "shout"]
    if not is_postgres(store_backend):
        assert store.integrity_check() == "ok"
    store.close()


@pytest.mark.parametrize(
    "line",
    [
        "from symbiont.library import Library",
        "import pathlib",
        "from urllib.request import urlopen",
    ],
)
def test_capabilities_may_not_import_io_modules_or_symbiont_internals(
    sqlite_lib: Library, line: str
) -> None:
    lib = sqlite_lib
    with pytest.raises(CapabilityRefused, match="policy stage") as info:
        lib.add(lookup_capability(source=line + "\n" + LOOKUP))
    assert info.value.diagnostics[0].line == 1


def test_capabilities_may_import_the_host_functions_and_pure_modules(lib: Library) -> None:
    src = "import json\nimport re\nimport urllib.parse\nfrom symbiont.host import log\n" + LOOKUP
    assert lib.add(lookup_capability(source=src)).id == "lookup"
