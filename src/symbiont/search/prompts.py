"""The search prompt: the parent, a few inspirations with their scores, and the task.

One request per candidate (no conversation): the system message (the project's rules,
plus the edit format), then a user message with the task, the function's head, the
names the program offers, the parent with its score, metrics and artifacts, and the
inspirations. It is bounded: inspirations are dropped (the last first) and long
artifacts cut until it fits `max_chars`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from symbiont import feedback, prompting
from symbiont.models.base import Message
from symbiont.search.database import Program

if TYPE_CHECKING:
    from symbiont.evolvable import Evolvable

EDIT_RULES = """\
You improve a program in a population search. Answer either with the complete function in
one ```python block, or with one or more edits of the parent program in this form:
<<<<<<< SEARCH
lines copied exactly from the parent
=======
the lines that replace them
>>>>>>> REPLACE"""

TASK = """\
{prompt}

The function is `{name}` (module `{module}`). Its head, to keep exactly:
```python
{head}
```
{names}
The parent program (r{number}, score {score}){metrics}:
```python
{source}
```
{artifacts}{inspirations}
Write an improved `{name}` ({direction} the score): the whole function in a ```python
block, or SEARCH/REPLACE edits of the parent."""

INSPIRATION = """
Another program (r{number}, score {score}{why}):
```python
{source}
```
"""

MAX_ARTIFACT_CHARS = 1_500


def _heads_alike(source: str, head: str, name: str) -> bool:
    """Is `head` (the `def` line(s) and docstring `prompting.function_head` cut from an
    earlier revision) the head of `source` too? A search promotes new bests again and again,
    each with the head of the one before: this saves parsing each one for the prompt.

    It is when `source` defines `name` once and starts with `head` and a line break, and
    either `head` ends with its docstring's closing quotes, or it has no docstring and the
    first statement in `source` after it cannot be one (it starts with no quote, string
    prefix or parenthesis): the parse would find the same `def` and the same docstring or
    none. Anything else is left to the parse."""
    if not head or not source.startswith(head) or source[len(head) : len(head) + 1] != "\n":
        return False
    if source.count(f"def {name}(") != 1:
        return False
    if head.endswith(('"""', "'''")):  # an opening and a closing: a docstring
        return head.count('"""') + head.count("'''") >= 2
    if not head.rstrip().endswith(":"):  # a docstring in other quotes, a comment: parse
        return False
    for line in source[len(head) + 1 :].splitlines():
        text = line.strip()
        if text and not text.startswith("#"):
            return text[0] not in "\"'(" and not _STRING_START.match(text)
    return False


_STRING_START = re.compile(r"[A-Za-z]{1,2}[\"']")  # r"...", b'...', rb"...", f"..."


def _fmt(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.6g}"


def _metrics(metrics: dict[str, float]) -> str:
    if not metrics:
        return ""
    return "; " + ", ".join(f"{k}={v:.6g}" for k, v in sorted(metrics.items()))


def _artifacts(artifacts: dict[str, str]) -> str:
    if not artifacts:
        return ""
    lines = []
    for key, text in sorted(artifacts.items()):
        if len(text) > MAX_ARTIFACT_CHARS:
            text = text[:MAX_ARTIFACT_CHARS] + f" … [{len(text) - MAX_ARTIFACT_CHARS:,} chars cut]"
        lines.append(f"{key}: {text}")
    return "What its evaluation reported:\n" + "\n".join(lines) + "\n"


class PromptBuilder:
    """Builds the request for each child of one search.

    The parts every request shares are rendered once, not once per candidate (rendering
    them walks the policy's lists and the module's globals, which cost about as much as the
    rest of a candidate's harness): the system message (per policy), the names the program
    offers (per search: the names the starting revision uses and the prompt, docstring and
    signature mention; again when promoted helpers change the names the function owns) and
    the function's head (per active revision). A global rebound to a value of another kind
    while the search runs is described as it was.
    """

    def __init__(
        self,
        handle: Evolvable,
        *,
        prompt: str = "",
        direction: str = "maximize",
        harness: Iterable[object] = (),
        max_chars: int = 24_000,
    ) -> None:
        self.handle = handle
        self.prompt = prompt
        self.direction = direction
        self.harness = tuple(harness)
        self.max_chars = max_chars
        self._system: tuple[object, str] = (None, "")
        self._names: tuple[object, str] = (None, "")
        self._head: tuple[object, str] = (None, "")

    def _static(self) -> tuple[str, str, str]:
        h = self.handle
        policy = prompting.policy_of(h)
        if self._system[0] is not policy:
            self._system = (policy, feedback.system_prompt(policy) + "\n\n" + EDIT_RULES)
        owned = h.owned_names
        if self._names[0] != owned:
            names = prompting.render_context(h, prompt=self.prompt, harness=self.harness)
            self._names = (owned, names)
        active = h.active
        if self._head[0] is not active:
            head = self._head[1]
            if not _heads_alike(active.source, head, h.name):
                head = prompting.function_head(h)
            self._head = (active, head)
        return self._system[1], self._names[1], self._head[1]

    def messages(
        self, parent: Program, inspirations: Sequence[tuple[Program, str]]
    ) -> list[Message]:
        """The request for one child of `parent`. `inspirations` are (program, why shown)."""
        system, names, head = self._static()
        h = self.handle
        shown = list(inspirations)
        while True:
            text = TASK.format(
                prompt=self.prompt.strip() or "Improve this function.",
                name=h.name,
                module=h.signature.module,
                head=head,
                names=names,
                number=parent.number,
                score=_fmt(parent.score),
                metrics=_metrics(parent.metrics),
                source=parent.source.rstrip(),
                artifacts=_artifacts(parent.artifacts),
                inspirations="".join(
                    INSPIRATION.format(
                        number=p.number,
                        score=_fmt(p.score),
                        why=f", {why}" if why else "",
                        source=p.source.rstrip(),
                    )
                    for p, why in shown
                ),
                direction=self.direction,
            )
            if len(system) + len(text) <= self.max_chars or (not shown and not names):
                break
            if shown:
                shown.pop()
            else:
                names = ""
        return [{"role": "system", "content": system}, {"role": "user", "content": text}]


def build_messages(
    handle: Evolvable,
    parent: Program,
    inspirations: Sequence[tuple[Program, str]],
    *,
    prompt: str = "",
    direction: str = "maximize",
    harness: Iterable[object] = (),
    max_chars: int = 24_000,
) -> list[Message]:
    """The request for one child of `parent` (a one-off `PromptBuilder`)."""
    builder = PromptBuilder(
        handle, prompt=prompt, direction=direction, harness=harness, max_chars=max_chars
    )
    return builder.messages(parent, inspirations)
