"""`PlainHTTPTransport`: HTTP/1.1 under the SDK's httpx client, against real loopback servers.

Two kinds of server: the project's fake OpenAI server (the SDK end to end through
`OpenAIModel`), and a raw socket server in this file whose replies are written byte by
byte, for what a well-behaved server rarely does: chunked replies with extensions and
trailers, a reply ended by closing the connection, an idle connection closed by the server,
a connection closed as a request arrives, garbage instead of HTTP, no reply at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from symbiont.errors import TransientModelError
from symbiont.models import OpenAIModel
from symbiont.models.transport import PlainHTTPTransport, httpx, plain_http_client
from symbiont.testing.openai_server import Error, FakeOpenAIServer, Reply

USER = [{"role": "user", "content": "Write a function."}]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "SYMBIONT_HTTP_TRANSPORT", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy",
        "NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy",
    ):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


def transport_of(model: OpenAIModel) -> Any:
    return model._client_obj._client._transport  # type: ignore[union-attr]


# -- through the SDK, against the fake OpenAI server ----------------------------------------


def test_the_model_talks_through_the_lean_transport_and_keeps_one_connection(
    openai_server: FakeOpenAIServer,
) -> None:
    openai_server.handler = lambda body: f"reply to {body['messages'][-1]['content']}"
    model = OpenAIModel("fake-model", base_url=openai_server.base_url, api_key="k")

    async def run() -> tuple[list[str], int, Any]:
        texts = []
        for i in range(5):
            reply = await model.complete([{"role": "user", "content": f"q{i}"}])
            texts.append(reply.text)
        transport = transport_of(model)
        return texts, transport.connections, transport

    texts, connections, transport = asyncio.run(run())
    assert isinstance(transport, PlainHTTPTransport)
    assert texts == [f"reply to q{i}" for i in range(5)]
    assert connections == 1  # kept alive across the five requests
    chats = [r for r in openai_server.log if r.path.endswith("/chat/completions")]
    assert [r.body["messages"][-1]["content"] for r in chats] == [f"q{i}" for i in range(5)]
    assert chats[0].headers.get("authorization") == "Bearer k"
    assert chats[0].headers.get("content-type") == "application/json"


def test_streamed_reply_through_the_lean_transport(openai_server: FakeOpenAIServer) -> None:
    text = "```python\ndef f(x: int) -> int:\n    return x * 3\n```"
    openai_server.enqueue(text)
    openai_server.enqueue("second")
    model = OpenAIModel("fake-model", base_url=openai_server.base_url, stream=True)

    async def run() -> tuple[str, str, Any]:
        first = await model.complete(USER)
        second = await model.complete(USER)
        return first.text, second.text, transport_of(model)

    first, second, transport = asyncio.run(run())
    assert isinstance(transport, PlainHTTPTransport)
    assert (first, second) == (text, "second")


def test_error_statuses_keep_their_meaning(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue(Error(status=429, message="slow down", retry_after=1.5))
    openai_server.enqueue(Error(status=503, message="overloaded"))
    openai_server.enqueue(Reply(text="fine"))
    model = OpenAIModel("fake-model", base_url=openai_server.base_url)

    async def run() -> list[Any]:
        out: list[Any] = []
        for _ in range(3):
            try:
                out.append((await model.complete(USER)).text)
            except TransientModelError as exc:
                out.append(exc)
        return out

    limited, failed, fine = asyncio.run(run())
    assert isinstance(limited, TransientModelError)
    assert "429" in str(limited) and "slow down" in str(limited)
    assert limited.retry_after == pytest.approx(1.5)
    assert isinstance(failed, TransientModelError) and "503" in str(failed)
    assert fine == "fine"


def test_unreachable_server_is_a_transient_connection_error(refused_port: int) -> None:
    model = OpenAIModel("m", base_url=f"http://127.0.0.1:{refused_port}/v1")
    with pytest.raises(TransientModelError, match="could not connect"):
        asyncio.run(model.complete(USER))


# -- which client is used -------------------------------------------------------------------


def test_only_plain_http_without_a_proxy_gets_the_lean_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def lean(url: str) -> bool:
        client = plain_http_client(url)
        return client is not None and isinstance(client._transport, PlainHTTPTransport)

    assert lean("http://127.0.0.1:8080/v1")
    assert not lean("https://api.openai.com/v1")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    assert not lean("http://10.1.2.3:8000/v1")  # httpx would send it through the proxy
    monkeypatch.setenv("NO_PROXY", "10.1.2.3")
    assert lean("http://10.1.2.3:8000/v1")
    monkeypatch.setenv("SYMBIONT_HTTP_TRANSPORT", "httpx")
    assert not lean("http://10.1.2.3:8000/v1")


# -- a raw server: replies written byte by byte ----------------------------------------------


class RawServer:
    """Accepts connections on loopback; `script(conn, index)` handles each one, reading
    requests with `read_request` and writing whatever bytes the test wants."""

    def __init__(self, script: Callable[[socket.socket, int], None]) -> None:
        self.script = script
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.requests: list[tuple[bytes, dict[bytes, bytes], bytes]] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            index, self.accepted = self.accepted, self.accepted + 1
            threading.Thread(target=self._run, args=(conn, index), daemon=True).start()

    def _run(self, conn: socket.socket, index: int) -> None:
        with conn, contextlib.suppress(OSError):
            self.script(conn, index)

    def read_request(self, conn: socket.socket) -> bool:
        """Read one request (Content-Length or chunked body); False at end of file."""
        data = b""
        while b"\r\n\r\n" not in data:
            more = conn.recv(65536)
            if not more:
                return False
            data += more
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        f = _Buffered(conn, rest)
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body = b""
            while True:
                size = int(f.line().split(b";")[0], 16)
                if size == 0:
                    f.line()
                    break
                body += f.exact(size)
                f.line()
        else:
            body = f.exact(int(headers.get(b"content-length", b"0")))
        self.requests.append((lines[0], headers, body))
        return True


class _Buffered:
    def __init__(self, conn: socket.socket, data: bytes) -> None:
        self.conn, self.data = conn, data

    def _fill(self) -> None:
        more = self.conn.recv(65536)
        if not more:
            raise OSError("closed")
        self.data += more

    def line(self) -> bytes:
        while b"\r\n" not in self.data:
            self._fill()
        line, _, self.data = self.data.partition(b"\r\n")
        return line

    def exact(self, n: int) -> bytes:
        while len(self.data) < n:
            self._fill()
        out, self.data = self.data[:n], self.data[n:]
        return out


def ok(body: bytes, *extra: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n" % len(body)
    return head + b"".join(h + b"\r\n" for h in extra) + b"\r\n" + body


def fetch(
    url: str, n: int = 1, *, transport: PlainHTTPTransport | None = None, **kw: Any
) -> tuple[list[Any], PlainHTTPTransport]:
    """`n` GETs (or `kw`'s method/content) through one client; the responses, read."""
    transport = transport or PlainHTTPTransport()

    async def run() -> list[Any]:
        async with httpx.AsyncClient(transport=transport, timeout=kw.pop("timeout", 5.0)) as c:
            method = kw.pop("method", "GET")
            return [await c.request(method, url, **kw) for _ in range(n)]

    return asyncio.run(run()), transport


@pytest.fixture
def raw() -> Iterator[Callable[[Callable[[socket.socket, int], None]], RawServer]]:
    servers: list[RawServer] = []

    def start(script: Callable[[socket.socket, int], None]) -> RawServer:
        server = RawServer(script)
        servers.append(server.__enter__())
        return server

    yield start
    for server in servers:
        server.__exit__()


def test_chunked_reply_with_extensions_and_trailers_then_keep_alive(raw: Any) -> None:
    def script(conn: socket.socket, _i: int) -> None:
        while server.read_request(conn):
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5;name=value\r\nhello\r\n"
                b"1\r\n \r\n"
                b"A\r\n0123456789\r\n"
                b"0\r\nX-Trailer: yes\r\n\r\n"
            )

    server = raw(script)
    responses, transport = fetch(server.url + "/x", 3)
    assert [r.content for r in responses] == [b"hello 0123456789"] * 3
    assert transport.connections == 1 and server.accepted == 1


def test_chunked_reply_arriving_in_small_pieces(raw: Any) -> None:
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (b"ab", b"c" * 300, b"d")) + b"0\r\n\r\n"
    wire = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + body

    def script(conn: socket.socket, _i: int) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        server.read_request(conn)
        for i in range(0, len(wire), 7):  # split inside sizes, CRLFs and data
            conn.sendall(wire[i : i + 7])
            threading.Event().wait(0.0005)

    server = raw(script)
    responses, _ = fetch(server.url)
    assert responses[0].content == b"ab" + b"c" * 300 + b"d"


@pytest.mark.parametrize("rest_arrived", [True, False], ids=["rest-here", "rest-pending"])
def test_a_reader_that_stops_early(raw: Any, rest_arrived: bool) -> None:
    """The SDK stops reading a stream at its `[DONE]` event: the connection is kept if the
    rest of the body is already here, closed if it is not."""
    release = threading.Event()
    first = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nevent1\r\n"
    rest = b"6\r\nevent2\r\n0\r\n\r\n"

    def script(conn: socket.socket, _i: int) -> None:
        while server.read_request(conn):
            if rest_arrived:
                conn.sendall(first + rest)
            else:
                conn.sendall(first)
                release.wait(10)
                conn.sendall(rest)

    server = raw(script)
    transport = PlainHTTPTransport()

    async def run() -> list[bytes]:
        async with httpx.AsyncClient(transport=transport) as client:
            firsts = []
            for _ in range(2):
                async with client.stream("GET", server.url) as response:
                    async for data in response.aiter_raw():
                        firsts.append(data)
                        break
            return firsts

    try:
        assert asyncio.run(run()) == [b"event1", b"event1"]
    finally:
        release.set()
    assert transport.connections == (1 if rest_arrived else 2)


def test_reply_ended_by_closing_the_connection(raw: Any) -> None:
    def script(conn: socket.socket, _i: int) -> None:
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")

    server = raw(script)
    responses, transport = fetch(server.url, 2)
    assert [r.content for r in responses] == [b"until the end"] * 2
    assert transport.connections == 2 and server.accepted == 2  # not reused


def test_idle_connection_closed_by_the_server_is_replaced(raw: Any) -> None:
    def script(conn: socket.socket, _i: int) -> None:
        server.read_request(conn)
        conn.sendall(ok(b"one reply per connection"))  # then closes, keep-alive or not

    server = raw(script)
    transport = PlainHTTPTransport()

    async def run() -> list[bytes]:
        async with httpx.AsyncClient(transport=transport) as client:
            out = []
            for _ in range(3):
                out.append((await client.get(server.url)).content)
                await asyncio.sleep(0.05)  # the close reaches us while idle
            return out

    assert asyncio.run(run()) == [b"one reply per connection"] * 3
    assert transport.connections == 3 and len(server.requests) == 3


def test_request_on_a_connection_closed_as_it_arrives_is_sent_once_more(raw: Any) -> None:
    def script(conn: socket.socket, index: int) -> None:
        if index == 0:
            server.read_request(conn)
            conn.sendall(ok(b"first"))
            server.read_request(conn)  # the second request on this connection: no reply
            return
        while server.read_request(conn):
            conn.sendall(ok(b"again"))

    server = raw(script)
    responses, transport = fetch(server.url, 2, method="POST", content=b'{"k": 1}')
    assert [r.content for r in responses] == [b"first", b"again"]
    assert transport.connections == 2
    assert [body for _line, _h, body in server.requests] == [b'{"k": 1}'] * 3


def test_after_a_stale_connection_the_others_idle_ones_are_not_tried(raw: Any) -> None:
    """A restarted server leaves every idle connection stale: one resend, on a new one."""

    def script(conn: socket.socket, index: int) -> None:
        if index < 2:  # the first two connections: one reply each, then stale
            server.read_request(conn)
            conn.sendall(ok(b"first"))
            server.read_request(conn)
            return
        while server.read_request(conn):
            conn.sendall(ok(b"fresh"))

    server = raw(script)
    transport = PlainHTTPTransport()

    async def run() -> list[bytes]:
        async with httpx.AsyncClient(transport=transport) as client:
            both = await asyncio.gather(client.get(server.url), client.get(server.url))
            assert transport.connections == 2  # two requests at once: two connections
            return [r.content for r in both] + [(await client.get(server.url)).content]

    assert asyncio.run(run()) == [b"first", b"first", b"fresh"]
    assert transport.connections == 3 and len(server.requests) == 4


def test_a_new_connection_closed_without_a_reply_is_an_error_not_a_resend(raw: Any) -> None:
    def script(conn: socket.socket, _i: int) -> None:
        server.read_request(conn)

    server = raw(script)
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a reply"):
        fetch(server.url, method="POST", content=b"x")
    assert len(server.requests) == 1


def test_reply_cut_short_is_a_protocol_error(raw: Any) -> None:
    def script(conn: socket.socket, _i: int) -> None:
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")

    server = raw(script)
    with pytest.raises(httpx.RemoteProtocolError, match="before the reply was complete"):
        fetch(server.url)


def test_garbage_instead_of_http_is_a_protocol_error(raw: Any) -> None:
    def script(conn: socket.socket, _i: int) -> None:
        server.read_request(conn)
        conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")

    server = raw(script)
    with pytest.raises(httpx.RemoteProtocolError, match=r"HTTP/1\.x"):
        fetch(server.url)


def test_no_reply_in_time_is_a_read_timeout_and_the_sdk_says_timeout(raw: Any) -> None:
    release = threading.Event()

    def script(conn: socket.socket, _i: int) -> None:
        server.read_request(conn)
        release.wait(10)

    server = raw(script)
    try:
        with pytest.raises(httpx.ReadTimeout):
            fetch(server.url, timeout=0.2)
        client = openai.AsyncOpenAI(
            base_url=server.url + "/v1", api_key="k", max_retries=0, timeout=0.2,
            http_client=plain_http_client(server.url + "/v1"),
        )  # fmt: skip
        with pytest.raises(openai.APITimeoutError):
            asyncio.run(client.chat.completions.create(model="m", messages=USER))  # type: ignore[arg-type]
    finally:
        release.set()


def test_connection_refused_is_a_connect_error(refused_port: int) -> None:
    with pytest.raises(httpx.ConnectError, match="could not connect"):
        fetch(f"http://127.0.0.1:{refused_port}/")


def test_interim_reply_no_body_statuses_and_head(raw: Any) -> None:
    def script(conn: socket.socket, _i: int) -> None:
        while server.read_request(conn):
            line = server.requests[-1][0]
            if line.startswith(b"HEAD"):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n")
            elif b"/empty" in line:
                conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
            else:
                conn.sendall(ok(b"body"))

    server = raw(script)
    transport = PlainHTTPTransport()

    async def run() -> list[tuple[int, bytes]]:
        async with httpx.AsyncClient(transport=transport) as client:
            out = []
            for method, path in (("HEAD", "/"), ("GET", "/empty"), ("GET", "/")):
                r = await client.request(method, server.url + path)
                out.append((r.status_code, r.content))
            return out

    assert asyncio.run(run()) == [(200, b""), (204, b""), (200, b"body")]
    assert transport.connections == 1


def test_chunked_request_body_and_a_large_reply(raw: Any) -> None:
    big = bytes(range(256)) * (3 * 4096 + 7)  # ~3 MB: reading pauses and resumes

    def script(conn: socket.socket, _i: int) -> None:
        server.read_request(conn)
        conn.sendall(ok(big))

    async def parts() -> Any:
        for piece in (b"first,", b"second,", b"third"):
            yield piece

    server = raw(script)
    responses, _ = fetch(server.url, method="POST", content=parts())
    assert responses[0].content == big
    line, headers, body = server.requests[0]
    assert headers[b"transfer-encoding"] == b"chunked" and body == b"first,second,third"
    assert line == b"POST / HTTP/1.1"


def test_a_cancelled_request_closes_its_connection(raw: Any) -> None:
    release = threading.Event()

    def script(conn: socket.socket, index: int) -> None:
        server.read_request(conn)
        if index == 0:
            release.wait(10)
            return
        conn.sendall(ok(b"after"))

    server = raw(script)
    transport = PlainHTTPTransport()

    async def run() -> bytes:
        async with httpx.AsyncClient(transport=transport) as client:
            task = asyncio.create_task(client.get(server.url))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return (await client.get(server.url)).content

    try:
        assert asyncio.run(run()) == b"after"
    finally:
        release.set()
    assert transport.connections == 2


def test_usable_from_one_event_loop_after_another(raw: Any) -> None:
    def script(conn: socket.socket, _i: int) -> None:
        while server.read_request(conn):
            conn.sendall(ok(b"hi"))

    server = raw(script)
    transport = PlainHTTPTransport()

    async def once() -> bytes:
        client = httpx.AsyncClient(transport=transport)
        return (await client.get(server.url)).content  # not closed: the pool keeps it

    assert asyncio.run(once()) == b"hi"
    assert asyncio.run(once()) == b"hi"  # the first loop's connection is not reused
    assert transport.connections == 2


def test_https_goes_to_httpx_own_transport() -> None:
    transport = PlainHTTPTransport()

    async def run() -> None:
        async with httpx.AsyncClient(transport=transport, timeout=2.0) as client:
            await client.get("https://127.0.0.1:1/")

    with pytest.raises(httpx.ConnectError):
        asyncio.run(run())
    assert transport.connections == 0 and transport._fallback is None  # closed with it


def test_a_reply_whose_whole_body_arrived_is_handed_over_as_content(raw: Any) -> None:
    """A sized reply already in the buffer is the response's content at once (no stream):
    it is decoded as its Content-Encoding says, can still be streamed by a reader that asks
    to, knows its elapsed time, and its connection is reused."""
    packed = gzip.compress(b"hello, packed world")

    def script(conn: socket.socket, _i: int) -> None:
        while server.read_request(conn):
            if b"/gz" in server.requests[-1][0]:
                conn.sendall(ok(packed, b"Content-Encoding: gzip"))
            else:
                conn.sendall(ok(b"plain body"))

    server = raw(script)
    transport = PlainHTTPTransport()

    async def run() -> tuple[list[bytes], list[bytes], list[float]]:
        async with httpx.AsyncClient(transport=transport) as client:
            plain = await client.get(server.url + "/")
            packed_reply = await client.get(server.url + "/gz")
            async with client.stream("GET", server.url + "/") as streamed:
                parts = [part async for part in streamed.aiter_bytes()]
            # straight from the transport: the body is there before anyone reads it
            direct = await transport.handle_async_request(httpx.Request("GET", server.url))
            assert direct.content == b"plain body"
            return (
                [plain.content, packed_reply.content],
                parts,
                [r.elapsed.total_seconds() for r in (plain, packed_reply)],
            )

    contents, parts, elapsed = asyncio.run(run())
    assert contents == [b"plain body", b"hello, packed world"]
    assert b"".join(parts) == b"plain body"
    assert all(0 < e < 60 for e in elapsed)
    assert transport.connections == 1 and server.accepted == 1


def test_a_request_that_asks_to_close_its_connection_is_not_reused(raw: Any) -> None:
    """`Connection: close` on the request: the connection is closed after its reply, even
    when the server would keep it (a sized reply, read whole at once)."""

    def script(conn: socket.socket, _i: int) -> None:
        while server.read_request(conn):
            conn.sendall(ok(b"body"))

    server = raw(script)
    responses, transport = fetch(server.url, 2, headers={"Connection": "keep-alive, Close"})
    assert [r.content for r in responses] == [b"body", b"body"]
    assert transport.connections == 2 and server.accepted == 2


# -- the model's direct chat path over the lean transport -------------------------------------


def _completion(text: str) -> bytes:
    return json.dumps(
        {
            "id": "c1", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
    ).encode()  # fmt: skip


def test_the_model_reads_a_compressed_completion_and_one_in_chunks(raw: Any) -> None:
    """`OpenAIModel` hands the bytes of a plain reply straight to the JSON reader; a reply in
    a Content-Encoding is decoded first, and a chunked one read to its end."""
    packed = gzip.compress(_completion("from gzip"))
    plain = _completion("from chunks")

    def script(conn: socket.socket, _i: int) -> None:
        n = 0
        while server.read_request(conn):
            n += 1
            if n == 1:
                conn.sendall(ok(packed, b"Content-Encoding: gzip"))
            else:
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                    + b"%x\r\n%s\r\n" % (10, plain[:10])
                    + b"%x\r\n%s\r\n" % (len(plain) - 10, plain[10:])
                    + b"0\r\n\r\n"
                )

    server = raw(script)
    model = OpenAIModel("m", base_url=server.url + "/v1", api_key="k")

    async def run() -> list[Any]:
        return [await model.complete(USER), await model.complete(USER)]

    first, second = asyncio.run(run())
    assert (first.text, second.text) == ("from gzip", "from chunks")
    assert second.usage.input_tokens == 3 and second.usage.output_tokens == 2
    assert server.accepted == 1  # both on one kept-alive connection


def test_the_model_follows_a_redirect_of_its_chat_request(raw: Any) -> None:
    """A server that moved its API answers the chat request with a 307: the request reaches
    the new place with its body, as the SDK's client would send it there."""

    def script(conn: socket.socket, _i: int) -> None:
        while server.read_request(conn):
            if server.requests[-1][0].startswith(b"POST /v1/"):
                conn.sendall(
                    b"HTTP/1.1 307 Temporary Redirect\r\n"
                    b"Location: /v2/chat/completions\r\nContent-Length: 0\r\n\r\n"
                )
            else:
                conn.sendall(ok(_completion("moved"), b"Content-Type: application/json"))

    server = raw(script)
    model = OpenAIModel("m", base_url=server.url + "/v1", api_key="k")
    reply = asyncio.run(model.complete(USER))
    assert reply.text == "moved"
    lines = [r[0] for r in server.requests]
    assert lines[-1] == b"POST /v2/chat/completions HTTP/1.1"
    assert all(line.startswith(b"POST /v1/") for line in lines[:-1])
    bodies = {r[2] for r in server.requests}
    assert len(bodies) == 1 and json.loads(bodies.pop())["messages"] == USER
