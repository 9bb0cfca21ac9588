"""`symbiont prompts`: show exactly what the model is told."""

from __future__ import annotations

import argparse
import importlib

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from symbiont.errors import SymbiontError

# Modules that define a TEMPLATES dict of named prompt templates.
PROMPT_MODULES = ("symbiont.feedback", "symbiont.agent.prompts")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("prompts", help="show the prompt templates the model is given")
    p.add_argument("name", nargs="?", help="show only this template (e.g. correction.parse)")
    p.set_defaults(func=show_prompts)


def templates() -> dict[str, str]:
    out: dict[str, str] = {}
    for mod in PROMPT_MODULES:
        try:
            module = importlib.import_module(mod)
        except ModuleNotFoundError:
            continue
        prefix = "" if mod == "symbiont.feedback" else mod.rsplit(".", 2)[-2] + "."
        out.update({prefix + k: v for k, v in getattr(module, "TEMPLATES", {}).items()})
    return out


def show_prompts(args: argparse.Namespace) -> int:
    console = Console()
    all_templates = templates()
    if args.name:
        if args.name not in all_templates:
            raise SymbiontError(
                f"no prompt template {args.name!r}; known: {', '.join(sorted(all_templates))}"
            )
        chosen = {args.name: all_templates[args.name]}
    else:
        chosen = all_templates
    for name, text in chosen.items():
        console.print(Panel(Text(text), title=name, title_align="left"))
    return 0
