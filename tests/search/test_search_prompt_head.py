"""The search prompt's function head is taken from the active revision; a new best whose
head is the one before's reuses it without a parse (`prompts._heads_alike`), and in every
case it reuses one, the parse would have found the same."""

from __future__ import annotations

import itertools

from symbiont.search.prompts import _heads_alike
from symbiont.signature import head_of

DOC = 'def f(x: int) -> int:\n    """Return x."""\n    return x + 1\n'
SOURCES = [
    DOC,
    'def f(x: int) -> int:\n    """Return x."""\n    return x + 2\n',
    'def f(x: int) -> int:\n    """Return x,\n    or more."""\n    return x + 3\n',
    "def f(x: int) -> int:\n    '''Return x.'''\n    return x\n",
    "def f(x: int) -> int:\n    return x + 1\n",
    "def f(x: int) -> int:\n    # a comment\n\n    return x + 1\n",
    'def f(x: int) -> int:\n    """A docstring now."""\n    return x\n',
    'def f(x: int) -> int:\n    ("""Parenthesised."""\n    )\n    return x\n',
    'def f(x: int) -> int:\n    r"""Raw."""\n    return x\n',
    "def f(x: int) -> int:\n    'single'\n    return x\n",
    "def f(x: int) -> int:\n    rb'bytes are no docstring'\n    return x\n",
    'def f(x: int) -> int:\n    """Return x."""; y = 1\n    return x\n',
    "def f(x: int) -> int:  # note\n    return x\n",
    'def f(x: int) -> int:  # """\n    """Doc."""\n    return x\n',
    "def f(x: int) -> int: return x\n",
    'def f(x: int) -> int:\n    """Return x."""\n    return x\n\n\ndef f(x: int) -> int:\n    return 0\n',
    'def f(\n    x: int,\n) -> int:\n    """Return x."""\n    return x\n',
    "def f(\n    x: int,\n) -> int:\n    return x * 2\n",
    'def g(x: int) -> int:\n    """Return x."""\n    return x\n',
    'def f(x: int) -> int:\n    """Return x."""\n',
    'def f(x: int) -> int:\n    """Return x."""  # why\n    return x\n',
    '    def f(x: int) -> int:\n        """Indented."""\n        return x\n',
]


def test_a_head_is_reused_only_where_the_parse_finds_the_same() -> None:
    reused = 0
    for before, after in itertools.product(SOURCES, SOURCES):
        head = head_of(before, "f")
        if head is not None and _heads_alike(after, head, "f"):
            assert head_of(after, "f") == head, (before, after)
            reused += 1
    assert reused >= 10


def test_the_usual_case_of_a_search_is_reused() -> None:
    head = head_of(DOC, "f")
    assert head is not None
    assert _heads_alike(SOURCES[1], head, "f") and _heads_alike(SOURCES[2], head, "f") is False
    plain = head_of(SOURCES[4], "f")
    assert plain is not None and _heads_alike(SOURCES[5], plain, "f")
    assert not _heads_alike(SOURCES[6], plain, "f")  # a docstring appeared: parsed
