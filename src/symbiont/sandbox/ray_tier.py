"""The `ray` tier: a capability run sent to a Ray cluster, sandboxed there.

A capability is stateless by construction (its source, an entry point, JSON in, JSON out),
so its runs can go wherever there are cores: `RaySandbox` sends each run to a Ray task, and
the task runs it in a sandbox tier *inside the worker* — the process tier by default
(confined workers: namespaces, Landlock, seccomp, rlimits, scrubbed environment), so the
worker's own authority is never the capability's. Nothing is pickled: the task takes one JSON
text (source, entry, input, permissions, limits) and answers with the `SandboxResult` as
JSON text.

Host functions run where the capability runs, on the worker: `http_get` from the worker's
network under the same allowlist, files under `Permissions.data_dir` *on the worker's file
system* (the same folder on a local cluster or a shared file system). The run's own limits
apply there; in addition the driver gives the task `start_timeout_s` to start and the run's
timeout plus `grace_s` to finish, cancels a task past either (which kills its worker), and
reports a worker that died as a `crash` and Ray's memory monitor as `memory`: a call never
hangs the caller.

    from symbiont.sandbox import get_sandbox
    sandbox = get_sandbox("ray", address="auto")   # or RaySandbox(address=..., inner="process")
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from symbiont import _ray
from symbiont.errors import SandboxError
from symbiont.sandbox.base import (
    HostCall,
    Limits,
    Permissions,
    SandboxFailure,
    SandboxResult,
    parse_input,
)

__all__ = ["RaySandbox"]

_INNER = ("process", "wasm", "inprocess")


class RaySandbox:
    """Runs each capability call in a Ray task, in the `inner` tier on the worker.

    `address`: the cluster (None: the program's existing connection, else a local cluster);
    `init_options` go to `ray.init`, `task_options` to Ray's `.options()`; `num_cpus` is what
    one call reserves; `start_timeout_s` and `grace_s` bound the waits (see the module's
    docstring). `close()` disconnects if this sandbox connected.
    """

    tier = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        inner: str = "process",
        num_cpus: float = 1.0,
        start_timeout_s: float = 120.0,
        grace_s: float = 5.0,
        init_options: dict[str, Any] | None = None,
        task_options: dict[str, Any] | None = None,
    ) -> None:
        if inner not in _INNER:
            raise SandboxError(f"inner must be one of {', '.join(_INNER)}, not {inner!r}")
        self._ray = _ray.import_ray("the ray sandbox tier", SandboxError)
        self.address = address
        self.inner = inner
        self.start_timeout_s = float(start_timeout_s)
        self.grace_s = float(grace_s)
        self.init_options = dict(init_options or {})
        self._options = {
            "num_cpus": num_cpus,
            "max_retries": 0,
            "retry_exceptions": False,
            **(task_options or {}),
        }
        self._remote: Any = None
        self._connected_here = False

    def _task(self) -> Any:
        if self._remote is None:
            if _ray.connect(self._ray, self.address, self.init_options, SandboxError):
                self._connected_here = True
            self._remote = self._ray.remote(_run_on_worker).options(**self._options)
        return self._remote

    def run(
        self,
        source: str,
        entry: str,
        input_json: str,
        permissions: Permissions | None = None,
        limits: Limits | None = None,
    ) -> SandboxResult:
        permissions = permissions or Permissions()
        limits = limits or Limits()
        parse_input(input_json)  # bad input is refused here, as every tier refuses it
        started = time.perf_counter()
        call = {
            "inner": self.inner,
            "source": source,
            "entry": entry,
            "input": input_json,
            "permissions": _permissions_to_dict(permissions),
            "limits": _limits_to_dict(limits),
        }
        stream = self._task().remote(json.dumps(call))
        outcome = _ray.collect(
            self._ray,
            stream,
            start_timeout_s=self.start_timeout_s,
            run_s=limits.timeout_s,
            grace_s=self.grace_s,
            what="the capability",
        )
        result = _result_from_json(outcome.text) if outcome.text is not None else None
        if result is not None:
            result.tier = f"ray/{result.tier}"
            return result
        if outcome.text is not None:
            kind, message = "invalid_output", "the Ray worker's report was garbled"
        else:
            kind = outcome.kind if outcome.kind in ("timeout", "memory", "unavailable") else "crash"
            message = outcome.message
        return SandboxResult(
            error=SandboxFailure(kind, message),  # type: ignore[arg-type]
            duration_s=time.perf_counter() - started,
            tier=f"ray/{self.inner}",
        )

    def close(self) -> None:
        """Disconnect from Ray if this sandbox connected (workers' inner tiers end with
        their workers)."""
        if self._connected_here:
            self._ray.shutdown()
            self._connected_here = False
        self._remote = None

    def __enter__(self) -> RaySandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _permissions_to_dict(p: Permissions) -> dict[str, Any]:
    return {
        "http_allow": list(p.http_allow),
        "allow_private_network": p.allow_private_network,
        "data_dir": str(p.data_dir) if p.data_dir is not None else None,
        "read_files": p.read_files,
        "write_files": p.write_files,
        "max_data_bytes": p.max_data_bytes,
        "max_data_entries": p.max_data_entries,
    }


def _permissions_from_dict(d: dict[str, Any]) -> Permissions:
    return Permissions(
        **{
            **d,
            "http_allow": tuple(d["http_allow"]),
            "data_dir": d["data_dir"] and Path(d["data_dir"]),
        }
    )


def _limits_to_dict(limits: Limits) -> dict[str, Any]:
    return {name: getattr(limits, name) for name in Limits.__dataclass_fields__}


def _result_to_json(r: SandboxResult) -> str:
    return json.dumps(
        {
            "output": r.output,
            "error": None
            if r.error is None
            else {"kind": r.error.kind, "message": r.error.message, "traceback": r.error.traceback},
            "duration_s": r.duration_s,
            "host_calls": [[c.name, c.args, c.allowed, c.reason] for c in r.host_calls],
            "logs": r.logs,
            "tier": r.tier,
        },
        separators=(",", ":"),
    )


def _result_from_json(text: str) -> SandboxResult | None:
    try:
        d = json.loads(text)
        error = d["error"]
        return SandboxResult(
            output=d["output"],
            error=None
            if error is None
            else SandboxFailure(error["kind"], str(error["message"]), error["traceback"]),
            duration_s=float(d["duration_s"]),
            host_calls=[HostCall(str(n), str(a), bool(ok), r) for n, a, ok, r in d["host_calls"]],
            logs=[str(line) for line in d["logs"]],
            tier=str(d["tier"]),
        )
    except (TypeError, ValueError, KeyError, AttributeError):
        return None


# -- the worker's side ---------------------------------------------------------------------------

_SANDBOXES: dict[str, Any] = {}  # inner tier -> its sandbox, one per worker process


def _run_on_worker(call_json: str) -> Iterator[str]:
    """A Ray task (a streaming generator): `_ray.STARTED` once the inner sandbox is ready,
    then the `SandboxResult` as JSON text."""
    from symbiont.sandbox import get_sandbox

    call = json.loads(call_json)
    inner = call["inner"]
    sandbox = _SANDBOXES.get(inner)
    if sandbox is None:
        try:
            sandbox = _SANDBOXES[inner] = get_sandbox(inner)
        except Exception as exc:  # SandboxError: this worker cannot provide the tier
            failure = SandboxFailure("unavailable", f"on the Ray worker: {exc}")
            yield _result_to_json(SandboxResult(error=failure, tier=inner))
            return
    yield _ray.STARTED
    result = sandbox.run(
        call["source"],
        call["entry"],
        call["input"],
        _permissions_from_dict(call["permissions"]),
        Limits(**call["limits"]),
    )
    yield _result_to_json(result)
