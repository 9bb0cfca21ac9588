"""Evolve-loop throughput: attempts per second with a scripted (instant) model.

Two runs on a one-line function, no store, no type check, so the figure is the loop's own
cost (prompt building, the model call, pipeline, records, feedback):

- *pipeline rejections*: 300 attempts, each a distinct reply rejected before the trial (a
  syntax error or a wrong signature) — the cost of a long conversation shows here;
- *trial rejections*: 100 attempts, each a distinct candidate that fails its check in a forked
  trial child.

Also reported: the messages and estimated input tokens (characters / 4) of the last
request, and the input tokens of the whole run. The script uses only the public API, so the
same file measures an older checkout: `python benchmarks/bench_harness.py` from its root.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _report import write_section

import symbiont
from symbiont.models import ScriptedModel


@symbiont.evolvable(timeout=5.0, typecheck=False)
def bump(x: int) -> int:
    """Return x plus one."""
    return x


def check_bump(fn) -> None:  # type: ignore[no-untyped-def]
    assert fn(1) == 2, f"bump(1) returned {fn(1)!r}, expected 2"


def pipeline_reply(i: int) -> str:
    if i % 2:
        return f"```python\ndef bump(x: int) -> int:\n    return x + ({i}\n```"  # syntax error
    return f"```python\ndef bump(x: str) -> int:\n    return {i}\n```"  # wrong signature


def trial_reply(i: int) -> str:
    return f"```python\ndef bump(x: int) -> int:\n    return x + {i + 2}\n```"  # check fails


def run(replies: list[str]) -> tuple[float, float, int, int, int]:
    """(attempts/s, CPU ms per attempt, messages in the last request, its estimated tokens,
    run input tokens). CPU time is this process's, all threads, so it is steadier than wall
    time on a loaded machine (forked trial children are not in it)."""
    model = ScriptedModel(replies)
    rt = symbiont.Runtime(store=False)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        report = rt.evolve_sync(bump, model, check=check_bump, attempts=len(replies))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        rt.close()
        h = bump.symbiont
        h.activate(0)
        del h.revisions[1:]
    assert len(report.attempts) == len(replies), report.summary()
    last = model.calls[-1]
    chars = sum(len(str(m.get("content") or "")) for m in last)
    n = len(replies)
    return n / elapsed, cpu / n * 1000, len(last), (chars + 3) // 4, report.input_tokens


# The same script on main before the bounded loop (commit bdcce4e, whose conversation grew by
# two messages per attempt), medians of three rounds interleaved with this code's rounds on
# 2026-11-30 (load average about 9: other work shared the two cores).
BEFORE = {
    "300 attempts rejected in the pipeline": "| 173.3 | 1.99 | 600 | 26,253 | 3,986,607 |",
    "100 attempts rejected at the check (forked trial)": "| 26.5 | 8.41 | 200 | 14,902 | 762,471 |",
}


def _closing(now: tuple[float, float, int, int, int]) -> str:
    rate, cpu_ms, messages, _, total = now
    before = [c.strip() for c in BEFORE["300 attempts rejected in the pipeline"].split("|")[1:-1]]
    before_rate, before_cpu, before_messages = float(before[0]), float(before[1]), before[2]
    before_total = int(before[4].replace(",", ""))
    return (
        f"The request at attempt 300 carries {messages} messages (before: {before_messages}): "
        "the system prompt, the task with a digest of older attempts, and the last exchanges. "
        f"The 300-attempt run sends {total / 1e3:,.0f} k input tokens instead of "
        f"{before_total / 1e6:.1f} M ({before_total / total:.1f}× fewer), growing linearly "
        f"with the attempts. Attempts per second: {before_rate:g} before, {rate:.0f} now; CPU "
        f"per attempt {before_cpu:g} ms before, {cpu_ms:.2f} ms now. The trial-bound run is "
        "dominated by forking the (confined) trial child."
    )


def main() -> str:
    load = os.getloadavg()[0]
    rows = []
    measured: dict[str, tuple[float, float, int, int, int]] = {}
    for label, replies in (
        ("300 attempts rejected in the pipeline", [pipeline_reply(i) for i in range(300)]),
        ("100 attempts rejected at the check (forked trial)", [trial_reply(i) for i in range(100)]),
    ):
        rate, cpu_ms, messages, last_tokens, total = measured[label] = run(replies)
        rows.append(f"| {label}, before (bdcce4e) {BEFORE[label]}")
        rows.append(
            f"| {label}, now | {rate:.1f} | {cpu_ms:.2f} | {messages} | {last_tokens:,} "
            f"| {total:,} |"
        )
        print(rows[-1], flush=True)
    text = "\n".join(
        [
            "## Evolve loop throughput (scripted model)",
            "",
            "One-line function, no store, no type check. `python benchmarks/bench_harness.py`.",
            "The *before* rows are the same script on main before the bounded loop (commit",
            "bdcce4e), medians of three rounds interleaved with the new code's on a loaded",
            "machine; wall-clock rates swing with the load, CPU ms per attempt much less.",
            f"Load average at start of this run: {load:.2f}.",
            "",
            "| run | attempts/s | CPU ms/attempt | messages in last request | its tokens (est.) "
            "| run input tokens |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
            *rows,
            "",
            _closing(measured["300 attempts rejected in the pipeline"]),
        ]
    )
    return write_section("harness", text)


if __name__ == "__main__":
    print(main())
