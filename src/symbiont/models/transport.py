"""A lean HTTP/1.1 transport for the `openai` SDK talking to a model server over plain http.

Local model servers (llama.cpp, vLLM, Ollama, LM Studio) are reached at `http://host:port/v1`,
usually on loopback. For them the SDK's default stack — `httpx` over `httpcore` over `h11`
over `anyio` — costs about 1.8 ms of CPU per request on this machine, more than the rest of
a cheap search candidate. `PlainHTTPTransport` is an `httpx` transport (`AsyncBaseTransport`)
that speaks HTTP/1.1 itself on an asyncio protocol: the request goes out in one write, the
reply is parsed from one buffer. It cuts a request to about 0.8 ms. Because it sits *under*
the SDK's `httpx` client, the SDK keeps its own retries, timeouts, headers, error types and
streaming (server-sent events are read chunk by chunk as they arrive).

What it does:

- keep-alive: a connection goes back to a pool once its reply has been read to the end, and
  is used again; one that the server closed while idle is noticed and dropped. A request
  sent on a kept-alive connection that then ends before any byte of a reply (the server
  closed it as the request went out: the race every keep-alive client has) is sent once
  more on a new connection, as browsers and urllib3 do. Nothing else is resent.
- request bodies with `Content-Length`, or chunked when the request says so; replies framed
  by `Content-Length`, by `Transfer-Encoding: chunked` (with trailers), or by the end of the
  connection; no body for HEAD, 1xx, 204 and 304; interim 1xx replies are skipped.
- the request's timeouts (`connect`, `read` between two arrivals, `write`) as the `httpx`
  exceptions `ConnectTimeout`, `ReadTimeout`, `WriteTimeout`; refused or failed
  connections as `ConnectError`, a connection lost as `ReadError` / `WriteError`, a reply
  that is not HTTP/1.x or is cut short as `RemoteProtocolError` — the SDK maps these to its
  `APIConnectionError` and `APITimeoutError` as it does for its own transport.
- a cancelled request (a caller that gave up) closes its connection.

What it leaves to `httpx`: anything but `http://` (an `https://` redirect, say) goes to a
default `httpx` transport created on first use. `plain_http_client(base_url)` builds the
SDK's client with this transport only for an `http://` base URL that no proxy from the
environment (`HTTP_PROXY`, `ALL_PROXY`, less `NO_PROXY`) applies to; otherwise it returns
None and the SDK builds its usual client. `SYMBIONT_HTTP_TRANSPORT=httpx` turns it off.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import re
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import openai
from openai import _base_client

# The `httpx` the SDK was built on: `httpx2` in newer SDKs, `httpx` in older ones.
httpx: Any = getattr(_base_client, "httpx2", None) or getattr(_base_client, "httpx")  # noqa: B009

__all__ = ["TRANSPORT_ENV", "PlainHTTPTransport", "Whole", "encode_head", "plain_http_client"]

TRANSPORT_ENV = "SYMBIONT_HTTP_TRANSPORT"
_MAX_HEAD = 64 * 1024  # status line and headers of one reply
_MAX_IDLE = 32  # idle connections kept per host
_PAUSE_AT = 1 << 20  # stop reading from the socket while this much is unread
_WHOLE_AT_ONCE = 1 << 20  # a sized reply up to this size is read whole before it is returned
_NO_BODY_STATUS = frozenset({204, 304})
# Header bytes that would split or forge a line. (Searched with a pattern, not `b"\r" in
# value`: on CPython 3.11 a bytes-in-bytes test first tries the operand as an integer and
# formats, then drops, a TypeError: ~1,000 instructions each, five per header.)
_BAD_NAME = re.compile(rb"[\r\n:]")
_BAD_VALUE = re.compile(rb"[\r\n]")


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: what arrived and not yet read, and whether it ended."""

    def __init__(self, loop: asyncio.AbstractEventLoop, key: tuple[str, int]) -> None:
        self.loop = loop
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.lost: BaseException | None = None
        self.requests = 0  # sent over it so far
        self._waiter: asyncio.Future[bool] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._reading_paused = False

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _PAUSE_AT and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.lost = exc
        self._wake()
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def pause_writing(self) -> None:
        if self._drained is None:
            self._drained = self.loop.create_future()

    def resume_writing(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    # -- used by the transport ---------------------------------------------------------------
    def reusable(self) -> bool:
        """Idle, open, and nothing unexpected arrived while it was idle."""
        t = self.transport
        return not self.eof and not self.buffer and t is not None and not t.is_closing()

    def close(self) -> None:
        self.eof = True
        if self.transport is not None:
            with contextlib.suppress(RuntimeError):  # its event loop is already closed
                self.transport.close()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    async def send(self, data: bytes, timeout: float | None, request: Any) -> None:
        assert self.transport is not None
        self.requests += 1
        self.transport.write(data)
        drained = self._drained
        if drained is None:
            return
        if not await _within(self.loop, drained, timeout):
            raise httpx.WriteTimeout("timed out sending the request", request=request)
        if self.lost is not None:
            raise httpx.WriteError(f"the connection was lost: {self.lost}", request=request)

    async def more(self, timeout: float | None, request: Any) -> None:
        """Wait until more bytes arrived or the connection ended."""
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        waiter = self._waiter = self.loop.create_future()
        try:
            arrived = await _within(self.loop, waiter, timeout)
        finally:
            self._waiter = None
        if not arrived:
            raise httpx.ReadTimeout("timed out waiting for the server's reply", request=request)

    def take(self, n: int) -> bytes:
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data


async def _within(
    loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[Any], timeout: float | None
) -> bool:
    """Await `waiter`; False if `timeout` seconds passed first (None: no limit)."""
    if timeout is None:
        await waiter
        return True
    timer = loop.call_later(timeout, _expire, waiter)
    try:
        result = await waiter
    finally:
        timer.cancel()
    return result is not False


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_result(False)


def _cut_short(conn: _Connection, request: Any) -> Exception:
    if conn.lost is not None:
        return httpx.ReadError(f"the connection was lost: {conn.lost}", request=request)
    return httpx.RemoteProtocolError(
        "the server closed the connection before the reply was complete", request=request
    )


class _Disconnected(Exception):
    """The server closed a kept-alive connection before any byte of a reply (resendable)."""


class _Head:
    __slots__ = ("chunked", "close", "encoded", "headers", "length", "reason", "status", "version")

    def __init__(self) -> None:
        self.status = 0
        self.reason = b""
        self.version = b"HTTP/1.1"
        self.headers: list[tuple[bytes, bytes]] = []
        self.length: int | None = None
        self.chunked = False
        self.close = False
        self.encoded = False  # a Content-Encoding other than identity (httpx decodes it)


class Whole:
    """A sized reply read whole by `PlainHTTPTransport.exchange`: its head, its body as it
    came (`encoded`: still in its Content-Encoding, which `response()` decodes), and the
    seconds from the request's start to the body's last byte."""

    __slots__ = ("content", "elapsed_s", "head")

    def __init__(self, head: _Head, content: bytes, elapsed_s: float) -> None:
        self.head = head
        self.content = content
        self.elapsed_s = elapsed_s

    @property
    def status(self) -> int:
        return self.head.status

    @property
    def encoded(self) -> bool:
        return self.head.encoded

    def response(self) -> Any:
        """As an `httpx.Response` with the body as its content (`httpx` then skips its
        stream layers, about 40 us a reply)."""
        head = self.head
        response = httpx.Response(
            head.status,
            headers=head.headers,
            content=self.content,
            extensions={"http_version": head.version, "reason_phrase": head.reason},
        )
        # what `httpx` sets once a streamed body has been read
        response.elapsed = datetime.timedelta(seconds=self.elapsed_s)
        return response


def _parse_head(raw: bytes, request: Any) -> _Head:
    lines = raw.split(b"\r\n")
    status_line = lines[0].split(b" ", 2)
    head = _Head()
    try:
        head.version = status_line[0]
        head.status = int(status_line[1])
    except (IndexError, ValueError):
        head.status = 0
    if not head.version.startswith(b"HTTP/1.") or not 100 <= head.status <= 999:
        raise httpx.RemoteProtocolError(
            f"the server did not answer in HTTP/1.x: {lines[0][:100]!r}", request=request
        )
    head.reason = status_line[2] if len(status_line) > 2 else b""
    connection = b""
    lengths = set()
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip() or line.startswith((b" ", b"\t")):
            raise httpx.RemoteProtocolError(
                f"a malformed header line in the reply: {line[:100]!r}", request=request
            )
        value = value.strip(b" \t")
        head.headers.append((name, value))
        lower = name.lower()
        if lower == b"content-length":
            lengths.add(value)
        elif lower == b"transfer-encoding":
            head.chunked = value.lower().rsplit(b",", 1)[-1].strip() == b"chunked"
        elif lower == b"connection":
            connection += b"," + value.lower()
        elif lower == b"content-encoding":
            head.encoded = head.encoded or value.strip().lower() not in (b"", b"identity")
    if lengths and not head.chunked:
        if len(lengths) > 1:
            raise httpx.RemoteProtocolError("conflicting Content-Length headers", request=request)
        value = lengths.pop()
        if not value.isdigit():
            raise httpx.RemoteProtocolError(
                f"a malformed Content-Length: {value[:40]!r}", request=request
            )
        head.length = int(value)
    tokens = {t.strip() for t in connection.split(b",")}
    head.close = b"close" in tokens or (head.version == b"HTTP/1.0" and b"keep-alive" not in tokens)
    return head


_DONE = object()  # the body has been read to its end


class _Body:
    """A reply's body as the `httpx` response stream, read as it arrives. The framing is
    parsed by `_step`, which never waits: it returns what the buffer holds of the body, None
    when it needs more bytes, or `_DONE`. The connection goes back to the pool when the body
    has been read to its end — also when the reader stops early (the SDK does after a
    stream's `[DONE]` event) and the rest of the body is already here."""

    def __init__(
        self,
        owner: PlainHTTPTransport,
        conn: _Connection,
        head: _Head,
        request: Any,
        read_s: float | None,
    ) -> None:
        self.owner = owner
        self.conn: _Connection | None = conn
        self.request = request
        self.read_s = read_s
        self.keep = not head.close and (head.chunked or head.length is not None)
        # "sized" (remaining bytes), "size" (a chunk-size line next), "chunk" (remaining
        # bytes of a chunk, then its CRLF), "crlf", "trailers", "close" (until the end).
        if head.chunked:
            self.state, self.remaining = "size", 0
        elif head.length is not None:
            self.state, self.remaining = "sized", head.length
        else:
            self.state, self.remaining = "close", 0

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        conn = self.conn
        if conn is None:
            raise StopAsyncIteration
        try:
            while True:
                data = self._step(conn)
                if data is _DONE:
                    self._finish(keep=self.keep)
                    raise StopAsyncIteration
                if data:
                    return data  # type: ignore[return-value]
                if data is None:
                    if conn.eof:
                        if self.state == "close" and conn.lost is None:
                            self._finish(keep=False)
                            raise StopAsyncIteration
                        raise _cut_short(conn, self.request)
                    await conn.more(self.read_s, self.request)
        except StopAsyncIteration:
            raise
        except BaseException:
            self._finish(keep=False)
            raise

    def _step(self, conn: _Connection) -> bytes | object | None:
        buffer = conn.buffer
        state = self.state
        if state in ("sized", "chunk"):
            if not self.remaining:
                if state == "sized":
                    return _DONE
                self.state = "crlf"
                return b""
            if not buffer:
                return None
            data = conn.take(self.remaining)
            self.remaining -= len(data)
            return data
        if state == "close":
            return conn.take(len(buffer)) if buffer else None
        end = buffer.find(b"\r\n")
        if end < 0:
            if len(buffer) > _MAX_HEAD:
                raise httpx.RemoteProtocolError(
                    "a line of the reply is too long", request=self.request
                )
            return None
        line = conn.take(end + 2)[:-2]
        if state == "crlf":
            if line:
                raise httpx.RemoteProtocolError(
                    "a chunk of the reply is longer than its size says", request=self.request
                )
            self.state = "size"
        elif state == "trailers":
            if not line:
                return _DONE
        else:  # "size"
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                size = -1
            if size < 0 or not size_text.isalnum():
                raise httpx.RemoteProtocolError(
                    f"a malformed chunk size in the reply: {line[:40]!r}", request=self.request
                )
            if size:
                self.state, self.remaining = "chunk", size
            else:
                self.state = "trailers"
        return b""

    def _finish(self, keep: bool) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            self.owner._release(conn, keep and not conn.buffer)

    async def aclose(self) -> None:
        """The reader is done with it. A body not read to its end still frees its
        connection if the rest of it has already arrived (it is skipped); otherwise the
        connection cannot carry another request and is closed."""
        conn = self.conn
        if conn is None:
            return
        try:
            while (data := self._step(conn)) is not None and data is not _DONE:
                pass
        except httpx.RemoteProtocolError:
            data = None
        self._finish(keep=data is _DONE and self.keep)


class PlainHTTPTransport(httpx.AsyncBaseTransport):  # type: ignore[misc]
    """HTTP/1.1 over plain TCP with keep-alive, for an `httpx.AsyncClient` (see the module's
    docstring). Other schemes go to a default `httpx` transport."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._busy: set[_Connection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fallback: Any = None
        self._closed = False
        self.connections = 0  # opened so far (tests and benchmarks read it)

    async def handle_async_request(self, request: Any) -> Any:
        url = request.url
        if url.scheme != "http":
            if self._fallback is None:
                self._fallback = httpx.AsyncHTTPTransport()
            return await self._fallback.handle_async_request(request)
        payload, close = await _encode(request)
        reply = await self.exchange(request, payload, close)
        return reply.response() if isinstance(reply, Whole) else reply

    async def exchange(self, request: Any, payload: bytes, close: bool = False) -> Any:
        """Send `payload`, `request` on the wire as `_encode` writes it (`close`: it asks for
        `Connection: close`), to the request's http:// host; the reply. A sized reply of
        modest size (any reply of a chat completion that is not streamed) is read whole here
        and comes back as a `Whole`, so the connection goes back to the pool at once and a
        caller that only wants the bytes builds no `httpx.Response` (`_DirectChat`); any
        other reply comes back as the `httpx.Response` whose stream reads it as it arrives.
        Raises the `httpx` exceptions `handle_async_request` raises."""
        if self._closed:
            raise RuntimeError("the transport was closed")
        started = time.perf_counter()
        timeouts = request.extensions.get("timeout") or {}
        url = request.url
        key = (url.host, url.port or 80)
        for _ in range(2):
            conn = await self._connection(key, timeouts.get("connect"), request)
            try:
                head = await self._exchange(conn, payload, timeouts, request)
                head.close = head.close or close
            except _Disconnected:
                # The server closed it as the request went out; its other idle connections
                # (a restarted server) are as stale: the resend goes on a new one.
                self._release(conn, False)
                for stale in self._idle.pop(key, ()):
                    stale.close()
                continue
            except BaseException:
                self._release(conn, False)
                raise
            break
        else:  # pragma: no cover - a new connection raises, never _Disconnected
            raise httpx.RemoteProtocolError("the server disconnected", request=request)
        if request.method == "HEAD" or head.status in _NO_BODY_STATUS:
            head.length, head.chunked = 0, False  # whatever its headers say
        if head.length is not None and head.length <= _WHOLE_AT_ONCE:
            try:
                while len(conn.buffer) < head.length:
                    if conn.eof:
                        raise _cut_short(conn, request)
                    await conn.more(timeouts.get("read"), request)
            except BaseException:
                self._release(conn, False)
                raise
            content = conn.take(head.length)
            self._release(conn, not head.close and not conn.buffer)
            return Whole(head, content, time.perf_counter() - started)
        body = _Body(self, conn, head, request, timeouts.get("read"))
        return httpx.Response(
            head.status,
            headers=head.headers,
            stream=_Stream(body),
            extensions={"http_version": head.version, "reason_phrase": head.reason},
        )

    async def _exchange(
        self, conn: _Connection, payload: bytes, timeouts: dict[str, Any], request: Any
    ) -> _Head:
        """Send the request and read the head of its reply (interim 1xx replies skipped)."""
        reused = conn.requests > 0
        try:
            await conn.send(payload, timeouts.get("write"), request)
        except httpx.WriteError:
            if reused:
                raise _Disconnected from None
            raise
        read_s = timeouts.get("read")
        while True:
            end = conn.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(conn.buffer) > _MAX_HEAD:
                    raise httpx.RemoteProtocolError(
                        "the head of the reply is too long", request=request
                    )
                if conn.eof:
                    if reused and not conn.buffer:
                        raise _Disconnected
                    if conn.lost is not None:
                        raise httpx.ReadError(
                            f"the connection was lost: {conn.lost}", request=request
                        )
                    raise httpx.RemoteProtocolError(
                        "the server disconnected without sending a reply", request=request
                    )
                await conn.more(read_s, request)
                continue
            head = _parse_head(conn.take(end + 4)[:-4], request)
            if head.status == 101:
                raise httpx.RemoteProtocolError(
                    "the server switched protocols (101), which this transport does not speak",
                    request=request,
                )
            if head.status >= 200:
                return head
            reused = False  # an interim reply (100 Continue, 103): the real one follows

    async def _connection(
        self, key: tuple[str, int], timeout: float | None, request: Any
    ) -> _Connection:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._drop_idle()  # connections of another (finished) event loop
            self._loop = loop
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if conn.reusable():
                self._busy.add(conn)
                return conn
            conn.close()
        conn = _Connection(loop, key)
        host, port = key
        try:
            async with asyncio.timeout(timeout):
                await loop.create_connection(lambda: conn, host, port)
        except TimeoutError:
            conn.close()
            raise httpx.ConnectTimeout(
                f"timed out connecting to {host}:{port}", request=request
            ) from None
        except OSError as exc:
            raise httpx.ConnectError(
                f"could not connect to {host}:{port}: {exc}", request=request
            ) from exc
        except BaseException:
            conn.close()
            raise
        self.connections += 1
        self._busy.add(conn)
        return conn

    def _release(self, conn: _Connection, keep: bool) -> None:
        self._busy.discard(conn)
        if keep and not self._closed and conn.reusable() and conn.loop is self._loop:
            idle = self._idle.setdefault(conn.key, [])
            if len(idle) < _MAX_IDLE:
                idle.append(conn)
                return
        conn.close()

    def _drop_idle(self) -> None:
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    async def aclose(self) -> None:
        self._closed = True
        self._drop_idle()
        busy, self._busy = self._busy, set()
        for conn in busy:
            conn.close()
        fallback, self._fallback = self._fallback, None
        if fallback is not None:
            await fallback.aclose()


class _Stream(httpx.AsyncByteStream):  # type: ignore[misc]
    def __init__(self, body: _Body) -> None:
        self._body = body

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._body

    async def aclose(self) -> None:
        await self._body.aclose()


async def _encode(request: Any) -> tuple[bytes, bool]:
    """The request as bytes on the wire (request line, headers, body), and whether it
    asks for the connection to be closed after its reply (`Connection: close`)."""
    try:
        body = request.content
    except httpx.RequestNotRead:
        body = b"".join([part async for part in request.stream])
    head, chunked, close = encode_head(request)
    if chunked:
        if body:
            return b"".join((head, b"\r\n%x\r\n" % len(body), body, b"\r\n0\r\n\r\n")), close
        return head + b"\r\n0\r\n\r\n", close
    return b"".join((head, b"\r\n", body)), close


def encode_head(request: Any) -> tuple[bytes, bool, bool]:
    """The request line and header lines of `request` as they go on the wire (each line
    ends in CRLF; the blank line that ends the head is not included), whether its body is
    chunked, and whether it asks for `Connection: close`. A header that would split or
    forge a line raises `httpx.LocalProtocolError`."""
    chunked = close = False
    parts = [request.method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
    for name, value in request.headers.raw:
        if _BAD_NAME.search(name) or _BAD_VALUE.search(value):
            raise httpx.LocalProtocolError(f"an invalid header: {name!r}", request=request)
        lower = name.lower()
        if lower == b"transfer-encoding":
            chunked = value.lower().find(b"chunked") >= 0
        elif lower == b"connection":
            close = close or value.lower().find(b"close") >= 0
        parts += (name, b": ", value, b"\r\n")
    return b"".join(parts), chunked, close


def _proxied(base_url: str) -> bool:
    """Would `httpx` send requests to this URL through a proxy from the environment?"""
    proxies = urllib.request.getproxies_environment()
    if not (proxies.get("http") or proxies.get("all")):
        return False
    host = httpx.URL(base_url).host
    return not urllib.request.proxy_bypass_environment(host, proxies)  # type: ignore[attr-defined]


def plain_http_client(
    base_url: str, *, transport: PlainHTTPTransport | None = None, **kwargs: Any
) -> Any:
    """The SDK's `httpx.AsyncClient` (with the SDK's defaults) over `PlainHTTPTransport`
    (`transport`, else a new one), for an `http://` base URL that no proxy applies to; None
    otherwise (use the SDK's own)."""
    if os.environ.get(TRANSPORT_ENV, "").strip().lower() == "httpx":
        return None
    if not base_url.lower().startswith("http://") or _proxied(base_url):
        return None
    return openai.DefaultAsyncHttpxClient(transport=transport or PlainHTTPTransport(), **kwargs)
