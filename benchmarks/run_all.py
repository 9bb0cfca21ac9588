"""`make bench`: run every benchmarks/bench_*.py and collect their sections in RESULTS.md.

Each script measures one thing and writes benchmarks/results/<name>.md; this runner executes
them one after another (never in parallel: they would disturb each other) and writes the
machine, the date and every section to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
EXTRA_SECTIONS = ["real_model"]
ORDER = [
    "call",
    "pipeline",
    "trial",
    "store",
    "store_pg",
    "sandbox_wasm",
    "sandbox_process",
    "retrieval",
]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}; {platform.system()} {platform.release()}; Python {platform.python_version()}"


def main() -> int:
    # `--collect` only rebuilds RESULTS.md from the sections already in results/ (used by
    # `make bench-real-model`, whose section comes from benchmarks/real_model/run.py).
    collect_only = "--collect" in sys.argv[1:]
    only = set(sys.argv[1:]) - {"--collect"}
    scripts = sorted(
        HERE.glob("bench_*.py"),
        key=lambda p: (ORDER.index(p.stem[6:]) if p.stem[6:] in ORDER else 99, p.name),
    )
    failed = []
    for script in scripts:
        name = script.stem[6:]
        if collect_only or (only and name not in only):
            continue
        print(f"== {script.name}", flush=True)
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, str(script)], cwd=HERE.parent)
        print(
            f"   {script.name}: exit {proc.returncode} in {time.monotonic() - t0:.1f} s", flush=True
        )
        if proc.returncode != 0:
            failed.append(script.name)
    sections = []
    for script in scripts:
        f = HERE / "results" / f"{script.stem[6:]}.md"
        if f.is_file():
            sections.append(f.read_text().rstrip())
    for extra in EXTRA_SECTIONS:  # sections written by scripts outside `make bench`
        f = HERE / "results" / f"{extra}.md"
        if f.is_file():
            sections.append(f.read_text().rstrip())
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = [
        "# Benchmark results",
        "",
        f"Measured {now} on {machine()}.",
        "Produced by `make bench` (`python benchmarks/run_all.py`); each section names the script that measured it.",
        "",
    ]
    if failed:
        head += [
            f"Scripts that failed in this run: {', '.join(failed)} (their sections may be stale).",
            "",
        ]
    (HERE / "RESULTS.md").write_text("\n".join(head) + "\n\n".join(sections) + "\n")
    print(f"wrote {HERE / 'RESULTS.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
