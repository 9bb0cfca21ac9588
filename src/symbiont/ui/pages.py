"""The web UI's pages: server-rendered HTML over the store, the library and the transcripts.

Every page is a `PageFn` `(ui, path_params, query) -> (title, body)`, listed in `PAGES`; the
app (`symbiont.ui.app`) renders it inside the layout for a request, and again for `/events`
whenever the store changes, so a live page swaps in its new body without a reload. Bodies are
built with `symbiont.ui.html.fmt`, which escapes every value: model-written source, replies
and diagnostics are untrusted text.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from symbiont.errors import SymbiontError
from symbiont.ui.data import Data, overview_counts, recent_searches
from symbiont.ui.html import (
    Safe,
    badge,
    fmt,
    join,
    link,
    message,
    money,
    ms,
    num,
    pre,
    pretty_json,
    table,
    when,
)
from symbiont.ui.svg import Node, heat_map, line_plot, lineage_tree

EMPTY = Safe("")

Body = tuple[str, Safe]
PageFn = Callable[["UI", Mapping[str, Any], Mapping[str, str]], Body]


@dataclass
class UIConfig:
    """How a UI server behaves. `token`: required of every request when set (bearer header,
    cookie, or `?token=` once). `actions`: allow the POST forms. `activate`: called instead
    of the store's `set_active` (the in-process runtime swaps the live function too);
    returns a sentence for the person. `poll_s`: how often live pages look at the store."""

    store_path: Path
    data_root: str | Path | None = None
    tier: str | None = None
    token: str | None = None
    actions: bool = False
    activate: Callable[[int, int], str] | None = None
    poll_s: float = 1.0
    store: Any = None  # an open SQLiteStore to share (runtime.serve_ui)
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "::1", "[::1]")
    form_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))


class NotFound(SymbiontError):
    """A page for a record that does not exist."""


class UI:
    def __init__(self, config: UIConfig) -> None:
        self.config = config
        self.data = Data(
            config.store_path, data_root=config.data_root, tier=config.tier, store=config.store
        )

    def form(self, action: str, inner: Safe, *, cls: str = "") -> Safe:
        """A POST form with the server's form key, or a note that actions are off."""
        if not self.config.actions:
            return Safe("")
        return fmt(
            '<form method="post" action="{}" class="{}">'
            '<input type="hidden" name="form_key" value="{}">{}</form>',
            action,
            cls,
            self.config.form_key,
            inner,
        )


# -- helpers ---------------------------------------------------------------------------------
def _int(value: Any, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise NotFound(f"{what} must be a number, not {value!r}") from None


def _diagnostics(diags: list[dict[str, Any]]) -> Safe:
    if not diags:
        return fmt('<p class="hint">no diagnostics</p>')
    items = []
    for d in diags:
        where = (
            f"line {d['line']}" + (f", col {d['col']}" if d.get("col") else "")
            if d.get("line")
            else ""
        )
        items.append(
            fmt(
                '<li class="diag"><span class="badge">{}</span> <b>{}</b> {} <div class="msg">{}</div>{}{}</li>',
                d.get("stage", "?"),
                d.get("kind", "?"),
                where,
                d.get("message", ""),
                pre(d["excerpt"], "excerpt") if d.get("excerpt") else "",
                pre(d["detail"], "detail") if d.get("detail") else "",
            )
        )
    return fmt('<ul class="diags">{}</ul>', join(items))


def _section(title: str, inner: Any) -> Safe:
    return fmt("<section><h2>{}</h2>{}</section>", title, inner)


def _dl(pairs: list[tuple[str, Any]]) -> Safe:
    return fmt(
        '<dl class="facts">{}</dl>',
        join(fmt("<dt>{}</dt><dd>{}</dd>", k, v) for k, v in pairs),
    )


# -- overview --------------------------------------------------------------------------------
def overview(ui: UI, params: Mapping[str, Any], query: Mapping[str, str]) -> Body:
    c = overview_counts(ui.data)
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(c["capability_statuses"].items()))
    cards = [
        ("/functions", "evolvable functions", c["functions"], f"{c['revisions']} revisions"),
        ("/capabilities", "capabilities", c["capabilities"], statuses or "none yet"),
        ("/runs", "evolve runs", c["runs"], ""),
        ("/searches", "population searches", c["searches"], ""),
        ("/transcripts", "agent transcripts", c["transcripts"], ""),
    ]
    body = fmt(
        '<h1>Overview</h1><p class="hint">store {}</p><div class="cards">{}</div>',
        ui.data.path,
        join(
            fmt(
                '<a class="card" href="{}"><b>{}</b><span>{}</span><small>{}</small></a>',
                h,
                n,
                t,
                s,
            )
            for h, t, n, s in cards
        ),
    )
    if not any((c["functions"], c["capabilities"], c["runs"], c["transcripts"])):
        body = Safe(
            body
            + message(
                "The store is empty",
                "Nothing has been recorded yet.",
                "Evolve a function, import capabilities (symbiont lib import DIR) or run "
                "`symbiont agent --demo`; this page updates by itself.",
            )
        )
    return "Overview", body


# -- capabilities ----------------------------------------------------------------------------
STATUS_CHOICES = ("", "active", "legacy", "deprecated")


def capabilities(ui: UI, params: Mapping[str, Any], query: Mapping[str, str]) -> Body:
    lib = ui.data.library()
    q = query.get("q", "").strip()
    status = query.get("status", "")
    if status not in STATUS_CHOICES:
        status = ""
    mode = query.get("mode", "hybrid")
    if mode not in ("hybrid", "semantic", "lexical"):
        mode = "hybrid"
    options = join(
        fmt(
            '<option value="{}"{}>{}</option>',
            s,
            Safe(" selected") if s == status else "",
            s or "any status",
        )
        for s in STATUS_CHOICES
    )
    modes = join(
        fmt('<option value="{}"{}>{}</option>', m, Safe(" selected") if m == mode else "", m)
        for m in ("hybrid", "semantic", "lexical")
    )
    form = fmt(
        '<form class="search" method="get" action="/capabilities">'
        '<input type="search" name="q" value="{}" placeholder="describe a task, e.g. what is an employee\'s salary?" size="60" autofocus>'
        '<select name="mode">{}</select><select name="status">{}</select>'
        '<button type="submit">Search</button></form>',
        q,
        modes,
        options,
    )
    if q:
        results = lib.search(q, k=10, mode=mode, include_legacy=status == "legacy")
        if status:
            results = [r for r in results if r.capability.status == status]
        rows = [
            (
                i,
                link(f"/capabilities/{r.capability.id}", r.capability.id, "cap-id"),
                num(r.score),
                num(r.semantic_score),
                num(r.lexical_score),
                badge(r.capability.status),
                r.why,
            )
            for i, r in enumerate(results, 1)
        ]
        listing = (
            table(
                ("#", "capability", "score", "semantic", "lexical", "status", "why"),
                rows,
                cls="results",
            )
            if rows
            else fmt('<p class="hint">no capability matches “{}”</p>', q)
        )
        note = fmt(
            '<p class="hint">{} ranking: the score fuses the semantic (embedding cosine) and '
            "lexical (BM25) ranks; deprecated capabilities are never returned.</p>",
            mode,
        )
        body = fmt("<h1>Capabilities</h1>{}{}{}", form, note, listing)
        return f"Search: {q}", body
    caps = lib.list(status or None)
    cap_rows = [
        (
            link(f"/capabilities/{c.id}", c.id, "cap-id"),
            c.summary.split("\n")[0][:140],
            badge(c.status),
            c.version,
            c.stats.runs,
            c.stats.failures,
            ms(c.stats.p50_latency_s),
        )
        for c in caps
    ]
    listing = (
        table(("capability", "summary", "status", "version", "runs", "failures", "p50"), cap_rows)
        if cap_rows
        else message(
            "No capabilities",
            "The library holds no capabilities"
            + (f" with status {status}" if status else "")
            + ".",
            "Add some with `symbiont lib import DIR` (e.g. examples/hr).",
        )
    )
    return "Capabilities", fmt("<h1>Capabilities</h1>{}{}", form, listing)


def _capability_body(
    ui: UI, cap_id: str, *, run: Safe = EMPTY, input_text: str | None = None
) -> Body:
    from symbiont.library.library import CapabilityNotFound

    lib = ui.data.library()
    try:
        cap = lib.get(cap_id)
    except CapabilityNotFound as exc:
        raise NotFound(str(exc)) from None
    s = cap.stats
    facts = _dl(
        [
            (
                "status",
                Safe(
                    badge(cap.status) + (fmt(" {}", cap.status_reason) if cap.status_reason else "")
                ),
            ),
            ("version", cap.version),
            ("entry", cap.entry),
            ("parents", join((link(f"/capabilities/{p}", p) for p in cap.parents), ", ") or "—"),
            (
                "replaced by",
                link(f"/capabilities/{cap.replaced_by}", cap.replaced_by)
                if cap.replaced_by
                else "—",
            ),
            ("runs", f"{s.runs} ({s.failures} failed, {s.consecutive_failures} in a row)"),
            ("p50 latency", ms(s.p50_latency_s)),
            ("last run", when(s.last_run_at)),
            ("last error", s.last_error or "—"),
            ("updated", when(cap.updated_at)),
        ]
    )
    examples = [
        (
            i,
            pre(pretty_json(e.input)),
            pre(pretty_json({k: v for k, v in e.to_dict().items() if k != "input"})),
        )
        for i, e in enumerate(cap.examples, 1)
    ]
    versions = [
        (v["version"], when(v["created_at"]), v["summary"][:120]) for v in lib.versions(cap.id)
    ]
    if input_text is None:
        input_text = pretty_json(cap.examples[0].input) if cap.examples else "{}"
    run_form = ui.form(
        f"/capabilities/{cap.id}/run",
        fmt(
            '<label for="run-input">JSON input</label><textarea id="run-input" name="input" rows="6" cols="70">{}</textarea>'
            '<div><label><input type="checkbox" name="force" value="1"> run even if deprecated</label> '
            '<button type="submit" id="run-button">Run</button></div>',
            input_text,
        ),
        cls="run",
    )
    if not ui.config.actions:
        run_form = fmt(
            '<p class="hint">Running, deprecating and restoring are off: start the UI with --allow-actions.</p>'
        )
    if cap.status == "deprecated":
        status_form = ui.form(
            f"/capabilities/{cap.id}/restore", Safe('<button type="submit">Restore</button>')
        )
    else:
        status_form = ui.form(
            f"/capabilities/{cap.id}/deprecate",
            Safe(
                '<input name="reason" placeholder="reason" required> <button type="submit">Deprecate</button>'
            ),
        )
    body = fmt(
        '<h1>{}</h1><p class="summary">{}</p>{}{}{}'
        '<div class="cols"><div>{}</div><div>{}</div></div>{}{}{}',
        cap.id,
        cap.summary,
        facts,
        _section("Run", Safe(run_form + run)),
        status_form,
        _section("Input schema", pre(pretty_json(cap.input_schema), "json")),
        _section("Output schema", pre(pretty_json(cap.output_schema), "json")),
        _section("Permissions", pre(pretty_json(cap.permissions.to_dict()), "json")),
        _section("Examples", table(("#", "input", "expected"), examples) if examples else "none"),
        Safe(
            _section("Source", pre(cap.source, "source"))
            + _section("Versions", table(("version", "created", "summary"), versions))
        ),
    )
    return cap.id, body


def capability(ui: UI, params: Mapping[str, Any], query: Mapping[str, str]) -> Body:
    return _capability_body(ui, str(params["cap_id"]))


def run_capability(ui: UI, cap_id: str, form: Mapping[str, str]) -> Body:
    from symbiont.library.library import CapabilityError

    text = form.get("input", "")
    lib = ui.data.library()
    try:
        result = lib.run(cap_id, text, force=form.get("force") == "1")
    except CapabilityError as exc:
        out = fmt(
            '<div class="result error" id="run-result"><h3>Not run</h3>{}</div>', pre(str(exc))
        )
        return _capability_body(ui, cap_id, run=out, input_text=text)
    parts = [
        fmt("<h3>{}</h3>", "ok" if result.ok else f"failed ({result.error_kind})"),
        _dl(
            [
                ("duration", ms(result.duration_s)),
                ("tier", result.tier),
                ("version", result.version),
            ]
        ),
        pre(pretty_json(result.output), "output"),
    ]
    if result.error:
        parts.append(pre(result.error, "error"))
    if result.traceback:
        parts.append(pre(result.traceback, "traceback"))
    if result.logs:
        parts.append(pre("\n".join(result.logs), "logs"))
    out = fmt(
        '<div class="result {}" id="run-result">{}</div>',
        "ok" if result.ok else "error",
        join(parts),
    )
    return _capability_body(ui, cap_id, run=out, input_text=text)


# -- functions -------------------------------------------------------------------------------
def functions(ui: UI, params: Mapping[str, Any], query: Mapping[str, str]) -> Body:
    store = ui.data.store()
    rows = []
    for key in store.all_keys():
        for f in store.lineages(key):
            revs = store.revisions_of(f.id)
            accepted = sum(1 for r in revs if r.status == "accepted")
            active = next((r for r in revs if r.number == f.active_number), None)
            rows.append(
                (
                    link(f"/functions/{f.id}", key, "fn-key"),
                    f.fingerprint[:10],
                    len(revs),
                    accepted,
                    f.active_number if f.active_number is not None else "—",
                    num(active.score) if active else "—",
                    when(f.last_seen_at or f.created_at),
                )
            )
    if not rows:
        return "Functions", fmt(
            "<h1>Functions</h1>{}",
            message(
                "No evolvable functions yet",
                "The store has no evolvable function.",
                "Declare one with @symbiont.evolvable and evolve it; it appears here.",
            ),
        )
    return "Functions", fmt(
        "<h1>Functions</h1>{}",
        table(
            (
                "function",
                "signature",
                "revisions",
                "accepted",
                "active",
                "active score",
                "last seen",
            ),
            rows,
        ),
    )


def _lineage(ui: UI, fid: int) -> tuple[Any, list[Any]]:
    from symbiont.errors import RevisionError

    store = ui.data.store()
    try:
        f = store.get_function(fid)
    except RevisionError as exc:
        raise NotFound(str(exc)) from None
    return f, store.revisions_of(fid)


def _direction(ui: UI, key: str) -> str:
    """maximize | minimize, from the function's newest evolve run (or search)."""
    for r in ui.data.store().runs(limit=1, key=key):
        return str(r.config.get("direction", "maximize"))
    for srch in recent_searches(ui.data, limit=1, key=key):
        return str(srch.config.get("direction", "maximize"))
    return "maximize"


def function(ui: UI, params: Mapping[str, Any], query: Mapping[str, str]) -> Body:
    fid = _int(params["fid"], "function id")
    f, revs = _lineage(ui, fid)
    nodes = [
        Node(
            r.number,
            tuple(r.parents),
            r.status,
            r.stage,
            r.score,
            f"/functions/{fid}/revisions/{r.number}",
            r.number == f.active_number,
        )
        for r in revs
    ]
    points = [(float(r.number), r.score, r.status) for r in revs if r.score is not None]
    maximize = _direction(ui, f.key) != "minimize"
    accepted: list[tuple[float, float]] = []
    for r in revs:
        if r.status == "accepted" and r.score is not None:
            prev = accepted[-1][1] if accepted else None
            better = prev is None or (r.score > prev if maximize else r.score < prev)
            accepted.append((float(r.number), r.score if better else prev))  # type: ignore[arg-type]
    rows = [
        (
            link(f"/functions/{fid}/revisions/{r.number}", r.number),
            badge(r.status)
            + (Safe(" ") + badge("active") if r.number == f.active_number else Safe("")),
            r.stage,
            num(r.score),
            ", ".join(map(str, r.parents)) or "—",
            r.origin,
            r.model or "—",
            (r.diagnostics[0].get("message", "") if r.diagnostics else "")[:120],
        )
        for r in reversed(revs)
    ]
    numbers = [r.number for r in revs]
    active = f.active_number if f.active_number is not None else (numbers[-1] if numbers else 0)
    parent = next(
        (r.parents[0] for r in revs if r.number == active and r.parents),
        numbers[0] if numbers else 0,
    )

    def select(name: str, chosen: int) -> Safe:
        return fmt(
            '<select name="{}">{}</select>',
            name,
            join(
                fmt(
                    '<option value="{}"{}>{}</option>',
                    n,
                    Safe(" selected") if n == chosen else "",
                    n,
                )
                for n in numbers
            ),
        )

    diff_form = fmt(
        '<form class="diff-form" method="get" action="/functions/{}/diff">revision {} against {} '
        '<button type="submit">Compare</button></form>',
        fid,
        select("a", parent),
        select("b", active),
    )
    activations = [(a.number, a.reason, when(a.at)) for a in ui.data.store().activations(fid)]
    said = fmt('<p class="notice">{}</p>', query["said"]) if query.get("said") else ""
    body = fmt(
        '{}<h1>{}</h1><pre class="signature">{}</pre>{}'
        '<div class="cols"><div>{}</div><div>{}</div></div>{}{}{}',
        said,
        f.key,
        f.signature_text,
        _dl(
            [
                ("lineage id", f.id),
                ("fingerprint", f.fingerprint),
                ("active revision", f.active_number if f.active_number is not None else "—"),
                ("revisions", len(revs)),
            ]
        ),
        _section(
            "Lineage",
            fmt(
                '<div class="scroll">{}</div><p class="hint">green: accepted · red: rejected · ring: active · dashed: crossover; plot line: best accepted score so far</p>',
                lineage_tree(nodes),
            ),
        ),
        _section(
            "Score over revisions",
            line_plot(points, x_label="revision", y_label="score", best=accepted),
        ),
        _section("Compare two revisions", diff_form),
        _section(
            "Revisions",
            table(
                ("#", "status", "stage", "score", "parents", "origin", "model", "first diagnostic"),
                rows,
            ),
        ),
        _section(
            "Activations",
            table(("revision", "reason", "at"), activations) if activations else "none",
        ),
    )
    return f.key, body


def revision(ui: UI, params: Mapping[str, Any], query: Mapping[str, str]) -> Body:
    fid = _int(params["fid"], "function id")
    number = _int(params["number"], "revision number")
    f, revs = _lineage(ui, fid)
    rev = next((r for r in revs if r.number == number), None)
    if rev is None:
        raise NotFound(f"{f.key} has no revision {number} (it has {len(revs)} revisions)")
    parents = join((link(f"/functions/{fid}/revisions/{p}", p) for p in rev.parents), ", ")
    diff_links = join(
        (link(f"/functions/{fid}/diff?a={p}&b={number}", f"diff against {p}") for p in rev.parents),
        " · ",
    )
    activate = Safe("")
    if rev.status == "accepted" and rev.number != f.active_number:
        activate = ui.form(
            f"/functions/{fid}/activate",
            fmt(
                '<input type="hidden" name="number" value="{}"><button type="submit">Activate revision {}</button>',
                number,
                number,
            ),
        )
    body = fmt(
        "<h1>{} · revision {}</h1><p>{}</p>{}{}{}{}{}{}",
        link(f"/functions/{fid}", f.key),
        number,
        diff_links,
        _dl(
            [
                (
                    "status",
                    Safe(
                        badge(rev.status)
                        + (Safe(" ") + badge("active") if number == f.active_number else Safe(""))
                    ),
                ),
                ("stage reached", rev.stage),
                ("score", num(rev.score)),
                ("metrics", ", ".join(f"{k}={num(v)}" for k, v in rev.metrics.items()) or "—"),
                ("parents", parents or "—"),
                ("origin", rev.origin),
                ("model", rev.model or "—"),
                ("created", when(rev.created_at)),
                ("content hash", rev.content_hash[:16]),
            ]
        ),
        activate,
        _section("Diagnostics", _diagnostics(rev.diagnostics)),
        _section("Source", pre(rev.source or "(no code was extracted)", "source")),
        _section("Model reply", pre(rev.reply or "(none)", "reply")),
        "",
    )
    return f"{f.key} revision {number}", body


def diff(ui: UI, params: Mapping[str, Any], query: Mapping[str, str]) -> Body:
    fid = _int(params["fid"], "function id")
    f, revs = _lineage(ui, fid)
    by_number = {r.number: r for r in revs}
    a = _int(query.get("a", "0"), "revision a")
    b = _int(query.get("b", str(f.active_number or 0)), "revision b")
    for n in (a, b):
        if n not in by_number:
            raise NotFound(f"{f.key} has no revision {n} (it has {len(revs)} revisions)")
    # HtmlDiff escapes &, < and > in the lines it shows; the descriptions are ours.
    table_html = difflib.HtmlDiff(tabsize=4, wrapcolumn=72).make_table(
        by_number[a].source.splitlines(),
        by_number[b].source.splitlines(),
        f"revision {a}",
        f"revision {b}",
        context=False,
    )
    body = fmt(
        '<h1>{} · revision {} → {}</h1><p>{} · {}</p><div class="diff scroll">{}</div>',
        link(f"/functions/{fid}", f.key),
        a,
        b,
        link(f"/functions/{fid}/revisions/{a}", f"revision {a}"),
        link(f"/functions/{fid}/revisions/{b}", f"revision {b}"),
        Safe(table_html),
    )
    return f"{f.key} diff {a}→{b}", body


# -- runs ------------------------------------------------------------------------------------
def runs(ui: UI, params: Mapping[str, Any], query: Mapping[str, str]) -> Body:
    records = ui.data.store().runs(limit=200)
    if not records:
        return "Runs", fmt(
            "<h1>Evolve runs</h1>{}",
            message(
                "No runs yet",
                "No evolve run has been recorded.",
                "runtime.evolve(...) records one per call.",
            ),
        )
    rows = [
        (
            link(f"/runs/{r.id}", r.id),
            link(f"/functions/{r.function_id}", r.function_key),
            badge(r.outcome or "running"),
            r.accepted_number if r.accepted_number is not None else "—",
            r.attempts,
            f"{r.input_tokens} / {r.output_tokens}",
            money(r.cost_usd),
            num(r.duration_s, 3) + " s" if r.duration_s is not None else "—",
            when(r.started_at),
        )
        for r in records
    ]
    return "Runs", fmt(
        "<h1>Evolve runs</h1>{}",
        table(
            (
                "run",
                "function",
                "outcome",
                "accepted",
                "attempts",
                "tokens in / out",
                "cost",
                "duration",
                "started",
            ),
            rows,
        ),
    )


# Pipeline order for the timing bar; "total" and "pipeline" sum other stages, so they are
# listed in the text but not drawn as segments.
STAGE_ORDER = (
    "extract",
    "parse",
    "signature",
    "policy",
    "typecheck",
    "compile",
    "trial",
    "evaluate",
    "promote",
)
AGGREGATE_TIMINGS = ("total", "pipeline")


def _ordered_timings(timings: Mapping[str, float]) -> list[tuple[str, float]]:
    rank = {s: i for i, s in enumerate(STAGE_ORDER)}
    return sorted(timings.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))


def _stage_seconds(timings: Mapping[str, float]) -> float:
    return sum(v for k, v in timings.items() if k not in AGGREGATE_TIMINGS)


def _timing_bar(timings: Mapping[str, float], longest: float) -> Safe:
    if not timings or longest <= 0:
        return EMPTY
    x = 0.0
    parts = []
    for stage, s in _ordered_timings(timings):
        if stage in AGGREGATE_TIMINGS:
            continue
        w = max(s / longest * 240, 0.5)
        colour = STAGE_ORDER.index(stage) % 6 if stage in STAGE_ORDER else 5
        parts.append(
            fmt(
                '<rect x="{}" y="0" width="{}" height="12" class="seg s{}"><title>{}: {}</title></rect>',
                f"{x:.1f}",
                f"{w:.1f}",
                colour,
                stage,
                ms(s),
            )
        )
        x += w
    return fmt('<svg class="bar" width="242" height="12">{}</svg>', join(parts))


def run_detail(ui: UI, params: Mapping[str, Any], query: Mapping[str, str]) -> Body:
    from symbiont.errors import RevisionError, StoreError

    run_id = _int(params["run_id"], "run id")
    try:
        r = ui.data.store().run(run_id)
    except (RevisionError, StoreError, LookupError) as exc:
        raise NotFound(str(exc)) from None
    longest = max((_stage_seconds(a.timings) for a in r.attempt_records), default=0.0)
    rows = [
        (
            a.index,
            link(f"/functions/{r.function_id}/revisions/{a.revision_number}", a.revision_number)
            if a.revision_number is not None
            else "—",
            a.stage,
            badge("accepted" if a.ok else "rejected"),
            Safe(
                _timing_bar(a.timings, longest)
                + fmt(
                    '<div class="timings">{}</div>',
                    ", ".join(f"{k} {ms(v)}" for k, v in _ordered_timings(a.timings)),
                )
            ),
            f"{a.input_tokens} / {a.output_tokens}",
            ms(a.model_latency_s),
            money(a.cost_usd),
            a.retries,
            (a.diagnostics[0].get("message", "") if a.diagnostics else "")[:160],
        )
        for a in r.attempt_records
    ]
    body = fmt(
        "<h1>Run {} · {}</h1>{}{}{}",
        r.id,
        link(f"/functions/{r.function_id}", r.function_key),
        _dl(
            [
                ("outcome", badge(r.outcome or "running")),
                ("accepted revision", r.accepted_number if r.accepted_number is not None else "—"),
                ("tokens in / out", f"{r.input_tokens} / {r.output_tokens}"),
                ("cost", money(r.cost_usd)),
                (
                    "duration",
                    f"{num(r.duration_s, 3)} s" if r.duration_s is not None else "running",
                ),
                ("started", when(r.started_at)),
            ]
        ),
        _section(
            "Attempts",
            table(
                (
                    "#",
                    "revision",
                    "stage reached",
                    "result",
                    "stage timings",
                    "tokens in / out",
                    "model latency",
                    "cost",
                    "retries",
                    "diagnostic",
                ),
                rows,
            )
            if rows
            else "no attempts yet",
        ),
        _section("Configuration", pre(pretty_json(r.config), "json")),
    )
    return f"Run {r.id}", body


# -- searches --------------------------------------------------------------------------------
def searches(ui: UI, params: Mapping[str, Any], query: Mapping[str, str]) -> Body:
    records = recent_searches(ui.data)
    if not records:
        return "Searches", fmt(
            "<h1>Population searches</h1>{}",
            message(
                "No searches yet",
                "No population search has been recorded.",
                "runtime.search(...) records one.",
            ),
        )
    rows = [
        (
            link(f"/searches/{s.id}", s.id),
            link(f"/functions/{s.function_id}", s.key),
            badge(s.status),
            s.stop_reason or "—",
            num(s.best_score),
            s.best_number if s.best_number is not None else "—",
            when(s.started_at),
        )
        for s in records
    ]
    return "Searches", fmt(
        "<h1>Population searches</h1>{}",
        table(
            (
                "search",
                "function",
                "status",
                "stopped by",
                "best score",
                "best revision",
                "started",
            ),
            rows,
        ),
    )


def _bin(value: float, dim: list[Any]) -> int:
    """The MAP-Elites bin of `value` on a feature axis [name, lo, hi, bins] (as the search cuts it)."""
    _name, lo, hi, bins = dim
    i = int((float(value) - lo) / ((hi - lo) or 1.0) * bins)
    return min(max(i, 0), int(bins) - 1)


def search_detail(ui: UI, params: Mapping[str, Any], query: Mapping[str, str]) -> Body:
    repo = ui.data.searches()
    sid = _int(params["search_id"], "search id")
    if repo is None:
        raise NotFound("this build has no population searches")
    try:
        s = repo.get(sid)
    except (SymbiontError, LookupError) as exc:
        raise NotFound(str(exc)) from None
    cands = repo.candidates(sid)
    evaluated = [c for c in cands if c.evaluated and c.score is not None]
    maximize = str(s.config.get("direction", "maximize")) != "minimize"
    best: list[tuple[float, float]] = []
    best_t: list[tuple[float, float]] = []
    current: float | None = None
    for i, c in enumerate(evaluated, 1):
        assert c.score is not None
        if current is None or (c.score > current if maximize else c.score < current):
            current = c.score
        best.append((float(i), current))
        best_t.append((c.elapsed_s, current))
    islands: dict[int, float] = {}
    for c in evaluated:
        assert c.score is not None
        old = islands.get(c.island)
        if old is None or (c.score > old if maximize else c.score < old):
            islands[c.island] = c.score
    rejections: dict[str, int] = {}
    for c in cands:
        if not c.evaluated and c.kind not in ("seed", "migrant"):
            rejections[c.kind] = rejections.get(c.kind, 0) + 1
    dims = [d for d in s.config.get("features", []) if isinstance(d, list) and len(d) == 4][:2]
    feats = [str(d[0]) for d in dims]
    cells: dict[tuple[int, int], float] = {}
    if len(dims) == 2:
        for c in evaluated:
            assert c.score is not None
            key = (
                _bin(c.features.get(feats[0], 0.0), dims[0]),
                _bin(c.features.get(feats[1], 0.0), dims[1]),
            )
            if key not in cells or (c.score > cells[key] if maximize else c.score < cells[key]):
                cells[key] = c.score
    shape = (int(dims[0][3]), int(dims[1][3])) if len(dims) == 2 else (0, 0)
    body = fmt(
        '<h1>Search {} · {}</h1>{}<div class="cols"><div>{}</div><div>{}</div></div>{}{}{}',
        s.id,
        link(f"/functions/{s.function_id}", s.key),
        _dl(
            [
                ("status", badge(s.status)),
                ("stopped by", s.stop_reason or "—"),
                ("best", f"{num(s.best_score)} (revision {s.best_number})"),
                ("candidates", len(cands)),
                ("evaluated", len(evaluated)),
            ]
        ),
        _section(
            "Best score against evaluations",
            line_plot(
                [(x, y, "accepted") for x, y in best],
                x_label="evaluations",
                y_label="best score",
                best=best,
            ),
        ),
        _section(
            "Best score against time",
            line_plot(
                [(x, y, "accepted") for x, y in best_t],
                x_label="seconds",
                y_label="best score",
                best=best_t,
            ),
        ),
        _section(
            "Island bests",
            table(("island", "best score"), [(i, num(v)) for i, v in sorted(islands.items())])
            if islands
            else "none yet",
        ),
        _section(
            "MAP-Elites grid" + (f" ({feats[0]} × {feats[1]})" if feats else ""),
            heat_map(cells, shape),
        ),
        _section(
            "Rejections",
            table(("kind", "count"), sorted(rejections.items())) if rejections else "none",
        ),
    )
    return f"Search {s.id}", body


# -- transcripts -----------------------------------------------------------------------------
def transcripts(ui: UI, params: Mapping[str, Any], query: Mapping[str, str]) -> Body:
    records = ui.data.transcripts().list(limit=200)
    if not records:
        return "Transcripts", fmt(
            "<h1>Agent transcripts</h1>{}",
            message(
                "No transcripts yet",
                "No agent run has been recorded.",
                "Run `symbiont agent --demo` or `symbiont agent TASK`.",
            ),
        )
    rows = [
        (
            link(f"/transcripts/{t.id}", t.id),
            t.kind,
            link(f"/transcripts/{t.parent_id}", t.parent_id) if t.parent_id else "—",
            t.task[:120],
            badge(t.outcome),
            t.steps,
            f"{t.input_tokens} / {t.output_tokens}",
            t.model,
            when(t.started_at),
        )
        for t in records
    ]
    return "Transcripts", fmt(
        "<h1>Agent transcripts</h1>{}",
        table(
            (
                "#",
                "kind",
                "parent",
                "task",
                "outcome",
                "model calls",
                "tokens in / out",
                "model",
                "started",
            ),
            rows,
        ),
    )


def _step_data(data: Mapping[str, Any]) -> Safe:
    parts = []
    for key, value in data.items():
        if value is None or value == "" or value == []:
            continue
        if key == "new_messages" and isinstance(value, list):
            msgs = join(
                fmt(
                    '<div class="msg-item"><span class="role">{}</span>{}</div>',
                    m.get("role", "?"),
                    pre(
                        m.get("content")
                        if isinstance(m.get("content"), str)
                        else pretty_json(m.get("content"))
                    ),
                )
                for m in value
                if isinstance(m, dict)
            )
            parts.append(
                fmt("<details><summary>{} new messages</summary>{}</details>", len(value), msgs)
            )
            continue
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = json.loads(value) if value[:1] in "{[" else value
        text = value if isinstance(value, str) else pretty_json(value)
        parts.append(fmt('<div class="kv"><span class="key">{}</span>{}</div>', key, pre(text)))
    return join(parts)


def transcript(ui: UI, params: Mapping[str, Any], query: Mapping[str, str]) -> Body:
    from symbiont.agent.transcripts import TranscriptNotFound

    tid = _int(params["tid"], "transcript id")
    try:
        t = ui.data.transcripts().get(tid)
    except TranscriptNotFound as exc:
        raise NotFound(str(exc)) from None
    steps = join(
        fmt(
            '<li class="step k-{}"><div class="step-head"><b>{}. {}</b> {} {} <small>{} · {} / {} tokens</small></div>{}</li>',
            s.kind,
            s.position,
            s.kind,
            s.name,
            badge("ok" if s.ok else "failed") if s.ok is not None else "",
            ms(s.duration_s),
            s.input_tokens,
            s.output_tokens,
            _step_data(s.data),
        )
        for s in t.step_records
    )
    body = fmt(
        '<h1>Transcript {} · {}</h1><p class="summary">{}</p>{}{}{}',
        t.id,
        t.kind,
        t.task,
        _dl(
            [
                ("outcome", badge(t.outcome)),
                ("answer", t.answer or "—"),
                ("error", t.error or "—"),
                (
                    "capability",
                    link(f"/capabilities/{t.capability_id}", t.capability_id)
                    if t.capability_id
                    else "—",
                ),
                (
                    "parent",
                    link(f"/transcripts/{t.parent_id}", t.parent_id) if t.parent_id else "—",
                ),
                ("children", join((link(f"/transcripts/{c}", c) for c in t.children), ", ") or "—"),
                ("model", t.model),
                ("tokens in / out", f"{t.input_tokens} / {t.output_tokens}"),
                (
                    "duration",
                    f"{num(t.duration_s, 3)} s" if t.duration_s is not None else "running",
                ),
            ]
        ),
        _section(
            "Steps", fmt('<ol class="steps">{}</ol>', steps) if t.step_records else "no steps"
        ),
        "",
    )
    return f"Transcript {t.id}", body


# -- the table of pages ----------------------------------------------------------------------
PAGES: dict[str, tuple[str, PageFn, str]] = {
    # name: (path, page, navigation entry)
    "overview": ("/", overview, "/"),
    "capabilities": ("/capabilities", capabilities, "/capabilities"),
    "capability": ("/capabilities/{cap_id}", capability, "/capabilities"),
    "functions": ("/functions", functions, "/functions"),
    "function": ("/functions/{fid}", function, "/functions"),
    "revision": ("/functions/{fid}/revisions/{number}", revision, "/functions"),
    "diff": ("/functions/{fid}/diff", diff, "/functions"),
    "runs": ("/runs", runs, "/runs"),
    "run": ("/runs/{run_id}", run_detail, "/runs"),
    "searches": ("/searches", searches, "/searches"),
    "search": ("/searches/{search_id}", search_detail, "/searches"),
    "transcripts": ("/transcripts", transcripts, "/transcripts"),
    "transcript": ("/transcripts/{tid}", transcript, "/transcripts"),
}
