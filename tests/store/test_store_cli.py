"""`symbiont history | show | diff | rollback | export | runs` against a real store: a SQLite
file and a real PostgreSQL database (`--store postgresql://...`, `SYMBIONT_STORE`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_helpers import MakeRev

from symbiont.cli import main
from symbiont.store import AttemptRecord, Pricing, open_store

KEY = "examples.counter.step"
SIG = 'def step(x: int) -> int:\n    """Advance the counter."""'
R0 = "def step(x: int) -> int:\n    return x\n"
R1 = "def step(x: int) -> int:\n    return x + 1\n"
R2 = 'def step(x: int) -> int:\n    return x + "one"\n'
R3 = "def step(x: int) -> int:\n    total = x\n    total += 2\n    return total\n"
R4 = "def step(x: int) -> int:\n    return (x + 1) * 2\n"


@pytest.fixture
def filled(store_backend: str, make_rev: MakeRev, monkeypatch: pytest.MonkeyPatch) -> str:
    """A store with one lineage: r0 default, r1 accepted, r2 rejected, r3 crossover (active),
    r4 accepted then un-activated; an older lineage; another function; one evolve run."""
    monkeypatch.setenv("COLUMNS", "200")  # no wrapping of rich output in the assertions
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    path = store_backend
    with open_store(path, pricing=Pricing(0.01, 0.03)) as s:
        old = s.ensure_function(KEY, "oldfp000", "def step(x: int) -> float:")
        s.add_revision(make_rev(old.id, "def step(x: int) -> float:\n    return 0.0\n"))
        f = s.ensure_function(KEY, "newfp111", SIG)
        s.add_revision(make_rev(f.id, R0, origin="default", model=None))
        s.set_active(f.id, 0)
        s.add_revision(make_rev(f.id, R1, parents=(0,), score=1.0, model="gpt-test"))
        s.set_active(f.id, 1)
        s.add_revision(
            make_rev(
                f.id,
                R2,
                parents=(1,),
                status="rejected",
                stage="typecheck",
                diagnostics=[
                    {
                        "stage": "typecheck",
                        "kind": "operator",
                        "message": 'unsupported operand types for +: "int" and "str"',
                        "line": 2,
                        "col": 12,
                        "excerpt": '2 |     return x + "one"\n  |            ^^^^^^^^^',
                    }
                ],
                reply="Here you go:\n```python\n" + R2 + "```",
            )
        )
        s.add_revision(make_rev(f.id, R3, parents=(1, 0), origin="mutation", score=2.0))
        s.set_active(f.id, 3)
        s.add_revision(make_rev(f.id, R4, parents=(3,), score=1.5))
        other = s.ensure_function("examples.fizz.fizzbuzz", "fz", "def fizzbuzz(n: int) -> str:")
        s.add_revision(make_rev(other.id, "def fizzbuzz(n: int) -> str:\n    return ''\n"))
        run = s.start_run(f.id, {"model": "gpt-test"})
        for i, (tin, tout) in enumerate([(1000, 500), (2000, 1000)], start=1):
            s.add_attempt(
                run,
                AttemptRecord(
                    i, i + 1, "typecheck", i == 2, [], {"model": 0.5}, tin, tout, 0.5, 0, None
                ),
            )
        s.finish_run(run, "accepted", 3)
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def line_of(out: str, needle: str) -> str:
    hits = [line for line in out.splitlines() if needle in line]
    assert hits, f"{needle!r} not in:\n{out}"
    return hits[0]


def test_history_shows_the_lineage_tree(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "history", "counter.step", "--store", str(filled))
    assert code == 0
    assert KEY in out and "newfp111" in out and "5 revisions, 4 accepted" in out
    r3 = line_of(out, "r3 ")
    assert "accepted" in r3 and "score 2" in r3 and "mutation" in r3 and "× r0" in r3
    assert "◀ active" in r3
    r2 = line_of(out, "r2 ")
    assert "rejected" in r2 and "typecheck" in r2 and "unsupported operand" in r2
    assert "◀ active" not in r2
    assert "gpt-test" in line_of(out, "r1 ")
    # The line r0 → r1 → r3 (towards the active revision) is drawn flat, at one depth;
    # r1's other child r2 and r3's leaf child r4 are indented beneath their parents.
    indent = {n: line_of(out, f"r{n} ").index(f"r{n} ") for n in range(5)}
    assert indent[0] == indent[1] == indent[3] < indent[2] == indent[4]
    lines = out.splitlines()
    order = [next(i for i, line in enumerate(lines) if f"r{n} " in line) for n in range(5)]
    assert order == sorted(order)  # r2 right under r1, r4 right under r3
    assert "1 older lineage(s)" in out
    assert "oldfp000" not in out


def test_history_all_and_accepted_only(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "history", "step", "--all", "--store", str(filled))
    assert code == 0 and "oldfp000" in out and "newfp111" in out
    code, out, _ = run_cli(capsys, "history", "counter.step", "--accepted", "--store", str(filled))
    assert code == 0
    assert "r2 " not in out and "(+1 rejected)" in line_of(out, "r1 ")


def test_show_a_rejected_revision(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "show", "counter.step@2", "--store", str(filled))
    assert code == 0
    assert 'return x + "one"' in out
    assert "rejected at the typecheck stage" in out
    assert "[typecheck/operator] (line 2, column 12) unsupported operand" in out
    assert "^^^^^^^^^" in out
    assert "parents" in out and "r1" in line_of(out, "parents")
    assert "Here you go" not in out  # the reply only on request
    code, out, _ = run_cli(capsys, "show", "counter.step@2", "--reply", "--store", str(filled))
    assert "Here you go" in out


def test_show_without_a_number_is_the_active_revision(
    filled: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "show", "counter.step", "--store", str(filled))
    assert code == 0 and "total += 2" in out and "◀ active" in line_of(out, "revision")


def test_diff_between_two_revisions(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "diff", "counter.step@1", "@3", "--store", str(filled))
    assert code == 0
    lines = out.splitlines()
    assert f"--- {KEY}@1" in lines and f"+++ {KEY}@3" in lines
    assert "-    return x + 1" in lines
    assert "+    total += 2" in lines and "+    return total" in lines
    assert " def step(x: int) -> int:" in lines
    code, out2, _ = run_cli(
        capsys, "diff", "counter.step@1", "examples.counter.step@3", "--store", str(filled)
    )
    assert out2 == out


def test_diff_is_coloured_on_a_terminal(
    filled: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    code, out, _ = run_cli(capsys, "diff", "counter.step@1", "@3", "--store", str(filled))
    assert code == 0
    assert "\x1b[32m+    total += 2" in out  # green additions
    assert "\x1b[31m-    return x + 1" in out  # red removals


def test_diff_of_identical_revisions(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "diff", "counter.step@3", "@3", "--store", str(filled))
    assert code == 0 and "no differences" in out and "same content hash" in out


def test_rollback_sets_the_active_revision_for_the_next_start(
    filled: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "rollback", "counter.step", "--store", str(filled))
    assert code == 0
    assert "now r1" in out and "was r3" in out and "next time the program starts" in out
    with open_store(filled) as s:
        active = s.active_revision(KEY, "newfp111")
        assert active is not None and active.source == R1
    code, out, _ = run_cli(capsys, "rollback", "counter.step", "--store", str(filled))
    assert code == 0 and "now r0" in out  # further back, not back to r3
    code, out, _ = run_cli(capsys, "rollback", "counter.step", "4", "--store", str(filled))
    assert code == 0 and "now r4" in out
    with open_store(filled) as s:
        active = s.active_revision(KEY, "newfp111")
        assert active is not None and active.number == 4


def test_rollback_to_a_rejected_revision_is_refused(
    filled: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "rollback", "counter.step", "2", "--store", str(filled))
    assert code == 1
    assert "rejected at the typecheck stage" in err and "Traceback" not in err
    with open_store(filled) as s:
        assert s.find_functions(KEY)[0].active_number == 3


def test_export_writes_a_runnable_python_file(
    filled: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out" / "step.py"
    code, out, _ = run_cli(
        capsys, "export", "counter.step", "--to", str(target), "--store", str(filled)
    )
    assert code == 0 and "@3 (active)" in out
    text = target.read_text()
    assert text.startswith("# Exported by symbiont from ")
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert any(KEY in line and "r3" in line for line in header)
    assert text.endswith(R3)
    namespace: dict[str, object] = {}
    exec(compile(text, str(target), "exec"), namespace)
    assert namespace["step"](5) == 7  # type: ignore[operator]

    code, _, err = run_cli(
        capsys, "export", "counter.step", "--to", str(target), "--store", str(filled)
    )
    assert code == 1 and "--force" in err
    code, _, _ = run_cli(
        capsys, "export", "counter.step@1", "--to", str(target), "--force", "--store", str(filled)
    )
    assert code == 0 and target.read_text().endswith(R1)


def test_runs_table(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "runs", "--store", str(filled))
    assert code == 0
    row = line_of(out, KEY)
    # 2 attempts; 3000 in / 1500 out; cost 0.025 + 0.05 by the configured prices.
    assert " 2 " in row and "r3" in row and "accepted" in row
    assert "3,000 / 1,500" in row and "$0.0750" in row
    code, out, _ = run_cli(capsys, "runs", "--function", "fizzbuzz", "--store", str(filled))
    assert code == 0 and "no evolve runs" in out


def test_unknown_function_lists_close_matches(
    filled: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "history", "counter.stpe", "--store", str(filled))
    assert code == 1 and out == ""
    assert "no function 'counter.stpe'" in err and KEY in err
    code, _, err = run_cli(capsys, "show", "fizzbuz@0", "--store", str(filled))
    assert code == 1 and "examples.fizz.fizzbuzz" in err


def test_unknown_revision_names_the_range(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "show", "counter.step@42", "--store", str(filled))
    assert code == 1 and "no revision 42" in err and "0–4" in err
    code, _, err = run_cli(capsys, "show", "counter.step@x", "--store", str(filled))
    assert code == 1 and "revision number" in err


def test_older_lineage_by_fingerprint(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        capsys, "show", "counter.step@0", "--fingerprint", "old", "--store", str(filled)
    )
    assert code == 0 and "return 0.0" in out


def test_missing_store_is_not_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nowhere" / "symbiont.db"
    code, _, err = run_cli(capsys, "runs", "--store", str(path))
    assert code == 1 and "no store at" in err and str(path) in err
    assert not path.parent.exists()


def test_store_from_symbiont_home(
    filled: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if filled.startswith("postgresql://"):
        pytest.skip("SYMBIONT_HOME names a folder for the SQLite file")
    home = Path(filled).parent / "home"
    home.mkdir()
    Path(filled).rename(home / "symbiont.db")
    monkeypatch.setenv("SYMBIONT_HOME", str(home))
    code, out, _ = run_cli(capsys, "history", "counter.step")
    assert code == 0 and "◀ active" in out


def test_store_from_symbiont_store(
    filled: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYMBIONT_HOME", str(tmp_path / "elsewhere"))  # SYMBIONT_STORE wins
    monkeypatch.setenv("SYMBIONT_STORE", filled)
    code, out, _ = run_cli(capsys, "history", "counter.step")
    assert code == 0 and "◀ active" in out
    code, out, _ = run_cli(capsys, "rollback", "counter.step")
    assert code == 0 and "now r1" in out
    with open_store(filled) as s:
        assert s.find_functions(KEY)[0].active_number == 1
    assert not (tmp_path / "elsewhere").exists()


def test_history_draws_a_long_chain_flat(
    tmp_path: Path,
    make_rev: MakeRev,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """100 improvements in a row (each with a failed try beside it) stay at one depth."""
    monkeypatch.setenv("COLUMNS", "200")
    path = tmp_path / "chain.db"
    with open_store(path) as s:
        f = s.ensure_function("m.chain", "fp", "def chain(x: int) -> int:")
        prev = s.add_revision(make_rev(f.id, "def chain(x: int) -> int:\n    return x\n",
                                       origin="default", model=None))  # fmt: skip
        accepted = [prev.number]
        for i in range(1, 100):
            s.add_revision(make_rev(f.id, f"def chain(x):\n    return x - {i}\n",
                                    parents=(prev.number,), status="rejected"))  # fmt: skip
            prev = s.add_revision(
                make_rev(f.id, f"def chain(x: int) -> int:\n    return x + {i}\n",
                         parents=(prev.number,))
            )  # fmt: skip
            accepted.append(prev.number)
        s.set_active(f.id, prev.number)
    code, out, _ = run_cli(capsys, "history", "m.chain", "--store", str(path))
    assert code == 0
    lines = out.splitlines()
    indents = {line_of(out, f"r{n} ").index(f"r{n} ") for n in accepted}
    assert len(indents) == 1  # every accepted revision of the chain at one depth
    rejected_indents = {line_of(out, f"r{n + 1} ").index(f"r{n + 1} ") for n in accepted[:-1]}
    assert len(rejected_indents) == 1 and rejected_indents.pop() > indents.pop()
    marks = [line.index(m) for line in lines for m in ("✔", "✘") if m in line]
    assert len(marks) == 199 and max(marks) <= 8  # nothing walks off the screen
    assert "◀ active" in line_of(out, f"r{accepted[-1]} ")


def test_failures_lists_the_live_failures_with_revision_and_arguments(
    filled: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from symbiont.store import FailureRecord

    code, out, _ = run_cli(capsys, "failures", "counter.step", "--store", str(filled))
    assert code == 0 and "no live failures" in out
    with open_store(filled) as s:
        fid = s.lineages(KEY)[0].id
        for n, rev in ((1, 3), (2, 0)):
            s.add_failure(
                FailureRecord(fid, rev, 1000.0 + n, "exception", f"ValueError: bad {n}",
                              f"x={n}", f"Traceback (most recent call last):\nValueError: bad {n}")
            )  # fmt: skip
    code, out, _ = run_cli(capsys, "failures", "step", "--traceback", "--store", str(filled))
    assert code == 0 and "2 live failure(s)" in out
    first, second = line_of(out, "bad 1"), line_of(out, "bad 2")
    assert "r3" in first and "◀ active" in first and "r0" in second
    assert out.index("bad 1") < out.index("bad 2")  # newest last
    assert "arguments: x=1" in out and "Traceback (most recent call last)" in out
