"""SEARCH/REPLACE edits against the parent program.

A model may answer with the whole function, or with one or more blocks::

    <<<<<<< SEARCH
    exact lines of the parent
    =======
    the lines that replace them
    >>>>>>> REPLACE

Each SEARCH text must occur in the parent (exactly; failing that, ignoring trailing
whitespace on each line). A block that matches nowhere yields an `EditError` whose message
quotes the parent's nearest lines (difflib), so the model can correct it.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

_BLOCK = re.compile(
    r"^[ \t]*<{5,}[ \t]*SEARCH[ \t]*\n(.*?)^[ \t]*={5,}[ \t]*\n(.*?)^[ \t]*>{5,}[ \t]*REPLACE[ \t]*$",
    re.DOTALL | re.MULTILINE,
)


@dataclass(frozen=True, slots=True)
class Edit:
    search: str
    replace: str


class EditError(ValueError):
    """A SEARCH block that does not match the parent; the message quotes the nearest lines."""


def parse_edits(reply: str) -> list[Edit]:
    """The SEARCH/REPLACE blocks of a reply, in order ([] when it has none)."""
    return [Edit(m.group(1), m.group(2)) for m in _BLOCK.finditer(reply)]


def apply_edits(parent: str, edits: list[Edit]) -> str:
    """The parent with each edit applied in order (the first occurrence of each SEARCH)."""
    text = parent
    for n, edit in enumerate(edits, start=1):
        if not edit.search.strip():
            raise EditError(f"SEARCH block {n} is empty: quote the parent's lines to replace")
        if edit.search in text:
            text = text.replace(edit.search, edit.replace, 1)
            continue
        located = _loose_find(text, edit.search)
        if located is None:
            raise EditError(_no_match(n, edit.search, text))
        start, end = located
        text = text[:start] + edit.replace + text[end:]
    return text


def _strip_lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def _loose_find(text: str, search: str) -> tuple[int, int] | None:
    """Character span of `search` in `text` comparing lines without trailing whitespace."""
    want = _strip_lines(search)
    while want and not want[-1]:
        want.pop()
    if not want:
        return None
    lines = text.splitlines(keepends=True)
    stripped = [line.rstrip() for line in lines]
    for i in range(len(lines) - len(want) + 1):
        if stripped[i : i + len(want)] == want:
            start = sum(len(line) for line in lines[:i])
            end = start + sum(len(line) for line in lines[i : i + len(want)])
            if (
                search.endswith("\n")
                or end == len(text)
                or not lines[i + len(want) - 1].endswith("\n")
            ):
                return start, end
            return start, end - 1  # keep the newline the SEARCH text did not include
    return None


def _no_match(n: int, search: str, parent: str) -> str:
    want = search.splitlines()
    have = parent.splitlines()
    width = max(1, len(want))
    best_ratio, best_at = 0.0, 0
    for i in range(max(1, len(have) - width + 1)):
        ratio = difflib.SequenceMatcher(None, "\n".join(have[i : i + width]), search).ratio()
        if ratio > best_ratio:
            best_ratio, best_at = ratio, i
    nearest = have[best_at : best_at + width]
    diff = "\n".join(
        difflib.unified_diff(want, nearest, "your SEARCH", "the parent", lineterm="", n=1)
    )
    quoted = "\n".join(f"{best_at + k + 1:4d} | {line}" for k, line in enumerate(nearest))
    return (
        f"SEARCH block {n} does not match the parent program. The nearest lines of the "
        f"parent (lines {best_at + 1}-{best_at + len(nearest)}, {best_ratio:.0%} similar) "
        f"are:\n{quoted}\nDifference:\n{diff}\nCopy the SEARCH text exactly from the parent."
    )
