"""The issue's "Must show", through the real CLI entry point: import the HR library, search,
run, update the JSON file, and a forced failure that leaves the file intact.

Runs in the `process` sandbox tier (real confined workers) when this machine provides it,
with the default embedder (local MiniLM when installed), on a temporary store and data root.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from symbiont.cli import main

HR = Path(__file__).resolve().parents[2] / "examples" / "hr"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_hr_flow_through_the_cli(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tier: str,
) -> None:
    monkeypatch.setenv("SYMBIONT_HOME", str(tmp_path / "home"))
    opts = [
        "--store",
        str(tmp_path / "lib.db"),
        "--data-root",
        str(tmp_path / "data"),
        "--tier",
        tier,
    ]
    database = tmp_path / "data" / "hr" / "employee_database.json"

    code, out, err = run_cli(capsys, "lib", "import", str(HR), *opts)
    assert code == 0, err
    assert "added 12" in out
    assert database.read_bytes() == (HR / "data" / "hr" / "employee_database.json").read_bytes()

    code, out, _ = run_cli(
        capsys, "lib", "search", "how much is employee E007 paid", "--json", *opts
    )
    assert code == 0
    ranked = [hit["id"] for hit in json.loads(out)]
    assert ranked[0] == "get_salary_details"
    code, out, _ = run_cli(capsys, "lib", "search", "how much is employee E007 paid", *opts)
    rows = [line for line in out.splitlines() if "get_" in line or "update_" in line]
    assert "get_salary_details" in rows[0]

    code, out, err = run_cli(
        capsys, "lib", "run", "get_salary_details", '{"employee_id": "E007"}', *opts
    )
    assert code == 0, err
    record = json.loads(out)
    stored = json.loads(database.read_text())["employees"]["E007"]
    assert record["employee_id"] == "E007"
    assert record["name"] == f"{stored['first_name']} {stored['last_name']}"
    assert record["base"] == stored["salary"]["base"]
    assert record["history"] == stored["salary"]["history"]

    raise_to = stored["salary"]["base"] + 2500
    update = {
        "employee_id": "E007",
        "new_base": raise_to,
        "effective_date": "2026-02-01",
        "reason": "promotion",
    }
    code, out, err = run_cli(
        capsys, "lib", "run", "update_employee_salary", json.dumps(update), *opts
    )
    assert code == 0, err
    after = json.loads(database.read_text())["employees"]["E007"]["salary"]
    assert after["base"] == raise_to
    assert after["history"][-1] == {
        "effective_date": "2026-02-01",
        "base": raise_to,
        "reason": "promotion",
    }

    car = tmp_path / "car.json"
    car.write_text(
        json.dumps(
            {
                "employee_id": "E012",
                "make": "Kia",
                "model": "EV6",
                "year": 2025,
                "plate": "B-KI 612",
            }
        )
    )
    code, out, err = run_cli(capsys, "lib", "run", "update_employee_car_details", f"@{car}", *opts)
    assert code == 0, err
    assert json.loads(database.read_text())["employees"]["E012"]["car"]["plate"] == "B-KI 612"

    before = database.read_bytes()
    bad = {"employee_id": "E007", "new_base": -5, "effective_date": "2026-03-01"}
    code, out, err = run_cli(capsys, "lib", "run", "update_employee_salary", json.dumps(bad), *opts)
    assert code == 1
    assert "positive" in err
    assert database.read_bytes() == before  # the failed update left the file as it was

    code, out, err = run_cli(capsys, "lib", "run", "get_salary_details", '{"employee_id": }', *opts)
    assert code == 1 and "not valid JSON" in err and "line 1, column 17" in err
    code, out, err = run_cli(capsys, "lib", "run", "get_salary_details", '{"id": "E007"}', *opts)
    assert code == 1 and "missing the required field 'employee_id'" in err
    assert "Traceback" not in err

    code, out, _ = run_cli(capsys, "lib", "show", "update_employee_salary", "--json", *opts)
    shown = json.loads(out)
    # the refused update is an error its example declares ("positive"): it counts as a run
    # but not as a failure of the capability
    assert shown["stats"]["runs"] == 2 and shown["stats"]["failures"] == 0
    assert shown["stats"]["consecutive_failures"] == 0

    code, out, _ = run_cli(
        capsys, "lib", "deprecate", "get_car_details", "--reason", "moved to fleet API", *opts
    )
    assert code == 0
    code, out, _ = run_cli(
        capsys, "lib", "search", "which car does E001 drive", "-k", "12", "--json", *opts
    )
    assert "get_car_details" not in [hit["id"] for hit in json.loads(out)]
    code, out, err = run_cli(
        capsys, "lib", "run", "get_car_details", '{"employee_id": "E001"}', *opts
    )
    assert code == 1 and "deprecated" in err
    code, out, err = run_cli(
        capsys, "lib", "run", "get_car_details", '{"employee_id": "E001"}', "--force", *opts
    )
    assert code == 0 and json.loads(out)["car"]["make"] == "Skoda"

    code, out, _ = run_cli(capsys, "lib", "list", "--json", *opts)
    assert len(json.loads(out)) == 12
    code, out, _ = run_cli(capsys, "lib", "export", str(tmp_path / "export"), *opts)
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == sorted(
        p.name for p in HR.iterdir() if (p / "capability.toml").is_file()
    )


def test_cli_user_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYMBIONT_HOME", str(tmp_path / "home"))
    opts = [
        "--store",
        str(tmp_path / "lib.db"),
        "--data-root",
        str(tmp_path / "data"),
        "--tier",
        "inprocess",
    ]
    code, _, err = run_cli(capsys, "lib", "show", "nothing", *opts)
    assert code == 1 and "no capability 'nothing'" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "lib", "import", str(tmp_path / "missing"), *opts)
    assert code == 1 and "is not a folder" in err
    code, _, err = run_cli(capsys, "lib", "run", "x", "@" + str(tmp_path / "nope.json"), *opts)
    assert code == 1 and "cannot read the input file" in err


def test_cli_add_and_replace_a_capability_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYMBIONT_HOME", str(tmp_path / "home"))
    opts = [
        "--store",
        str(tmp_path / "lib.db"),
        "--data-root",
        str(tmp_path / "data"),
        "--tier",
        "inprocess",
    ]
    folder = tmp_path / "triple"
    folder.mkdir()
    source = 'def triple(x: int) -> int:\n    """Three times x."""\n    return 3 * x\n'
    (folder / "capability.py").write_text(source)
    meta = (
        'id = "triple"\nsummary = "Multiply an integer by three. Input: x. Output: three times x."\n'
        "[[examples]]\ninput = { x = 2 }\nexpect = 6\n"
    )
    (folder / "capability.toml").write_text(meta)
    code, out, err = run_cli(capsys, "lib", "add", str(folder), *opts)
    assert code == 0 and "stored triple (version 1)" in out, err
    (folder / "capability.toml").write_text(meta.replace("expect = 6", "expect = 7"))
    code, out, err = run_cli(capsys, "lib", "add", str(folder), "--replace", *opts)
    assert code == 1 and "expected: 7" in err and "got:      6" in err
    (folder / "capability.py").write_text(source.replace("3 * x", "3 * x + 1"))
    code, out, err = run_cli(capsys, "lib", "add", str(folder), *opts)
    # the CLI names its own flag, not a Python call
    assert code == 1 and "--replace" in err and "replace(" not in err
    code, out, err = run_cli(capsys, "lib", "add", str(folder), "--replace", *opts)
    assert code == 0 and "version 2" in out, err
    code, out, _ = run_cli(capsys, "lib", "run", "triple", '{"x": 5}', *opts)
    assert json.loads(out) == 16
