"""Stage 4: denied imports and names, aliases resolved (a guardrail, not a boundary)."""

from __future__ import annotations

import ast

import pipeline_os_module as om
import pytest

from symbiont.pipeline import DEFAULT_POLICY, Policy, check_policy


def _diags(src: str, policy: Policy = DEFAULT_POLICY, module_globals=None):
    return check_policy(ast.parse(src), policy, src, module_globals=module_globals)


def test_default_policy_is_the_documented_one() -> None:
    assert DEFAULT_POLICY.denied_imports == {
        "os",
        "sys",
        "subprocess",
        "socket",
        "ctypes",
        "importlib",
        "multiprocessing",
        "threading",
        "signal",
        "shutil",
        "builtins",
    }
    assert DEFAULT_POLICY.denied_names == {
        "eval",
        "exec",
        "compile",
        "open",
        "__import__",
        "globals",
        "breakpoint",
    }


def test_clean_code_passes() -> None:
    assert _diags("import math\nfrom collections import deque\nx = math.sqrt(2)\n") == []


@pytest.mark.parametrize(
    ("src", "line", "col"),
    [
        ("import os\n", 1, 1),
        ("import os.path\n", 1, 1),
        ("x = 1\nimport os as o\no.system('x')\n", 2, 1),
        ("def f():\n    from os import system\n", 2, 5),
        ("from os.path import join\n", 1, 1),
        ("import json, subprocess\n", 1, 1),
        ("from importlib import import_module\n", 1, 1),
    ],
)
def test_denied_imports(src: str, line: int, col: int) -> None:
    (d,) = _diags(src)
    assert (d.stage, d.kind, d.line, d.col) == ("policy", "denied_import", line, col)
    assert d.excerpt is not None
    caret_line = d.excerpt.splitlines()[-1]
    assert caret_line.index("^") - caret_line.index("|") - 1 == col


@pytest.mark.parametrize("name", sorted(DEFAULT_POLICY.denied_names))
def test_denied_names(name: str) -> None:
    src = f"def f(x):\n    return {name}(x)\n"
    (d,) = _diags(src)
    assert (d.kind, d.line, d.col) == ("denied_name", 2, 12)
    assert f"`{name}`" in d.message


def test_alias_of_denied_name_is_caught_where_it_is_taken() -> None:
    (d,) = _diags("e = eval\ne('1')\n")
    assert d.line == 1 and d.kind == "denied_name"


def test_module_globals_that_are_denied_modules_are_resolved() -> None:
    src = "def count_files(names):\n    os.system('ls')\n    return run_command(['ls'])\n"
    diags = _diags(src, module_globals=vars(om))
    assert [(d.line, d.col) for d in diags] == [(2, 5), (3, 12)]
    assert "`os`" in diags[0].message and "`subprocess`" in diags[1].message


def test_candidate_rebinding_a_global_name_is_not_confused_with_it() -> None:
    src = "def count_files(names):\n    os = len(names)\n    return os + LIMIT\n"
    assert _diags(src, module_globals=vars(om)) == []


def test_policy_is_configurable() -> None:
    custom = DEFAULT_POLICY.allow(imports={"os"}).extend(imports={"json"}, names={"print"})
    assert _diags("import os\n", custom) == []
    assert [d.kind for d in _diags("import json\nprint(1)\n", custom)] == [
        "denied_import",
        "denied_name",
    ]


def test_unicode_columns() -> None:
    (d,) = _diags("s = 'ééé'; eval(s)\n")
    assert d.col == 12
