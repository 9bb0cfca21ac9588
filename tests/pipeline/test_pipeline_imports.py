"""Imports of modules that are not installed are a diagnostic before any trial.

`from sympy import ...` in a program without sympy used to pass every stage and fail only
in the trial, as an ImportError the model took for a bug in its code.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pipeline_targets as pt
import pytest

from symbiont.pipeline import DEFAULT_POLICY, PipelineConfig, Target, run_pipeline
from symbiont.pipeline.imports import is_installed, missing_imports

MISSING = "symbiont_test_absent_module_7c1e"


def _missing(src: str, **kwargs: object) -> list:
    return missing_imports(ast.parse(src), src, **kwargs)  # type: ignore[arg-type]


def test_an_import_of_a_module_not_installed_is_reported_where_it_is() -> None:
    src = f"import math\n\ndef area(r: float) -> float:\n    from {MISSING} import pi\n    return pi\n"
    diags = _missing(src)
    assert len(diags) == 1
    d = diags[0]
    assert (d.stage, d.kind, d.line) == ("policy", "missing_module", 4)
    assert MISSING in d.message and "not installed" in d.message
    assert d.excerpt is not None and f"from {MISSING} import pi" in d.excerpt


def test_the_names_a_missing_import_would_bind_are_said_to_be_missing_too() -> None:
    # Qwen2.5-Coder-0.5B, told scipy is not installed, dropped the import and kept calling
    # `curve_fit` (a NameError in the trial); the refusal now names what will not exist.
    src = f"from {MISSING}.optimize import curve_fit, leastsq as lsq\nimport {MISSING} as sp\n"
    (d,) = _missing(src)
    assert "`curve_fit`" in d.message and "`lsq`" in d.message
    assert "will not exist" in d.message
    plain = _missing(f"import {MISSING}\n")[0].message
    assert "will not exist" not in plain  # nothing bound but the module itself


def test_installed_standard_relative_and_denied_imports_pass() -> None:
    src = (
        "import math, json as j\nimport pytest\nfrom collections import abc\n"
        "from . import sibling\nfrom .pkg import thing\nimport os\n"
    )
    assert _missing(src, policy=DEFAULT_POLICY) == []


def test_a_denied_module_is_left_to_the_policy_stage() -> None:
    policy = DEFAULT_POLICY.extend(imports={MISSING})
    assert _missing(f"import {MISSING}\n", policy=policy) == []
    assert len(_missing(f"import {MISSING}\n")) == 1


def test_each_missing_module_is_reported_once() -> None:
    src = f"import {MISSING}.a\nimport {MISSING}.b as b\nfrom {MISSING}.c import d\n"
    diags = _missing(src)
    assert len(diags) == 1 and diags[0].line == 1


def test_looking_a_module_up_does_not_import_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "symbiont_side_effect_pkg_91"
    package.mkdir()
    marker = tmp_path / "imported"
    (package / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _missing("import symbiont_side_effect_pkg_91\n") == []
    assert is_installed("symbiont_side_effect_pkg_91.sub")
    assert not marker.exists()
    assert "symbiont_side_effect_pkg_91" not in sys.modules


def test_odd_names_do_not_raise() -> None:
    assert not is_installed(MISSING)
    assert is_installed("")  # nothing to look up


def test_run_pipeline_stops_a_missing_import_before_the_trial() -> None:
    reply = (
        "```python\n"
        f"from {MISSING} import pi\n\n"
        "def area(r: float) -> float:\n"
        "    return pi * r * r\n"
        "```"
    )
    result = run_pipeline(reply, Target.from_function(pt.area), PipelineConfig(typecheck=False))
    assert result.candidate is None
    assert result.stage == "policy"
    assert [d.kind for d in result.diagnostics] == ["missing_module"]
