"""The pieces of the bounded loop on their own: the conversation window with its digest, and
the normalised hash that recognises a repeat."""

from __future__ import annotations

import pytest

from symbiont.conversation import Conversation, Exchange, estimate_tokens
from symbiont.repeats import normalised_hash, repeat_key

FIRST = [{"role": "system", "content": "rules"}, {"role": "user", "content": "the task"}]


def exchange(i: int, outcome: str = "syntax error", detail: str = "") -> Exchange:
    return Exchange(i, f"reply {i}", f"answer {i}", outcome, detail)


def test_the_window_keeps_the_last_exchanges_and_digests_the_rest() -> None:
    conv = Conversation(FIRST, window=2)
    conv.add(exchange(1, "check failure", "AssertionError: f(1) returned 2"))
    conv.add(exchange(2))
    conv.add(exchange(3))
    conv.add(exchange(4))
    messages = conv.messages()
    assert [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert [m["content"] for m in messages[2:]] == ["reply 3", "answer 3", "reply 4", "answer 4"]
    task = messages[1]["content"]
    assert task.startswith("the task")
    assert "attempts 1-2" in task
    assert (
        "1 syntax error" in task
        and "1 check failure (last: AssertionError: f(1) returned 2)" in task
    )
    assert FIRST[1]["content"] == "the task"  # the caller's messages are not changed


def test_a_reset_digests_everything_and_says_its_note_once() -> None:
    conv = Conversation(FIRST, window=3)
    conv.add(exchange(1))
    conv.reset("do not repeat", dropped=Exchange(2, "", "", "repeat"))
    messages = conv.messages()
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "1 syntax error, 1 repeat" in messages[1]["content"]
    assert messages[1]["content"].endswith("do not repeat")
    conv.add(exchange(3))
    assert "do not repeat" not in conv.messages()[1]["content"]


def test_max_tokens_drops_old_exchanges_then_clips_the_last() -> None:
    conv = Conversation(FIRST, window=3, max_tokens=300)
    for i in range(1, 4):
        conv.add(Exchange(i, "x" * 400, f"answer {i}", "syntax error"))
    messages = conv.messages()
    assert estimate_tokens(messages) <= 300
    assert messages[-1]["content"] == "answer 3"  # the latest answer survives
    conv.add(Exchange(4, "y" * 5000, "answer 4", "syntax error"))
    messages = conv.messages()
    assert estimate_tokens(messages) <= 300
    assert "characters not shown" in messages[-2]["content"]


def test_plural_outcomes_read_naturally() -> None:
    conv = Conversation(FIRST, window=0)
    for i, outcome in enumerate(["signature mismatch", "signature mismatch", "type error"], 1):
        conv.add(exchange(i, outcome))
    assert "2 signature mismatches, 1 type error" in conv.digest()


def test_bad_window_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="window"):
        Conversation(FIRST, window=-1)
    with pytest.raises(ValueError, match="max_prompt_tokens"):
        Conversation(FIRST, max_tokens=0)


def test_the_normalised_hash_ignores_docstrings_comments_and_layout() -> None:
    a = 'def f(x: int) -> int:\n    """Twice x."""\n    return 2 * x  # double\n'
    b = 'def f(x: int) -> int:\n    """\n    Twice\n    x.\n    """\n\n    return 2*x\n'
    c = "def f(x: int) -> int:\n    return 3 * x\n"
    assert normalised_hash(a) == normalised_hash(b)
    assert normalised_hash(a) != normalised_hash(c)


def test_code_that_does_not_parse_still_hashes_by_its_tokens() -> None:
    a = "def f(x: int) -> int:\n    return (x +\n"
    b = "def f(x: int) -> int:   # again\n\n    return (x +   \n"
    c = "def f(x: int) -> int:\n    return (x -\n"
    assert normalised_hash(a) == normalised_hash(b)
    assert normalised_hash(a) != normalised_hash(c)
    unterminated = 'def f():\n    s = """abc\n'
    assert normalised_hash(unterminated) != normalised_hash(unterminated.replace("abc", "abd"))


def test_a_reply_without_code_is_keyed_by_its_words() -> None:
    assert repeat_key("", "I would  multiply\nby three.") == repeat_key(
        "", "I would multiply by three."
    )
    assert repeat_key("", "multiply by three") != repeat_key("", "multiply by four")
    assert repeat_key("def f():\n    return 1\n", "anything") == normalised_hash(
        "def f():\n    return 1\n"
    )
