"""The `native` pipeline stage: the candidate compiled by Numba in a trial child first.

After `compile`, a candidate of a native evolvable is compiled with its explicit signature in
a forked (by default confined) child, so a compiler crash or a compilation that never ends
kills only the child. Numba's typing and lowering errors come back as Diagnostics pointing at
the candidate's line, cut to what a model can act on. What passes is turned into a candidate
the rest of the system promotes like any other: its code is a trampoline calling the
revision's kernel by a per-revision module name, its helpers code compiles and binds that
kernel (in the trial child in memory; in the host, at promotion, through the disk cache).
"""

from __future__ import annotations

import ast
import dataclasses
import re
import time
from typing import Any

from symbiont import pyast
from symbiont.diagnostics import Diagnostic, caret_excerpt
from symbiont.native._kernel import (
    binder_code,
    bound_names,
    compile_kernel,
    is_cached,
    kernel_key,
    trampoline_code,
)
from symbiont.native._signature import NativeSpec

STAGE = "native"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STOP = ("There are ", "During:", 'File "', "Rejected as", "- Of which")
_MAX_MESSAGE = 600


def spec_of(target: Any) -> NativeSpec | None:
    """The native spec of the pipeline target's evolvable, None for a Python evolvable."""
    fn = target.globals.get(target.signature.name)
    handle = getattr(fn, "symbiont", None)
    return getattr(handle, "native_spec", None)


def _error_line(text: str, source: str, filename: str | None) -> int | None:
    """The candidate line Numba names (`File "<f>", line N` or `at <f> (N)`), else the first
    line that uses a name the message quotes (`name 'foo' is not defined`)."""
    found = None
    if filename:
        esc = re.escape(filename)
        for m in re.finditer(rf'File "{esc}", line (\d+)|at {esc} \((\d+)\)', text):
            found = int(m.group(1) or m.group(2))
    if found is not None:
        return found
    quoted = re.findall(r"'([A-Za-z_][A-Za-z_0-9]*)'", text)
    if not quoted:
        return None
    try:
        tree = pyast.parse(source)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", None)
        if name in quoted and hasattr(node, "lineno"):
            return int(node.lineno)
    return None


def short_message(text: str) -> str:
    """Numba's message without the pipeline banner, candidate lists and compiler passes."""
    lines = []
    for raw in _ANSI.sub("", text).splitlines():
        line = raw.strip()
        if line.startswith("Failed in ") and "mode pipeline" in line:
            continue
        if line.startswith(_STOP):
            break
        if line:
            lines.append(line)
    message = "\n".join(lines[:6]) or text.strip().splitlines()[0]
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 1] + "…"


def native_diagnostic(exc: BaseException, source: str, filename: str | None) -> Diagnostic:
    """A Numba (or Python, at definition) error as a Diagnostic of the `native` stage."""
    from numba.core import errors

    text = str(exc)
    if isinstance(exc, errors.TypingError):
        kind, lead = "typing", "Numba cannot type this in nopython mode"
    elif isinstance(exc, errors.LoweringError):
        kind, lead = "lowering", "Numba cannot generate machine code for this"
    elif isinstance(exc, errors.UnsupportedError):
        kind, lead = "unsupported", "Numba does not support this construct"
    elif isinstance(exc, errors.NumbaError):
        kind, lead = "numba", "Numba refused the function"
    else:
        kind, lead = "error", f"{type(exc).__name__} while compiling for Numba"
    line = _error_line(text, source, filename)
    message = f"{lead}: {short_message(text)}"
    hint = (
        "\nWrite plain loops and arithmetic over the declared scalars and NumPy arrays; "
        "no Python objects (str, dict of mixed types, classes), and only functions Numba "
        "supports (math, numpy)."
    )
    excerpt = caret_excerpt(source, line, None) if line else None
    return Diagnostic(STAGE, kind, message + hint, line, None, excerpt)


def _compile_job(source: str, spec: NativeSpec, module_globals: dict[str, Any]) -> Any:
    def job() -> dict[str, Any]:
        key = kernel_key(source, spec, module_globals)
        try:
            # In memory: a confined child may not write, and only the host's cache counts.
            kernel = compile_kernel(source, spec, module_globals, disk=False)
        except Exception as exc:
            filename = f"<symbiont-native {key}>"
            return {"diagnostic": native_diagnostic(exc, source, filename).to_dict()}
        return {"compile_s": kernel.compile_s}

    return job


def native_stage(
    candidate: Any,
    target: Any,
    spec: NativeSpec,
    *,
    timeout_s: float = 60.0,
    trial: str = "confined",
) -> tuple[Any, list[Diagnostic], dict[str, float]]:
    """Compile `candidate` for Numba in a trial child; on success, the candidate rewritten
    as trampoline + binder. Returns (candidate or None, diagnostics, timings)."""
    from symbiont.trial import TrialLimits, run_forked, run_inprocess

    source = candidate.source
    timings: dict[str, float] = {}
    key = kernel_key(source, spec, target.globals)
    if not is_cached(source, spec, target.globals):  # compiled and saved before: it passed
        job = _compile_job(source, spec, target.globals)
        limits = TrialLimits(timeout_s=timeout_s, memory_bytes=None)
        started = time.perf_counter()
        if trial == "inprocess":
            result = run_inprocess(job, limits)
        else:
            result = run_forked(job, limits, confine=trial == "confined")
        timings["native"] = time.perf_counter() - started
        if not result.ok or not isinstance(result.value, dict):
            diag = result.diagnostic or Diagnostic(STAGE, "crash", "the Numba compile failed")
            why = {
                "timeout": f"Numba did not finish compiling within {timeout_s:g} s",
            }.get(diag.kind, "the Numba compile did not complete")
            return None, [Diagnostic(STAGE, diag.kind, f"{why}: {diag.message}")], timings
        if "diagnostic" in result.value:
            return None, [Diagnostic.from_dict(result.value["diagnostic"])], timings
        timings["native_compile"] = float(result.value["compile_s"])
    names = bound_names(spec, key)
    native = dataclasses.replace(
        candidate,
        code=trampoline_code(spec, names, candidate.filename),
        helpers_code=binder_code(source, spec, names, candidate.filename),
        helper_names=names,
    )
    return native, [], timings
