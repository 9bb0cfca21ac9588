"""`OpenAIModel`: any server that speaks the OpenAI chat-completions API, via the official SDK.

One client covers OpenAI, Azure OpenAI, Ollama, vLLM, llama.cpp's server, LM Studio and
OpenRouter, because all of them accept the same requests at different base URLs:

| server | base_url | api_key |
| --- | --- | --- |
| OpenAI | (default) `https://api.openai.com/v1` | `OPENAI_API_KEY` |
| Azure OpenAI (v1 API) | `https://RESOURCE.openai.azure.com/openai/v1/` | the Azure key; `model` is the deployment name |
| Ollama | `http://localhost:11434/v1` | none needed |
| vLLM | `http://localhost:8000/v1` | none needed (or `--api-key`) |
| llama.cpp server | `http://localhost:8080/v1` | none needed |
| LM Studio | `http://localhost:1234/v1` | none needed |
| OpenRouter | `https://openrouter.ai/api/v1` | the OpenRouter key |

Configuration comes from the arguments, else the environment: `SYMBIONT_MODEL` (model name),
`OPENAI_BASE_URL`, `OPENAI_API_KEY`. A local server needs no key, so when a base URL is set
without one a placeholder key is sent. With a base URL and no model name, the server's first
listed model (`GET /models`) is used — convenient for llama.cpp and LM Studio, which serve one.

The SDK's own retries are switched off (`max_retries=0`): retrying is the caller's job
(`symbiont.models.retry.call_with_retries`) so every retry is visible and counted. Errors are
translated: rate limits, 5xx, timeouts and connection failures become `TransientModelError`
(with the server's `Retry-After`), everything else a `ModelError` that says what to fix.

Timeouts are made for local CPU servers, which answer one request at a time and may take
minutes: the limit is `timeout=` or `SYMBIONT_MODEL_TIMEOUT` (seconds, default 600). A request
that runs past it raises `TransientModelError`, but it is *not* abandoned: the server is still
working on it, and a second request would only queue behind it (one ran for 686 s that way).
The next call with the same messages waits for that same request instead of sending another;
a call with other messages first waits (up to the timeout again) for the server to finish the
old one, and fails without sending anything while it has not. So after a timeout at most one
request is in flight. A request is given up for good after `abandon_after` seconds (default
four timeouts), which closes its connection.

The request body is sent as built here, through the SDK's own `post` (same client, headers,
auth, timeouts and error types), not through `chat.completions.create`: that method first
runs its typed request-body transform, which walks every message of the history and cost
~25-30 ms per request on a long conversation, for a body that is already plain JSON. A
plain reply is read as JSON (not built into the SDK's typed `ChatCompletion`, which would be
taken apart again at once); a streamed one goes through the SDK's `AsyncStream` of chunks.

A plain `http://` base URL (a local server) that no proxy applies to gets the SDK's own
`httpx` client over `symbiont.models.transport.PlainHTTPTransport`, a lean HTTP/1.1
transport (about 0.6 ms less CPU per request than `httpcore`). On that client a plain
(not streamed) chat request is sent directly: the SDK's headers (its `default_headers` and
`auth_headers`, taken once per client, and made into the request's headers once per client,
as `httpx.Request` would make them), the same `httpx` client and timeout, and error
statuses, timeouts and connection failures raised as the SDK's own exception types, but
without the SDK's per-request machinery (copies of its request options, header and URL
merging, response wrapping), which cost about 1.3 ms of CPU per request here, twice the
rest of a cheap search candidate. The request goes to the lean transport as bytes, and the
body of a whole 2xx reply comes back as bytes (no `httpx.Request` encoded, no
`httpx.Response` built: `_DirectChat`). Streamed requests, model listing, `https://` and
proxied URLs go through the SDK as before; `SYMBIONT_HTTP_TRANSPORT=httpx` turns the lean
transport and the direct send off.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import os
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import openai

from symbiont.errors import ModelError, TransientModelError
from symbiont.models.base import Message, ModelReply, ToolCall, Usage
from symbiont.models.transport import (
    PlainHTTPTransport,
    Whole,
    encode_head,
    httpx,
    plain_http_client,
)
from symbiont.trial import register_secret

__all__ = ["DEFAULT_TIMEOUT_S", "PLACEHOLDER_API_KEY", "OpenAIModel"]

# Sent when a base URL is configured without a key: local servers ignore it, and the SDK
# refuses to start without one.
PLACEHOLDER_API_KEY = "sk-no-key-required"
_OPENAI_HOSTS = ("api.openai.com",)
# A small model on a CPU may take minutes for one reply; a hosted API answers far sooner.
DEFAULT_TIMEOUT_S = 600.0
TIMEOUT_ENV = "SYMBIONT_MODEL_TIMEOUT"
_CHAT_PATH = "/chat/completions"


def _request_options() -> dict[str, Any]:
    """What `chat.completions.create` passes as request options besides the body: the
    bearer-auth marker, on SDK versions whose requests carry one."""
    try:
        from openai._base_client import make_request_options
    except ImportError:  # pragma: no cover - an SDK without it sends its auth header anyway
        return {}
    try:
        return dict(make_request_options(security={"bearer_auth": True}))
    except TypeError:  # pragma: no cover - older SDKs: auth headers are always sent
        return dict(make_request_options())


_OPTIONS = _request_options()


def _configured_timeout(timeout: float | None) -> float:
    if timeout is not None:
        value = float(timeout)
        where = "timeout"
    else:
        raw = os.environ.get(TIMEOUT_ENV, "").strip()
        if not raw:
            return DEFAULT_TIMEOUT_S
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{TIMEOUT_ENV}={raw!r}: expected a number of seconds") from None
        where = TIMEOUT_ENV
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{where} must be a positive number of seconds, not {value}")
    return value


class OpenAIModel:
    """A `Model` backed by an OpenAI-compatible chat-completions endpoint."""

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        stream: bool = False,
        temperature: float | None = None,
        max_tokens: int | None = None,
        timeout: float | None = None,
        timeout_s: float | None = None,
        abandon_after: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        """`timeout` (seconds; else `SYMBIONT_MODEL_TIMEOUT`, else 600) bounds how long one
        call waits; `timeout_s` is its older name. `abandon_after` (default 4 × timeout) is
        how long a timed-out request may keep running at the server before it is dropped."""
        if timeout is not None and timeout_s is not None:
            raise ValueError("pass timeout= or its older name timeout_s=, not both")
        model = model or os.environ.get("SYMBIONT_MODEL") or None
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        api_key = api_key or os.environ.get("OPENAI_API_KEY") or None
        if api_key is None:
            if base_url is None:
                raise ModelError(
                    "no API key: set OPENAI_API_KEY (or pass api_key=), or point OPENAI_BASE_URL "
                    "at a local OpenAI-compatible server such as Ollama (http://localhost:11434/v1)"
                )
            api_key = PLACEHOLDER_API_KEY
        if model is None and base_url is None:
            raise ModelError(
                "no model name: set SYMBIONT_MODEL (for example gpt-4o-mini) or pass model="
            )
        timeout_s = _configured_timeout(timeout if timeout is not None else timeout_s)
        abandon_s = 4 * timeout_s if abandon_after is None else float(abandon_after)
        if not abandon_s >= timeout_s:
            raise ValueError(
                f"abandon_after ({abandon_s:g} s) must be at least the timeout ({timeout_s:g} s)"
            )
        self.model: str | None = model
        self.base_url = (base_url or "https://api.openai.com/v1").rstrip("/")
        self.api_key = api_key
        self.stream = stream
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        self.abandon_after_s = abandon_s
        self.extra_headers = dict(extra_headers or {})
        # A confined trial child overwrites these in its copy of memory before a candidate
        # runs, so model-written code never reads the credentials from the live process.
        for secret in (api_key, *self.extra_headers.values()):
            if secret:
                register_secret(secret)
        self.name = model or f"(first model at {self.base_url})"
        # The SDK client's connection pool belongs to the event loop that opened it, and
        # callers such as `evolve_sync` run each call under a fresh `asyncio.run`: keep one
        # client for the current loop and start a new one when the loop changes.
        self._client_loop: weakref.ref[asyncio.AbstractEventLoop] | None = None
        self._client_obj: openai.AsyncOpenAI | None = None
        self._direct: _DirectChat | None = None  # plain chat requests on a plain-http client
        self._closer: asyncio.Task[None] | None = None
        # A request that outlived `timeout_s` and is still running at the server, with the
        # fingerprint of its parameters: the next call waits for it rather than resending.
        self._pending: asyncio.Task[ModelReply] | None = None
        self._pending_key = ""

    def __repr__(self) -> str:
        return (
            f"OpenAIModel(model={self.model!r}, base_url={self.base_url!r}, stream={self.stream})"
        )

    def _client(self) -> openai.AsyncOpenAI:
        loop = asyncio.get_running_loop()
        if self._client_obj is None or self._client_loop is None or self._client_loop() is not loop:
            # Plain http (a local server): the lean transport under the SDK's client.
            transport = PlainHTTPTransport()
            http = plain_http_client(self.base_url, transport=transport)
            client = openai.AsyncOpenAI(
                api_key=self.api_key,
                base_url=self.base_url,
                max_retries=0,
                # The SDK gives up only at `abandon_after`; `complete` stops waiting earlier.
                timeout=self.abandon_after_s,
                default_headers=self.extra_headers or None,
                http_client=http,
            )
            self._client_obj, self._client_loop = client, weakref.ref(loop)
            self._direct = (
                None
                if http is None
                else _DirectChat(
                    http, client, self.base_url + _CHAT_PATH, self.abandon_after_s, transport
                )
            )
            # Close the connections while the loop still runs: `asyncio.run` cancels the
            # tasks left over at its end, which runs this task's `finally`. Without it the
            # pooled sockets would outlive their loop (ResourceWarning: unclosed transport).
            self._closer = loop.create_task(_close_when_cancelled(client))
        return self._client_obj

    async def aclose(self) -> None:
        """Close the HTTP connections this model opened (call from the loop that used it)."""
        pending, self._pending = self._pending, None
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        client, self._client_obj, self._client_loop = self._client_obj, None, None
        self._direct = None
        closer, self._closer = self._closer, None
        if closer is not None and not closer.done():
            closer.cancel()  # its `finally` closes the client
            with contextlib.suppress(asyncio.CancelledError):
                await closer
        elif client is not None:
            await client.close()

    async def _model_name(self) -> str:
        if self.model is not None:
            return self.model
        try:
            page = await self._client().models.list()
        except openai.OpenAIError as exc:
            raise self._translate(exc, "(listing models)") from exc
        ids = [m.id for m in page.data]
        if not ids:
            raise ModelError(
                f"no model name given (SYMBIONT_MODEL is unset) and the server at "
                f"{self.base_url} lists no models; set SYMBIONT_MODEL"
            )
        self.model = self.name = ids[0]
        return ids[0]

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        hints: Mapping[str, Any] | None = None,
    ) -> ModelReply:
        """Ask the server once (no retries) and return its reply as a `ModelReply`."""
        model = await self._model_name()
        params: dict[str, Any] = {"model": model, "messages": list(messages)}
        if tools:
            params["tools"] = [_as_tool(t) for t in tools]
        # A caller's hint wins (evolve asks for more after a repeated reply); else ours.
        temperature = (hints or {}).get("temperature")
        if temperature is None:
            temperature = self.temperature
        if temperature is not None:
            params["temperature"] = temperature
        if self.max_tokens is not None:
            # OpenAI's newer models accept only `max_completion_tokens`; local servers
            # generally only know `max_tokens`.
            key = "max_completion_tokens" if _is_openai(self.base_url) else "max_tokens"
            params[key] = self.max_tokens
        started = time.perf_counter()
        task = await self._request_task(params, model)
        if not await _finished_within(task, self.timeout_s):
            # Keep it running: the server is working on it, and resending would queue a
            # second request behind the first. The next call adopts or awaits it.
            self._pending, self._pending_key = task, _fingerprint(params)
            raise TransientModelError(
                f"the request to {self.base_url} timed out after {self.timeout_s:g} s "
                f"(model {model!r}); it is left running at the server and not resent "
                f"(set {TIMEOUT_ENV} or OpenAIModel(timeout=) for slow servers)"
            )
        if self._pending is task:
            self._pending = None
        try:
            reply = task.result()
        except openai.OpenAIError as exc:
            raise self._translate(exc, model) from exc
        return ModelReply(
            text=reply.text,
            tool_calls=reply.tool_calls,
            usage=reply.usage,
            latency_s=time.perf_counter() - started,
            model=reply.model or model,
            finish_reason=reply.finish_reason,
        )

    async def _request_task(self, params: dict[str, Any], model: str) -> asyncio.Task[ModelReply]:
        """The task answering `params`: a still-running earlier request for the same
        parameters, else a new request once no earlier one is running at the server."""
        loop = asyncio.get_running_loop()
        pending = self._pending
        if pending is not None and pending.get_loop() is not loop:
            pending = self._pending = None  # its loop is gone, and its connection with it
        # (The parameters' fingerprint is only taken when there is an earlier request.)
        if pending is not None and self._pending_key == _fingerprint(params):
            # A retry of the request that timed out: wait for its answer, or take the answer
            # that arrived in the meantime.
            return pending
        if pending is not None and not pending.done():
            await asyncio.wait({pending}, timeout=self.timeout_s)
            if not pending.done():
                raise TransientModelError(
                    f"the server at {self.base_url} is still working on an earlier request "
                    f"that timed out (model {model!r}); not sending another until it answers"
                )
        if pending is not None and pending.done():
            self._pending = None
            if not pending.cancelled():
                pending.exception()  # retrieved: an old request's failure is not news
        return loop.create_task(self._plain(params) if not self.stream else self._streamed(params))

    async def _plain(self, params: dict[str, Any]) -> ModelReply:
        # The body comes back as bytes and is read as plain JSON: building the SDK's typed
        # `ChatCompletion` would only be taken apart again here. Error statuses still raise
        # the SDK's exceptions (before any parsing).
        client = self._client()
        direct = self._direct
        if direct is not None:
            raw = await direct.post(params)
        else:
            raw = await client.post(_CHAT_PATH, body=params, cast_to=bytes, options=dict(_OPTIONS))
        try:
            response = json.loads(raw)
        except ValueError:
            response = None
        if not isinstance(response, Mapping):
            raise ModelError(
                f"the server at {self.base_url} answered with something other than a JSON "
                f"completion: {raw[:200]!r}"
            )
        choices = response.get("choices")
        if not choices or not isinstance(choices, list) or not isinstance(choices[0], Mapping):
            raise ModelError(f"the server at {self.base_url} returned a completion with no choices")
        choice = choices[0]
        message = choice.get("message")
        if not isinstance(message, Mapping):
            message = {}
        calls = []
        for i, c in enumerate(message.get("tool_calls") or ()):
            if not isinstance(c, Mapping):
                continue
            function = c.get("function")
            function = function if isinstance(function, Mapping) else {}
            calls.append(
                ToolCall(
                    id=c.get("id") or f"call_{i}",
                    name=function.get("name") or "",
                    arguments=function.get("arguments") or "",
                )
            )
        usage = Usage()
        counts = response.get("usage")
        if isinstance(counts, Mapping):
            usage = Usage(counts.get("prompt_tokens") or 0, counts.get("completion_tokens") or 0)
        return ModelReply(
            text=message.get("content") or "",
            tool_calls=tuple(calls),
            usage=usage,
            model=response.get("model") or "",
            finish_reason=choice.get("finish_reason"),
        )

    async def _streamed(self, params: dict[str, Any]) -> ModelReply:
        from openai.types.chat import ChatCompletion, ChatCompletionChunk

        stream = await self._client().post(
            _CHAT_PATH,
            body={**params, "stream": True, "stream_options": {"include_usage": True}},
            cast_to=ChatCompletion,
            options=dict(_OPTIONS),
            stream=True,
            stream_cls=openai.AsyncStream[ChatCompletionChunk],
        )
        text: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        usage = Usage()
        finish: str | None = None
        model = ""
        async with stream:
            async for chunk in stream:
                model = chunk.model or model
                if chunk.usage is not None:
                    usage = Usage(
                        chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0
                    )
                for choice in chunk.choices:
                    if choice.index != 0:
                        continue
                    delta = choice.delta
                    if delta.content:
                        text.append(delta.content)
                    for tc in delta.tool_calls or ():
                        slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": []})
                        if tc.id:
                            slot["id"] = tc.id
                        if tc.function is not None:
                            if tc.function.name:
                                slot["name"] += tc.function.name
                            if tc.function.arguments:
                                slot["arguments"].append(tc.function.arguments)
                    if choice.finish_reason:
                        finish = choice.finish_reason
        tool_calls = tuple(
            ToolCall(
                id=slot["id"] or f"call_{index}",
                name=slot["name"],
                arguments="".join(slot["arguments"]),
            )
            for index, slot in sorted(calls.items())
        )
        return ModelReply(
            text="".join(text),
            tool_calls=tool_calls,
            usage=usage,
            model=model,
            finish_reason=finish,
        )

    def _translate(self, exc: openai.OpenAIError, model: str) -> ModelError:
        """The SDK's exception as a `ModelError` whose message says what to do about it."""
        where = self.base_url
        if isinstance(exc, openai.APITimeoutError):
            return TransientModelError(
                f"the request to {where} got no answer within {self.abandon_after_s:g} s "
                f"(model {model!r}) and was given up"
            )
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc.__context__
            detail = f": {cause}" if cause else ""
            return TransientModelError(f"could not connect to {where}{detail}")
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            detail = _error_detail(exc)
            retry_after = _retry_after(exc.response.headers)
            if status == 429:
                return TransientModelError(
                    f"rate limited by {where} (429): {detail}", retry_after=retry_after
                )
            if status >= 500 or status in (408, 409):
                return TransientModelError(
                    f"the server at {where} failed ({status}): {detail}", retry_after=retry_after
                )
            if status == 401:
                return ModelError(
                    f"the server refused the API key (OPENAI_API_KEY) at {where} (401): {detail}"
                )
            if status == 403:
                return ModelError(
                    f"the API key may not use model {model!r} at {where} (403): {detail}"
                )
            if status == 404:
                return ModelError(
                    f"model {model!r} not found at {where} (404): {detail}. Check SYMBIONT_MODEL "
                    f"against GET {where}/models, and that OPENAI_BASE_URL ends in the API root "
                    "(usually /v1)"
                )
            if status in (400, 422):
                return ModelError(
                    f"the server at {where} rejected the request for model {model!r} ({status}): "
                    f"{detail}"
                )
            return ModelError(f"the server at {where} answered {status}: {detail}")
        if isinstance(exc, openai.APIError):  # e.g. an error event inside a stream
            return ModelError(f"the server at {where} reported an error: {exc.message}")
        return ModelError(f"the OpenAI client failed talking to {where}: {exc}")


class _DirectChat:
    """Plain chat requests sent straight to the SDK's `httpx` client's transport (module
    docstring).

    What the SDK would add per request is done once here (headers, URL, timeout); what it
    would make of a failure is kept: `httpx` timeouts raise `openai.APITimeoutError`, other
    transport errors `openai.APIConnectionError`, a status other than 2xx an
    `openai.APIStatusError` with the status, headers and decoded error body, as the SDK's
    `_make_status_error_from_response` builds it — `OpenAIModel._translate` reads them the
    same way.

    With the lean transport (`transport`, the one under `http`) a request goes to it as
    bytes, and a whole 2xx reply's body comes back as bytes: no `httpx.Request` is encoded
    and no `httpx.Response` built on the way (about 50 us a request, a thirtieth of a cheap
    search candidate). What `httpx`'s client would have done on the way is not needed for
    these requests: no auth flow and no event hooks are set on the client, cookies are not
    sent by this path. A compressed reply (Content-Encoding) still becomes an `httpx.Response`,
    which decodes it; a redirect (3xx) is what the client would have followed, so a request
    answered with one is sent again through the client, which follows it.
    """

    __slots__ = ("_prefix", "_prepared", "headers", "http", "timeout", "transport", "url")

    def __init__(
        self,
        http: Any,
        client: openai.AsyncOpenAI,
        url: str,
        timeout: float,
        transport: PlainHTTPTransport | None = None,
    ) -> None:
        self.http = http
        self.transport = transport
        self.url = httpx.URL(url)
        # The client's own headers, then the SDK's over them, as `build_request` merges them;
        # values the SDK leaves out are `Omit` markers (no organisation or project set).
        sdk = {**client.default_headers, **getattr(client, "auth_headers", {})}
        self.headers = httpx.Headers(http.headers)
        self.headers.update({k: v for k, v in sdk.items() if isinstance(v, str)})
        self.timeout = httpx.Timeout(timeout).as_dict()
        # What `httpx.Request(..., content=body)` makes of those headers for any body: the
        # `Host` it puts first, then these, then the body's `Content-Length`, which
        # `request` appends. Worked out once: httpx re-reads and re-encodes every header
        # on each `Request` (about 50 us per request here).
        made = httpx.Request("POST", self.url, headers=self.headers, content=b"-").headers
        self._prepared = httpx.Headers(
            [(k, v) for k, v in made.raw if k.lower() != b"content-length"],
            encoding=made.encoding,
        )
        # ... and those headers on the wire, up to the `Content-Length` (`wire`)
        self._prefix, _, _ = encode_head(
            httpx.Request("POST", self.url, headers=self._prepared, stream=httpx.ByteStream(b""))
        )

    def request(self, body: bytes) -> Any:
        """The request for `body`: the one `httpx.Request("POST", url, headers=headers,
        content=body)` would be, header for header and byte for byte."""
        if not body:  # (httpx puts a `Content-Length: 0` elsewhere; a JSON body is never empty)
            return httpx.Request(
                "POST", self.url, headers=self.headers, content=body,
                extensions={"timeout": self.timeout},
            )  # fmt: skip
        headers = httpx.Headers(self._prepared, encoding=self._prepared.encoding)
        headers["Content-Length"] = str(len(body))
        request = httpx.Request(
            "POST",
            self.url,
            headers=headers,
            stream=httpx.ByteStream(body),
            extensions={"timeout": self.timeout},
        )
        request.read()
        return request

    def wire(self, body: bytes) -> bytes:
        """`request(body)` as the transport puts it on the wire (a non-empty body)."""
        return b"%sContent-Length: %d\r\n\r\n%s" % (self._prefix, len(body), body)

    async def post(self, params: dict[str, Any]) -> bytes:
        body = json.dumps(params).encode()
        request = self.request(body)
        try:
            if self.transport is None:
                response = await self.http.send(request)
            else:
                reply = await self.transport.exchange(request, self.wire(body))
                if isinstance(reply, Whole):
                    if 200 <= reply.status < 300 and not reply.encoded:
                        return reply.content
                    response = reply.response()
                else:
                    response = reply
                response.request = request
                if 300 <= response.status_code < 400:  # the client follows redirects
                    await response.aclose()
                    response = await self.http.send(request)
            await response.aread()
        except httpx.TimeoutException as exc:
            raise openai.APITimeoutError(request=request) from exc
        except httpx.HTTPError as exc:
            raise openai.APIConnectionError(request=request) from exc
        if not 200 <= response.status_code < 300:
            raise _status_error(response)
        return bytes(response.content)


def _status_error(response: Any) -> openai.APIStatusError:
    """The SDK's exception for an error status: its message, and the error body (the
    reply's "error" object, else the whole JSON, else the text)."""
    text = response.text.strip()
    message = f"Error code: {response.status_code}"
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = text
    else:
        if isinstance(body, Mapping):
            body = body.get("error", body)
        if isinstance(body, Mapping) and isinstance(body.get("message"), str) and body["message"]:
            message += f" - {body['message']}"
    return openai.APIStatusError(message, response=response, body=body)


async def _finished_within(task: asyncio.Task[Any], timeout: float) -> bool:
    """Wait up to `timeout` seconds for `task` to finish, without cancelling it; whether
    it did. (`asyncio.wait({task}, timeout=)` without its set, its per-task callbacks and
    its second future: a fifth less per request.)"""
    if task.done():
        return True
    loop = task.get_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    task.add_done_callback(wake)
    timer = loop.call_later(timeout, wake)
    try:
        await waiter
    finally:
        timer.cancel()
        task.remove_done_callback(wake)
    return task.done()


def _fingerprint(params: dict[str, Any]) -> str:
    """What tells a retry of a timed-out request from a new one."""
    return json.dumps(params, sort_keys=True, default=str)


async def _close_when_cancelled(client: openai.AsyncOpenAI) -> None:
    try:
        await asyncio.Event().wait()  # until the loop shuts down and cancels us
    finally:
        await client.close()


def _as_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    """Tools in OpenAI format pass through; a bare function schema gets its wrapper."""
    if "type" in tool:
        return dict(tool)
    if "name" in tool:
        return {"type": "function", "function": dict(tool)}
    raise ModelError(f"a tool must be in OpenAI format ({{'type': 'function', ...}}), got {tool!r}")


def _is_openai(base_url: str) -> bool:
    return any(f"//{host}" in base_url for host in _OPENAI_HOSTS)


def _error_detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return exc.message


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` (seconds or an HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
