"""Inputs and messages (issue 11, item 6): strict JSON, parse errors first, a capability
policy suited to the sandbox, empty checks refused, every schema error listed with typo
hints first, CLI messages that name CLI flags, tables that wrap at any width.

Real stores (a SQLite file and a real PostgreSQL: `store_backend`), the real pipeline, the
process-tier sandbox (inprocess where this machine has no confinement) and the real CLI
entry point.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from library_backends import searchable

from symbiont.cli import main
from symbiont.embed import HashingEmbedder
from symbiont.errors import CapabilityError
from symbiont.library import Capability, CapabilityRefused, InvalidInput, Library

HR = Path(__file__).resolve().parents[2] / "examples" / "hr"


@pytest.fixture
def lib(store_backend: str, tmp_path: Path, tier: str) -> Iterator[Library]:
    with Library(
        store_backend,
        data_root=tmp_path / "data",
        tier=tier,
        typecheck=False,
        embedder=HashingEmbedder(),
    ) as library:
        yield library


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def hr_opts(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tier: str
) -> Iterator[list[str]]:
    """The HR capabilities imported once per module into a store of each backend."""
    root = tmp_path_factory.mktemp("hr-cli")
    server = request.getfixturevalue("pg_server") if request.param == "postgresql" else None
    store = server.new_database() if server is not None else str(root / "lib.db")
    opts = ["--store", store, "--data-root", str(root / "data"), "--tier", tier]
    assert main(["lib", "import", str(HR), *opts]) == 0
    yield opts
    if server is not None:
        server.drop_database(store)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


SCALE = '''
def scale(x: float, factor: float = 2.0) -> float:
    """Multiply a number by a factor."""
    return x * factor
'''
SCALE_SUMMARY = "Multiply a number x by a factor (default 2) and return the product as a float."


# -- strict JSON ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"x": NaN}', "NaN"),
        ('{"x": Infinity}', "Infinity"),
        ('{"x": -Infinity}', "Infinity"),
        ('{"x": 1e400}', "overflows"),
        ('{"x": 1, "x": 2}', "duplicate key 'x'"),
    ],
)
def test_capability_inputs_are_strict_json(lib: Library, text: str, why: str) -> None:
    lib.add(Capability.from_source(SCALE, summary=SCALE_SUMMARY, examples=[_ex(3, 6)]))
    with pytest.raises(InvalidInput, match=why):
        lib.run("scale", text)
    assert lib.get("scale").stats.runs == 0  # refused before it ran


def _ex(x: float, out: float) -> dict[str, object]:
    return {"input": {"x": x}, "expect": out}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_in_a_python_input_are_refused(lib: Library, value: float) -> None:
    lib.add(Capability.from_source(SCALE, summary=SCALE_SUMMARY, examples=[_ex(3, 6)]))
    with pytest.raises(InvalidInput, match="not a JSON number"):
        lib.run("scale", {"x": value})


def test_the_cli_refuses_nan_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], hr_opts: list[str]
) -> None:
    code, _, err = run_cli(
        capsys, "lib", "run", "get_salary_details", '{"employee_id": "E007", "x": NaN}', *hr_opts
    )
    assert code == 1 and "NaN" in err and "Traceback" not in err


def test_agent_tool_arguments_are_strict_json_too() -> None:
    from symbiont.agent.tools import TASK_TOOLS, ToolError, parse_arguments

    run = next(t for t in TASK_TOOLS if t.name == "run_capability")
    for raw in (
        '{"capability_id": "scale", "input": {"x": NaN}}',
        '{"capability_id": "scale", "capability_id": "other", "input": {}}',
    ):
        with pytest.raises(ToolError) as caught:
            parse_arguments(run, raw)
        assert caught.value.kind == "invalid_json"


# -- parse errors before entry detection ----------------------------------------------------------


BROKEN = '''
def scale(x: float, factor: float = 2.0) -> float
    """Multiply a number by a factor."""
    return x * factor
'''


def test_a_syntax_error_is_reported_as_one_not_as_a_missing_function() -> None:
    with pytest.raises(CapabilityError) as caught:
        Capability.from_source(BROKEN, summary=SCALE_SUMMARY)
    message = str(caught.value)
    assert "syntax error at line 2" in message and "expected ':'" in message
    assert "no public function" not in message


def test_lib_add_of_a_folder_with_a_syntax_error_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tier: str
) -> None:
    folder = tmp_path / "scale"
    folder.mkdir()
    (folder / "capability.py").write_text(BROKEN)
    (folder / "capability.toml").write_text(
        textwrap.dedent(
            f'''
            id = "scale"
            summary = "{SCALE_SUMMARY}"

            [[examples]]
            input = {{ x = 3 }}
            expect = 6
            '''
        )
    )
    opts = ["--store", str(tmp_path / "lib.db"), "--data-root", str(tmp_path / "data")]
    code, _, err = run_cli(capsys, "lib", "add", str(folder), *opts, "--tier", tier)
    assert code == 1 and "syntax error" in err and "line 2" in err
    assert "no public function" not in err and "Traceback" not in err


# -- a capability policy suited to the sandbox ----------------------------------------------------

HARMLESS = (
    "io",
    "csv",
    "json",
    "re",
    "math",
    "datetime",
    "collections",
    "itertools",
    "functools",
    "statistics",
    "decimal",
    "string",
    "textwrap",
    "base64",
    "hashlib",
    "uuid",
    "random",
    "dataclasses",
    "typing",
    "enum",
    "heapq",
    "bisect",
    "difflib",
    "html",
    "urllib.parse",
)


def test_harmless_standard_library_modules_pass_the_capability_policy(lib: Library) -> None:
    imports = "\n".join(f"import {m}" for m in HARMLESS)
    source = f'{imports}\n\n\ndef names() -> int:\n    """How many modules."""\n    return {len(HARMLESS)}\n'
    cap = Capability.from_source(
        source,
        summary="Count the standard library modules this capability imports, as an integer.",
        examples=[{"input": {}, "expect": len(HARMLESS)}],
    )
    assert lib.add(cap).id == "names"
    assert lib.run("names", {}).output == len(HARMLESS)


CSV_TOTAL = '''
import csv
import io

from symbiont.host import read_file


def total_hours(column: str) -> float:
    """Sum a column of the timesheet CSV file."""
    rows = csv.DictReader(io.StringIO(read_file("timesheet.csv")))
    return float(sum(float(row[column]) for row in rows))
'''


def test_csv_text_is_parsed_with_io_stringio_in_the_sandbox(lib: Library) -> None:
    data = lib.data_root / "timesheets"
    data.mkdir(parents=True)
    (data / "timesheet.csv").write_text("name,hours\nana,7.5\nbo,8\n")
    cap = Capability.from_source(
        CSV_TOTAL,
        summary="Total the hours in a column of the timesheet CSV file; returns the sum.",
        examples=[{"input": {"column": "hours"}, "expect": 15.5}],
        permissions={"data": "timesheets", "read_files": True},
    )
    lib.add(cap)
    assert lib.run("total_hours", {"column": "hours"}).output == 15.5


@pytest.mark.parametrize(
    "body",
    [
        'import os\n\n\ndef f() -> str:\n    """Home."""\n    return os.getcwd()\n',
        'import pathlib\n\n\ndef f() -> str:\n    """Text."""\n    return pathlib.Path("x").read_text()\n',
        'def f() -> str:\n    """Text."""\n    return open("x").read()\n',
    ],
    ids=["os", "pathlib", "open"],
)
def test_a_refused_io_import_points_at_symbiont_host(lib: Library, body: str) -> None:
    cap = Capability.from_source(
        body, summary="Read some text from a file somewhere and return it as a string."
    )
    with pytest.raises(CapabilityRefused) as caught:
        lib.verify(cap)
    assert "symbiont.host" in str(caught.value)


def test_module_level_constants_are_fine_in_a_capability(lib: Library) -> None:
    source = (
        "import re\n\n"
        'PLATE = re.compile(r"^[A-Z]{1,3}-[0-9]{1,4}$")\n\n\n'
        "def is_plate(text: str) -> bool:\n"
        '    """Whether the text is a licence plate."""\n'
        "    return bool(PLATE.match(text))\n"
    )
    cap = Capability.from_source(
        source,
        summary="Tell whether a text is a licence plate such as B-1234; returns true or false.",
        examples=[{"input": {"text": "B-1234"}, "expect": True}],
    )
    assert lib.add(cap).id == "is_plate"


# -- empty checks ----------------------------------------------------------------------------------


def test_an_empty_check_is_refused(lib: Library) -> None:
    with pytest.raises(CapabilityError, match="empty check verifies nothing"):
        Capability.from_source(
            SCALE, summary=SCALE_SUMMARY, examples=[{"input": {"x": 1}, "check": {}}]
        )
    with pytest.raises(CapabilityError, match="empty check verifies nothing"):
        Capability.from_source(
            SCALE, summary=SCALE_SUMMARY, examples=[{"input": {"x": 1}, "check": {"keys": []}}]
        )
    with pytest.raises(CapabilityRefused, match="no examples"):
        lib.add(Capability.from_source(SCALE, summary=SCALE_SUMMARY, examples=[]))


def test_an_empty_check_in_a_folder_is_refused_by_lib_add(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tier: str
) -> None:
    folder = tmp_path / "scale"
    folder.mkdir()
    (folder / "capability.py").write_text(SCALE)
    (folder / "capability.toml").write_text(
        f'id = "scale"\nsummary = "{SCALE_SUMMARY}"\n\n'
        "[[examples]]\ninput = { x = 3 }\ncheck = {}\n"
    )
    opts = ["--store", str(tmp_path / "lib.db"), "--data-root", str(tmp_path / "data")]
    code, _, err = run_cli(capsys, "lib", "add", str(folder), *opts, "--tier", tier)
    assert code == 1 and "empty check" in err and "Traceback" not in err


# -- every schema error, typo hints first -------------------------------------------------------


def test_every_schema_error_is_listed_with_the_typo_hint_first(
    capsys: pytest.CaptureFixture[str], hr_opts: list[str]
) -> None:
    code, _, err = run_cli(
        capsys,
        "lib",
        "run",
        "update_employee_salary",
        '{"employe_id": "E007", "new_base": "a lot", "effective": "2026-01-01"}',
        *hr_opts,
    )
    assert code == 1
    text = " ".join(err.split())
    hint = "missing the required field 'employee_id' (string; did you mean 'employe_id'?)"
    assert hint in text
    assert text.index("did you mean") < text.index("new_base")
    assert "new_base" in text and "effective_date" in text  # the other errors are there too
    assert "more)" not in text  # nothing hidden behind "(and N more)"


# -- tables wrap ----------------------------------------------------------------------------------


@pytest.mark.parametrize("columns", ["80", "40", "200"])
def test_lib_list_and_search_wrap_instead_of_cutting(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    hr_opts: list[str],
    columns: str,
) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    code, out, _ = run_cli(capsys, "lib", "list", "--json", *hr_opts)
    caps = json.loads(out)
    code, out, _ = run_cli(capsys, "lib", "list", *hr_opts)
    assert code == 0
    assert max(len(line) for line in out.splitlines()) <= int(columns)
    words = " ".join(out.split())
    for cap in caps:
        assert cap["id"] in out.replace("│", " ") or cap["id"] in words
        for word in cap["summary"].split():  # every word of every summary is shown
            assert word.strip(".,:;()") in words, (cap["id"], word)
        assert "…" not in out

    if not searchable(hr_opts[1]):
        return
    code, out, _ = run_cli(capsys, "lib", "search", "employee salary", "-k", "3", *hr_opts)
    assert code == 0 and "…" not in out
    assert max(len(line) for line in out.splitlines()) <= int(columns)
    assert "get_salary_details" in out
