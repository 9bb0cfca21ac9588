"""The evolve loop stays bounded: a windowed conversation, token limits, big and cut-off
replies, repeats at every stage, the records of rejected candidates, and an event loop that
keeps running while candidates are checked."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import loop_targets as t

import symbiont
import symbiont.evolve as evolve_module
from symbiont.models import ModelReply, ScriptedModel, Usage
from symbiont.testing import reset


def fenced(code: str) -> str:
    return f"```python\n{code.strip()}\n```\n"


GOOD = "def bump(x: int) -> int:\n    return x + 1\n"


def check_bump(fn: Any) -> None:
    for x in (0, 4):
        assert fn(x) == x + 1, f"bump({x}) returned {fn(x)!r}, expected {x + 1}"


def syntax_error(i: int) -> str:
    return fenced(f"def bump(x: int) -> int:\n    return x + ({i}\n")


def wrong_signature(i: int) -> str:
    return fenced(f"def bump(x: str) -> int:\n    return {i}\n")


def chars(messages: list[dict[str, Any]]) -> int:
    return sum(len(str(m.get("content") or "")) for m in messages)


@pytest.fixture
def runtime():
    rt = symbiont.Runtime(store=False)
    yield rt
    rt.close()
    reset(t.bump, t.halve)


def test_a_300_attempt_run_sends_bounded_requests_and_linear_tokens(runtime) -> None:
    n = 300
    replies = [syntax_error(i) if i % 2 else wrong_signature(i) for i in range(n)]
    model = ScriptedModel(replies)
    report = runtime.evolve_sync(t.bump, model, check=check_bump, attempts=n)
    assert len(report.attempts) == n and not report.ok

    # system + task (with the digest) + 3 exchanges of reply and answer
    window = 3
    assert max(len(call) for call in model.calls) == 2 + 2 * window
    assert len(model.calls[-1]) == 2 + 2 * window
    # Every request is about as long as the one with a full window: no growth with time.
    full_window = chars(model.calls[window])
    assert max(chars(call) for call in model.calls) <= 1.5 * full_window
    # The run's input tokens are linear in its attempts, with the request size as constant.
    assert report.input_tokens <= n * (1.5 * full_window / 4 + 1)
    assert all(a.input_tokens > 0 and a.output_tokens > 0 for a in report.attempts)

    # The digest counts what left the window; the last three attempts are shown verbatim.
    task = model.calls[-1][1]["content"]
    digested = n - 1 - window  # attempts 1 .. n-4 were sent before the last request
    syntax = sum(1 for i in range(digested) if i % 2)
    assert f"attempts 1-{digested}" in task
    assert f"{syntax} syntax errors" in task
    assert f"{digested - syntax} signature mismatches" in task
    shown = [m["content"] for m in model.calls[-1] if m["role"] == "assistant"]
    assert shown == replies[n - 1 - window : n - 1]
    assert report.stop_reason == f"all {n} attempts used"


def test_a_token_budget_stops_the_run_with_its_reason(runtime) -> None:
    model = ScriptedModel([syntax_error(i) for i in range(50)])
    report = runtime.evolve_sync(t.bump, model, check=check_bump, attempts=50, token_budget=2000)
    assert 0 < len(report.attempts) < 50
    assert report.input_tokens + report.output_tokens <= 2000
    assert "token budget" in report.stop_reason and "2,000" in report.stop_reason
    assert "token budget" in report.summary()


def test_max_prompt_tokens_bounds_each_request(runtime) -> None:
    long_comment = "# " + "padding " * 400  # about 800 tokens per reply
    replies = [
        fenced(f"{long_comment}\ndef bump(x: int) -> int:\n    return x + ({i}\n") for i in range(8)
    ]
    model = ScriptedModel(replies)
    runtime.evolve_sync(t.bump, model, check=check_bump, attempts=8, max_prompt_tokens=1500)
    first = chars(model.calls[0])
    assert first < 1500 * 4  # the task alone fits
    for call in model.calls:
        assert chars(call) <= 1500 * 4


def test_a_reply_over_the_size_cap_is_refused_before_parsing(runtime, monkeypatch) -> None:
    parsed: list[str] = []
    real = evolve_module.run_pipeline

    def spy(reply: str, *args: Any, **kwargs: Any) -> Any:
        parsed.append(reply)
        return real(reply, *args, **kwargs)

    monkeypatch.setattr(evolve_module, "run_pipeline", spy)
    huge = fenced(GOOD + "# " + "x" * 300_000)  # a working function under a 300 KB comment
    model = ScriptedModel([huge, fenced(GOOD)])
    report = runtime.evolve_sync(t.bump, model, check=check_bump, attempts=2)
    first = report.attempts[0]
    assert not first.accepted
    assert first.diagnostics[0].kind == "too_large"
    assert "262,144 bytes" in first.diagnostics[0].message
    assert huge not in parsed  # never parsed
    assert report.ok and report.attempts[1].accepted
    # the refusal restates the function to write, and the huge reply is not sent back whole
    second = model.calls[1]
    assert "def bump(x: int) -> int:" in second[-1]["content"]
    assert chars(second) < 50_000


def test_a_cut_off_reply_gets_the_truncation_correction(runtime) -> None:
    cut = ModelReply(
        text="```python\ndef bump(x: int) -> int:\n    return x + 1",
        usage=Usage(50, 20),
        finish_reason="length",
    )
    model = ScriptedModel([cut, fenced(GOOD)])
    report = runtime.evolve_sync(t.bump, model, check=check_bump, attempts=2)
    assert report.attempts[0].diagnostics[0].kind == "truncated"
    answer = model.calls[1][-1]["content"]
    assert "truncated" in answer and "shorter function" in answer
    assert "def bump(x: int) -> int:" in answer
    assert report.ok


def test_a_repeated_parse_failure_is_caught_and_resets_the_conversation(
    runtime, monkeypatch
) -> None:
    parsed: list[str] = []
    real = evolve_module.run_pipeline

    def spy(reply: str, *args: Any, **kwargs: Any) -> Any:
        parsed.append(reply)
        return real(reply, *args, **kwargs)

    monkeypatch.setattr(evolve_module, "run_pipeline", spy)
    broken = syntax_error(7)
    # the same broken code again, and again laid out differently with a comment
    respaced = fenced("def bump(x: int) -> int:  # try\n\n    return x + (7\n")
    model = ScriptedModel([broken, broken, respaced, fenced(GOOD)])
    report = runtime.evolve_sync(t.bump, model, check=check_bump, attempts=4)
    assert [a.repeated for a in report.attempts] == [False, True, True, False]
    assert report.attempts[1].diagnostics[0].kind == "repeat"
    assert "rejected at parse" in report.attempts[1].diagnostics[0].message
    assert parsed.count(broken) == 1 and respaced not in parsed  # not checked again
    third = model.calls[2]
    assert [m["role"] for m in third] == ["system", "user"]  # afresh, alternating roles
    assert "Do not repeat it" in third[-1]["content"]
    assert report.ok


def test_docstring_and_comment_variants_of_a_type_error_are_repeats(runtime) -> None:
    bad = 'def halve(x: int) -> int:\n    """Halve."""\n    return x / 2\n'
    variant = (
        'def halve(x: int) -> int:\n    """\n    Halve.\n    """\n    # divide\n    return x / 2\n'
    )
    model = ScriptedModel(
        [fenced(bad), fenced(variant), fenced("def halve(x: int) -> int:\n    return x // 2\n")]
    )
    report = runtime.evolve_sync(t.halve, model, check=lambda fn: fn(5) == 2, attempts=3)
    assert report.attempts[0].stage == "typecheck"
    assert report.attempts[1].repeated
    assert "rejected at typecheck" in report.attempts[1].diagnostics[0].message
    assert report.ok


def test_rejected_candidates_keep_the_source_extracted_from_them(tmp_path) -> None:
    rt = symbiont.Runtime(store=tmp_path / "s.db")
    try:
        broken = "def halve(x: int) -> int:\n    return x / (2\n"
        typed = "def halve(x: int) -> int:\n    return x / 2\n"
        model = ScriptedModel([f"Sure:\n{fenced(broken)}", fenced(typed), "no code at all"])
        report = rt.evolve_sync(t.halve, model, check=lambda fn: fn(5) == 2, attempts=3)
        assert [a.stage for a in report.attempts] == ["parse", "typecheck", "extract"]
        revs = {r.number: r for r in rt.revisions(t.halve)}
        parse_rev, type_rev, none_rev = (revs[a.revision] for a in report.attempts)  # type: ignore[index]
        assert parse_rev.source.strip() == broken.strip()
        assert type_rev.source.strip() == typed.strip()
        assert parse_rev.content_hash and type_rev.content_hash
        assert none_rev.source == "" and none_rev.reply == "no code at all"
    finally:
        rt.close()
        reset(t.halve)


def test_await_evolve_keeps_the_event_loop_running_through_a_slow_stage(
    runtime, monkeypatch
) -> None:
    ticks = 0
    during: list[tuple[int, int]] = []
    real = evolve_module.run_pipeline

    def slow_pipeline(*args: Any, **kwargs: Any) -> Any:
        before = ticks
        time.sleep(0.3)  # a synchronous stage that takes a while (a type check, say)
        result = real(*args, **kwargs)
        during.append((before, ticks))
        return result

    monkeypatch.setattr(evolve_module, "run_pipeline", slow_pipeline)

    async def main() -> None:
        nonlocal ticks
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        model = ScriptedModel([syntax_error(1), fenced(GOOD)])
        report = await runtime.evolve(t.bump, model, check=check_bump, attempts=2)
        stop.set()
        await task
        assert report.ok

    asyncio.run(main())
    assert len(during) == 2
    # the ticker ran while each slow stage was running in its thread
    assert all(after > before for before, after in during)
    assert threading.active_count() >= 1


def test_bad_loop_options_are_refused_clearly(runtime) -> None:
    with pytest.raises(ValueError, match="history must be >= 0"):
        runtime.evolve_sync(t.bump, ScriptedModel([]), check=check_bump, history=-1)
    with pytest.raises(ValueError, match="token_budget must be a positive"):
        runtime.evolve_sync(t.bump, ScriptedModel([]), check=check_bump, token_budget=0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'histroy'"):
        runtime.evolve_sync(t.bump, ScriptedModel([]), check=check_bump, histroy=2)
