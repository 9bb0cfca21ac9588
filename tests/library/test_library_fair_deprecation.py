"""Deprecation that is fair (issue 11, item 5).

Only failures attributable to the capability count: not an error its examples declare
(`get_salary_details` for E999 and E998), not the refused update the README runs, not a
server that is down or answers 5xx. `symbiont lib doctor` restores a deprecated capability
whose examples pass again.

Real parts: the HR capabilities in a SQLite file and in a real PostgreSQL (every test runs
on both, `store_backend`), the process-tier sandbox (inprocess when this machine has no
confinement), a real HTTP server on loopback behind `http_get`.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from library_backends import searchable

from symbiont.cli import main
from symbiont.embed import HashingEmbedder
from symbiont.library import Capability, Library

HR = Path(__file__).resolve().parents[2] / "examples" / "hr"


def _open(store: str, root: Path, tier: str) -> Library:
    return Library(
        store,
        data_root=root / "data",
        tier=tier,
        typecheck=False,
        embedder=HashingEmbedder(),
    )


@pytest.fixture
def hr(store_backend: str, tmp_path: Path, tier: str) -> Iterator[Library]:
    with _open(store_backend, tmp_path, tier) as lib:
        report = lib.import_dir(HR)
        assert not report.failed, report.failed
        yield lib


# -- declared errors ---------------------------------------------------------------------------


def test_unknown_employees_do_not_retire_the_salary_lookup(store_backend: str, hr: Library) -> None:
    for employee in ("E999", "E998", "E997"):  # more than the threshold
        run = hr.run("get_salary_details", {"employee_id": employee})
        assert not run.ok
        assert f"no employee with id '{employee}'" in (run.error or "")
        assert run.blame == "declared" and not run.deprecated_now
    cap = hr.get("get_salary_details")
    assert cap.status == "active"
    assert (cap.stats.runs, cap.stats.failures, cap.stats.consecutive_failures) == (3, 0, 0)
    if searchable(store_backend):
        hits = hr.search("salary of employee E042", 3)
        assert hits[0].capability.id == "get_salary_details"


def test_the_readmes_refused_update_twice_does_not_retire_it(
    store_backend: str, tmp_path: Path, tier: str, capsys: pytest.CaptureFixture[str]
) -> None:
    opts = ["--store", store_backend, "--data-root", str(tmp_path / "data")]
    opts += ["--tier", tier]
    assert main(["lib", "import", str(HR), *opts]) == 0
    refused = '{"employee_id": "E007", "new_base": -5, "effective_date": "2026-01-01"}'
    for _ in range(2):
        assert main(["lib", "run", "update_employee_salary", refused, *opts]) == 1
    capsys.readouterr()
    assert main(["lib", "show", "update_employee_salary", "--json", *opts]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "active"
    assert shown["stats"]["runs"] == 2 and shown["stats"]["consecutive_failures"] == 0


def test_an_undeclared_exception_still_counts(hr: Library, tmp_path: Path) -> None:
    database = tmp_path / "data" / "hr" / "employee_database.json"
    database.write_text("{not json")  # a broken data file: its code raises, undeclared
    first = hr.run("get_salary_details", {"employee_id": "E007"})
    second = hr.run("get_salary_details", {"employee_id": "E007"})
    assert first.blame == second.blame == "capability"
    assert second.deprecated_now
    assert hr.get("get_salary_details").status == "deprecated"


def test_an_error_field_in_the_output_schema_is_declared(
    store_backend: str, tmp_path: Path, tier: str
) -> None:
    source = (
        "from typing import TypedDict\n\n\n"
        "class Parsed(TypedDict, total=False):\n"
        "    value: int\n"
        "    error: str\n\n\n"
        "def parse_int(text: str) -> Parsed:\n"
        '    """Parse an integer."""\n'
        "    if not text.strip().lstrip('-').isdigit():\n"
        '        return {"error": "not a number: " + text}\n'
        '    return {"value": int(text)}\n'
    )
    cap = Capability.from_source(
        source,
        summary="Parse an integer from text: returns its value, or an error for other text.",
        examples=[{"input": {"text": "42"}, "expect": {"value": 42}}],
    )
    with _open(store_backend, tmp_path, tier) as lib:
        lib.add(cap)
        for word in ("abc", "xyz", "foo"):
            assert lib.run("parse_int", {"text": word}).blame == "declared"
        assert lib.get("parse_int").status == "active"


# -- transient host failures -----------------------------------------------------------------


class _RateServer:
    """A loopback server for exchange rates whose health the test controls."""

    def __init__(self) -> None:
        self.status = 200
        self.body = '{"rate": 1.1}'
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = owner.body.encode()
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _rate_capability(port: int) -> Capability:
    source = (
        "import json\n\n"
        "from symbiont.host import http_get\n\n\n"
        "def fetch_rate(currency: str) -> float:\n"
        '    """The exchange rate of a currency from the rates server."""\n'
        f'    body = http_get("http://127.0.0.1:{port}/rates/" + currency)\n'
        '    return float(json.loads(body)["rate"])\n'
    )
    return Capability.from_source(
        source,
        summary="Fetch the exchange rate of a currency code such as USD from the rates server.",
        examples=[{"input": {"currency": "USD"}, "expect": 1.1}],
        permissions={
            "http_allow": [f"http://127.0.0.1:{port}/"],
            "allow_private_network": True,
        },
    )


@pytest.fixture
def rates(store_backend: str, tmp_path: Path, tier: str) -> Iterator[tuple[Library, _RateServer]]:
    server = _RateServer()
    with _open(store_backend, tmp_path, tier) as lib:
        lib.add(_rate_capability(server.port))
        try:
            yield lib, server
        finally:
            server.stop()


def test_a_server_answering_5xx_does_not_retire_the_capability(
    rates: tuple[Library, _RateServer],
) -> None:
    lib, server = rates
    server.status = 503
    for _ in range(3):
        run = lib.run("fetch_rate", {"currency": "USD"})
        assert not run.ok and "503" in (run.error or "")
        assert run.blame == "host"
    assert lib.get("fetch_rate").status == "active"
    server.status = 200
    assert lib.run("fetch_rate", {"currency": "USD"}).output == 1.1


def test_a_server_that_is_down_does_not_retire_the_capability(
    rates: tuple[Library, _RateServer],
) -> None:
    lib, server = rates
    server.stop()  # connection refused from now on
    for _ in range(3):
        run = lib.run("fetch_rate", {"currency": "USD"})
        assert not run.ok and run.blame == "host"
    cap = lib.get("fetch_rate")
    assert cap.status == "active" and cap.stats.consecutive_failures == 0


def test_a_404_is_the_capabilitys_fault_and_counts(rates: tuple[Library, _RateServer]) -> None:
    lib, server = rates
    server.status = 404
    runs = [lib.run("fetch_rate", {"currency": "USD"}) for _ in range(2)]
    assert [r.blame for r in runs] == ["capability", "capability"]
    assert lib.get("fetch_rate").status == "deprecated"


# -- lib doctor ----------------------------------------------------------------------------------


def test_lib_doctor_restores_a_capability_whose_examples_pass_again(
    store_backend: str, tmp_path: Path, tier: str, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "data" / "hr" / "employee_database.json"
    with _open(store_backend, tmp_path, tier) as lib:
        lib.import_dir(HR)
        good = database.read_text()
        database.write_text("{not json")
        for _ in range(2):
            lib.run("get_leave_balance", {"employee_id": "E007"})
        assert lib.get("get_leave_balance").status == "deprecated"
        lib.deprecate("get_car_details", "the fleet contract ended")  # by hand

    opts = ["--store", store_backend, "--data-root", str(tmp_path / "data")]
    opts += ["--tier", tier]
    # still broken: reported, not restored
    assert main(["lib", "doctor", *opts]) == 0
    out = capsys.readouterr().out
    assert "failing get_leave_balance" in out and "restored 0" in out

    database.write_text(good)  # the data is fixed
    assert main(["lib", "doctor", "--dry-run", *opts]) == 0
    assert "would be restored" in capsys.readouterr().out
    with _open(store_backend, tmp_path, tier) as lib:
        assert lib.get("get_leave_balance").status == "deprecated"

    assert main(["lib", "doctor", "--json", *opts]) == 0
    report = {e["id"]: e for e in json.loads(capsys.readouterr().out)}
    assert report["get_leave_balance"]["passed"] and report["get_leave_balance"]["restored"]
    assert report["get_car_details"]["passed"] and not report["get_car_details"]["restored"]
    assert "by hand" in report["get_car_details"]["note"]
    with _open(store_backend, tmp_path, tier) as lib:
        assert lib.get("get_leave_balance").status == "active"
        assert lib.get("get_leave_balance").stats.consecutive_failures == 0
        assert lib.get("get_car_details").status == "deprecated"
        if searchable(store_backend):
            hits = lib.search("leave balance", 3)
            assert "get_leave_balance" in [r.capability.id for r in hits]


def test_running_a_deprecated_capability_names_the_cli_flags(
    store_backend: str, tmp_path: Path, tier: str, capsys: pytest.CaptureFixture[str]
) -> None:
    opts = ["--store", store_backend, "--data-root", str(tmp_path / "data")]
    opts += ["--tier", tier]
    assert main(["lib", "import", str(HR), *opts]) == 0
    assert main(["lib", "deprecate", "get_car_details", "--reason", "retired", *opts]) == 0
    capsys.readouterr()
    assert main(["lib", "run", "get_car_details", '{"employee_id": "E001"}', *opts]) == 1
    err = capsys.readouterr().err
    assert "--force" in err and "symbiont lib doctor get_car_details" in err
    assert "force=True" not in err and "Traceback" not in err
