"""Stage 1: finding the candidate in a model's reply."""

from __future__ import annotations

import pytest

from symbiont.errors import StageError
from symbiont.pipeline import extract_code

TARGET = "def step(state: State, k: int = 3) -> State:\n    return state\n"


def test_python_fence_with_prose_around() -> None:
    reply = f"Sure! Here is the function:\n\n```python\n{TARGET}```\n\nIt returns the state."
    assert extract_code(reply, "step") == TARGET


@pytest.mark.parametrize("tag", ["py", "", "python3", "Python"])
def test_other_fence_tags(tag: str) -> None:
    assert extract_code(f"```{tag}\n{TARGET}```", "step") == TARGET


def test_tilde_fence_and_crlf() -> None:
    reply = f"~~~python\r\n{TARGET.replace(chr(10), chr(13) + chr(10))}~~~\r\n"
    assert extract_code(reply, "step") == TARGET


def test_several_blocks_picks_the_target_and_keeps_helpers() -> None:
    reply = (
        "First a helper:\n```python\nimport math\n\ndef _grow(x: int) -> int:\n    return x + 1\n```\n"
        "An example of use (not part of the answer):\n```python\nprint(step(State(1), 2))\n```\n"
        f"And the function:\n```python\n{TARGET}```\n"
        "Run it with:\n```bash\npython main.py\n```\n"
    )
    code = extract_code(reply, "step")
    assert code.startswith("import math\n\ndef _grow")
    assert code.endswith(TARGET)
    assert "print(" not in code and "python main.py" not in code


def test_last_defining_block_wins() -> None:
    first = TARGET.replace("return state", "return None")
    reply = f"Draft:\n```python\n{first}```\nFinal:\n```python\n{TARGET}```"
    assert extract_code(reply, "step") == TARGET


def test_code_only_reply() -> None:
    assert extract_code(TARGET, "step") == TARGET


def test_unfenced_code_between_prose() -> None:
    reply = f"Here is my answer.\n\n{TARGET}\nThis should work well for you."
    assert extract_code(reply, "step") == TARGET


def test_unclosed_fence_runs_to_the_end() -> None:
    assert extract_code(f"```python\n{TARGET}", "step") == TARGET


def test_indented_block_is_dedented() -> None:
    indented = "".join("    " + ln + "\n" for ln in TARGET.splitlines())
    assert extract_code(f"1. Code:\n   ```python\n{indented}   ```", "step") == TARGET


def test_reasoning_section_is_ignored() -> None:
    reply = f"<think>maybe ```python\ndef step(): pass\n``` no</think>\n```python\n{TARGET}```"
    assert extract_code(reply, "step") == TARGET


@pytest.mark.parametrize("reply", ["", "   \n", "I cannot help with that.", "Sure."])
def test_no_code_is_a_diagnostic_saying_what_to_send(reply: str) -> None:
    with pytest.raises(StageError) as info:
        extract_code(reply, "step", def_line="def step(state: State, k: int = 3) -> State:")
    (diag,) = info.value.diagnostics
    assert (diag.stage, diag.kind) == ("extract", "no_code")
    assert "def step(state: State, k: int = 3) -> State:" in diag.message
    assert "```python" in diag.message


def test_block_without_target_is_still_returned_for_the_signature_stage() -> None:
    code = extract_code("```python\ndef other(x: int) -> int:\n    return x\n```", "step")
    assert code.startswith("def other")
