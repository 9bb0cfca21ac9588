"""The evolve loop's conversation, bounded: what one request to the model carries.

A request holds the system prompt, the task (with the active revision and its score), a
one-paragraph digest of the attempts that left the window, and the last `window` exchanges
verbatim (the model's reply and our answer to it). So the request at attempt 300 is about
as long as the one at attempt 5, and a run's input tokens grow linearly in its attempts.
`max_tokens` bounds a request further (estimated at four characters per token): the oldest
exchanges move into the digest first, then the last exchange is clipped.

The digest keeps messages alternating user/assistant (it rides on the task message), which
some chat templates of local servers require.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass

from symbiont.models.base import Message

__all__ = ["Conversation", "Exchange", "estimate_tokens"]


def estimate_tokens(text_or_messages: str | Sequence[Message]) -> int:
    """About four characters per token, rounded up: for servers that report no usage."""
    if isinstance(text_or_messages, str):
        chars = len(text_or_messages)
    else:
        chars = sum(len(str(m.get("content") or "")) for m in text_or_messages)
    return (chars + 3) // 4


@dataclass(frozen=True, slots=True)
class Exchange:
    """One attempt as the model sees it again: its reply and our answer."""

    index: int
    reply: str
    answer: str
    outcome: str  # a short category for the digest: "syntax error", "check failure", ...
    detail: str = ""  # the first line of the diagnostic, for the digest


def _plural(n: int, word: str) -> str:
    if n == 1:
        return f"1 {word}"
    if word.endswith("y") and not word.endswith("ey"):
        return f"{n} {word[:-1]}ies"
    if word.endswith(("s", "x", "ch", "sh")):
        return f"{n} {word}es"
    return f"{n} {word}s"


def _clip(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    keep = max(max_chars - 60, 0)
    head, tail = text[: keep * 2 // 3], text[len(text) - keep // 3 :] if keep else ""
    return f"{head}\n[… {len(text) - len(head) - len(tail):,} characters not shown …]\n{tail}"


class Conversation:
    """The messages of the next request, built from the first messages and the attempts."""

    def __init__(
        self, first: Sequence[Message], *, window: int = 3, max_tokens: int | None = None
    ) -> None:
        if window < 0:
            raise ValueError(f"the history window must be >= 0 exchanges, not {window}")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_prompt_tokens must be positive, not {max_tokens}")
        self.first: list[Message] = [dict(m) for m in first]
        self.window = window
        self.max_tokens = max_tokens
        self.exchanges: deque[Exchange] = deque()
        self.note = ""  # said once after the task, until the next exchange (a reset's reason)
        self._outcomes: Counter[str] = Counter()
        self._details: dict[str, str] = {}
        self._first_index: int | None = None
        self._last_index: int | None = None

    # -- what happened --------------------------------------------------------------------
    def add(self, exchange: Exchange) -> None:
        """Keep an attempt; the oldest one leaves the window into the digest."""
        self.note = ""
        self.exchanges.append(exchange)
        while len(self.exchanges) > self.window:
            self._digest(self.exchanges.popleft())

    def reset(self, note: str, dropped: Exchange | None = None) -> None:
        """Start afresh (the model repeated itself): every exchange goes into the digest, and
        `note` follows the task until the next exchange. `dropped` is the attempt that caused
        the reset, counted in the digest but never shown again."""
        while self.exchanges:
            self._digest(self.exchanges.popleft())
        if dropped is not None:
            self._digest(dropped)
        self.note = note

    def set_first(self, first: Sequence[Message]) -> None:
        """New first messages (after a promotion the task shows the new active revision)."""
        self.first = [dict(m) for m in first]

    def _digest(self, exchange: Exchange) -> None:
        self._outcomes[exchange.outcome] += 1
        if exchange.detail:
            self._details[exchange.outcome] = exchange.detail
        if self._first_index is None or exchange.index < self._first_index:
            self._first_index = exchange.index
        if self._last_index is None or exchange.index > self._last_index:
            self._last_index = exchange.index

    # -- what is sent ---------------------------------------------------------------------
    def digest(self) -> str:
        """One paragraph on the attempts that are no longer shown ("" when there are none)."""
        if not self._outcomes:
            return ""
        parts = []
        for outcome, n in self._outcomes.most_common():
            detail = self._details.get(outcome)
            parts.append(_plural(n, outcome) + (f" (last: {detail})" if detail else ""))
        first, last = self._first_index, self._last_index
        span = f"attempt {first}" if first == last else f"attempts {first}-{last}"
        return (
            f"Earlier attempts, no longer shown ({span}): " + ", ".join(parts) + ". "
            "Do not send any of them again."
        )

    def messages(self) -> list[Message]:
        """The next request: within `max_tokens` (estimated) when the task itself allows."""
        while True:
            out = self._build(self.exchanges)
            if self.max_tokens is None or estimate_tokens(out) <= self.max_tokens:
                return out
            if len(self.exchanges) > 1:
                self._digest(self.exchanges.popleft())
                continue
            if not self.exchanges:
                return out  # the task alone is over the limit: the prompt builder's to cap
            last = self.exchanges[0]
            room = self.max_tokens * 4 - sum(len(str(m.get("content") or "")) for m in out[:-2])
            room = max(room, 400)
            answer = _clip(last.answer, room // 2)
            reply = _clip(last.reply, max(room - len(answer), 200))
            return self._build([Exchange(last.index, reply, answer, last.outcome, last.detail)])

    def _build(self, exchanges: Sequence[Exchange]) -> list[Message]:
        out = [dict(m) for m in self.first]
        extra = [text for text in (self.digest(), self.note) if text]
        if extra:
            task = out[-1]
            task["content"] = "\n\n".join([str(task.get("content") or ""), *extra])
        for ex in exchanges:
            out.append({"role": "assistant", "content": ex.reply})
            out.append({"role": "user", "content": ex.answer})
        return out
