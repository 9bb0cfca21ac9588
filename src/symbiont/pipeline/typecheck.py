"""Stage 5, typecheck: a static type check of the candidate *in the context of its module*.

The module's source is taken with the declared `def` (decorators included) replaced by the
candidate, and checked as the module's own file, so the candidate sees the module's imports,
helpers, types and constants exactly as the running code does. Errors are mapped back to the
candidate's own lines; errors outside the candidate are ignored, and so are errors the
unmodified module already has (a baseline computed once per module text and cached), so a
candidate is never blamed for its module.

Checkers, in order of preference:

- `ty` as a long-lived language server (`_tyserver`): ~2-3 ms per candidate once warm;
- `ty check` on a temporary copy (35-90 ms: start-up paid each time), used when the server
  cannot be started; relative imports do not resolve there, which the baseline absorbs;
- `mypy.api` when ty is not installed (slow, seconds; a fallback, not the plan).

`ty` is looked for next to `sys.executable`, then on PATH, and pointed at the running
interpreter's environment (`VIRTUAL_ENV` / `--python sys.prefix`) so `symbiont` and
third-party imports resolve. Only error-severity findings are reported. With no checker
available, or without the module's source, the stage passes (and logs why once).
`typecheck` returns the diagnostics (empty: passed).
"""

from __future__ import annotations

import ast
import atexit
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from symbiont import pyast
from symbiont.diagnostics import Diagnostic, caret_excerpt
from symbiont.pipeline._target import Target
from symbiont.pipeline._tyserver import RawDiagnostic, TyServerError, discard_server, get_server
from symbiont.pipeline.signature import find_target

log = logging.getLogger("symbiont.pipeline.typecheck")

CHECKERS = ("auto", "ty", "ty-cli", "mypy")
MAX_DIAGNOSTICS = 20
_warned: set[str] = set()


@dataclass(frozen=True, slots=True)
class Finding:
    """One error of a checker, on the checked (combined) text; 1-based positions."""

    line: int
    col: int
    end_line: int
    end_col: int
    code: str
    message: str


# -- locating the checkers ---------------------------------------------------------------------
@lru_cache(maxsize=1)
def find_ty() -> str | None:
    """The `ty` executable: next to the running interpreter, else on PATH."""
    beside = Path(sys.executable).parent / ("ty.exe" if os.name == "nt" else "ty")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("ty")


@lru_cache(maxsize=1)
def mypy_available() -> bool:
    try:
        import mypy.api  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_checker(checker: str) -> str | None:
    """Which backend `checker` means here: "ty", "ty-cli", "mypy", or None (none present)."""
    if checker not in CHECKERS:
        raise ValueError(f"unknown type checker {checker!r}; use one of {', '.join(CHECKERS)}")
    if checker in ("ty", "ty-cli"):
        return checker if find_ty() else None
    if checker == "mypy":
        return "mypy" if mypy_available() else None
    if find_ty():
        return "ty"
    return "mypy" if mypy_available() else None


def _ty_env() -> dict[str, str]:
    env = dict(os.environ)
    if sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    return env


def import_root(module_path: Path) -> Path:
    """The directory a module is imported from: above its package's `__init__.py` chain."""
    root = module_path.parent
    while (root / "__init__.py").exists() and root.parent != root:
        root = root.parent
    return root


# -- the candidate in its module ---------------------------------------------------------------
def text_for_check(candidate_source: str, target_name: str) -> str:
    """The candidate with the target's decorators and `__future__` imports blanked out.

    Line numbers are kept. A copied `@symbiont.evolvable` may not resolve in the module
    (it imported `evolvable` by another name), and a `from __future__` import is only legal at
    the top of a file, which the candidate is not once placed in its module.
    """
    try:
        tree = pyast.parse(candidate_source)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return candidate_source
    blank: set[int] = set()
    for node in find_target(tree, target_name):
        for dec in node.decorator_list:
            blank.update(range(dec.lineno - 1, int(dec.end_lineno or dec.lineno) + 1))
    for stmt in tree.body:
        if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
            blank.update(range(stmt.lineno, int(stmt.end_lineno or stmt.lineno) + 1))
    if not blank:
        return candidate_source
    lines = candidate_source.split("\n")
    return "\n".join("" if i + 1 in blank else ln for i, ln in enumerate(lines))


def module_with_candidate(
    module_source: str, span: tuple[int, int], candidate: str
) -> tuple[str, int]:
    """The module's text with lines span[0]..span[1] replaced; and the line offset."""
    lines = module_source.split("\n")
    first, last = span
    body = candidate.rstrip("\n").split("\n")
    combined = [*lines[: first - 1], *body, *lines[last:]]
    return "\n".join(combined), first - 1


# -- backends ----------------------------------------------------------------------------------
def _from_raw(raw: Iterable[RawDiagnostic]) -> list[Finding]:
    return [
        Finding(r.line, r.col, r.end_line, r.end_col, r.code, r.message)
        for r in raw
        if r.severity == 1
    ]


def _check_ty_server(text: str, module_path: Path) -> list[Finding]:
    ty = find_ty()
    assert ty is not None
    server = get_server(ty, import_root(module_path), _ty_env())
    try:
        return _from_raw(server.check(module_path, text))
    except TyServerError:
        discard_server(server)
        raise


_CONCISE = re.compile(
    r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): (?P<sev>error|warning|info)\[(?P<code>[^\]]+)\] "
    r"(?P<msg>.*)$"
)
_MYPY = re.compile(
    r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): (?P<sev>error|note): (?P<msg>.*?)"
    r"(?:  \[(?P<code>[\w-]+)\])?$"
)
_tmp_lock = threading.Lock()
_tmp_dir: Path | None = None


def _scratch() -> Path:
    """A private scratch directory, removed at exit."""
    global _tmp_dir
    with _tmp_lock:
        if _tmp_dir is None or not _tmp_dir.exists():
            _tmp_dir = Path(tempfile.mkdtemp(prefix="symbiont-typecheck-"))
            atexit.register(_remove_scratch, _tmp_dir, os.getpid())
        return _tmp_dir


def _remove_scratch(folder: Path, owner: int) -> None:
    """Remove the scratch directory at exit, but never from a forked child (a trial)."""
    if os.getpid() == owner:
        shutil.rmtree(folder, ignore_errors=True)


def _write_scratch(text: str, module_path: Path) -> tuple[Path, Path]:
    folder = Path(tempfile.mkdtemp(dir=_scratch()))
    file = folder / module_path.name
    file.write_text(text, encoding="utf-8")
    return folder, file


def _check_ty_cli(text: str, module_path: Path) -> list[Finding]:
    ty = find_ty()
    assert ty is not None
    folder, file = _write_scratch(text, module_path)
    try:
        cmd = [
            ty,
            "check",
            "--output-format",
            "concise",
            "--no-progress",
            "--color",
            "never",
            "--exit-zero",
            "--python",
            sys.prefix,
            "--project",
            str(folder),
            "--extra-search-path",
            str(import_root(module_path)),
            str(file),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    out: list[Finding] = []
    for line in proc.stdout.splitlines():
        m = _CONCISE.match(line)
        if m and m.group("sev") == "error":
            ln, col = int(m.group("line")), int(m.group("col"))
            out.append(Finding(ln, col, ln, col, m.group("code"), m.group("msg")))
    return out


_mypy_lock = threading.Lock()


def _check_mypy(text: str, module_path: Path) -> list[Finding]:
    from mypy import api

    folder, file = _write_scratch(text, module_path)
    config = folder / "mypy.ini"
    search = os.pathsep.join({str(import_root(module_path)), str(module_path.parent)})
    config.write_text(f"[mypy]\nmypy_path = {search}\n", encoding="utf-8")
    try:
        with _mypy_lock:  # mypy.api is not thread-safe
            stdout, _stderr, _status = api.run(
                [
                    "--config-file",
                    str(config),
                    "--python-executable",
                    sys.executable,
                    "--show-column-numbers",
                    "--show-error-codes",
                    "--no-error-summary",
                    "--no-pretty",
                    "--follow-imports=silent",
                    "--cache-dir",
                    str(_scratch() / "mypy_cache"),
                    str(file),
                ]
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    out: list[Finding] = []
    for line in stdout.splitlines():
        m = _MYPY.match(line)
        if m and m.group("sev") == "error" and Path(m.group("path")).name == file.name:
            ln, col = int(m.group("line")), int(m.group("col"))
            out.append(Finding(ln, col, ln, col, m.group("code") or "type_error", m.group("msg")))
    return out


def _run_backend(backend: str, text: str, module_path: Path) -> tuple[str, list[Finding]]:
    """Run a backend; the ty server falls back to `ty check` if it cannot be used."""
    if backend == "ty":
        try:
            return "ty", _check_ty_server(text, module_path)
        except TyServerError as exc:
            if "ty-server" not in _warned:
                _warned.add("ty-server")
                log.warning("ty server unavailable (%s); using `ty check` instead", exc)
            backend = "ty-cli"
    if backend == "ty-cli":
        return "ty-cli", _check_ty_cli(text, module_path)
    return "mypy", _check_mypy(text, module_path)


# -- baseline ----------------------------------------------------------------------------------
_BASELINES: dict[tuple[str, str, str], frozenset[tuple[str, str, str]]] = {}


def _key(f: Finding, lines: list[str]) -> tuple[str, str, str]:
    text = lines[f.line - 1].strip() if 0 < f.line <= len(lines) else ""
    return f.code, f.message, text


def baseline(
    backend: str, module_source: str, module_path: Path
) -> frozenset[tuple[str, str, str]]:
    """The errors the unmodified module already has (cached per backend, path and text)."""
    digest = hashlib.sha1(module_source.encode("utf-8", "surrogatepass")).hexdigest()
    key = (backend, str(module_path), digest)
    cached = _BASELINES.get(key)
    if cached is None:
        used, findings = _run_backend(backend, module_source, module_path)
        lines = module_source.split("\n")
        cached = frozenset(_key(f, lines) for f in findings)
        _BASELINES[(used, str(module_path), digest)] = cached
        _BASELINES[key] = cached
    return cached


# -- the stage ---------------------------------------------------------------------------------
def typecheck(candidate_source: str, target: Target, checker: str = "auto") -> list[Diagnostic]:
    """Type-check the candidate inside its module; diagnostics on the candidate's lines."""
    backend = resolve_checker(checker)
    if backend is None:
        if checker not in _warned:
            _warned.add(checker)
            log.warning("no type checker available (%s): the typecheck stage is skipped", checker)
        return []
    if target.module_source is None or target.function_span is None or target.module_path is None:
        return []
    module_path = Path(target.module_path).resolve()
    checked = text_for_check(candidate_source, target.signature.name)
    combined, offset = module_with_candidate(target.module_source, target.function_span, checked)
    known = baseline(backend, target.module_source, module_path)
    used, findings = _run_backend(backend, combined, module_path)
    if used != backend:  # the server failed over: compare against the same backend's baseline
        known = baseline(used, target.module_source, module_path)
    combined_lines = combined.split("\n")
    n_lines = len(candidate_source.rstrip("\n").split("\n"))
    out: list[Diagnostic] = []
    for f in findings:
        line = f.line - offset
        if not 1 <= line <= n_lines or _key(f, combined_lines) in known:
            continue
        end_col = f.end_col if f.end_line == f.line and f.end_col > f.col else None
        message, _, rest = f.message.partition("\n")
        out.append(
            Diagnostic(
                "typecheck",
                f.code or "type_error",
                message.strip(),
                line,
                f.col,
                caret_excerpt(candidate_source, line, f.col, end_col),
                rest.strip() or None,
            )
        )
        if len(out) >= MAX_DIAGNOSTICS:
            break
    return out
