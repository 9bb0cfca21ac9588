"""Sandboxes for capabilities: the `Sandbox` protocol, its tiers and the host functions.

    from symbiont.sandbox import get_sandbox, Permissions, Limits
    sandbox = get_sandbox("process")          # "wasm" (default), "process", "inprocess"
    result = sandbox.run(source, "main", '{"x": 1}', Permissions(), Limits())

Tiers are imported lazily: `wasm` pulls in wasmtime, `process` starts worker processes on
first use, `inprocess` is no isolation at all and must be asked for by name, `ray` sends
each call to a Ray cluster and runs it there in the process tier (`symbiont[ray]`).
"""

from __future__ import annotations

from typing import Any

from symbiont.errors import SandboxError
from symbiont.sandbox.base import (
    ErrorKind,
    HostCall,
    Limits,
    Permissions,
    Sandbox,
    SandboxFailure,
    SandboxResult,
)

TIERS = ("wasm", "process", "inprocess", "ray")


def get_sandbox(tier: str = "wasm", **options: Any) -> Sandbox:
    """The sandbox for `tier`; `options` go to its constructor.

    Raises `SandboxError` for an unknown tier or one this installation cannot provide.
    """
    if tier == "wasm":
        try:
            from symbiont.sandbox.wasm import WasmSandbox
        except ImportError as exc:
            raise SandboxError(
                f"the wasm sandbox tier is unavailable: {exc}. "
                "Use tier='process' (Linux) or install wasmtime and componentize-py."
            ) from exc
        return WasmSandbox(**options)
    if tier == "process":
        from symbiont.sandbox.process import ProcessSandbox

        return ProcessSandbox(**options)
    if tier == "inprocess":
        from symbiont.sandbox.inprocess import InProcessSandbox

        if options:
            raise SandboxError(f"the inprocess tier takes no options, got {sorted(options)}")
        return InProcessSandbox()
    if tier == "ray":  # runs on a Ray cluster, in the process tier (`inner=`) on the worker
        from symbiont.sandbox.ray_tier import RaySandbox

        return RaySandbox(**options)
    raise SandboxError(f"unknown sandbox tier {tier!r}; choose one of {', '.join(TIERS)}")


__all__ = [
    "TIERS",
    "ErrorKind",
    "HostCall",
    "Limits",
    "Permissions",
    "Sandbox",
    "SandboxError",
    "SandboxFailure",
    "SandboxResult",
    "get_sandbox",
]
