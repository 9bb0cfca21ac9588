"""Every route of `symbiont ui` over plain HTTP: status codes, messages instead of stack
traces, escaping of model-written text, the read-only default, actions, token and binding."""

from __future__ import annotations

import re
import sqlite3
import subprocess
from pathlib import Path

import pytest
from ui_helpers import SYMBIONT, Server, child_env, copy_store, serve_ui_program, ui_server

SCRIPT_TAG = re.compile(r"<script(?![^>]*src=\"/static/app\.js\")", re.I)


def function_ids(server: Server) -> dict[str, int]:
    page = server.get("/functions").text
    return {
        k: int(i) for i, k in re.findall(r'href="/functions/(\d+)" class="fn-key">([^<]+)<', page)
    }


def assert_page(resp, status: int = 200) -> str:
    assert resp.status == status, resp.text[:500]
    assert "text/html" in resp.headers["content-type"]
    # never a stack trace of the server (a diagnostic may carry the candidate's traceback)
    assert "symbiont/ui/" not in resp.text and "starlette" not in resp.text
    assert "Internal Server Error" not in resp.text
    assert not SCRIPT_TAG.search(resp.text), "an unescaped <script> reached the page"
    return resp.text


def test_every_page_answers_with_its_content(server: Server) -> None:
    ids = function_ids(server)
    approx, greet = ids["ui_targets.approx"], ids["ui_targets.greet"]
    run_id = re.search(r'href="/runs/(\d+)"', server.get("/runs").text).group(1)  # type: ignore[union-attr]
    tid = re.search(r'href="/transcripts/(\d+)"', server.get("/transcripts").text).group(1)  # type: ignore[union-attr]
    expect = {
        "/": "evolvable functions",
        "/capabilities": "get_salary_details",
        "/capabilities?status=active": "get_leave_balance",
        "/capabilities?status=deprecated": "No capabilities",
        "/capabilities?q=salary+of+an+employee": "semantic",
        "/capabilities?q=salary&mode=lexical&status=active": "get_salary_details",
        "/capabilities/get_salary_details": "Input schema",
        "/functions": "ui_targets.approx",
        f"/functions/{approx}": 'aria-label="lineage tree"',
        f"/functions/{approx}/revisions/3": "worse_score",
        f"/functions/{approx}/diff?a=1&b=5": "diff_chg",
        f"/functions/{greet}/revisions/1": "no_code",
        "/runs": "ui_targets.greet",
        f"/runs/{run_id}": "stage timings",
        "/searches": "ui_targets.peak",
        "/searches/1": "MAP-Elites grid (code_length × distance)",
        f"/functions/{ids['ui_targets.peak']}": 'svg class="plot"',
        "/transcripts": "What is employee E042",
        f"/transcripts/{tid}": "Steps",
    }
    for path, needle in expect.items():
        text = assert_page(server.get(path))
        assert needle in text, f"{path}: {needle!r} missing"
    for path in ("/static/app.css", "/static/app.js"):
        assert server.get(path).status == 200


def test_search_ranks_get_salary_details_first_with_both_parts(server: Server) -> None:
    text = assert_page(server.get("/capabilities?q=What+is+employee+E042%27s+salary%3F"))
    rows = re.findall(r'<tr><td>(\d+)</td><td><a href="/capabilities/([^"]+)"', text)
    assert rows[0] == ("1", "get_salary_details")
    assert "semantic #" in text and "lexical #" in text


def test_missing_records_and_bad_addresses_are_message_pages(server: Server) -> None:
    fid = function_ids(server)["ui_targets.approx"]
    for path in (
        "/functions/999999",
        "/functions/abc",
        f"/functions/{fid}/revisions/999",
        f"/functions/{fid}/diff?a=0&b=999",
        "/capabilities/no_such_capability",
        "/runs/999999",
        "/transcripts/999999",
        "/searches/999999",
        "/no/such/page",
    ):
        text = assert_page(server.get(path), 404)
        assert "Not found" in text, path
    assert server.get("/static/evil.js").status == 404
    assert server.get("/events?path=/nowhere").status == 404


def test_model_written_text_is_escaped_everywhere(server: Server) -> None:
    greet = function_ids(server)["ui_targets.greet"]
    reply_page = assert_page(server.get(f"/functions/{greet}/revisions/1"))
    assert "&lt;script&gt;alert(&#x27;reply&#x27;)&lt;/script&gt;" in reply_page
    source_page = assert_page(server.get(f"/functions/{greet}/revisions/2"))
    # in the source, the reply and the check's message (diagnostics)
    assert source_page.count("&lt;script&gt;alert(") >= 3
    diff_page = assert_page(server.get(f"/functions/{greet}/diff?a=0&b=2"))
    assert "&lt;script&gt;" in diff_page
    lineage = assert_page(server.get(f"/functions/{greet}"))
    assert "<script>alert" not in lineage
    # a query is text too
    search = assert_page(server.get("/capabilities?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E"))
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in search
    csp = server.get("/").headers["content-security-policy"]
    assert "script-src 'self'" in csp


def test_live_events_stream_the_page_body(server: Server) -> None:
    import http.client
    import json

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("GET", "/events?path=/runs&h=none")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("content-type", "").startswith("text/event-stream")
    lines = []
    while not lines or lines[-1] != "":
        lines.append(resp.readline().decode().rstrip("\r\n"))
        if lines[-1].startswith("retry:"):
            lines.clear()
            resp.readline()
    conn.close()
    assert lines[0] == "event: update"
    payload = json.loads(lines[1].removeprefix("data: "))
    assert "ui_targets.approx" in payload["html"] and payload["hash"]


def test_read_only_by_default(readonly_server: Server) -> None:
    text = assert_page(readonly_server.get("/capabilities/get_salary_details"))
    assert "--allow-actions" in text and "<textarea" not in text
    assert "read-only" in text
    for path in (
        "/capabilities/get_salary_details/run",
        "/capabilities/get_salary_details/deprecate",
        "/capabilities/get_salary_details/restore",
        "/functions/1/activate",
    ):
        resp = readonly_server.post(path, {"input": "{}", "number": "0"})
        assert "read-only" in assert_page(resp, 403), path


def test_actions_need_the_form_key(server: Server) -> None:
    resp = server.post("/capabilities/get_salary_details/run", {"input": '{"employee_id": "E042"}'})
    assert "stale" in assert_page(resp, 403)
    resp = server.post(
        "/capabilities/get_salary_details/run", {"input": "{}", "form_key": "guessed"}
    )
    assert resp.status == 403


def test_run_a_capability_with_json_input(server: Server) -> None:
    key = server.form_key("/capabilities/get_salary_details")
    resp = server.post(
        "/capabilities/get_salary_details/run",
        {"input": '{"employee_id": "E042"}', "form_key": key},
    )
    text = assert_page(resp)
    assert 'id="run-result"' in text and "E042" in text and "<h3>ok</h3>" in text
    bad = assert_page(
        server.post("/capabilities/get_salary_details/run", {"input": "{not json", "form_key": key})
    )
    assert "Not run" in bad and "{not json" in bad


def test_deprecate_and_restore(server: Server) -> None:
    key = server.form_key("/capabilities/get_car_details")
    resp = server.post(
        "/capabilities/get_car_details/deprecate", {"reason": "<b>old</b>", "form_key": key}
    )
    assert resp.status == 303
    text = assert_page(server.get("/capabilities/get_car_details"))
    assert "deprecated" in text and "&lt;b&gt;old&lt;/b&gt;" in text
    assert "get_car_details" in server.get("/capabilities?status=deprecated").text
    assert server.post("/capabilities/get_car_details/restore", {"form_key": key}).status == 303
    assert "b-active" in server.get("/capabilities/get_car_details").text


def test_activate_a_revision_in_the_store(server: Server, ui_store: Path) -> None:
    fid = function_ids(server)["ui_targets.approx"]
    key = server.form_key(f"/functions/{fid}/revisions/1")
    resp = server.post(f"/functions/{fid}/activate", {"number": "1", "form_key": key})
    assert resp.status == 303
    page = assert_page(server.get(resp.headers["location"]))
    assert "next start" in page and "<dt>active revision</dt><dd>1</dd>" in page
    rejected = server.post(f"/functions/{fid}/activate", {"number": "3", "form_key": key})
    assert "cannot be made active" in assert_page(rejected, 400)
    assert server.post(f"/functions/{fid}/activate", {"number": "5", "form_key": key}).status == 303
    with sqlite3.connect(ui_store) as conn:
        (active,) = conn.execute(
            "SELECT active_number FROM functions WHERE id = ?", (fid,)
        ).fetchone()
    assert active == 5


def test_empty_store_and_corrupt_file_are_messages(tmp_path: Path) -> None:
    with ui_server(tmp_path, store=tmp_path / "none" / "symbiont.db") as s:
        for path in ("/", "/capabilities", "/functions", "/runs", "/searches", "/transcripts"):
            assert "No store yet" in assert_page(s.get(path)), path
    assert not (tmp_path / "none").exists(), "a read-only UI must not create the store"
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a database" * 100)
    with ui_server(tmp_path, store=bad) as s:
        for path in ("/", "/functions", "/capabilities/x", "/functions/1"):
            assert "cannot be read" in assert_page(s.get(path), 503), path
    assert bad.read_bytes() == b"this is not a database" * 100
    empty = tmp_path / "empty"
    empty.mkdir()
    from symbiont.store import open_store

    open_store(empty / "symbiont.db").close()
    with ui_server(empty, store=empty / "symbiont.db") as s:
        assert "The store is empty" in assert_page(s.get("/"))
        assert "No evolvable functions yet" in assert_page(s.get("/functions"))
        assert "No capabilities" in assert_page(s.get("/capabilities"))
        assert "No runs yet" in assert_page(s.get("/runs"))
        assert "No transcripts yet" in assert_page(s.get("/transcripts"))


def test_other_addresses_need_a_token(tmp_path: Path) -> None:
    proc = subprocess.run(
        [SYMBIONT, "ui", "--host", "0.0.0.0", "--port", "0"],
        env={k: v for k, v in child_env(tmp_path).items() if k != "SYMBIONT_UI_TOKEN"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "refusing to serve the UI on 0.0.0.0" in proc.stderr and "token" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_token_is_required_when_set(tmp_path: Path) -> None:
    with ui_server(tmp_path, "--token", "s3cret") as s:
        assert "Token required" in assert_page(s.get("/"), 401)
        assert s.get("/", headers={"Authorization": "Bearer wrong"}).status == 401
        assert s.get("/", headers={"Authorization": "Bearer s3cret"}).status == 200
        resp = s.get("/functions?token=s3cret")
        assert resp.status == 303 and resp.headers["location"] == "/functions"
        cookie = resp.headers["set-cookie"].split(";")[0]
        assert s.get("/functions", headers={"Cookie": cookie}).status == 200


def test_a_foreign_host_header_is_refused(server: Server) -> None:
    resp = server.get("/", headers={"Host": "attacker.example:80"})
    assert resp.status == 421 and "attacker.example" in resp.text


def test_runtime_serve_ui_activates_live(tmp_path: Path, ui_store: Path) -> None:
    """`runtime.serve_ui()` in the program's own process: activating from the page swaps
    the live function at once."""
    store = tmp_path / "symbiont.db"
    copy_store(ui_store, store)
    with serve_ui_program(tmp_path, store) as program:
        s = program.server
        assert program.say("call") == "approx(2.0) = 7.0"
        fid = function_ids(s)["ui_targets.approx"]
        key = s.form_key(f"/functions/{fid}/revisions/1")
        resp = s.post(f"/functions/{fid}/activate", {"number": "1", "form_key": key})
        assert resp.status == 303
        assert "live in this process now" in s.get(resp.headers["location"]).text
        assert program.say("call") == "approx(2.0) = 4.0"


@pytest.mark.parametrize("path", ["/", "/functions", "/capabilities"])
def test_pages_name_the_store_and_the_mode(server: Server, path: str) -> None:
    text = assert_page(server.get(path))
    assert "actions on" in text and "symbiont.db" in text
