"""The pipeline reads a candidate once: one walk over its tree shared by the stages that look
at every node, and (from the search) one extraction and one parse shared with the duplicate
check. What is judged must stay exactly what is compiled."""

from __future__ import annotations
import __future__

import ast
from pathlib import Path

import pipeline_targets as pt
import pytest

import symbiont.pipeline
from symbiont.pipeline import (
    PipelineConfig,
    PipelineResult,
    Target,
    extract_and_parse,
    run_pipeline,
)
from symbiont.pipeline._util import walk
from symbiont.pipeline.compile import Candidate, compile_candidate
from symbiont.pipeline.parse import parse_and_compile
from symbiont.pipeline.signature import check_signature

PIPELINE_FILES = sorted(Path(symbiont.pipeline.__file__).parent.glob("*.py"))


@pytest.mark.parametrize("path", PIPELINE_FILES, ids=lambda p: p.name)
def test_walk_is_ast_walk_as_a_list(path: Path) -> None:
    tree = ast.parse(path.read_text())
    ours, theirs = walk(tree), list(ast.walk(tree))
    assert len(ours) == len(theirs) > 100
    assert all(a is b for a, b in zip(ours, theirs, strict=True))


def test_walk_of_a_subtree_starts_at_it() -> None:
    call = ast.parse("f(a, *b, k=[c for c in d])").body[0]
    names = [n.id for n in walk(call) if isinstance(n, ast.Name)]
    assert walk(call)[0] is call
    # breadth first: `b` (under the Starred) before the list comprehension's `c` (its element),
    # which comes before the comprehension's target `c` and iterable `d` (one level deeper)
    assert names == ["f", "a", "b", "c", "c", "d"]


# -- extracted once, parsed once (the search's path) -------------------------------------------

NO_TC = PipelineConfig(typecheck=False)
HEAD = "def step(state: State, k: int = 3) -> State:\n"


def _both(reply: str) -> tuple[PipelineResult, PipelineResult]:
    """The reply through the pipeline on its own, and from `extract_and_parse`'s result."""
    target = Target.from_function(pt.step)
    extracted = extract_and_parse(reply, target)
    return run_pipeline(reply, target, NO_TC), run_pipeline(
        reply, target, NO_TC, extracted=extracted
    )


def _run(fn_code: object, state: pt.State) -> pt.State:
    fn = type(pt.step)(fn_code, pt.step.__globals__, "step", pt.step.__defaults__)
    return fn(state)


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("    import os\n    os.system('true')\n    return state\n", "denied_import"),
        ("    eval('1')\n    return state\n", "denied_name"),
        ("    return State(len(open('x').read()), state.name)\n", "denied_name"),
    ],
)
def test_a_policy_refusal_stands_on_the_single_parse_path(body: str, kind: str) -> None:
    reply = f"```python\n{HEAD}{body}```"
    alone, shared = _both(reply)
    assert shared.candidate is None and shared.stage == "policy"
    assert kind in {d.kind for d in shared.diagnostics}
    assert [(d.kind, d.line, d.col) for d in shared.diagnostics] == [
        (d.kind, d.line, d.col) for d in alone.diagnostics
    ]


def test_a_module_level_call_is_refused_on_the_single_parse_path() -> None:
    reply = f"```python\nimport math\nTABLE = list(range(math.floor(2.5)))\n\n{HEAD}    return state\n```"
    _, shared = _both(reply)
    assert shared.stage == "policy"
    assert [d.kind for d in shared.diagnostics] == ["module_level"]
    assert shared.diagnostics[0].line == 2


def test_the_extracted_tree_is_what_is_compiled() -> None:
    reply = f"```python\n{HEAD}    return State(state.count * 10 + k, state.name)\n```"
    target = Target.from_function(pt.step)
    extracted = extract_and_parse(reply, target)
    assert extracted is not None and extracted.tree is not None
    result = run_pipeline(reply, target, NO_TC, extracted=extracted)
    assert result.candidate is not None and result.notes == []
    assert result.candidate.source == extracted.source
    assert _run(result.candidate.code, pt.State(2)).count == 23


def test_a_repaired_candidate_is_parsed_again_and_the_repair_is_compiled() -> None:
    # `import sys` nothing uses is cut by a repair: the tree parsed before the repair has
    # the import (and the policy would refuse it); what is judged and compiled must not.
    reply = f"```python\nimport sys\n\n{HEAD}    return State(state.count + 2 * k, state.name)\n```"
    target = Target.from_function(pt.step)
    extracted = extract_and_parse(reply, target)
    assert extracted is not None and extracted.tree is not None
    assert isinstance(extracted.tree.body[0], ast.Import)
    result = run_pipeline(reply, target, NO_TC, extracted=extracted)
    cand = result.candidate
    assert cand is not None, result.diagnostics
    assert "import sys" not in cand.source and "import sys" not in result.source
    assert cand.helpers_code is None  # nothing left to run at the module level
    assert any("was removed" in note for note in result.notes)
    assert _run(cand.code, pt.State(1)).count == 7


def test_a_reply_that_only_parses_once_repaired_is_repaired_from_the_text() -> None:
    # the docstring's first line indented unlike the body: no tree to hand over
    reply = (
        f'```python\n{HEAD}     """Increment the count by k."""\n'
        "    return State(state.count + k + 1, state.name)\n```"
    )
    target = Target.from_function(pt.step)
    extracted = extract_and_parse(reply, target)
    assert extracted is not None and extracted.tree is None
    alone, shared = _both(reply)
    assert shared.candidate is not None and alone.candidate is not None
    assert shared.candidate.source == alone.candidate.source != extracted.source
    assert shared.notes == alone.notes != []
    assert _run(shared.candidate.code, pt.State(1)).count == 5


def test_a_body_only_reply_gets_its_head_on_the_single_parse_path() -> None:
    reply = "```python\nreturn State(state.count + 100, state.name)\n```"
    alone, shared = _both(reply)
    assert shared.candidate is not None and alone.candidate is not None
    assert shared.candidate.source == alone.candidate.source
    assert shared.candidate.source.startswith(HEAD)
    assert _run(shared.candidate.code, pt.State(1)).count == 101


@pytest.mark.parametrize(
    "reply",
    [
        "no code at all",
        "```python\ndef step(state: State, k: int = 3) -> State:\n    return (\n```",
        "```python\ndef step(state: State) -> State:\n    return state\n```",
        "```python\ndef step(state: State, k: int = 3) -> State:\n    return\x00 state\n```",
        "```python\ndef step(state: State, k: int = 3) -> State:\n    yield state\n```",
        # an error only the compiler finds (the tree is handed over, the compile check runs)
        "```python\ndef step(state: State, k: int = 3) -> State:\n    break\n```",
        # a tail that is not Python, cut by a repair
        "```python\ndef step(state: State, k: int = 3) -> State:\n    return state\nbreak\n```",
        "```python\ndef step(state, k=3):\n    return state\n```",  # annotations put back
        "```python\nimport math\n\ndef step(state: State, k: int = 3) -> State:\n"
        "    return State(math.floor(state.count), state.name)\n\nprint(step(State(1)))\n```",
    ],
)
def test_both_paths_read_a_reply_alike(reply: str) -> None:
    alone, shared = _both(reply)
    assert (shared.stage, shared.source, shared.notes) == (alone.stage, alone.source, alone.notes)
    assert [d.to_dict() for d in shared.diagnostics] == [d.to_dict() for d in alone.diagnostics]
    assert (shared.candidate is None) == (alone.candidate is None)
    if shared.candidate is not None and alone.candidate is not None:
        assert shared.candidate.source == alone.candidate.source
        assert shared.candidate.code.co_code == alone.candidate.code.co_code


# -- compiled once: the parse stage's trial compile gives the compile stage its code ----------

CODE_FIELDS = (
    "co_argcount", "co_posonlyargcount", "co_kwonlyargcount", "co_nlocals", "co_stacksize",
    "co_flags", "co_code", "co_names", "co_varnames", "co_freevars", "co_cellvars",
    "co_filename", "co_name", "co_qualname", "co_firstlineno", "co_linetable",
    "co_exceptiontable",
)  # fmt: skip


def _same_code(a: object, b: object) -> None:
    assert type(a) is type(b)
    if not isinstance(a, type(_same_code.__code__)):
        assert a == b
        return
    for name in CODE_FIELDS:
        assert getattr(a, name) == getattr(b, name), name
    assert len(a.co_consts) == len(b.co_consts)  # type: ignore[attr-defined]
    for x, y in zip(a.co_consts, b.co_consts, strict=True):  # type: ignore[attr-defined]
        _same_code(x, y)


def _taken_and_anew(source: str, target: Target) -> tuple[Candidate, Candidate]:
    """The candidate compiled with the parse stage's module code, and compiled anew."""
    tree, module_code = parse_and_compile(source)
    node = check_signature(tree, target.signature, source)
    taken = compile_candidate(tree, node, source, target, module_code=module_code)
    return taken, compile_candidate(tree, node, source, target)


# Function bodies under HEAD: with and without annotations inside (PEP 563 in the target's
# module changes how an annotation inside compiles).
BODIES = [
    "    return State(state.count + k, state.name)\n",
    "    xs = [i * k for i in range(state.count) if i % 2]\n"
    "    f = lambda v: v + 1\n"
    "    def inner(y: int) -> int:\n        return y * k + f(y)\n"
    "    return State(sum(inner(x) for x in xs), state.name)\n",
    "    try:\n        n = {i: i for i in range(k)}[k - 1]\n    except KeyError:\n"
    "        n = 0\n    finally:\n        pass\n    return State(n, state.name)\n",
    '    """A docstring."""\n    class Box:\n        v = k\n    return State(Box.v, state.name)\n',
    # an annotation inside: compiled anew (PEP 563 in the target's module changes it)
    "    def inner(y: int):\n        return y\n    return State(inner(k), state.name)\n",
    "    box: list[int] = [k]\n    return State(box[0], state.name)\n",
    # nested code without annotations (the target's module compiles with PEP 563)
    "    def inner(y):\n        return [y * i for i in range(k)]\n"
    "    g = lambda v=2: v + 1\n"
    "    return State(sum(inner(g())) + len({j for j in 'ab'}), state.name)\n",
]


@pytest.mark.parametrize("body", BODIES)
def test_the_walked_nodes_give_the_same_reuse_verdict_as_a_walk_of_the_body(body: str) -> None:
    """The pipeline hands the compile stage every node it walked (the function's own
    annotated parameters and return annotation among them): the verdict on reusing the
    parse stage's code is the one a walk of the function's body alone gives."""
    source = HEAD + body
    tree, _ = parse_and_compile(source)
    node = tree.body[0]
    flags = __future__.annotations.compiler_flag
    alone = symbiont.pipeline.compile._reusable(tree, node, flags)
    assert symbiont.pipeline.compile._reusable(tree, node, flags, walk(tree)) is alone
    assert alone is not ("inner(y: int)" in body or "box: list" in body)


@pytest.mark.parametrize("body", BODIES)
def test_the_code_taken_from_the_parse_stage_is_the_code_compiled_anew(body: str) -> None:
    source = HEAD + body
    target = Target.from_function(pt.step)
    taken, anew = _taken_and_anew(source, target)
    _same_code(taken.code, anew.code)
    assert taken.code.co_filename == taken.filename != "<candidate>"
    assert _run(taken.code, pt.State(2)).count == _run(anew.code, pt.State(2)).count
    # and run_pipeline, which takes that path, gives the same code
    result = run_pipeline(f"```python\n{source}```", target, NO_TC)
    assert result.candidate is not None
    _same_code(result.candidate.code, anew.code)


@pytest.mark.parametrize(
    "source",
    [
        # a helper: the module code holds more than the function; compiled anew
        "K = 2\n\n" + HEAD + "    return State(state.count + K * k, state.name)\n",
        # a decorator the compile stage strips
        "@symbiont.evolvable\n" + HEAD + "    return State(state.count + 5, state.name)\n",
        # a future import changes how annotations compile
        "from __future__ import annotations\n\n" + HEAD + "    return state\n",
    ],
)
def test_candidates_that_are_not_a_lone_plain_def_are_compiled_anew(source: str) -> None:
    taken, anew = _taken_and_anew(source, Target.from_function(pt.step))
    _same_code(taken.code, anew.code)
