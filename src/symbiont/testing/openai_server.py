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
from http import HTTPStatus
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


# The limits `http.client.parse_headers` applies to a request's header block: a line of at
# most 64 KiB, at most 100 lines counting the blank line that ends the block.
_MAX_LINE = 65536
_MAX_HEADER_LINES = 100
_HTTP_VERSION = re.compile(r"HTTP/([0-9]{1,10})\.([0-9]{1,10})")
_FIELD_NAME = re.compile(r"[!-9;-~]+")  # visible ASCII but ':', as the email parser has it
# Well-formed header lines, one match a line: the name, and the value without leading blanks.
_FIELD_LINES = re.compile(r"^([!-9;-~]+):[ \t]*([^\r\n]*)\r?\n", re.MULTILINE)
_EMAIL_LINES = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")  # a lone CR ends one too


def _fields_one_by_one(block: str) -> list[tuple[str, str]]:
    """The header fields the email parser reads from lines that are not all well formed.

    A folded line (one that starts with a blank) continues the field before it; a line
    with an empty name (": x") or one that starts with "From " is skipped; any other line
    that is not a field ends the fields, and the lines after it are ignored.
    """
    fields: list[tuple[str, str]] = []
    folding = False  # whether a folded line would continue the last field
    for line in _EMAIL_LINES.findall(block):
        if line[0] in " \t":
            if folding:
                fields[-1] = (fields[-1][0], fields[-1][1] + line)
            continue
        name, colon, value = line.partition(":")
        folding = bool(colon and _FIELD_NAME.fullmatch(name))
        if folding:
            fields.append((name, value.lstrip(" \t")))
        elif (name or not colon) and not line.startswith("From "):
            break
    return [(name, value.rstrip("\r\n")) for name, value in fields]


class _Headers:
    """A request's header fields, as much of `email.message.Message` as a handler uses.

    Names are case-insensitive. `get(name)` and `headers[name]` give the first value of a
    repeated field (None when absent), `get_all` and `items()` every value in order.
    """

    __slots__ = ("_fields", "_first")

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._fields = fields
        self._first: dict[str, str] = {}
        for name, value in fields:
            self._first.setdefault(name.lower(), value)

    def get(self, name: str, default: Any = None) -> Any:
        return self._first.get(name.lower(), default)

    def __getitem__(self, name: str) -> str | None:
        return self._first.get(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    def get_all(self, name: str, default: Any = None) -> Any:
        key = name.lower()
        return [v for n, v in self._fields if n.lower() == key] or default

    def items(self) -> list[tuple[str, str]]:
        return list(self._fields)

    def __repr__(self) -> str:
        return f"_Headers({self._fields!r})"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # A JSON reply goes out in one write, but an event stream writes each event as it is
    # produced; with Nagle's algorithm on, an event would wait for the client's delayed ACK
    # (~40 ms on Linux).
    disable_nagle_algorithm = True
    raw_requestline: bytes  # read by BaseHTTPRequestHandler.handle_one_request
    headers: _Headers  # type: ignore[assignment]  # set by parse_request below
    _headers_buffer: list[bytes]  # BaseHTTPRequestHandler's, filled by send_response/send_header

    @property
    def owner(self) -> FakeOpenAIServer:
        server = self.server
        assert isinstance(server, _HTTPServer)
        return server.owner

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read `requests`
        pass

    def parse_request(self) -> bool:
        """The stdlib's request-line and header parsing, without the `email` package.

        `BaseHTTPRequestHandler.parse_request` reads the headers with
        `http.client.parse_headers`, whose `email` feed parser (with `Message.get` on every
        lookup) took half of this server's time per request. This reads the same lines with
        the same limits (431 for a line over 64 KiB or more than 100 lines) and gives the
        values that parser gives (see `_fields_one_by_one` for odd lines). It keeps the
        stdlib's 400 for a malformed request line or version and 505 for HTTP/2 and up, its
        reduction of a leading `//` in the path, its keep-alive rules (HTTP/1.1 keeps the
        connection unless it says `Connection: close`, HTTP/1.0 closes it unless it says
        `keep-alive`) and `Expect: 100-continue`. Unlike the stdlib it takes only HTTP/1.0
        and HTTP/1.1 (not HTTP/0.9, nor 1.2 and such).
        """
        self.command = ""
        self.request_version = self.default_request_version
        self.close_connection = True
        self.requestline = requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = requestline.split()
        if not words:
            return False
        if len(words) >= 3:
            version = words[-1]
            if version not in ("HTTP/1.1", "HTTP/1.0"):
                number = _HTTP_VERSION.fullmatch(version)
                if number and int(number[1]) >= 2:
                    self.send_error(
                        HTTPStatus.HTTP_VERSION_NOT_SUPPORTED,
                        f"Invalid HTTP version ({version[5:]})",
                    )
                else:
                    self.send_error(HTTPStatus.BAD_REQUEST, f"Bad request version ({version!r})")
                return False
            self.request_version = version
            self.close_connection = version == "HTTP/1.0"
        if len(words) != 3:
            self.send_error(HTTPStatus.BAD_REQUEST, f"Bad request syntax ({requestline!r})")
            return False
        self.command, path = words[:2]
        # The stdlib's guard against open redirects (gh-87389): `//host/x` reads as a URL.
        self.path = "/" + path.lstrip("/") if path.startswith("//") else path

        lines: list[bytes] = []
        while True:  # as http.client reads them
            raw = self.rfile.readline(_MAX_LINE + 1)
            if len(raw) > _MAX_LINE:
                self.send_error(
                    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "Line too long",
                    f"got more than {_MAX_LINE} bytes when reading header line",
                )
                return False
            lines.append(raw)
            if len(lines) > _MAX_HEADER_LINES:
                self.send_error(
                    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "Too many headers",
                    f"got more than {_MAX_HEADER_LINES} headers",
                )
                return False
            if raw in (b"\r\n", b"\n", b""):
                break
        block = b"".join(lines).decode("iso-8859-1")
        fields = _FIELD_LINES.findall(block)
        if len(fields) != len(lines) - 1:  # a folded or malformed line: go one by one
            fields = _fields_one_by_one(block)
        self.headers = _Headers(fields)

        connection = self.headers.get("Connection", "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive":
            self.close_connection = False
        if (
            self.request_version == "HTTP/1.1"
            and self.headers.get("Expect", "").lower() == "100-continue"
        ):
            return self.handle_expect_100()
        return True

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
        # Head and body in one write (`end_headers()` sends the head on its own): the client
        # then gets one TCP segment and wakes once per reply, not twice.
        self._headers_buffer.append(b"\r\n" + data)
        self.flush_headers()

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
