"""`symbiont prompts`: show exactly what the model is told.

`symbiont prompts` lists the prompt templates (`symbiont prompts correction.parse` shows one);
`symbiont prompts FILE.py:FUNC` (or `module:FUNC`, or `FILE.py` for every evolvable in it)
prints the messages an evolve run would open with for that function, built by the same code
(`symbiont.prompting.first_messages`). The file is imported to find the function, so its
module level runs (a script's `if __name__ == "__main__":` block does not); with a store the
function comes up on its stored active revision, as the program would.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from symbiont.errors import SymbiontError

# Modules that define a TEMPLATES dict of named prompt templates.
PROMPT_MODULES = ("symbiont.feedback", "symbiont.agent.prompts")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "prompts",
        help="show the prompt templates, or exactly what a function's evolve run would send",
        description="Without FUNC: every prompt template. With a template name: that template. "
        "With FILE.py:FUNC, module:FUNC or FILE.py: the first messages an evolve run of that "
        "function would send (the module is imported; its __main__ block does not run).",
    )
    p.add_argument(
        "name",
        nargs="?",
        metavar="FUNC|TEMPLATE",
        help="a function (examples/counter.py:step) or a template (correction.parse)",
    )
    p.add_argument("--prompt", default="", help="the task, as evolve's prompt= would give it")
    p.add_argument(
        "--context-json",
        default=None,
        metavar="JSON",
        help="values to show the model, as evolve's context= would: a JSON object of name "
        "to value, or a JSON string",
    )
    p.add_argument(
        "--max-prompt-chars",
        type=int,
        default=None,
        metavar="N",
        help="size cap of the first messages (default: the evolve loop's)",
    )
    p.add_argument(
        "--store",
        default=None,
        metavar="PATH",
        help="store to resume the active revision from: a file or postgresql:// URL (default: "
        "$SYMBIONT_STORE, else $SYMBIONT_HOME/symbiont.db, else ./.symbiont/symbiont.db, when "
        "it exists)",
    )
    p.add_argument("--json", action="store_true", help="print the messages as JSON")
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
    if args.name and args.name not in all_templates and _looks_like_function(args.name):
        return show_function_prompts(args)
    if args.name:
        if args.name not in all_templates:
            raise SymbiontError(
                f"no prompt template {args.name!r} (known: {', '.join(sorted(all_templates))}); "
                "for a function's prompt give FILE.py:FUNC, module:FUNC or FILE.py"
            )
        chosen = {args.name: all_templates[args.name]}
    else:
        chosen = all_templates
    for name, text in chosen.items():
        console.print(Panel(Text(text), title=name, title_align="left"))
    return 0


def _looks_like_function(name: str) -> bool:
    return ":" in name or name.endswith(".py")


def show_function_prompts(args: argparse.Namespace) -> int:
    """Print the first messages of an evolve run of each function `args.name` names."""
    from symbiont import prompting
    from symbiont.evolvable import handle, registered
    from symbiont.runtime import Runtime
    from symbiont.store import store_location

    where, _, func = args.name.rpartition(":") if ":" in args.name else (args.name, "", "")
    module = _import(where)
    found = [h for h in registered() if h.fn.__module__ == module.__name__]
    if func:
        value = getattr(module, func, None)
        if value is None or not hasattr(value, "symbiont"):
            known = ", ".join(h.name for h in found) or "none"
            raise SymbiontError(f"{where} has no evolvable function {func!r} (evolvable: {known})")
        found = [handle(value)]
    if not found:
        raise SymbiontError(f"{where} declares no @symbiont.evolvable function")
    context = _context_arg(args.context_json)
    store_at = store_location(args.store or None)  # a file, or a postgresql:// URL
    # With a store the functions come up on their stored active revisions, as at a start.
    runtime = Runtime(store=store_at if isinstance(store_at, str) or store_at.is_file() else False)
    try:
        cap = args.max_prompt_chars or prompting.DEFAULT_MAX_PROMPT_CHARS
        shown = {
            h.key: prompting.first_messages(
                h, args.prompt, (), context=context, max_prompt_chars=cap
            )
            for h in found
        }
    finally:
        runtime.close()
    if args.json:
        print(json.dumps(shown if len(shown) > 1 else next(iter(shown.values())), indent=2))
        return 0
    for key, messages in shown.items():
        total = sum(len(m["content"]) for m in messages)
        print(f"=== {key}: {len(messages)} messages, {total:,} characters")
        for m in messages:
            print(f"--- {m['role']} ({len(m['content']):,} characters) ---")
            print(m["content"])
    return 0


def _import(where: str) -> ModuleType:
    """Import a script by path (under its file name, as `symbiont` names its functions) or a
    module by its dotted name."""
    if not where.endswith(".py"):
        try:
            return importlib.import_module(where)
        except ImportError as exc:
            raise SymbiontError(f"cannot import module {where!r}: {exc}") from exc
    path = Path(where).resolve()
    if not path.is_file():
        raise SymbiontError(f"no such file: {where}")
    name = path.stem
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__file__", None) == str(path):
        return loaded
    sys.path.insert(0, str(path.parent))  # its sibling modules import as they do when run
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SymbiontError(f"cannot load {where} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _context_arg(text: str | None) -> dict[str, object] | str | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise SymbiontError(f"--context-json is not valid JSON: {exc}") from exc
    if not isinstance(value, dict | str):
        raise SymbiontError("--context-json must be a JSON object (name to value) or a string")
    return value
