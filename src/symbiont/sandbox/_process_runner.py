"""Run one capability call in the current interpreter and classify the outcome.

Shared by the `inprocess` tier (in the host) and the `process` tier (inside the confined
worker). The classification mirrors the wasm guest: MemoryError → "memory", a refused
operation (`PermissionError`, which `HostDenied` is) → "denied", a missing module →
"unavailable", a result that is not JSON → "invalid_output", too big → "output_too_large",
anything else the capability raises → "exception".
"""

from __future__ import annotations

import builtins
import json
import linecache
import traceback
from dataclasses import dataclass
from typing import Any

CAPABILITY_FILE = "<capability>"


@dataclass(slots=True)
class Outcome:
    """`kind` is None on success, then `payload` is the result JSON text; else the message."""

    kind: str | None
    payload: str
    traceback: str | None = None


def trimmed_traceback(exc: BaseException) -> str:
    """The traceback reduced to the capability's own frames (file "<capability>")."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == CAPABILITY_FILE]
    parts: list[str] = []
    if frames:
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_list(frames[-50:]))
    parts.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(parts).rstrip("\n")


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def classify(exc: BaseException, tier_hint: str) -> Outcome:
    """Map an exception that escaped the capability to an error kind."""
    try:
        tb = trimmed_traceback(exc)
    except MemoryError:
        tb = None
    if isinstance(exc, MemoryError):
        return Outcome("memory", "the capability ran out of memory (MemoryError)", tb)
    if isinstance(exc, PermissionError):
        return Outcome("denied", f"a forbidden operation was refused: {_describe(exc)}", tb)
    if isinstance(exc, ModuleNotFoundError):
        return Outcome(
            "unavailable",
            f"module {exc.name!r} is not installed in this Python ({tier_hint})",
            tb,
        )
    if isinstance(exc, RecursionError):
        return Outcome("exception", f"RecursionError: recursion too deep ({exc})", tb)
    if isinstance(exc, SystemExit):
        return Outcome("exception", f"the capability called sys.exit({exc.code!r})", tb)
    return Outcome("exception", _describe(exc), tb)


def call_args(input_value: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """`entry(**input)` for an object, `entry(*input)` for a list, else `entry(input)`."""
    if isinstance(input_value, dict):
        return (), input_value
    if isinstance(input_value, list):
        return tuple(input_value), {}
    return (input_value,), {}


def run_capability(
    source: str, entry: str, input_value: Any, max_output_bytes: int, tier_hint: str
) -> Outcome:
    """Compile `source`, call `entry` with the input, return the JSON result or the failure."""
    linecache.cache[CAPABILITY_FILE] = (
        len(source),
        None,
        source.splitlines(keepends=True),
        CAPABILITY_FILE,
    )
    namespace: dict[str, Any] = {"__name__": "capability", "__builtins__": builtins}
    try:
        code = compile(source, CAPABILITY_FILE, "exec")
        exec(code, namespace)
        fn = namespace.get(entry)
        if not callable(fn):
            return Outcome("exception", f"the source defines no callable named {entry!r}")
        args, kwargs = call_args(input_value)
        result = fn(*args, **kwargs)
    except BaseException as exc:  # everything the capability raises is reported, by kind
        return classify(exc, tier_hint)
    try:
        text = json.dumps(result, allow_nan=False, ensure_ascii=False)
    except MemoryError:
        return Outcome("memory", "out of memory while encoding the result as JSON")
    except (TypeError, ValueError, RecursionError) as exc:
        return Outcome(
            "invalid_output",
            f"the result is not JSON-serialisable ({type(result).__name__}): {exc}",
        )
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        return Outcome("invalid_output", f"the result holds text that is not valid Unicode: {exc}")
    if size > max_output_bytes:
        return Outcome(
            "output_too_large",
            f"the result is larger than the limit of {max_output_bytes} bytes",
        )
    return Outcome(None, text)
