"""Where the server makes its library calls, and the SDK middleware it keeps.

Over stdio a capability run made while the library is free runs on the event loop's own
thread (no hand-off); while another library call is queued or running it waits its turn in
the worker thread; over HTTP runs always go to the worker. Either way the library is used
from one thread at a time. Driven in-process through the server's tools/call handler, on a
real library and the real process sandbox (the stdio tests drive the same path end to end).
"""

from __future__ import annotations

import threading
import types as pytypes
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.server.lowlevel.server import Server

from symbiont.library import Library
from symbiont.mcp.server import CapabilityServer, ServerOptions, _drop_idle_tracing

RUN = types.CallToolRequestParams(
    name="run_capability", arguments={"id": "get_salary_details", "input": {"employee_id": "E007"}}
)
CTX: Any = pytypes.SimpleNamespace(session=object(), protocol_version="2025-11-25")


class WatchedLibrary(Library):
    """A real library that notes which thread runs each capability, and whether two library
    calls ever overlap."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.run_threads: list[int] = []
        self.inside = 0
        self.overlapped = False
        self.release_list = threading.Event()
        self.listing = threading.Event()
        self.hold_list = False

    def run(self, *args: Any, **kwargs: Any) -> Any:
        self._enter()
        try:
            self.run_threads.append(threading.get_ident())
            return super().run(*args, **kwargs)
        finally:
            self.inside -= 1

    def list(self, *args: Any, **kwargs: Any) -> Any:
        self._enter()
        try:
            if self.hold_list:
                self.listing.set()
                assert self.release_list.wait(30)
            return super().list(*args, **kwargs)
        finally:
            self.inside -= 1

    def _enter(self) -> None:
        self.inside += 1
        self.overlapped |= self.inside > 1


@pytest.fixture
def library(home: Path) -> Any:
    with WatchedLibrary(home / "symbiont.db", data_root=home / "data", tier="process") as lib:
        yield lib


def _server(lib: Library, *, on_loop: bool) -> CapabilityServer:
    server = CapabilityServer(ServerOptions(poll_s=0), library=lib)
    server._runs_on_loop = on_loop  # what serve_stdio (True) and serve_http (False) leave
    return server


def _output(result: dict[str, Any]) -> Any:
    assert not result["isError"], result
    return result["structuredContent"]["output"]


def _one_run(lib: Library, *, on_loop: bool) -> int:
    """Run the capability once through tools/call; the event loop's thread."""
    server = _server(lib, on_loop=on_loop)
    try:

        async def main() -> int:
            assert _output(await server._call_tool(CTX, RUN))["employee_id"] == "E007"
            return threading.get_ident()

        return anyio.run(main)
    finally:
        server.close()


def test_a_run_on_a_free_library_runs_on_the_event_loop_thread(library: Any) -> None:
    loop_thread = _one_run(library, on_loop=True)
    assert library.run_threads == [loop_thread]


def test_over_http_runs_go_to_the_worker_thread(library: Any) -> None:
    loop_thread = _one_run(library, on_loop=False)
    assert len(library.run_threads) == 1 and library.run_threads[0] != loop_thread


def test_a_run_waits_in_the_worker_while_another_library_call_is_running(library: Any) -> None:
    server = _server(library, on_loop=True)
    order: list[str] = []
    try:

        async def main() -> tuple[int, Any]:
            library.hold_list = True
            results: dict[str, Any] = {}

            async def listing() -> None:
                await server._work(library.list)
                order.append("list")

            async def run() -> None:
                results["run"] = await server._call_tool(CTX, RUN)
                order.append("run")

            async with anyio.create_task_group() as tg:
                tg.start_soon(listing)
                while not library.listing.is_set():  # the worker is inside list()
                    await anyio.sleep(0.01)
                tg.start_soon(run)
                await anyio.sleep(0.3)
                assert order == []  # the run did not overtake the listing on the loop
                library.release_list.set()
            return threading.get_ident(), results["run"]

        loop_thread, result = anyio.run(main)
    finally:
        server.close()
    assert _output(result)["employee_id"] == "E007"
    assert order == ["list", "run"]
    assert library.run_threads and library.run_threads[0] != loop_thread
    assert not library.overlapped


def test_the_idle_opentelemetry_middleware_is_dropped() -> None:
    from opentelemetry import trace

    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)  # none set here
    server: Server[Any] = Server("t")
    other = object()
    server.middleware.append(other)  # type: ignore[arg-type]
    names = [type(m).__name__ for m in server.middleware]
    assert "OpenTelemetryMiddleware" in names  # the SDK's default
    assert _drop_idle_tracing(server) is False  # no tracing left: the stdio hot path may run
    assert server.middleware == [other]


def test_the_opentelemetry_middleware_stays_with_a_tracer_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry import trace

    monkeypatch.setattr(trace, "get_tracer_provider", lambda: trace.NoOpTracerProvider())
    server: Server[Any] = Server("t")
    before = list(server.middleware)
    # tracing stays, so serve_stdio keeps the hot path off (every message goes through it)
    assert _drop_idle_tracing(server) is True
    assert server.middleware == before and before
