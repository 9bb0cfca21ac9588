"""Shared fixtures.

`openai_server`: a started `FakeOpenAIServer` (the OpenAI API over real HTTP on loopback);
script it with `.enqueue(...)` or `.handler`, point clients at `.base_url`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from symbiont.testing.openai_server import FakeOpenAIServer


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server
