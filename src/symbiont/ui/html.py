"""HTML building with escaping by default: every value is text unless it is `Safe`.

The UI shows model-written source, replies and diagnostics, which are untrusted. Pages are
built with `fmt(template, *values)`: the template is trusted markup written here, every value
is escaped with `html.escape(quote=True)` unless it is already `Safe` (markup this module
made). No page interpolates a value any other way.
"""

from __future__ import annotations

import html
import json
import math
import time
from collections.abc import Iterable
from typing import Any


class Safe(str):
    """Markup that is already escaped (built by `fmt`, `join` or a helper here)."""

    __slots__ = ()

    # Concatenation keeps markup markup and escapes plain text, whichever side it is on.
    def __add__(self, other: object) -> Safe:
        return Safe(str.__add__(self, esc(other)))

    def __radd__(self, other: object) -> Safe:
        return Safe(str.__add__(esc(other), self))


def esc(value: Any) -> Safe:
    """`value` as escaped text (Safe passes through unchanged)."""
    if isinstance(value, Safe):
        return value
    return Safe(html.escape("" if value is None else str(value), quote=True))


def fmt(template: str, *values: Any, **named: Any) -> Safe:
    """`template.format(...)` with every value escaped unless it is `Safe`."""
    return Safe(template.format(*(esc(v) for v in values), **{k: esc(v) for k, v in named.items()}))


def join(parts: Iterable[Any], sep: str = "") -> Safe:
    return Safe(sep.join(esc(p) for p in parts))


def pretty_json(value: Any) -> str:
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def when(ts: float | None) -> str:
    if ts is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def num(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}g}"


def ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.1f} ms"


def money(usd: float | None) -> str:
    return "—" if usd is None else f"${usd:.6f}"


def table(headers: Iterable[str], rows: Iterable[Iterable[Any]], *, cls: str = "") -> Safe:
    head = join(fmt("<th>{}</th>", h) for h in headers)
    body = join(fmt("<tr>{}</tr>", join(fmt("<td>{}</td>", c) for c in row)) for row in rows)
    return fmt(
        '<table class="{}"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>', cls, head, body
    )


def pre(text: Any, cls: str = "") -> Safe:
    return fmt('<pre class="{}">{}</pre>', cls, text)


def link(href: str, text: Any, cls: str = "") -> Safe:
    return fmt('<a href="{}" class="{}">{}</a>', href, cls, text)


def badge(text: str) -> Safe:
    return fmt('<span class="badge b-{}">{}</span>', text.replace(" ", "-"), text)


NAV = (
    ("/", "Overview"),
    ("/capabilities", "Capabilities"),
    ("/functions", "Functions"),
    ("/runs", "Runs"),
    ("/searches", "Searches"),
    ("/transcripts", "Transcripts"),
)


def page(
    title: str,
    body: Safe,
    *,
    active: str = "",
    live: bool = False,
    store: str = "",
    actions: bool = False,
) -> Safe:
    """The whole document: header, navigation, `body` inside <main>.

    `live`: the page subscribes to /events and swaps in <main> when the store changes.
    """
    nav = join(
        fmt('<a href="{}" class="{}">{}</a>', href, "on" if href == active else "", label)
        for href, label in NAV
    )
    live_attr = Safe(' data-live="1"') if live else Safe("")
    mode = "actions on" if actions else "read-only"
    return fmt(
        """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · symbiont</title>
<link rel="stylesheet" href="/static/app.css">
<script src="/static/app.js" defer></script>
</head><body{live}>
<header><span class="brand">symbiont</span><nav>{nav}</nav>
<span class="meta"><span id="live-dot" title="live updates"></span> {mode} · {store}</span></header>
<main id="main">{body}</main>
</body></html>
""",
        title=title,
        live=live_attr,
        nav=nav,
        mode=mode,
        store=store,
        body=body,
    )


def message(title: str, text: str, hint: str = "") -> Safe:
    """A clear message in place of a page (empty store, missing record, unreadable file)."""
    extra = fmt('<p class="hint">{}</p>', hint) if hint else Safe("")
    return fmt('<section class="message"><h1>{}</h1><p>{}</p>{}</section>', title, text, extra)
