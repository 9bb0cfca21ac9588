"""The `Sandbox` protocol: run untrusted capability source with scoped permissions and limits.

Every tier (wasm, process, inprocess) takes the same inputs and returns the same
`SandboxResult`. Data crosses every boundary as JSON text, never pickle.
"""

from __future__ import annotations

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

    http_allow: tuple[str, ...] = ()  # host names ("api.example.com") or URL prefixes ("https://x/y/")
    allow_private_network: bool = False  # loopback, private and link-local addresses
    data_dir: Path | None = None  # the capability's data folder; None: no file access
    read_files: bool = False
    write_files: bool = False


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


def parse_input(input_json: str) -> Any:
    """Decode a capability's input; every tier refuses non-JSON the same way."""
    import json

    from symbiont.errors import CapabilityError

    try:
        return json.loads(input_json)
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
