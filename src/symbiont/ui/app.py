"""The web UI as a Starlette app: page routes, POST actions, live updates, the guard.

Pages come from `symbiont.ui.pages`. `/events` (server-sent events) renders the page a
browser shows again every `poll_s` seconds and sends its body when it changed: that works for
any process writing the same store, because it reads the store.

Read-only unless `UIConfig.actions` is on; then POST forms (each carrying the server's
per-process form key) run a capability, deprecate or restore one, and activate a revision.
Every failure becomes a message page; the server log keeps the traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Match, Route

from symbiont.errors import SymbiontError
from symbiont.ui.data import StoreUnavailable
from symbiont.ui.html import (
    Safe,
    fmt,
    message,
    page,
)
from symbiont.ui.pages import (
    PAGES,
    UI,
    Body,
    NotFound,
    PageFn,
    UIConfig,
    _int,
    run_capability,
)

log = logging.getLogger("symbiont.ui")
STATIC = Path(__file__).parent / "static"
TOKEN_COOKIE = "symbiont_ui_token"


def render_body(
    ui: UI, fn: PageFn, params: Mapping[str, Any], query: Mapping[str, str]
) -> tuple[int, str, Safe]:
    """(status, title, body) for a page, with every failure turned into a message."""
    try:
        title, body = fn(ui, params, query)
        return 200, title, body
    except NotFound as exc:
        return (
            404,
            "Not found",
            message("Not found", str(exc), "Go back to the list and pick another."),
        )
    except StoreUnavailable as exc:
        if exc.missing:
            return (
                200,
                "No store yet",
                message(
                    "No store yet",
                    str(exc),
                    "Start a program with symbiont.Runtime(), run `symbiont lib import DIR` or "
                    "`symbiont agent --demo`; this page updates by itself when it appears.",
                ),
            )
        return (
            503,
            "Store unavailable",
            message("The store cannot be read", str(exc), "Check the path given to --store."),
        )
    except SymbiontError as exc:
        return 400, "Error", message("This page cannot be shown", str(exc))
    except Exception as exc:  # the page must never be a stack trace; the log keeps it
        log.exception("page %s failed", getattr(fn, "__name__", fn))
        return (
            500,
            "Error",
            message(
                "This page failed",
                f"{type(exc).__name__}: {exc}",
                "The server log has the details.",
            ),
        )


def _hash(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def _respond(ui: UI, status: int, title: str, body: Safe, *, nav: str, live: bool) -> HTMLResponse:
    doc = page(
        title,
        fmt('<div id="content" data-hash="{}">{}</div>', _hash(body), body),
        active=nav,
        live=live and status == 200,
        store=str(ui.data.path),
        actions=ui.config.actions,
    )
    return HTMLResponse(doc, status_code=status, headers=_SECURITY_HEADERS)


_SECURITY_HEADERS = {
    # Nothing but our own script and style; no inline script can run even if escaping failed.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _page_route(ui: UI, name: str, path: str, fn: PageFn, nav: str) -> Route:
    async def endpoint(request: Request) -> Response:
        status, title, body = await run_in_threadpool(
            render_body, ui, fn, dict(request.path_params), dict(request.query_params)
        )
        return _respond(ui, status, title, body, nav=nav, live=True)

    return Route(path, endpoint, methods=["GET"], name=name)


def _action_refused(ui: UI, text: str, status: int = 403) -> HTMLResponse:
    return _respond(ui, status, "Refused", message("Action refused", text), nav="", live=False)


async def _form(ui: UI, request: Request) -> dict[str, str] | HTMLResponse:
    if not ui.config.actions:
        return _action_refused(
            ui,
            "This UI is read-only: start it with --allow-actions to run, deprecate, restore or activate.",
        )
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    if not hmac.compare_digest(values.get("form_key", ""), ui.config.form_key):
        return _action_refused(
            ui, "The form is stale or did not come from this UI; reload the page and try again."
        )
    return values


def _action_routes(ui: UI) -> list[Route]:
    async def run(request: Request) -> Response:
        form = await _form(ui, request)
        if isinstance(form, Response):
            return form
        cap_id = request.path_params["cap_id"]
        status, title, body = await run_in_threadpool(
            render_body, ui, lambda u, p, q: run_capability(u, cap_id, form), {}, {}
        )
        return _respond(ui, status, title, body, nav="/capabilities", live=False)

    def status_action(kind: str) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            form = await _form(ui, request)
            if isinstance(form, Response):
                return form
            cap_id = request.path_params["cap_id"]

            def act(u: UI, p: Mapping[str, Any], q: Mapping[str, str]) -> Body:
                lib = u.data.library()
                if kind == "deprecate":
                    lib.deprecate(cap_id, form.get("reason", "") or "deprecated from the UI")
                else:
                    lib.restore(cap_id)
                return "", Safe("")

            status, title, body = await run_in_threadpool(render_body, ui, act, {}, {})
            if status != 200:
                return _respond(ui, status, title, body, nav="/capabilities", live=False)
            return RedirectResponse(f"/capabilities/{cap_id}", status_code=303)

        return endpoint

    async def activate(request: Request) -> Response:
        form = await _form(ui, request)
        if isinstance(form, Response):
            return form
        fid = request.path_params["fid"]
        said: list[str] = []

        def act(u: UI, p: Mapping[str, Any], q: Mapping[str, str]) -> Body:
            f = _int(fid, "function id")
            n = _int(form.get("number"), "revision number")
            if u.config.activate is not None:
                said.append(u.config.activate(f, n))
            else:
                u.data.store().set_active(f, n, reason="ui")
                said.append(
                    f"revision {n} is active in the store; a running program takes it at its next start"
                )
            return "", Safe("")

        status, title, body = await run_in_threadpool(render_body, ui, act, {}, {})
        if status != 200:
            return _respond(ui, status, title, body, nav="/functions", live=False)
        return RedirectResponse(f"/functions/{fid}?{urlencode({'said': said[0]})}", status_code=303)

    return [
        Route("/capabilities/{cap_id}/run", run, methods=["POST"]),
        Route("/capabilities/{cap_id}/deprecate", status_action("deprecate"), methods=["POST"]),
        Route("/capabilities/{cap_id}/restore", status_action("restore"), methods=["POST"]),
        Route("/functions/{fid}/activate", activate, methods=["POST"]),
    ]


def _events_route(ui: UI, page_routes: list[Route]) -> Route:
    """Server-sent events: `update` with the page's new body whenever it changes."""

    def resolve(target: str) -> tuple[PageFn, dict[str, Any], dict[str, str]] | None:
        parts = urlsplit(target)
        scope = {"type": "http", "path": parts.path or "/", "method": "GET"}
        for route in page_routes:
            matched, child = route.matches(scope)
            if matched == Match.FULL:
                return (
                    PAGES[route.name][1],
                    dict(child.get("path_params", {})),
                    dict(parse_qsl(parts.query)),
                )
        return None

    async def events(request: Request) -> Response:
        target = request.query_params.get("path", "/")
        resolved = resolve(target)
        if resolved is None:
            return Response("unknown page", status_code=404, media_type="text/plain")
        fn, params, query = resolved
        seen = request.query_params.get("h", "")

        async def stream() -> Any:
            nonlocal seen
            yield "retry: 2000\n\n"
            last_ping = time.monotonic()
            while not await request.is_disconnected():
                status, _title, body = await run_in_threadpool(render_body, ui, fn, params, query)
                h = _hash(body)
                if h != seen and status == 200:
                    seen = h
                    payload = json.dumps({"hash": h, "html": str(body)})
                    yield f"event: update\ndata: {payload}\n\n"
                elif time.monotonic() - last_ping > 10:
                    yield ": ping\n\n"
                    last_ping = time.monotonic()
                await asyncio.sleep(ui.config.poll_s)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return Route("/events", events, methods=["GET"])


def _static_route() -> Route:
    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ("app.css", "app.js"):
            return Response("not found", status_code=404, media_type="text/plain")
        return FileResponse(STATIC / name, headers={"Cache-Control": "no-cache"})

    return Route("/static/{name}", static, methods=["GET"])


def _host_name(header: str) -> str:
    """The host part of a Host header: "127.0.0.1:8707" → "127.0.0.1", "[::1]:80" → "[::1]"."""
    if header.startswith("["):
        return header.split("]")[0] + "]"
    return header.rsplit(":", 1)[0]


class _Guard:
    """ASGI middleware: without a token the Host header must be a loopback name (no DNS
    rebinding); with one, every request carries it (header, cookie, or `?token=` once)."""

    def __init__(self, app: Any, ui: UI) -> None:
        self.app = app
        self.ui = ui

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        host = _host_name(request.headers.get("host", ""))
        resp: Response
        # Without a token, only loopback names: a page elsewhere cannot rebind its own DNS
        # name to 127.0.0.1 and read the store. With a token, the token is the check.
        if not self.ui.config.token and host not in self.ui.config.allowed_hosts:
            resp = HTMLResponse(
                message("Unexpected host", f"This server does not answer for the host {host!r}."),
                status_code=421,
            )
            await resp(scope, receive, send)
            return
        token = self.ui.config.token
        if token:
            given = request.query_params.get("token")
            if given is not None and hmac.compare_digest(given, token):
                query = urlencode(
                    [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                )
                resp = RedirectResponse(
                    request.url.path + (f"?{query}" if query else ""), status_code=303
                )
                resp.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
                await resp(scope, receive, send)
                return
            auth = request.headers.get("authorization", "")
            presented = (
                auth[7:]
                if auth.lower().startswith("bearer ")
                else request.cookies.get(TOKEN_COOKIE, "")
            )
            if not hmac.compare_digest(presented.encode(), token.encode()):
                resp = HTMLResponse(
                    message(
                        "Token required",
                        "This UI is served beyond loopback and needs its token.",
                        "Open the address printed when it started (it ends in ?token=…), or send Authorization: Bearer TOKEN.",
                    ),
                    status_code=401,
                )
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _lifespan(ui: UI) -> Callable[[Starlette], Any]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        ui.data.close()

    return lifespan


def create_app(config: UIConfig) -> Starlette:
    """The UI as an ASGI application (serve it with uvicorn; see `symbiont.ui.serve`)."""
    ui = UI(config)
    page_routes = [_page_route(ui, name, path, fn, nav) for name, (path, fn, nav) in PAGES.items()]

    async def not_found(request: Request, exc: Exception) -> Response:
        return _respond(
            ui,
            404,
            "Not found",
            message("Not found", f"There is no page at {request.url.path}."),
            nav="",
            live=False,
        )

    async def failed(request: Request, exc: Exception) -> Response:
        log.exception("request %s failed", request.url.path)
        return _respond(
            ui,
            500,
            "Error",
            message("This request failed", f"{type(exc).__name__}: {exc}"),
            nav="",
            live=False,
        )

    app = Starlette(
        routes=[*page_routes, *_action_routes(ui), _events_route(ui, page_routes), _static_route()],
        exception_handlers={404: not_found, 405: not_found, 500: failed, Exception: failed},
        lifespan=_lifespan(ui),
    )
    app.state.ui = ui
    app.add_middleware(_Guard, ui=ui)
    return app


__all__ = ["UIConfig", "create_app"]
