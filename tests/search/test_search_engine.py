"""One engine for evolve and search: the loop and the search share the evaluator, and
neither imports the runtime (the import circle between runtime.py and evolve.py is gone:
the runtime imports them, they talk to it through the `Recorder` interface)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import symbiont

SRC = Path(symbiont.__file__).parent
ENGINE = [SRC / "evolve.py", *sorted((SRC / "search").glob("*.py"))]


def _module_level_imports(path: Path) -> set[str]:
    """Modules a file imports when it is imported (not inside functions, not under
    `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If):
                if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)

    visit(tree.body)
    return found


def test_no_engine_module_imports_the_runtime() -> None:
    assert len(ENGINE) > 8  # evolve.py and the search package were found
    offenders = {
        path.name: sorted(
            m for m in _module_level_imports(path) if m.startswith("symbiont.runtime")
        )
        for path in ENGINE
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_the_engine_first_leaves_the_runtime_unloaded() -> None:
    code = (
        "import sys\n"
        "import symbiont.evolve, symbiont.search.controller, symbiont.search.evaluator\n"
        "import symbiont.search.workers, symbiont.search.executors\n"
        "print('symbiont.runtime' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_evolve_judges_candidates_with_the_search_evaluator() -> None:
    # evolve keeps no trial job of its own: its metric is a one-stage cascade
    evolve_imports = _module_level_imports(SRC / "evolve.py")
    assert "symbiont.search.evaluator.evaluate" in evolve_imports
    source = (SRC / "evolve.py").read_text()
    for gone in ("def _trial_job", "def install_candidate", "def run_check", "run_forked("):
        assert gone not in source
