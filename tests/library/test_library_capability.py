"""Capability metadata: summaries, examples and checks, and the TOML folder round trip."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from symbiont.errors import CapabilityError
from symbiont.library.capability import (
    Capability,
    CapabilityPermissions,
    Check,
    Example,
    check_example,
    validate_id,
    validate_summary,
)
from symbiont.library.folders import capability_toml, read_capability_dir, write_capability_dir

SRC = 'def double(x: int) -> int:\n    """Twice x."""\n    return 2 * x\n'


@pytest.mark.parametrize(
    "summary",
    ["implemented successfully", "Function implemented successfully.", "TODO", "a tool", "doubles"],
)
def test_useless_summaries_are_refused(summary: str) -> None:
    with pytest.raises(CapabilityError, match="summary"):
        validate_summary(summary)


def test_a_descriptive_summary_is_kept_normalised() -> None:
    text = "Doubles an integer x and\n   returns the doubled integer."
    assert validate_summary(text) == "Doubles an integer x and returns the doubled integer."


@pytest.mark.parametrize("bad", ["", "Upper", "../x", "a b", "a..b", "x" * 81])
def test_bad_ids_are_refused(bad: str) -> None:
    with pytest.raises(CapabilityError, match="invalid capability id"):
        validate_id(bad)


def test_from_source_finds_entry_and_docstring_summary() -> None:
    cap = Capability.from_source(SRC, examples=[{"input": {"x": 2}, "expect": 4}])
    assert (cap.id, cap.entry, cap.summary) == ("double", "double", "Twice x.")
    assert cap.examples == (Example({"x": 2}, 4),)


def test_checks_hold_and_fail_for_the_right_reasons() -> None:
    out = {"employee_id": "E007", "salary": {"base": 38500, "currency": "EUR"}, "tags": ["a"]}
    ok = Example(
        {},
        check=Check(
            keys=("salary",),
            contains={"salary": {"currency": "EUR"}},
            expr="output['salary']['base'] > 30000 and 'a' in output['tags']",
        ),
    )
    assert check_example(ok, out, None) is None
    wrong = Example({}, check=Check(contains={"salary": {"currency": "USD"}}))
    assert "does not contain" in (check_example(wrong, out, None) or "")
    false = Example({}, check=Check(expr="output['salary']['base'] > 50000"))
    assert "is false" in (check_example(false, out, None) or "")
    missing = Example({}, check=Check(keys=("bonus",)))
    assert "lacks the key(s) ['bonus']" in (check_example(missing, out, None) or "")


def test_returned_error_value_fails_an_exact_example_and_satisfies_an_error_check() -> None:
    assert "failed: no such employee" in (
        check_example(Example({}, {"x": 1}), {"error": "no such employee"}, None) or ""
    )
    wants_error = Example({}, check=Check(error="no such"))
    assert check_example(wants_error, {"error": "no such employee"}, None) is None
    assert "succeeded" in (check_example(wants_error, {"x": 1}, None) or "")


@pytest.mark.parametrize(
    "expr",
    ["__import__('os')", "output.__class__", "(lambda: 1)()", "'a' * 10", "open('x')", "2 ** 99"],
)
def test_unsafe_check_expressions_are_refused(expr: str) -> None:
    with pytest.raises(CapabilityError, match="check expression"):
        Check.from_dict({"expr": expr})


def test_toml_round_trip_keeps_every_field_including_nulls(tmp_path: Path) -> None:
    cap = Capability.from_source(
        SRC,
        id="double",
        name='Double "it"',
        summary="Doubles an integer x and returns the result, a longer summary over sixty characters.",
        examples=[
            {"input": {"x": 2}, "expect": 4, "name": "two"},
            {"input": {"x": None}, "check": {"error": "int"}},
            {"input": {"x": 1}, "expect": {"a": None, "b": [1.5, 'é\n"q"']}},
            {
                "input": {"x": 3},
                "check": {"keys": ["a"], "contains": {"a": 1}, "expr": "len(output) > 0"},
            },
        ],
        permissions=CapabilityPermissions(
            read_files=True, http_allow=("api.example.com",), data="shared"
        ),
        parents=["half"],
    )
    text = capability_toml(cap)
    tomllib.loads(text)  # valid TOML
    folder = write_capability_dir(cap, tmp_path)
    assert (folder / "capability.py").read_text() == SRC
    back = read_capability_dir(folder)
    assert back.examples == cap.examples
    assert back.permissions == cap.permissions
    assert (back.id, back.name, back.summary, back.parents) == (
        cap.id,
        cap.name,
        cap.summary,
        cap.parents,
    )


def test_a_broken_toml_names_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "capability.py").write_text(SRC)
    (folder / "capability.toml").write_text('id = "x"\n[[examples]]\ninput = 3\n')
    with pytest.raises(CapabilityError, match=r"capability.toml, example 1"):
        read_capability_dir(folder)
