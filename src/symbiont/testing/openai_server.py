"""A real HTTP server on loopback that speaks the OpenAI API, for end-to-end tests.

Tests of code that talks to a model (the `OpenAIModel`, the agents) drive the production
client — the official `openai` SDK over real HTTP — against this server instead of mocking
the client, so request encoding, SSE parsing, status codes and headers are all exercised.

Replies are scripted: `server.enqueue(...)` queues them in order, or `server.handler` computes
one from each request (for multi-turn conversations). Every request is recorded, and
`max_in_flight` tells how many chat requests were ever answered at once (a `Reply` with
`delay_s` plays a slow one-request-at-a-time local server; `finish_reason="length"` a reply
cut off by the token limit).

    with FakeOpenAIServer() as server:
        server.enqueue("Hello")                                    # plain text
        server.enqueue([{"name": "run", "arguments": {"x": 1}}])   # tool calls
        server.enqueue(Error(status=429, retry_after=0.05))        # rate limited
        client = openai.OpenAI(base_url=server.base_url, api_key="x")

Usage figures are computed from text lengths (about four characters per token, rounded up),
so longer prompts and replies report more tokens, as with a real server.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "Error",
    "FakeOpenAIServer",
    "RecordedRequest",
    "Reply",
    "ScriptItem",
    "approx_tokens",
    "hash_embedding",
]


@dataclass(frozen=True)
class Error:
    """An HTTP error the server answers with instead of a completion.

    `body` replaces the default OpenAI-style `{"error": {...}}` JSON when given.
    `retry_after` (seconds, may be fractional) is sent as `Retry-After` and `retry-after-ms`.
    """

    status: int = 500
    message: str = ""
    retry_after: float | None = None
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """A completion with text and/or tool calls; `delay_s` makes the server slow to answer.

    Tool calls are `{"name": ..., "arguments": {...} or "raw json text", "id": optional}`.
    """

    text: str = ""
    tool_calls: Sequence[Mapping[str, Any]] = ()
    finish_reason: str | None = None
    delay_s: float = 0.0


ScriptItem = str | Reply | Error | Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


def approx_tokens(text: str) -> int:
    """The server's token count for a text: one token per four characters, rounded up."""
    return math.ceil(len(text) / 4)


def hash_embedding(text: str, dimensions: int = 32) -> list[float]:
    """A deterministic unit vector derived from a hash of the text (same text, same vector)."""
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        for i in range(0, len(digest), 4):
            (n,) = struct.unpack("<I", digest[i : i + 4])
            values.append(n / 0xFFFFFFFF * 2.0 - 1.0)
        counter += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def _message_text(message: Mapping[str, Any]) -> str:
    """All the text a chat message carries (content parts and tool-call arguments)."""
    parts: list[str] = []
    content = message.get("content")
    if isinstance(content, str):
        parts.append(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
    for call in message.get("tool_calls") or ():
        fn = call.get("function", {}) if isinstance(call, Mapping) else {}
        parts.append(str(fn.get("name", "")) + str(fn.get("arguments", "")))
    return "".join(parts)


@dataclass(frozen=True)
class _ToolCallOut:
    id: str
    name: str
    arguments: str


def _normalise(item: Any) -> Reply | Error:
    if isinstance(item, Reply | Error):
        return item
    if isinstance(item, str):
        return Reply(text=item)
    if isinstance(item, Sequence):
        reply = Reply(tool_calls=tuple(item))
        _tool_calls(reply, 0)  # validates each call
        return reply
    raise TypeError(
        f"a scripted reply must be str, a list of tool calls, Reply or Error, not {type(item).__name__}"
    )


def _tool_calls(reply: Reply, counter: int) -> list[_ToolCallOut]:
    out = []
    for i, call in enumerate(reply.tool_calls):
        if not isinstance(call, Mapping) or "name" not in call:
            raise TypeError(f"a scripted tool call needs a 'name': {call!r}")
        args = call.get("arguments", {})
        raw = args if isinstance(args, str) else json.dumps(args)
        out.append(_ToolCallOut(str(call.get("id") or f"call_{counter}_{i}"), call["name"], raw))
    return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm on, the second
    # waits for the client's delayed ACK (~40 ms per request on Linux).
    disable_nagle_algorithm = True

    @property
    def owner(self) -> FakeOpenAIServer:
        server = self.server
        assert isinstance(server, _HTTPServer)
        return server.owner

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read `requests`
        pass

    # -- plumbing ---------------------------------------------------------------------------
    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw.decode("utf-8", "replace")

    def _send_json(
        self, status: int, payload: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _send_error_json(self, status: int, message: str, type_: str, code: str | None) -> None:
        self._send_json(
            status, {"error": {"message": message, "type": type_, "param": None, "code": code}}
        )

    def _record(self, body: Any) -> None:
        self.owner._record(
            RecordedRequest(
                self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
            )
        )

    def _authorised(self) -> bool:
        key = self.owner.api_key
        if key is None:
            return True
        if self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self._send_error_json(
            401,
            "Incorrect API key provided. You can find your API key in your account settings.",
            "invalid_request_error",
            "invalid_api_key",
        )
        return False

    # -- routes -----------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._record(None)
        if not self._authorised():
            return
        if self.path.rstrip("/") == "/v1/models":
            owner = self.owner
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "symbiont-fake"}
                for m in owner.model_ids
            ]
            self._send_json(200, {"object": "list", "data": data})
            return
        self._send_error_json(404, f"no route GET {self.path}", "invalid_request_error", None)

    def do_POST(self) -> None:
        body = self._read_json()
        self._record(body)
        if not self._authorised():
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        if not isinstance(body, dict):
            self._send_error_json(
                400, "the request body must be a JSON object", "invalid_request_error", None
            )
        elif path == "/v1/chat/completions":
            self._chat(body)
        elif path == "/v1/embeddings":
            self._embeddings(body)
        else:
            self._send_error_json(404, f"no route POST {self.path}", "invalid_request_error", None)

    def _chat(self, body: dict[str, Any]) -> None:
        owner = self.owner
        model = body.get("model")
        messages = body.get("messages")
        if not isinstance(model, str) or not isinstance(messages, list):
            self._send_error_json(
                400,
                "'model' (string) and 'messages' (list) are required",
                "invalid_request_error",
                None,
            )
            return
        if owner.strict_models and model not in owner.model_ids:
            self._send_error_json(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
            )
            return
        owner._enter_chat()
        try:
            self._answer_chat(owner, body, model, messages)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up waiting (a timeout)
        finally:
            owner._leave_chat()

    def _answer_chat(
        self, owner: FakeOpenAIServer, body: dict[str, Any], model: str, messages: list[Any]
    ) -> None:
        try:
            reply, counter = owner._next_reply(body)
        except Exception as exc:  # a bug in a test's handler: say so, loudly
            self._send_error_json(500, f"FakeOpenAIServer: {exc}", "server_error", None)
            return
        if isinstance(reply, Error):
            self._error(reply)
            return
        if reply.delay_s:
            owner._stopping.wait(reply.delay_s)
        calls = _tool_calls(reply, counter)
        finish = reply.finish_reason or ("tool_calls" if calls else "stop")
        prompt_tokens = approx_tokens(
            "".join(_message_text(m) for m in messages if isinstance(m, dict))
        )
        completion_tokens = approx_tokens(reply.text + "".join(c.name + c.arguments for c in calls))
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        ident = f"chatcmpl-fake-{counter}"
        if body.get("stream"):
            options = body.get("stream_options") or {}
            self._stream(
                ident,
                model,
                reply.text,
                calls,
                finish,
                usage if options.get("include_usage") else None,
            )
            return
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in calls
            ]
        self._send_json(
            200,
            {
                "id": ident,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
                ],
                "usage": usage,
            },
        )

    def _error(self, err: Error) -> None:
        headers = dict(err.headers)
        if err.retry_after is not None:
            headers["Retry-After"] = f"{err.retry_after:g}"
            headers["retry-after-ms"] = str(round(err.retry_after * 1000))
        if err.body is not None:
            self._send_json(err.status, err.body, headers)
            return
        kind = (
            "rate_limit_exceeded"
            if err.status == 429
            else "server_error"
            if err.status >= 500
            else None
        )
        message = err.message or f"scripted error {err.status}"
        payload = {
            "error": {
                "message": message,
                "type": kind or "invalid_request_error",
                "param": None,
                "code": kind,
            }
        }
        self._send_json(err.status, payload, headers)

    def _stream(
        self,
        ident: str,
        model: str,
        text: str,
        calls: list[_ToolCallOut],
        finish: str,
        usage: dict[str, int] | None,
    ) -> None:
        created = int(time.time())

        def chunk(choices: list[dict[str, Any]], with_usage: Any = None) -> dict[str, Any]:
            out: dict[str, Any] = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": choices,
            }
            if usage is not None:
                out["usage"] = with_usage
            return out

        def delta(d: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return chunk(
                [{"index": 0, "delta": d, "finish_reason": finish_reason, "logprobs": None}]
            )

        events = [delta({"role": "assistant", "content": ""})]
        for piece in re.findall(r"\S+\s*|\s+", text):
            events.append(delta({"content": piece}))
        for i, c in enumerate(calls):
            head = {
                "index": i,
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": ""},
            }
            events.append(delta({"tool_calls": [head]}))
            for k in range(0, len(c.arguments), 8):
                part = {"index": i, "function": {"arguments": c.arguments[k : k + 8]}}
                events.append(delta({"tool_calls": [part]}))
        events.append(delta({}, finish))
        if usage is not None:
            events.append(chunk([], usage))

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in events:
            self._write_chunk(f"data: {json.dumps(event)}\n\n".encode())
        self._write_chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _embeddings(self, body: dict[str, Any]) -> None:
        owner = self.owner
        raw = body.get("input")
        if isinstance(raw, str):
            inputs = [raw]
        elif isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
            inputs = list(raw)
        elif isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
            inputs = [" ".join(map(str, raw))]  # one tokenised input
        elif isinstance(raw, list) and raw and all(isinstance(x, list) for x in raw):
            inputs = [" ".join(map(str, x)) for x in raw]
        else:
            self._send_error_json(
                400,
                "'input' must be a non-empty string or list of strings",
                "invalid_request_error",
                None,
            )
            return
        dims = body.get("dimensions") or owner.embedding_dimensions
        fmt = body.get("encoding_format") or "float"
        data = []
        for i, text in enumerate(inputs):
            vector = [
                float(v)
                for v in (owner.embed(text) if owner.embed else hash_embedding(text, int(dims)))
            ]
            encoded: Any = vector
            if fmt == "base64":
                encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        tokens = approx_tokens("".join(inputs))
        self._send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": body.get("model", ""),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # keep-alive connections must not hold up `stop()`
    owner: FakeOpenAIServer


class FakeOpenAIServer:
    """The OpenAI API on 127.0.0.1 with an ephemeral port, scripted by the test.

    Chat replies come from the queue (`enqueue`) first, then from `handler(request_json)`;
    with neither, the server answers 500 with a message saying the script ran out.
    `api_key` (optional) makes the server refuse other keys with 401. `models` lists what
    `GET /v1/models` returns; with `strict_models=True`, other model names get 404.
    `embed(text) -> list[float]` replaces the default hash-derived embedding vectors.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: Sequence[str] = ("fake-model",),
        strict_models: bool = False,
        handler: Callable[[dict[str, Any]], ScriptItem] | None = None,
        embed: Callable[[str], Sequence[float]] | None = None,
        embedding_dimensions: int = 32,
    ) -> None:
        self.api_key = api_key
        self.model_ids = list(models)
        self.strict_models = strict_models
        self.handler = handler
        self.embed = embed
        self.embedding_dimensions = embedding_dimensions
        self.log: list[RecordedRequest] = []
        self._queue: deque[ScriptItem] = deque()
        self._lock = threading.Lock()
        self._served = 0
        self._in_flight = 0
        self._max_in_flight = 0
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scripting ------------------------------------------------------------------------------
    def enqueue(self, *replies: ScriptItem) -> None:
        """Queue chat replies, answered in order: text, a list of tool calls, `Reply` or `Error`."""
        for r in replies:
            _normalise(r)  # reject a bad item now, not inside the server thread
        with self._lock:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """How many queued replies have not been served yet."""
        with self._lock:
            return len(self._queue)

    @property
    def requests(self) -> list[Any]:
        """The JSON body of every POST request, in order (chat and embeddings)."""
        with self._lock:
            return [r.body for r in self.log if r.method == "POST"]

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """The JSON bodies of the chat-completion requests only."""
        with self._lock:
            return [r.body for r in self.log if r.path.rstrip("/").endswith("/chat/completions")]

    @property
    def in_flight(self) -> int:
        """Chat requests being answered right now (a slow `Reply` counts until it is sent)."""
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """The most chat requests that were ever being answered at the same time."""
        with self._lock:
            return self._max_in_flight

    def _enter_chat(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def _leave_chat(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.log.append(request)

    def _next_reply(self, body: dict[str, Any]) -> tuple[Reply | Error, int]:
        with self._lock:
            self._served += 1
            counter = self._served
            item = self._queue.popleft() if self._queue else None
        if item is None and self.handler is not None:
            item = self.handler(body)
        if item is None:
            return (
                Error(
                    status=500,
                    message=(
                        f"FakeOpenAIServer has no scripted reply for chat request #{counter}: "
                        "the queue is empty and no handler is set (enqueue more replies)"
                    ),
                ),
                counter,
            )
        reply = _normalise(item)
        if isinstance(reply, Reply):
            _tool_calls(reply, counter)
        return reply, counter

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v1`, what an OpenAI client takes as `base_url`."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FakeOpenAIServer is not started (use `with` or .start())")
        return int(self._httpd.server_address[1])

    def start(self) -> FakeOpenAIServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-openai",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()  # wakes replies that are waiting out a `delay_s`
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
