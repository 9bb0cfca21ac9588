"""The `Sandbox` protocol: run untrusted capability source with scoped permissions and limits.

Every tier (wasm, process, inprocess) takes the same inputs and returns the same
`SandboxResult`. Data crosses every boundary as JSON text, never pickle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

ErrorKind = Literal[
    "timeout",  # wall-clock or CPU limit reached
    "memory",  # memory limit reached
    "denied",  # a host function refused (permission) or a forbidden operation was blocked
    "exception",  # the capability raised
    "output_too_large",  # result (or log) bigger than the limit
    "crash",  # the runner died (signal, abort, trap)
    "invalid_output",  # the result is not JSON-serialisable / not JSON
    "unavailable",  # the code needs something this tier does not have (e.g. numpy in wasm)
]


@dataclass(frozen=True, slots=True)
class Permissions:
    """What a capability may do through host functions."""

    http_allow: tuple[
        str, ...
    ] = ()  # host names ("api.example.com") or URL prefixes ("https://x/y/")
    allow_private_network: bool = False  # loopback, private and link-local addresses
    data_dir: Path | None = None  # the capability's data folder; None: no file access
    read_files: bool = False
    write_files: bool = False
    # write_file quotas for the whole data folder (what is there already counts)
    max_data_bytes: int = 64 * 1024 * 1024
    max_data_entries: int = 10_000  # files and folders


@dataclass(frozen=True, slots=True)
class Limits:
    timeout_s: float = 5.0
    memory_bytes: int = 256 * 1024 * 1024
    max_output_bytes: int = 1024 * 1024  # result JSON
    max_log_bytes: int = 64 * 1024
    max_file_bytes: int = 8 * 1024 * 1024  # per read or write through host functions
    max_http_bytes: int = 4 * 1024 * 1024
    http_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class HostCall:
    """One host-function call the program made, allowed or denied."""

    name: str
    args: str  # short summary, e.g. "url=https://example.com/x"
    allowed: bool
    reason: str | None = None  # why it was denied


@dataclass(frozen=True, slots=True)
class SandboxFailure:
    kind: ErrorKind
    message: str
    traceback: str | None = None  # trimmed to the capability's own frames


@dataclass(slots=True)
class SandboxResult:
    output: Any = None  # the decoded JSON result when ok
    error: SandboxFailure | None = None
    duration_s: float = 0.0
    host_calls: list[HostCall] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    tier: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


MAX_INPUT_DEPTH = 100  # nesting of arrays/objects in a capability's input


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; non-finite numbers are refused")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:40]} overflows a 64-bit float")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key[:80]!r} in an object")
            seen.add(key)
    return obj


def _nesting_depth(text: str) -> int:
    """The deepest nesting of arrays/objects in JSON `text`, strings skipped (linear)."""
    import re

    # Drop string literals, then count brackets: `[`/`{` open, `]`/`}` close.
    skeleton = re.sub(r'"(?:[^"\\]|\\.)*"', "", text)
    depth = deepest = 0
    for match in re.finditer(r"[\[\]{}]", skeleton):
        if match.group() in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_INPUT_DEPTH:
                    break
        else:
            depth -= 1
    return deepest


_STRICT_DECODER = json.JSONDecoder(
    parse_constant=_refuse_constant, parse_float=_finite_float, object_pairs_hook=_unique_keys
)


def parse_input(input_json: str) -> Any:
    """Decode a capability's input; every tier refuses bad input the same way.

    Strict JSON: nesting deeper than `MAX_INPUT_DEPTH`, `NaN`/`Infinity`, numbers that
    overflow a float and duplicate keys are refused (CapabilityError, never a
    RecursionError), so every tier and every language sees the same value.
    """
    from symbiont.errors import CapabilityError

    if not isinstance(input_json, (str, bytes, bytearray)):
        raise CapabilityError(f"the input must be JSON text, not {type(input_json).__name__}")
    text = (
        input_json if isinstance(input_json, str) else bytes(input_json).decode("utf-8", "replace")
    )
    brackets = text.count("[") + text.count("{")  # cheap: most inputs stop here
    if brackets > MAX_INPUT_DEPTH and _nesting_depth(text) > MAX_INPUT_DEPTH:
        raise CapabilityError(
            f"the input is not valid JSON: nested more than {MAX_INPUT_DEPTH} levels deep"
        )
    try:
        return _STRICT_DECODER.decode(text)
    except RecursionError:
        raise CapabilityError("the input is not valid JSON: nested too deeply") from None
    except (TypeError, ValueError) as exc:
        raise CapabilityError(f"the input is not valid JSON: {exc}") from None


@runtime_checkable
class Sandbox(Protocol):
    """Runs `entry(**input)` from `source` in isolation."""

    tier: str

    def run(
        self,
        source: str,
        entry: str,
        input_json: str,
        permissions: Permissions = ...,
        limits: Limits = ...,
    ) -> SandboxResult: ...

    def close(self) -> None: ...
