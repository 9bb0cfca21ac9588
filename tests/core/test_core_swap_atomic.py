"""Atomic swaps and side-effect-free promotion, through the real pipeline (issue 9, items 2-3).

A revision's helpers and constants are bound under per-revision names, so a call that is
running during a swap finishes entirely on its own revision, helpers included; promotion and
resume only bind names, and a stored revision whose module level does more is refused, not run.
"""

from __future__ import annotations

import random
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import swap_targets as st

from symbiont.errors import RevisionError
from symbiont.evolvable import Revision
from symbiont.pipeline import PipelineConfig, Target, run_pipeline
from symbiont.testing import reset

REVISIONS = range(1, 11)


def _revision_source(r: int) -> str:
    """Revision r: its body says r, its helper says r through a module constant of its own.

    The helper's signature changes between odd and even revisions, so a call of one revision
    that reached the other's helper would raise TypeError rather than only mix numbers.
    """
    if r % 2:
        helper, call = "def _which(x: int) -> int:\n    return MINE\n", "_which(x)"
    else:
        helper = "def _which(x: int, y: int, z: int = 0) -> int:\n    return MINE + z\n"
        call = "_which(x, 1)"
    return (
        "import time\n\n"
        f"MINE = {r}\n\n"
        f"{helper}\n"
        "def revision_and_helper(x: int) -> tuple[int, int]:\n"
        f"    a = {r}\n"
        "    time.sleep(0)  # lets other threads run (and swap) in the middle of this call\n"
        f"    return (a, {call})\n"
    )


def _compiled(fn, source: str, number: int) -> Revision:
    result = run_pipeline(
        f"```python\n{source}```", Target.from_function(fn), PipelineConfig(typecheck=False)
    )
    assert result.candidate is not None, [d.render() for d in result.diagnostics]
    c = result.candidate
    return Revision(
        number=number,
        source=c.source,
        code=c.code,
        helpers_code=c.helpers_code,
        helper_names=c.helper_names,
    )


def _reset(fn) -> None:
    """`reset`, and the helpers the revisions installed in the module taken out."""
    h = fn.symbiont
    reset(fn)
    for name in ("MINE", "_which", *h.owned_names):
        st.__dict__.pop(name, None)
    h._owned_names.clear()


@pytest.fixture(autouse=True)
def clean():
    yield
    _reset(st.revision_and_helper)
    _reset(st.blocking_answer)


def test_eight_threads_swapping_and_calling_see_whole_revisions_helpers_included() -> None:
    fn = st.revision_and_helper
    h = fn.symbiont
    for r in REVISIONS:
        h.add_revision(_compiled(fn, _revision_source(r), r))
    results: list[list[tuple[int, int]]] = [[] for _ in range(8)]
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def worker(i: int) -> None:
        rng = random.Random(i)
        start.wait()
        for _ in range(1000):
            h.activate(rng.choice(REVISIONS))  # every thread swaps ...
            try:
                results[i].append(fn(1))  # ... and calls while the others swap
            except Exception as exc:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    calls = [r for per_thread in results for r in per_thread]
    mixed = [(a, b) for a, b in calls if a != b]
    assert not errors and not mixed, (
        f"{len(errors)} calls raised (e.g. {errors[:1]}) and {len(mixed)} of {len(calls)} "
        f"mixed two revisions ({sorted(set(mixed))[:5]})"
    )
    assert len(calls) == 8000
    assert len({a for a, _ in calls}) > 1  # the swaps did happen under the callers


def test_a_running_call_finishes_with_its_own_revisions_helpers() -> None:
    fn = st.blocking_answer
    h = fn.symbiont
    template = (
        "ANSWER = {n}\n\n"
        "def _answer() -> int:\n    return ANSWER\n\n"
        "def blocking_answer() -> int:\n"
        "    entered.set()\n"
        "    gate.wait(5)\n"
        "    return _answer()\n"
    )
    first = h.add_revision(_compiled(fn, template.format(n=1), 1))
    second = h.add_revision(_compiled(fn, template.format(n=2), 2))
    h.activate(first)
    st.gate.clear()
    st.entered.clear()
    answers: list[int] = []
    t = threading.Thread(target=lambda: answers.append(fn()))
    t.start()
    assert st.entered.wait(5)
    h.activate(second)  # while the call is blocked inside revision 1
    st.gate.set()
    t.join(5)
    assert answers == [1]
    assert fn() == 2


def test_promotion_binds_new_names_and_changes_nothing_else_in_the_module() -> None:
    fn = st.revision_and_helper
    h = fn.symbiont
    source = (
        '"""A docstring a model put on top."""\n\n'
        "LIMIT: int = 7\n\n"
        "def revision_and_helper(x: int) -> tuple[int, int]:\n"
        "    return (LIMIT, LIMIT)\n"
    )
    before = dict(st.__dict__)
    h.activate(h.add_revision(_compiled(fn, source, 1)))
    assert fn(1) == (7, 7)
    added = set(st.__dict__) - set(before)
    assert added and all(name.startswith("LIMIT__sym_") for name in added), added
    changed = [k for k, v in before.items() if st.__dict__.get(k) is not v]
    assert changed == [], f"promotion rebound existing module names: {changed}"
    assert st.__doc__ == before["__doc__"]


def test_a_stored_revision_with_a_side_effect_is_refused_at_resume_not_run() -> None:
    fn = st.revision_and_helper
    h = fn.symbiont
    stored = Revision(  # as loaded from the store: source only, compiled on activation
        number=1,
        source="DATA.clear()\n\ndef revision_and_helper(x: int) -> tuple[int, int]:\n    return (1, 1)\n",
    )
    h.add_revision(stored)
    with pytest.raises(RevisionError) as info:
        h.activate(1)
    assert st.DATA == [1, 2, 3]
    assert fn(1) == (0, 0)
    message = str(info.value)
    assert "not installed" in message and "DATA.clear()" in message and "line 1" in message


def test_reactivating_a_revision_binds_nothing_new_its_helpers_keep_their_state() -> None:
    fn = st.revision_and_helper
    h = fn.symbiont
    template = (
        "_CALLS: list[int] = []\n\n"
        "def revision_and_helper(x: int) -> tuple[int, int]:\n"
        "    _CALLS.append(x)\n"
        "    return ({n}, len(_CALLS))\n"
    )
    first = h.add_revision(_compiled(fn, template.format(n=1), 1))
    second = h.add_revision(_compiled(fn, template.format(n=2), 2))
    h.activate(first)
    assert fn(5) == (1, 1)
    h.activate(second)
    assert fn(5) == (2, 1)  # revision 2 has a list of its own
    h.activate(first)  # back: revision 1's helpers are still bound, not executed again
    assert fn(5) == (1, 2)


def test_evolve_end_to_end_refuses_a_side_effect_and_promotes_helpers_under_their_own_names() -> (
    None
):
    """Through `runtime.evolve` (an in-process trial: a candidate would run in this very
    process): the side effect never runs, neither in the trial nor at promotion; the next
    candidate's helper and constant are promoted as per-revision names, and nothing the
    module had is rebound."""
    import symbiont
    from symbiont.models import ScriptedModel

    fn = st.revision_and_helper
    side_effect = (
        "DATA.clear()\n\ndef revision_and_helper(x: int) -> tuple[int, int]:\n    return (x, x)\n"
    )
    helpers = (
        "OFFSET = 40\n\n"
        "def _plus(x: int) -> int:\n    return x + OFFSET\n\n"
        "def revision_and_helper(x: int) -> tuple[int, int]:\n    return (x, _plus(x))\n"
    )

    def check(f) -> None:
        assert f(2) == (2, 42)

    before = dict(st.__dict__)
    rt = symbiont.Runtime(store=False)
    try:
        model = ScriptedModel([f"```python\n{side_effect}```", f"```python\n{helpers}```"])
        report = rt.evolve_sync(fn, model, check=check, attempts=2)
    finally:
        rt.close()
    first, second = report.attempts
    assert first.stage == "policy" and first.diagnostics[0].kind == "module_level"
    assert "DATA.clear()" in first.diagnostics[0].message
    assert st.DATA == [1, 2, 3]
    assert second.accepted and fn(2) == (2, 42)
    added = set(st.__dict__) - set(before)
    assert {name.split("__sym_")[0] for name in added} == {"OFFSET", "_plus"}
    assert all(st.__dict__[k] is v for k, v in before.items())
