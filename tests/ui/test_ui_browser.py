"""`symbiont ui` in a real browser: Debian's chromium driven by Playwright, against the
server subprocess on loopback and a store filled by the real runtime.

Screenshots of every page go to tests/ui/screenshots/ (git-ignored; the README names it).
`make test` installs chromium when it is missing and the tests run as root; otherwise they
skip, saying why.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ui_helpers import PYTHON, TARGETS, Server, child_env, copy_store, serve_ui_program

CHROMIUM = Path(os.environ.get("SYMBIONT_CHROMIUM", "/usr/bin/chromium"))
SHOTS = Path(__file__).parent / "screenshots"
# Chromium as this machine runs it: no sandbox as root, no GPU, and none of the background
# connections a closed network refuses.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 60_000  # generous: the machine is shared; nothing here measures time

if not CHROMIUM.exists() and os.geteuid() != 0:
    pytest.skip(
        f"{CHROMIUM} is missing and this is not root, so it cannot be installed "
        "(`make test` installs Debian's chromium as root: apt-get install chromium)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run `sh tests/ui/ensure_chromium.sh`"
    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            args=FLAGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
        )
        ctx.set_default_timeout(WAIT_MS)
        yield ctx
        ctx.close()


@pytest.fixture
def page(context: Any) -> Iterator[Any]:
    pg = context.new_page()
    dialogs: list[str] = []
    errors: list[str] = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.dialogs = dialogs
    yield pg
    pg.close()
    assert not dialogs, f"a dialog opened: {dialogs}"
    assert not errors, f"JavaScript errors: {errors}"


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def fid(server: Server, key: str) -> int:
    page = server.get("/functions").text
    match = re.search(rf'href="/functions/(\d+)" class="fn-key">{re.escape(key)}<', page)
    assert match, f"{key} not listed"
    return int(match.group(1))


def test_search_box_ranks_get_salary_details_first(page: Any, server: Server) -> None:
    page.goto(server.url + "/capabilities")
    shot(page, "capabilities")
    page.fill("input[name=q]", "What is employee E042's salary?")
    page.press("input[name=q]", "Enter")
    page.wait_for_selector("table.results")
    first = page.locator("table.results tbody tr").first
    assert first.locator("a.cap-id").inner_text() == "get_salary_details"
    headers = page.locator("table.results th").all_inner_texts()
    assert {"semantic", "lexical"} <= set(headers)
    assert "semantic #" in first.inner_text() and "lexical #" in first.inner_text()
    shot(page, "capabilities-search")


def test_a_capability_page_runs_it(page: Any, server: Server) -> None:
    page.goto(server.url + "/capabilities/get_salary_details")
    assert page.locator("h1").inner_text() == "get_salary_details"
    page.fill("#run-input", '{"employee_id": "E042"}')
    page.click("#run-button")
    result = page.wait_for_selector("#run-result")
    text = result.inner_text()
    assert text.startswith("ok") and "E042" in text
    shot(page, "capability-run")


def test_lineage_page_shows_the_tree_and_a_diff(page: Any, server: Server) -> None:
    approx = fid(server, "ui_targets.approx")
    page.goto(f"{server.url}/functions/{approx}")
    tree = page.locator("svg.tree")
    assert tree.is_visible()
    assert page.locator("svg.tree g.node").count() == 6
    assert page.locator("svg.tree g.node.rejected").count() == 2
    assert page.locator("svg.tree line.edge").count() == 5
    assert page.locator("svg.plot circle.pt").count() >= 5
    shot(page, "function-lineage")
    page.select_option("select[name=a]", "2")
    page.select_option("select[name=b]", "5")
    page.click("form.diff-form button")
    page.wait_for_selector("table.diff")
    assert "revision 2 → 5" in page.locator("h1").inner_text()
    changed = page.locator("table.diff .diff_chg")
    assert changed.count() >= 1
    assert "3.0" in page.locator("table.diff").inner_text()
    assert "3.5" in page.locator("table.diff").inner_text()
    shot(page, "function-diff")
    page.goto(f"{server.url}/functions/{approx}")
    page.locator("svg.tree g.node[data-number='3']").click()
    page.wait_for_url(re.compile(r"/revisions/3$"))
    assert "worse_score" in page.locator("ul.diags").inner_text()
    shot(page, "revision")


def test_live_page_updates_while_an_evolve_runs(
    page: Any, server: Server, ui_home: Path, ui_store: Path
) -> None:
    page.goto(server.url + "/runs")
    page.wait_for_selector("#live-dot.on")  # the event stream is open
    page.evaluate("window.__loadedOnce = true")
    assert "ui_targets.countdown" not in page.locator("#content").inner_text()
    evolve = subprocess.Popen(
        [PYTHON, str(TARGETS), str(ui_store), "countdown"],
        env=child_env(ui_home),
        cwd=TARGETS.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        # a locator waits without eval (the page's CSP forbids string evaluation)
        page.locator("#content a", has_text="ui_targets.countdown").first.wait_for()
    finally:
        _out, err = evolve.communicate(timeout=300)
    assert evolve.returncode == 0, err.decode()
    # the same document, updated in place: no reload happened
    assert page.evaluate("window.__loadedOnce") is True
    assert page.get_attribute("body", "data-updated")
    row = page.locator("tr", has_text="ui_targets.countdown").first
    row.locator("text=accepted").wait_for()
    shot(page, "runs-live")
    row.locator("a").first.click()
    page.wait_for_selector("svg.bar")
    assert "stage timings" in page.locator("table").first.inner_text()
    shot(page, "run")


def test_live_page_of_an_in_process_ui_updates_while_its_program_evolves(
    page: Any, tmp_path: Path, ui_store: Path
) -> None:
    """`runtime.serve_ui()`: the UI runs in a thread of the program that evolves."""
    store = tmp_path / "symbiont.db"
    copy_store(ui_store, store)
    with serve_ui_program(tmp_path, store) as program:
        url = program.server.url
        page.goto(url + "/runs")
        page.wait_for_selector("#live-dot.on")
        ids = [int(h.rsplit("/", 1)[1]) for h in page.eval_on_selector_all(
            "#content a[href^='/runs/']", "els => els.map(e => e.getAttribute('href'))"
        )]  # fmt: skip
        page.evaluate("window.__loadedOnce = true")
        assert program.say("evolve countdown") == "evolved countdown"
        page.locator(f"#content a[href='/runs/{max(ids) + 1}']").wait_for()
        assert page.evaluate("window.__loadedOnce") is True
        shot(page, "runs-live-in-process")


def test_search_page_draws_curves_and_the_grid(page: Any, server: Server) -> None:
    page.goto(server.url + "/searches/1")
    assert page.locator("svg.plot").count() == 2
    assert page.locator("svg.heat rect.cell").count() >= 1
    assert page.locator("svg.heat rect").count() == 100  # 10 x 10 bins
    shot(page, "search")


def test_script_in_a_reply_is_shown_as_text(page: Any, server: Server) -> None:
    greet = fid(server, "ui_targets.greet")
    page.goto(f"{server.url}/functions/{greet}/revisions/1")
    reply = page.locator("pre.reply")
    assert "<script>alert('reply')</script>" in reply.inner_text()
    page.goto(f"{server.url}/functions/{greet}/revisions/2")
    assert "<script>alert('xss')</script>" in page.locator("pre.source").inner_text()
    assert "<script>alert('xss')</script>" in page.locator("ul.diags").inner_text()
    assert page.get_by_text("return \"<script>alert('xss')</script>\"").first.is_visible()
    # the only script element is the UI's own
    scripts = page.eval_on_selector_all("script", "els => els.map(e => e.src)")
    assert scripts == [server.url + "/static/app.js"]
    shot(page, "revision-script-as-text")
    page.goto(f"{server.url}/functions/{greet}/diff?a=0&b=2")
    assert "<script>" in page.locator("table.diff").inner_text()
    assert page.eval_on_selector_all("script", "els => els.length") == 1
    shot(page, "diff-script-as-text")
    assert page.dialogs == []


@pytest.mark.parametrize(
    "name,path",
    [
        ("overview", "/"),
        ("functions", "/functions"),
        ("transcripts", "/transcripts"),
        ("transcript", "/transcripts/2"),
        ("searches", "/searches"),
        ("not-found", "/functions/999999"),
    ],
)
def test_screenshots_of_the_other_pages(page: Any, server: Server, name: str, path: str) -> None:
    page.goto(server.url + path)
    assert page.locator("h1").first.is_visible()
    shot(page, name)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
