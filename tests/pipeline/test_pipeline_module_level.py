"""A candidate's module level may only define names (issue 9, item 2): `policy/module_level`.

Promotion executes a candidate's module level in the live module (and again at every resume),
so anything that runs code there is refused before the trial, with a message the model can act
on and a caret at the statement.
"""

from __future__ import annotations

import ast

import pipeline_targets as pt
import pytest

from symbiont.pipeline import PipelineConfig, Target, check_module_level, run_pipeline

TARGET = "def step(state: State, k: int = 3) -> State:\n    return state\n"
LIVE = {**vars(pt), "DATA": [1, 2, 3], "CONFIG": object()}  # the module plus two live objects


def _diags(top: str, module_globals=LIVE):
    src = top + "\n\n" + TARGET
    return check_module_level(
        ast.parse(src), src, module_globals=module_globals, target_name="step"
    )


@pytest.mark.parametrize(
    ("top", "col", "words"),
    [
        ("DATA.clear()", 1, "`DATA.clear()` at the module level would run"),
        ("print('installing')", 1, "move the call into the function"),
        ("DATA[0] = 1", 1, "assigns into an object that already exists"),
        ("State.count = 1", 1, "assigns into an object that already exists"),
        ("a, DATA[0] = 1, 2", 4, "assigns into an object"),
        ("del DATA", 1, "`del`"),
        ("global SCALE", 1, "`global`"),
        ("SCALE += 1", 1, "augmented assignment"),
        ("if True:\n    SEEN = 1", 1, "`if`"),
        ("for i in (1, 2):\n    pass", 1, "`for` loop"),
        ("while False:\n    pass", 1, "`while` loop"),
        ("with CONFIG:\n    pass", 1, "`with`"),
        ("try:\n    pass\nexcept Exception:\n    pass", 1, "`try`"),
        ("assert DATA", 1, "`assert`"),
        ("raise SystemExit", 1, "`raise`"),
        ("X = len('abc')", 5, "calls `len`"),
        ("X = [str(i) for i in (1, 2)]", 6, "calls `str`"),
        ("X = DATA[0]", 5, "reads the module's live object `DATA` (list)"),
        ("X = CONFIG", 5, "live object `CONFIG`"),
        ("X = (Y := 2)", 6, "cannot be evaluated at the module level"),
        ("A = B + 1\nB = 2", 5, "`B`, which is not defined at that point"),
        ("def h() -> Later:\n    return Later()\n\nclass Later:\n    pass", 12, "`Later`"),
        ("from math import *", 1, "import *"),
        ("class Meta(type):\n    pass\n\nclass K(metaclass=Meta):\n    pass", 19, "metaclass"),
        ("class K:\n    x = print('side effect')", 9, "calls `print`"),
        ("class K:\n    DATA.append(1)", 5, "would run"),
        ("def h(x=DATA.pop()):\n    return x", 9, "a default value"),
        ("def h(x: int = len('a')) -> int:\n    return x", 16, "calls `len`"),
        (
            "def register(f):\n    return f\n\n@register\ndef h():\n    pass",
            2,
            "decorator `@register`",
        ),
        (
            "import functools\n\n@functools.wraps(step)\ndef h():\n    pass",
            2,
            "`@functools.wraps(step)`",
        ),
    ],
)
def test_anything_that_runs_code_at_the_module_level_is_refused(
    top: str, col: int, words: str
) -> None:
    diags = _diags(top)
    assert diags, f"accepted: {top!r}"
    d = diags[0]
    assert (d.stage, d.kind) == ("policy", "module_level")
    assert words in d.message, d.message
    assert d.col == col and d.line is not None and d.excerpt and "^" in d.excerpt


@pytest.mark.parametrize(
    "top",
    [
        '"""A docstring."""',
        "import math\nimport collections.abc\nfrom typing import Optional as Opt",
        "from __future__ import annotations",
        "LIMIT = 10\nHALF = LIMIT // 2\nNAMES = ('a', 'b')\nTABLE = {n: i for i, n in ((0, 'a'), (1, 'b'))}",
        "SQUARES = [i * i for i in (1, 2, 3)]\nBIG = SCALE * 10\nLABEL = f'{SCALE}x'",
        "import math\nTAU = 2 * math.pi\nNEG: float = -1.5",
        "ALIASED = State\nPICK = lambda xs: sorted(xs)[0]",
        "def _h(x: int, y: int = 2, *, z: tuple[int, ...] = ()) -> int:\n    return print(x) or y",
        "from dataclasses import dataclass, field\n\n@dataclass(frozen=True)\nclass P:\n    x: int = 0",
        "import functools\n\n@functools.lru_cache(maxsize=128)\ndef _fib(n: int) -> int:\n"
        "    return n if n < 2 else _fib(n - 1) + _fib(n - 2)",
        "class K:\n    '''doc'''\n    LIMIT = 3\n    @property\n    def v(self) -> int:\n"
        "        return self._v\n    @v.setter\n    def v(self, value: int) -> None:\n"
        "        self._v = value\n    @staticmethod\n    def s() -> int:\n        return 1",
        "import enum\n\nclass Color(enum.Enum):\n    RED = 1\n    GREEN = 2",
        "class Sub(State):\n    pass",
        "def _h(xs: List[int], f: Optional[float] = None) -> tp.Dict[str, int]:\n    return {}",
        "Pair = tp.Tuple[int, int]\nMaybe = Optional[State]",
    ],
)
def test_definitions_and_literal_constants_are_allowed(top: str) -> None:
    assert _diags(top) == []


def test_the_target_defs_defaults_are_the_declared_ones_and_not_examined() -> None:
    src = "def step(state: State, k: int = DATA[0]) -> State:\n    return state\n"
    assert check_module_level(ast.parse(src), src, module_globals=LIVE, target_name="step") == []


def test_a_side_effect_above_the_def_is_refused_by_the_pipeline_before_any_trial() -> None:
    reply = f"```python\nSCALE_BACKUP = 1\nhelper_double.calls = 0\n\n{TARGET}```"
    result = run_pipeline(reply, Target.from_function(pt.step), PipelineConfig(typecheck=False))
    assert result.candidate is None and result.stage == "policy"
    (d,) = result.diagnostics
    assert (d.kind, d.line) == ("module_level", 2)
    assert "helper_double.calls = 0" in d.message


def test_binding_an_existing_module_name_is_refused_at_compile() -> None:
    for top, name in (
        ("SCALE = 4", "SCALE"),
        ("def helper_double(x: int) -> int:\n    return x", "helper_double"),
    ):
        reply = f"```python\n{top}\n\n{TARGET}```"
        result = run_pipeline(reply, Target.from_function(pt.step), PipelineConfig(typecheck=False))
        assert result.stage == "compile", result.diagnostics
        (d,) = result.diagnostics
        assert d.kind == "overwrite" and f"already has a `{name}`" in d.message and d.line == 1
