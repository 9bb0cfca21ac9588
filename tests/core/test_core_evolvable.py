"""The decorator, revisions and the in-place swap (no model, no pipeline involved)."""

from __future__ import annotations

import sys
import threading
import types
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import core_targets
import importer_module

import symbiont
from symbiont.evolvable import Revision
from symbiont.testing import reset


def body_returning(tag: int) -> types.CodeType:
    """The code object of a `tagged` body whose two steps both produce `tag`."""
    src = (
        "def tagged(x: int) -> tuple[int, int]:\n"
        f"    a = {tag}\n"
        "    total = 0\n"
        "    for i in range(x):\n"
        "        total += i\n"
        f"    b = {tag}\n"
        "    return (a, b)\n"
    )
    ns: dict[str, object] = {}
    exec(compile(src, f"<symbiont test tagged {tag}>", "exec"), ns)
    fn = ns["tagged"]
    assert isinstance(fn, types.FunctionType)
    return fn.__code__


@pytest.fixture(autouse=True)
def reset_tagged():
    yield
    reset(core_targets.tagged)


def test_decorator_returns_the_same_function_with_a_handle() -> None:
    fn = core_targets.tagged
    assert isinstance(fn, types.FunctionType)
    assert fn.__name__ == "tagged"
    assert symbiont.handle(fn) is fn.symbiont
    assert fn.symbiont.key == "core_targets.tagged"
    assert fn(4) == (0, 0)


def test_options_are_kept() -> None:
    opts = core_targets.slow_then_answer.symbiont.options
    assert (opts.timeout_s, opts.typecheck, opts.trial) == (1.5, False, "inprocess")


def test_signature_captures_every_kind_of_parameter() -> None:
    sig = core_targets.with_everything.symbiont.signature
    kinds = [(p.name, p.kind, p.annotation, p.default) for p in sig.params]
    assert kinds == [
        ("a", "POSITIONAL_ONLY", "int", None),
        ("b", "POSITIONAL_OR_KEYWORD", "Optional[list[int]]", "None"),
        ("args", "VAR_POSITIONAL", "str", None),
        ("c", "KEYWORD_ONLY", "float", "1.5"),
        ("kw", "VAR_KEYWORD", "bool", None),
    ]
    assert sig.returns == "dict[str, int]"
    assert sig.render(with_docstring=False) == (
        "def with_everything(a: int, /, b: Optional[list[int]] = None, *args: str, "
        "c: float = 1.5, **kw: bool) -> dict[str, int]:"
    )
    assert '"""Docstring of with_everything."""' in sig.render()


def test_runtime_lists_signatures_for_prompts() -> None:
    rt = symbiont.Runtime(store=False)
    try:
        rendered = rt.signatures()
        assert any(s.startswith("def tagged(x: int) -> tuple[int, int]:") for s in rendered)
        assert core_targets.tagged.symbiont in rt.evolvables
    finally:
        rt.close()


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda: lambda x: x, "lambdas"),
        (lambda: len, "builtins"),
        (lambda: _method(), "methods"),
        (lambda: _closure(), "nested functions or closures"),
        (lambda: staticmethod(_top), "methods"),
        (lambda: 42, "got int"),
    ],
)
def test_unsupported_targets_are_refused_with_a_clear_error(make, needle) -> None:
    with pytest.raises(symbiont.DeclarationError, match=needle) as info:
        symbiont.evolvable(make())
    assert "plain functions defined at the top level of a module" in str(info.value)


def _top(x: int) -> int:
    return x


def _method():
    class K:
        def m(self) -> int:
            return 1

    return K.m


def _closure():
    y = 3

    def inner() -> int:
        return y

    return inner


def test_swap_is_in_place_and_seen_by_earlier_importers() -> None:
    h = core_targets.tagged.symbiont
    fn_before = core_targets.tagged
    rev = h.add_revision(Revision(number=1, source="...", code=body_returning(7)))
    h.activate(rev)
    assert core_targets.tagged is fn_before  # same object
    assert importer_module.call_tagged() == (7, 7)  # imported by name before the swap
    assert h.active.number == 1
    h.rollback()
    assert importer_module.call_tagged() == (0, 0)


def test_rejected_or_unknown_revisions_cannot_be_activated() -> None:
    h = core_targets.tagged.symbiont
    h.add_revision(Revision(number=1, source="x", status="rejected", stage="typecheck"))
    with pytest.raises(symbiont.RevisionError, match="rejected at the typecheck stage"):
        h.activate(1)
    with pytest.raises(symbiont.RevisionError, match="has no revision 9"):
        h.activate(9)


def test_revisions_are_found_whatever_order_they_arrive_in() -> None:
    h = core_targets.tagged.symbiont
    for n in (3, 1, 7, 2, 5):  # a resumed search or a second process adds them out of order
        h.add_revision(Revision(number=n, source=f"r{n}", status="rejected"))
    assert [r.number for r in h.revisions] == [0, 1, 2, 3, 5, 7]
    assert [h.revision(n).source for n in (1, 2, 3, 5, 7)] == ["r1", "r2", "r3", "r5", "r7"]
    h.revisions.reverse()  # a list reordered by hand is still searched
    assert h.revision(5).source == "r5"
    h.revisions.reverse()
    with pytest.raises(symbiont.RevisionError, match="has no revision 4"):
        h.revision(4)


def test_a_running_call_finishes_on_the_old_code() -> None:
    fn = core_targets.slow_then_answer
    h = fn.symbiont
    ns: dict[str, object] = {}
    exec(compile("def slow_then_answer() -> str:\n    return 'new'\n", "<symbiont t>", "exec"), ns)
    new_code = ns["slow_then_answer"].__code__  # type: ignore[attr-defined]
    core_targets.gate.clear()
    core_targets.entered.clear()
    result: list[str] = []
    t = threading.Thread(target=lambda: result.append(fn()))
    t.start()
    assert core_targets.entered.wait(5)
    h.add_revision(Revision(number=1, source="...", code=new_code))
    h.activate(1)  # swap while the call is blocked inside the old body
    core_targets.gate.set()
    t.join(5)
    assert result == ["old"]
    assert fn() == "new"
    h.activate(0)
    del h.revisions[1:]


def test_eight_threads_calling_during_a_thousand_swaps_see_whole_revisions() -> None:
    h = core_targets.tagged.symbiont
    codes = {tag: body_returning(tag) for tag in range(1, 11)}
    for tag in codes:
        h.add_revision(Revision(number=tag, source=f"r{tag}", code=codes[tag]))
    stop = threading.Event()
    seen: list[set[tuple[int, int]]] = [set() for _ in range(8)]
    calls = [0] * 8

    def caller(i: int) -> None:
        fn = core_targets.tagged
        while not stop.is_set():
            seen[i].add(fn(50))
            calls[i] += 1

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for n in range(1000):
        h.activate(1 + n % 10)
    stop.set()
    for t in threads:
        t.join(10)
    results = set().union(*seen)
    assert sum(calls) > 8
    assert all(a == b for a, b in results), f"a call mixed two revisions: {results}"
    assert {a for a, _ in results} <= set(range(11))


# -- decorators around @evolvable (issue 9, item 8) -------------------------------------------


def _import_file(tmp_path: Path, name: str, body: str) -> types.ModuleType:
    import importlib.util

    path = tmp_path / f"{name}.py"
    path.write_text("import functools\n\nimport symbiont\n\n" + body)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_caching_decorator_above_evolvable_is_refused_with_the_reason(tmp_path: Path) -> None:
    body = (
        "@functools.lru_cache(maxsize=None)\n"
        "@symbiont.evolvable\n"
        "def cached_square(x: int) -> int:\n"
        "    return x * x\n"
    )
    with pytest.raises(symbiont.DeclarationError) as info:
        _import_file(tmp_path, "deco_above_cache", body)
    message = str(info.value)
    assert "@functools.lru_cache(maxsize=None)" in message and "above @evolvable" in message
    assert "earlier revision" in message  # the reason: stale answers after a swap
    assert "only decorator" in message


def test_any_other_decorator_above_evolvable_is_refused_with_a_way_out(tmp_path: Path) -> None:
    body = (
        "REGISTRY = []\n\n"
        "def register(f):\n"
        "    REGISTRY.append(f)\n"
        "    return f\n\n"
        "@register\n"
        "@symbiont.evolvable\n"
        "def registered_square(x: int) -> int:\n"
        "    return x * x\n"
    )
    with pytest.raises(symbiont.DeclarationError) as info:
        _import_file(tmp_path, "deco_above_register", body)
    message = str(info.value)
    assert "`@register` above @evolvable" in message
    assert "register(registered_square)" in message  # how to keep the registration


def test_a_caching_decorator_below_evolvable_is_named_not_called_a_closure(tmp_path: Path) -> None:
    body = (
        "@symbiont.evolvable\n"
        "@functools.lru_cache\n"
        "def below_cache(x: int) -> int:\n"
        "    return x * x\n"
    )
    with pytest.raises(symbiont.DeclarationError) as info:
        _import_file(tmp_path, "deco_below_cache", body)
    message = str(info.value)
    assert "`@functools.lru_cache` below @evolvable" in message
    assert "below_cache" in message and "only decorator" in message


def test_a_wrapping_decorator_below_evolvable_is_named(tmp_path: Path) -> None:
    body = (
        "def logged(f):\n"
        "    @functools.wraps(f)\n"
        "    def inner(*args, **kwargs):\n"
        "        return f(*args, **kwargs)\n"
        "    return inner\n\n"
        "@symbiont.evolvable\n"
        "@logged\n"
        "def below_logged(x: int) -> int:\n"
        "    return x * x\n"
    )
    with pytest.raises(symbiont.DeclarationError) as info:
        _import_file(tmp_path, "deco_below_wraps", body)
    message = str(info.value)
    assert "`@logged` below @evolvable" in message
    assert "closure" not in message


def test_evolvable_alone_and_a_registering_decorator_below_are_fine(tmp_path: Path) -> None:
    body = (
        "SEEN = []\n\n"
        "def remember(f):\n"
        "    SEEN.append(f)\n"
        "    return f\n\n"
        "@symbiont.evolvable\n"
        "@remember\n"
        "def remembered(x: int) -> int:\n"
        "    return x + 1\n"
    )
    module = _import_file(tmp_path, "deco_below_register", body)
    assert module.SEEN[0] is module.remembered and module.remembered(1) == 2
