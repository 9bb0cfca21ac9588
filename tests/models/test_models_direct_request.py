"""The direct chat request is built from headers prepared once per client: it must be the
request `httpx.Request(..., content=body)` builds, header for header and byte for byte, and
the bytes the lean transport is handed for it must be that request's on the wire."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest

from symbiont.models.openai import _DirectChat
from symbiont.models.transport import _encode, httpx, plain_http_client

URL = "http://127.0.0.1:9/v1"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 1500}]}).encode(),
        json.dumps({"messages": [{"content": "déjà vu, 数"}]}, ensure_ascii=False).encode(),
    ],
)
def test_the_direct_request_is_the_one_httpx_builds(body: bytes) -> None:
    http = plain_http_client(URL)
    assert http is not None
    client = openai.AsyncOpenAI(
        base_url=URL, api_key="sk-x", http_client=http, default_headers={"X-A": "1"}
    )
    chat = _DirectChat(http, client, URL + "/chat/completions", 30.0)
    ours = chat.request(body)
    theirs = httpx.Request(
        "POST", chat.url, headers=chat.headers, content=body, extensions={"timeout": chat.timeout}
    )
    assert ours.headers.raw == theirs.headers.raw
    assert (b"Authorization", b"Bearer sk-x") in ours.headers.raw
    assert ours.headers["content-length"] == str(len(body))
    assert ours.content == theirs.content == body
    assert ours.extensions == theirs.extensions
    wire, close = asyncio.run(_encode(theirs))
    assert asyncio.run(_encode(ours)) == (wire, close) and not close
    if body:  # what the lean transport is handed: the same bytes, without a Request encoded
        assert chat.wire(body) == wire
    # a second request from the same prepared headers leaves the first one as it was
    again = chat.request(b"{}")
    assert again.headers["content-length"] == "2"
    assert ours.headers["content-length"] == str(len(body))
