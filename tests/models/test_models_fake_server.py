"""The loopback OpenAI server itself: embeddings, models, handlers, errors, recording."""

from __future__ import annotations

import http.client
import io
import json
import math
import re
import socket
import urllib.error
import urllib.request
from typing import Any

import openai
import pytest

from symbiont.testing.openai_server import Error, FakeOpenAIServer, Reply


def client(server: FakeOpenAIServer, key: str = "sk-test") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)


def test_base_url_is_loopback_v1(openai_server: FakeOpenAIServer) -> None:
    assert openai_server.base_url.startswith("http://127.0.0.1:")
    assert openai_server.base_url.endswith("/v1")
    assert openai_server.port > 0


def test_models_listing(openai_server: FakeOpenAIServer) -> None:
    with client(openai_server) as c:
        assert [m.id for m in c.models.list().data] == ["fake-model"]


def test_embeddings_are_deterministic_unit_vectors(openai_server: FakeOpenAIServer) -> None:
    with client(openai_server) as c:
        first = c.embeddings.create(model="emb", input=["salary of an employee", "weather"])
        again = c.embeddings.create(
            model="emb", input="salary of an employee", encoding_format="float"
        )
    a, b = (d.embedding for d in first.data)
    assert len(a) == 32
    assert a == pytest.approx(again.data[0].embedding, abs=1e-6)  # base64 and float agree
    assert a != pytest.approx(b, abs=1e-3)
    assert math.sqrt(sum(x * x for x in a)) == pytest.approx(1.0, abs=1e-5)
    assert first.usage.prompt_tokens > 0


def test_embeddings_with_dimensions_and_custom_function() -> None:
    def embed(text: str) -> list[float]:
        return [float(len(text)), 1.0, 0.0]

    with FakeOpenAIServer(embed=embed) as server, client(server) as c:
        out = c.embeddings.create(model="emb", input=["abcd"], encoding_format="float")
        assert out.data[0].embedding == [4.0, 1.0, 0.0]
    with FakeOpenAIServer() as server, client(server) as c:
        out = c.embeddings.create(model="emb", input="x", dimensions=8)
        assert len(out.data[0].embedding) == 8


def test_handler_drives_a_conversation(openai_server: FakeOpenAIServer) -> None:
    def handler(request: dict[str, Any]) -> Any:
        last = request["messages"][-1]
        if last["role"] == "tool":
            return f"The answer is {json.loads(last['content'])['salary']}."
        return [{"name": "run_capability", "arguments": {"capability_id": "get_salary"}}]

    openai_server.handler = handler
    messages: list[Any] = [{"role": "user", "content": "What is E042's salary?"}]
    with client(openai_server) as c:
        first = c.chat.completions.create(model="fake-model", messages=messages)
        calls = first.choices[0].message.tool_calls
        assert calls
        call = calls[0]
        messages.append(first.choices[0].message.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"salary": 85000}'})
        second = c.chat.completions.create(model="fake-model", messages=messages)
    assert second.choices[0].message.content == "The answer is 85000."
    assert len(openai_server.chat_requests) == 2
    assert openai_server.chat_requests[1]["messages"][-1]["role"] == "tool"


def test_queue_takes_precedence_over_handler(openai_server: FakeOpenAIServer) -> None:
    openai_server.handler = lambda request: "from handler"
    openai_server.enqueue("from queue")
    with client(openai_server) as c:
        replies = [
            c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
            .choices[0]
            .message.content
            for _ in range(2)
        ]
    assert replies == ["from queue", "from handler"]
    assert openai_server.pending == 0


def test_empty_queue_answers_500_with_a_message(openai_server: FakeOpenAIServer) -> None:
    with client(openai_server) as c, pytest.raises(openai.InternalServerError) as info:
        c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert "queue is empty" in str(info.value)


def test_scripted_error_statuses_and_headers(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue(
        Error(status=429, retry_after=1.5), Error(status=418, body={"detail": "teapot"})
    )
    with client(openai_server) as c:
        with pytest.raises(openai.RateLimitError) as info:
            c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert info.value.response.headers["retry-after"] == "1.5"
        assert info.value.response.headers["retry-after-ms"] == "1500"
        with pytest.raises(openai.APIStatusError) as info2:
            c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert info2.value.status_code == 418


def test_api_key_is_enforced_when_set() -> None:
    with FakeOpenAIServer(api_key="sk-right") as server:
        with client(server, "sk-wrong") as c, pytest.raises(openai.AuthenticationError):
            c.models.list()
        with client(server, "sk-right") as c:
            assert c.models.list().data


def test_bad_requests_get_400_and_unknown_routes_404(openai_server: FakeOpenAIServer) -> None:
    def post(path: str, payload: bytes) -> int:
        req = urllib.request.Request(
            openai_server.base_url + path,
            data=payload,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as err:
            return err.code

    assert post("/chat/completions", b'{"messages": "nope"}') == 400
    assert post("/chat/completions", b"not json") == 400
    assert post("/embeddings", b'{"input": []}') == 400
    assert post("/nothing-here", b"{}") == 404
    assert openai_server.requests[0] == {"messages": "nope"}


def test_enqueue_rejects_what_it_cannot_serve(openai_server: FakeOpenAIServer) -> None:
    with pytest.raises(TypeError):
        not_a_reply: Any = {"text": "a dict is not a reply"}
        openai_server.enqueue(not_a_reply)
    with pytest.raises(TypeError, match="name"):
        openai_server.enqueue([{"arguments": {}}])
    assert openai_server.pending == 0


def test_usage_grows_with_the_text(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue("a", Reply(text="b" * 400))
    with client(openai_server) as c:
        short = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        long = c.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x" * 400}]
        )
    assert short.usage is not None and long.usage is not None
    assert (short.usage.prompt_tokens, short.usage.completion_tokens) == (1, 1)
    assert (long.usage.prompt_tokens, long.usage.completion_tokens) == (100, 100)
    assert long.usage.total_tokens == 200


def test_stop_and_restart() -> None:
    server = FakeOpenAIServer().start()
    server.stop()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.base_url
    with server, client(server) as c:
        assert c.models.list().data


# -- the wire, seen from a raw socket ---------------------------------------------------------


def _connect(server: FakeOpenAIServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _request(
    method: str = "GET",
    path: str = "/v1/models",
    version: str = "HTTP/1.1",
    headers: tuple[str, ...] = (),
    body: bytes = b"",
) -> bytes:
    lines = [f"{method} {path} {version}", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _content_length(head: bytes) -> int:
    found = re.search(rb"\r\ncontent-length: *(\d+)", head, re.IGNORECASE)
    assert found, head
    return int(found[1])


def _reply(sock: socket.socket) -> tuple[int, bytes]:
    """Read one reply (head, then a body by Content-Length): its status and body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-reply: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = _content_length(head)
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    assert len(body) == length, "more bytes than one reply"
    return int(head.split()[1]), body


def _closed(sock: socket.socket) -> bool:
    """Whether the server closed the connection (EOF) rather than keeping it open."""
    sock.settimeout(0.5)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False


def _refusal(server: FakeOpenAIServer, data: bytes) -> int:
    """Send `data` on a new connection; the error status the server answers before closing.

    As in the stdlib, a request line the server cannot read gets its error page alone (the
    HTTP/0.9 form, no status line); one it can read gets a status line as well.
    """
    with _connect(server) as sock:
        sock.sendall(data)
        reply = b""
        try:
            while chunk := sock.recv(65536):
                reply += chunk
        except ConnectionResetError:  # closed with some of the request unread: a reset
            pass
    if reply.startswith(b"HTTP/1.1 "):
        status = int(reply.split()[1])
        assert b"\r\nConnection: close\r\n" in reply
    else:
        found = re.search(rb"Error code: (\d{3})", reply)
        assert found, reply
        status = int(found[1])
    return status


def test_a_json_reply_arrives_in_one_piece() -> None:
    # Head and body in one write: the client's first read holds the whole reply, and it
    # wakes once per reply, not twice.
    body = json.dumps(
        {"model": "fake-model", "messages": [{"role": "user", "content": "x" * 2000}]}
    ).encode()
    request = _request(
        "POST",
        "/v1/chat/completions",
        headers=("Host: 127.0.0.1", "Content-Type: application/json", "Authorization: Bearer k"),
        body=body,
    )
    with FakeOpenAIServer(handler=lambda request: "y" * 1500) as server, _connect(server) as sock:
        for i in range(30):
            sock.sendall(request)
            first = sock.recv(65536)
            head, gap, rest = first.partition(b"\r\n\r\n")
            assert gap, f"request {i}: the first read ended inside the head"
            assert len(rest) == _content_length(head), f"request {i}: the body came apart"
            reply = json.loads(rest)
            assert reply["choices"][0]["message"]["content"] == "y" * 1500
        assert len(server.chat_requests) == 30


@pytest.mark.parametrize(
    "line",
    [
        b"GET",  # no path
        b"GET /v1/models HTTP/1.1 extra",  # a fourth word, taken for the version
        b"GET /v1/models x HTTP/1.1",  # a fourth word before a good version
        b"GET /v1/models HTTP/abc",
        b"GET /v1/models FTP/1.1",
        b"GET /v1/models HTTP/1",
    ],
)
def test_malformed_request_lines_get_400(openai_server: FakeOpenAIServer, line: bytes) -> None:
    assert _refusal(openai_server, line + b"\r\nHost: x\r\n\r\n") == 400
    assert openai_server.log == []


def test_http2_request_line_gets_505(openai_server: FakeOpenAIServer) -> None:
    assert _refusal(openai_server, b"GET /v1/models HTTP/2.0\r\n\r\n") == 505


def test_header_limits_are_the_stdlibs(openai_server: FakeOpenAIServer) -> None:
    def headers(n: int) -> tuple[str, ...]:
        return tuple(f"X-H{i}: v" for i in range(n))

    def field_line(size: int) -> str:  # a header line of `size` bytes with its CRLF
        return "X-Long: " + "a" * (size - len("X-Long: \r\n"))

    # A line may take 65536 bytes with its CRLF, and the block 100 lines with the blank one.
    assert _refusal(openai_server, _request(headers=(field_line(65537),))) == 431
    assert _refusal(openai_server, _request(headers=headers(100))) == 431
    assert _refusal(openai_server, _request(headers=headers(150))) == 431
    with _connect(openai_server) as sock:
        sock.sendall(_request(headers=(field_line(65536),)))
        assert _reply(sock)[0] == 200
        sock.sendall(_request(headers=headers(99)))
        assert _reply(sock)[0] == 200
    assert len(openai_server.log[0].headers["x-long"]) == 65536 - len("X-Long: \r\n")
    assert len(openai_server.log[1].headers) == 99


@pytest.mark.parametrize(
    ("version", "connection", "kept_open"),
    [
        ("HTTP/1.1", None, True),
        ("HTTP/1.1", "close", False),
        ("HTTP/1.1", "Close", False),
        ("HTTP/1.0", None, False),
        ("HTTP/1.0", "keep-alive", True),
        ("HTTP/1.0", "Keep-Alive", True),
    ],
)
def test_connection_close_rules(
    openai_server: FakeOpenAIServer, version: str, connection: str | None, kept_open: bool
) -> None:
    headers = (f"Connection: {connection}",) if connection else ()
    with _connect(openai_server) as sock:
        sock.sendall(_request(version=version, headers=headers))
        assert _reply(sock)[0] == 200
        if kept_open:
            sock.sendall(_request(version=version, headers=headers))
            assert _reply(sock)[0] == 200
        else:
            assert _closed(sock)


def test_expect_100_continue(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue("first", "second")
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]}).encode()
    with _connect(openai_server) as sock:
        head, _, _ = _request(
            "POST", "/v1/chat/completions", headers=("Expect: 100-continue",), body=body
        ).partition(b"\r\n\r\n")
        sock.sendall(head + b"\r\n\r\n")  # the body waits for the server's go-ahead
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        status, reply = _reply(sock)
        assert status == 200
        assert json.loads(reply)["choices"][0]["message"]["content"] == "first"
    with _connect(openai_server) as sock:  # an HTTP/1.0 client gets no 100 (nor did it wait)
        sock.sendall(
            _request(
                "POST",
                "/v1/chat/completions",
                "HTTP/1.0",
                headers=("Expect: 100-continue",),
                body=body,
            )
        )
        assert sock.recv(12) == b"HTTP/1.1 200"


def test_path_with_leading_slashes_is_reduced(openai_server: FakeOpenAIServer) -> None:
    with _connect(openai_server) as sock:
        sock.sendall(_request(path="//v1/models"))
        assert _reply(sock)[0] == 200
    assert openai_server.log[0].path == "/v1/models"


def test_repeated_headers_are_recorded_as_before() -> None:
    # `RecordedRequest.headers` is a dict of lower-cased names: a repeated field keeps its
    # last value there, while the server itself reads the first (the API key check).
    with FakeOpenAIServer(api_key="right") as server, _connect(server) as sock:
        sock.sendall(
            _request(
                headers=(
                    "X-Rep: one",
                    "x-rep: two",
                    "Authorization: Bearer right",
                    "AUTHORIZATION: x",
                )
            )
        )
        assert _reply(sock)[0] == 200
        sock.sendall(_request(headers=("Authorization: x", "Authorization: Bearer right")))
        assert _reply(sock)[0] == 401
    assert server.log[0].headers == {"x-rep": "two", "authorization": "x"}


@pytest.mark.parametrize(
    "block",
    [
        b"Host: h\r\nContent-Type:   application/json  \r\nX-Empty:\r\nX-Tab:\t v\r\n",
        b"X-A: 1\r\n folded\r\n\tagain\r\nX-B: 2\r\n",  # obsolete line folding
        b"X-A: 1\r\nnot a field\r\nX-B: 2\r\n",  # ends the fields, as in the email parser
        b"X-A: 1\r\nX-Bad : 2\r\nX-C: 3\r\n",
        b": no name\r\nX-A: a:b\r\nX-Latin: caf\xe9\r\n",
        b"X-A: 1\nX-B: 2\n",  # bare LF line ends
        b"X-A: 1\r\r\nX-B: 2\r\n",  # to the email parser a lone CR ends a line: a blank one
        b"X-A: 1\r\n: x\r\n folded after a skipped line\r\nFrom x\r\nX-B: 2\r\n",
    ],
)
def test_recorded_headers_match_the_stdlib_parser(
    openai_server: FakeOpenAIServer, block: bytes
) -> None:
    expected = {
        k.lower(): v for k, v in http.client.parse_headers(io.BytesIO(block + b"\r\n")).items()
    }
    with _connect(openai_server) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\n" + block + b"\r\n")
        assert _reply(sock)[0] == 200
    assert openai_server.log[0].headers == expected
