"""Does a task ask for a change? A small, predictable rule, not a model.

Capabilities that write (permission `write_files` or `side_effects`) are offered to the
agent only for tasks that ask for a change, so a model cannot "answer" a question by
running an update. The rule: the task contains a change verb as a word
(`update`, `set`, `change`, `delete`, `create`, `add`, `write`, `raise`, ... — `CHANGE_VERBS`,
with their -s/-ed/-ing forms), not used as a noun right after a determiner or possessive
("the last raise", "her update"). It errs towards *not* writing: a question that happens to
use such a noun stays read-only, and a person who wants a change says so with a verb.
"""

from __future__ import annotations

import re

__all__ = ["CHANGE_VERBS", "asks_for_change"]

CHANGE_VERBS: tuple[str, ...] = (
    "update",
    "set",
    "change",
    "modify",
    "edit",
    "delete",
    "remove",
    "erase",
    "create",
    "add",
    "insert",
    "write",
    "save",
    "store",
    "record",
    "register",
    "raise",
    "increase",
    "decrease",
    "lower",
    "reduce",
    "adjust",
    "rename",
    "move",
    "assign",
    "cancel",
    "book",
    "schedule",
    "send",
    "replace",
    "reset",
    "promote",
    "transfer",
    "approve",
    "submit",
)

# Words after which a change verb is a noun: "the raise", "his last update".
_NOUN_MARKERS = frozenset(
    {
        "a",
        "an",
        "the",
        "this",
        "that",
        "last",
        "latest",
        "next",
        "recent",
        "my",
        "your",
        "his",
        "her",
        "its",
        "our",
        "their",
        "any",
        "each",
        "every",
        "no",
    }
)

_WORD = re.compile(r"[A-Za-z]+(?:'s)?")


def _forms(verb: str) -> set[str]:
    stem = verb[:-1] if verb.endswith("e") else verb
    doubled = verb + verb[-1] if re.fullmatch(r"[^aeiou]*[aeiou][^aeiouwxy]", verb) else verb
    return {
        verb,
        verb + "s",
        verb + "es",
        stem + "ed",
        stem + "ing",
        doubled + "ed",
        doubled + "ing",
    }


_CHANGE_FORMS: frozenset[str] = frozenset(f for v in CHANGE_VERBS for f in _forms(v))


def asks_for_change(task: str) -> bool:
    """True when `task` asks for something to be changed (see the module docstring)."""
    words = [w.lower() for w in _WORD.findall(task)]
    for i, word in enumerate(words):
        if word not in _CHANGE_FORMS:
            continue
        before = words[i - 1] if i > 0 else ""
        if before in _NOUN_MARKERS or before.endswith("'s"):
            continue
        return True
    return False
