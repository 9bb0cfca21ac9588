"""`symbiont demo`: run an example with the default model and watch each attempt live."""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.syntax import Syntax

from symbiont.errors import SymbiontError

EXAMPLES = ("counter", "fizzbuzz", "curve_fit", "native")
_MODULES = {"native": "native_sim"}  # example name -> file name, where they differ


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="run an example with the default model (offline if none is configured)",
        description=(
            "Run one of the examples and show each attempt live: the stage it reached, its "
            "diagnostics, its score and the active revision. Uses SYMBIONT_MODEL / "
            "OPENAI_BASE_URL when set, else the offline mutation proposer."
        ),
    )
    p.add_argument(
        "example",
        nargs="?",
        default="counter",
        help=f"one of {', '.join(EXAMPLES)}, or 'all' (default: counter)",
    )
    p.add_argument(
        "--store",
        default=None,
        help="store file (default: $SYMBIONT_HOME/symbiont.db or ./.symbiont/symbiont.db)",
    )
    p.add_argument("--memory", action="store_true", help="keep revisions in memory only (no store)")
    p.add_argument(
        "--seed", type=int, default=1, help="seed of the offline mutation proposer (default 1)"
    )
    p.add_argument(
        "--examples-dir",
        default=None,
        help="where the examples live (default: ./examples, else next to the package)",
    )
    p.set_defaults(func=run)


def examples_dir(explicit: str | None) -> Path:
    candidates = (
        [Path(explicit)]
        if explicit
        else [
            Path.cwd() / "examples",
            Path(__file__).resolve().parents[3]
            / "examples",  # the repository, for editable installs
        ]
    )
    for c in candidates:
        if (c / "counter.py").is_file():
            return c
    raise SymbiontError(
        "cannot find the examples folder (looked in: "
        + ", ".join(str(c) for c in candidates)
        + "); pass --examples-dir"
    )


def load_example(folder: Path, name: str) -> ModuleType:
    """Import an example under its own file name (so its functions keep one identity)."""
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(
        folder / f"{name}.py"
    ):
        return sys.modules[name]
    path = folder / f"{name}.py"
    if not path.is_file():
        raise SymbiontError(f"no example {name!r} in {folder} (known: {', '.join(EXAMPLES)})")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def attempt_printer(console: Console, fn: Any) -> Any:
    """An `on_attempt` callback that prints one line (and its diagnostics) per attempt."""

    def on_attempt(a: Any) -> None:
        took = sum(a.timings.values())
        score = f" score [bold]{a.score:.6g}[/]" if a.score is not None else ""
        if a.accepted:
            console.print(
                f"  [green]✔ attempt {a.index}[/] accepted as r{a.revision}{score} "
                f"[dim]({took * 1000:.0f} ms, active now r{fn.symbiont.active.number})[/]"
            )
            return
        console.print(
            f"  [red]✘ attempt {a.index}[/] rejected at [bold]{a.stage}[/]{score} "
            f"[dim](r{a.revision}, {took * 1000:.0f} ms)[/]"
        )
        for d in a.diagnostics[:2]:
            first = d.message.splitlines()[0] if d.message else d.kind
            console.print(
                f"      [yellow]{d.stage}/{d.kind}[/]: {escape(first[:160])}", highlight=False
            )

    return on_attempt


def run(args: argparse.Namespace) -> int:
    from symbiont.models import MutationModel, default_model
    from symbiont.runtime import Runtime

    console = Console()
    names = EXAMPLES if args.example == "all" else (args.example,)
    for n in names:
        if n not in EXAMPLES:
            raise SymbiontError(
                f"unknown example {n!r}; choose one of {', '.join(EXAMPLES)} or 'all'"
            )
    folder = examples_dir(args.examples_dir)
    model = default_model(announce=lambda msg: console.print(f"[dim]{msg}[/]"))
    if isinstance(model, MutationModel):
        model = MutationModel(seed=args.seed)
    store: Any = False if args.memory else args.store
    runtime = Runtime(store=store)
    if runtime.store is not None:
        console.print(f"[dim]store: {runtime.store.path}[/]")
    ok = True
    try:
        for name in names:
            module = load_example(folder, _MODULES.get(name, name))
            ok &= _run_one(console, module, name, runtime, model)
    finally:
        runtime.close()
    return 0 if ok else 1


def _run_one(console: Console, module: ModuleType, name: str, runtime: Any, model: Any) -> bool:
    fn = {"counter": "step", "fizzbuzz": "fizzbuzz", "curve_fit": "predict", "native": "diffuse"}[
        name
    ]
    target = getattr(module, fn)
    console.rule(f"[bold]{name}[/]: evolving {target.symbiont.key}")
    console.print(
        Syntax(target.symbiont.signature.render(), "python", theme="ansi_dark", word_wrap=True)
    )
    console.print(f"[dim]active before: r{target.symbiont.active.number}[/]")
    started = time.monotonic()
    on_attempt = attempt_printer(console, target)
    if name == "counter":
        result = module.main(
            runtime=runtime,
            model=model,
            seconds=4.0,
            evolve_every=1.0,
            on_attempt=on_attempt,
            quiet=True,
        )
        reports = result["reports"]
        console.print(
            f"the loop kept running: {len(result['increments'])} calls of step(), counter "
            f"{result['state']['counter']}, last increments {result['increments'][-3:]}"
        )
    elif name == "native":
        if type(model).__name__ == "MutationModel":
            console.print(
                "[dim]the offline proposer does not write faster kernels: a scripted reply "
                "(examples/native_sim.py FASTER) stands in for a model[/]"
            )
        result = module.main(runtime=runtime, model=model, on_attempt=on_attempt)
        reports = [result["report"]]
        py, declared, active = result["python_ms"], result["declared_ms"], result["active_ms"]
        console.print(
            f"the simulation kept running: {result['steps_per_s_before']:.0f} → "
            f"{result['steps_per_s_after']:.0f} steps/s; kernel {active:.2f} ms per step: "
            f"[bold]{declared / active:.1f}×[/] the declared body ({declared:.2f} ms), "
            f"[bold]{py / active:.0f}×[/] the same code in plain Python ({py:.0f} ms)"
        )
    else:
        # The offline proposer explores blindly; give it room. A real model stops early.
        attempts = 80 if type(model).__name__ == "MutationModel" else 20
        reports = [
            module.main(runtime=runtime, model=model, on_attempt=on_attempt, attempts=attempts)
        ]
    accepted = [r.accepted for r in reports if r.accepted]
    active = target.symbiont.active
    elapsed = time.monotonic() - started
    if accepted:
        rev = accepted[-1]
        score = f", score {rev.score:.6g}" if rev.score is not None else ""
        console.print(
            Panel(
                Syntax(rev.source.rstrip(), "python", theme="ansi_dark", word_wrap=True),
                title=f"accepted r{rev.number}{score} — live in {target.symbiont.key} ({elapsed:.1f} s)",
                border_style="green",
            )
        )
        return True
    console.print(
        f"[red]no candidate accepted[/] after {sum(len(r.attempts) for r in reports)} attempts; "
        f"r{active.number} stays active"
    )
    return False
