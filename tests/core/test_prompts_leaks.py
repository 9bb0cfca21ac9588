"""What the first prompt shows of the program: names by kind and type, never values.

The end-to-end tests read the messages the model actually received (a ScriptedModel records
every call), so they hold for whatever builds the prompt; the others call the prompt
builder (`symbiont.prompting`) directly.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import prompts_targets as t

import symbiont
from symbiont.models import ScriptedModel
from symbiont.testing import reset

LEAKY_GOOD = """```python
def leaky(p: Point, scale: float) -> Vector:
    return [p.x * scale, p.y * scale]
```"""

# What the old prompt listed for the module: `- module os`, `- SECRET_TOKEN = '...'`.
OFFERED_LINE = re.compile(r"^- .*$", re.MULTILINE)


@pytest.fixture
def runtime() -> Iterator[symbiont.Runtime]:
    rt = symbiont.Runtime(store=False)
    yield rt
    rt.close()
    reset(t.leaky, t.answer, t.shout, t.divide)


def first_request(runtime: symbiont.Runtime, fn: object, **kwargs: object) -> list[dict[str, str]]:
    """The messages of the first request an evolve run sends for `fn`."""
    model = ScriptedModel(["no code in this reply"])
    runtime.evolve_sync(fn, model, attempts=1, **kwargs)  # type: ignore[arg-type]
    return model.calls[0]


def all_text(messages: list[dict[str, str]]) -> str:
    return "\n".join(m["content"] for m in messages)


def size(messages: list[dict[str, str]]) -> int:
    return sum(len(m["content"]) for m in messages)


def listed(messages: list[dict[str, str]]) -> list[str]:
    """The bulleted lines of the task message (where names are offered)."""
    return OFFERED_LINE.findall(messages[-1]["content"])


def test_the_first_prompt_carries_no_constant_value(runtime: symbiont.Runtime) -> None:
    messages = first_request(runtime, t.leaky, check=t.check_scaled)
    text = all_text(messages)
    assert "sk-live-" not in text
    assert t.SECRET_TOKEN[8:20] not in text
    assert "x" * 100 not in text  # not even a slice of the 200 KB string
    assert len(text) < 20_000
    # The names the function uses are still offered, by kind and type.
    lines = listed(messages)
    assert any(re.match(r"- SECRET_TOKEN: str$", line) for line in lines), lines
    assert any(re.match(r"- BIG: str$", line) for line in lines), lines


def test_modules_the_policy_denies_are_not_offered(runtime: symbiont.Runtime) -> None:
    lines = listed(first_request(runtime, t.leaky, check=t.check_scaled))
    offered = " ".join(lines)
    assert not re.search(r"\bos\b", offered), lines
    assert not re.search(r"\bsys\b", offered), lines


def test_the_harness_and_the_answer_key_are_not_offered(runtime: symbiont.Runtime) -> None:
    messages = first_request(runtime, t.leaky, check=t.check_scaled)
    task = messages[-1]["content"]
    for harness in ("expected", "check_scaled", "check_shout", "answer", "shout"):
        assert not re.search(rf"\b{harness}\b", task), harness
    # what `leaky` does use is offered, with signatures and no default values
    lines = listed(messages)
    assert "- class Point(x: float, y: float)" in lines
    clamp = next(line for line in lines if "clamp" in line)
    assert "-1234.5" not in clamp and "9876.5" not in clamp
    assert "value: float" in clamp and "-> float" in clamp


def test_a_local_named_like_a_global_does_not_offer_the_global(runtime: symbiont.Runtime) -> None:
    task = first_request(runtime, t.answer, check=lambda fn: None)[-1]["content"]
    offered = " ".join(OFFERED_LINE.findall(task))
    assert "expected" not in offered


def test_live_failures_show_the_functions_frames_not_its_callers(
    runtime: symbiont.Runtime,
) -> None:
    with pytest.raises(ZeroDivisionError) as caught:
        t.run_program()
    assert runtime.record_failure(caught.value)
    task = first_request(runtime, t.divide, check=lambda fn: None)[-1]["content"]
    assert "ZeroDivisionError" in task
    assert "in divide" in task and "return 100 // x" in task  # the function's own frame
    assert "run_program" not in task and "total += divide(x)" not in task
    assert "test_live_failures" not in task


def test_a_prompt_over_the_cap_is_cut_with_a_visible_note(runtime: symbiont.Runtime) -> None:
    huge = "Make it upper-case. " + "Really, " * 20_000  # 160 KB of task text
    messages = first_request(runtime, t.shout, prompt=huge, check=t.check_shout)
    text = all_text(messages)
    from symbiont.prompting import DEFAULT_MAX_PROMPT_CHARS

    assert size(messages) <= DEFAULT_MAX_PROMPT_CHARS
    assert re.search(r"\[\.\.\. [\d,]+ characters cut", text), text[-400:]
    # what the model must reproduce survives the cut
    assert 'def shout(text: str) -> str:\n    """Upper-case text."""' in text


def test_values_shown_only_when_passed_explicitly_and_each_is_bounded() -> None:
    from symbiont.prompting import first_messages

    h = t.leaky.symbiont
    messages = first_messages(
        h, "", context={"LIMIT": t.LIMIT, "BIG": t.BIG}, max_prompt_chars=8000
    )
    text = all_text(messages)
    assert "LIMIT = 10" in text
    assert "'xxxxxxxx" in text  # the value was asked for: its head is shown...
    assert "x" * 5000 not in text  # ...not all 200 KB
    assert re.search(r"[\d,]+ characters cut", text)
    assert size(messages) <= 8000
    # a name given with its value is not listed a second time without it
    assert not any(line.startswith("- LIMIT:") for line in listed(messages))


def test_context_as_text_is_shown_and_other_types_are_refused() -> None:
    from symbiont.prompting import first_messages

    h = t.shout.symbiont
    text = all_text(first_messages(h, "", context="Inputs are ASCII words."))
    assert "Inputs are ASCII words." in text
    with pytest.raises(TypeError, match="context"):
        first_messages(h, "", context=["not", "a", "mapping"])  # type: ignore[arg-type]


def test_every_cap_holds_and_one_too_small_for_the_rules_is_refused() -> None:
    from symbiont.prompting import first_messages

    for cap in (2000, 2500, 4000):
        messages = first_messages(t.leaky.symbiont, "task " * 2000, max_prompt_chars=cap)
        assert size(messages) <= cap
        assert "def leaky(p: Point, scale: float) -> Vector:" in messages[-1]["content"]
    with pytest.raises(ValueError, match="max_prompt_chars"):
        first_messages(t.leaky.symbiont, "", max_prompt_chars=300)


def test_the_prompts_command_prints_exactly_the_first_messages(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from symbiont.cli import main
    from symbiont.prompting import first_messages

    monkeypatch.setenv("SYMBIONT_HOME", str(tmp_path))  # no store there: the declared body
    target = Path(t.__file__)
    code = main(["prompts", f"{target}:leaky", "--prompt", "Scale it.", "--json"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == first_messages(t.leaky.symbiont, "Scale it.")
    assert "sk-live-" not in json.dumps(printed)

    assert main(["prompts", f"{target}:shout"]) == 0
    out = capsys.readouterr().out
    for message in first_messages(t.shout.symbiont, ""):
        assert message["content"] in out


def test_the_prompts_command_names_what_it_cannot_find(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from symbiont.cli import main

    monkeypatch.setenv("SYMBIONT_HOME", str(tmp_path))
    assert main(["prompts", f"{t.__file__}:check_scaled"]) == 1
    err = capsys.readouterr().err
    assert "check_scaled" in err and "leaky" in err  # what is evolvable there


def test_the_prompts_command_shows_the_stored_active_revision(
    runtime: symbiont.Runtime, tmp_path: Path
) -> None:
    import subprocess

    store = tmp_path / "symbiont.db"
    promoted = 'def shout(text: str) -> str:\n    """\n    Upper-case text.\n    """\n    return text.upper()\n'
    with symbiont.Runtime(store=store) as rt:
        report = rt.evolve_sync(
            t.shout, ScriptedModel([f"```python\n{promoted}```"]), check=t.check_shout
        )
        assert report.ok
    # A fresh process, as a person would run it: the function comes up on the stored revision.
    command = "import sys; from symbiont.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            command,
            "prompts",
            f"{t.__file__}:shout",
            "--store",
            str(store),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    task = json.loads(done.stdout)[-1]["content"]
    assert f"The active revision (r{report.accepted.number})" in task
    head = 'def shout(text: str) -> str:\n    """\n    Upper-case text.\n    """'
    assert f"```python\n{head}\n```" in task


def test_a_long_policy_keeps_the_rules_short_and_the_cap_holds() -> None:
    from symbiont.pipeline import DEFAULT_POLICY
    from symbiont.prompting import first_messages

    h = t.shout.symbiont
    saved = h.options
    try:
        many = DEFAULT_POLICY.extend(imports={f"vendor_module_{i}" for i in range(300)})
        h.options = dataclasses.replace(saved, policy=many)
        messages = first_messages(h, "", max_prompt_chars=2000)
    finally:
        h.options = saved
    assert size(messages) <= 2000
    system = messages[0]["content"]
    assert "`os`" in system and "`sys`" in system  # the usual ones are named
    assert "more that the policy denies" in system
