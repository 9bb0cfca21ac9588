"""The `inprocess` tier: no isolation at all, for trusted code that must be fast.

The capability runs in the host interpreter with the host's memory, environment and
files within reach; only the host functions keep their checks (they are the same
`HostFunctions`). Timeouts and memory limits are *not* enforced. Choose it explicitly
(`get_sandbox("inprocess")`); every result and every log line names it
"inprocess (no isolation)".
"""

from __future__ import annotations

import json
import logging
import time

from symbiont import host as host_module
from symbiont.sandbox._process_runner import run_capability
from symbiont.sandbox.base import Limits, Permissions, SandboxFailure, SandboxResult, parse_input
from symbiont.sandbox.hostfns import HostFunctions

log = logging.getLogger("symbiont.sandbox")

TIER_LABEL = "inprocess (no isolation)"


class InProcessSandbox:
    """Runs capabilities in the calling interpreter. Trusted code only."""

    tier = "inprocess"

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
        input_value = parse_input(input_json)
        log.info("%s: running %s() (trusted code, no sandbox)", TIER_LABEL, entry)
        hostfns = HostFunctions(permissions, limits)
        # Not enforced on the capability itself here, but host functions keep to it.
        hostfns.deadline = time.monotonic() + limits.timeout_s
        started = time.perf_counter()
        with host_module.using(hostfns.dispatch):
            outcome = run_capability(
                source, entry, input_value, limits.max_output_bytes, TIER_LABEL
            )
        result = SandboxResult(
            duration_s=time.perf_counter() - started,
            host_calls=list(hostfns.calls),
            logs=list(hostfns.logs),
            tier=TIER_LABEL,
        )
        if hostfns.log_overflow and outcome.kind in (None, "exception", "denied"):
            result.error = SandboxFailure(
                "output_too_large",
                f"the capability logged more than the limit of {limits.max_log_bytes} bytes",
                outcome.traceback,
            )
        elif outcome.kind is None:
            result.output = json.loads(outcome.payload)
        else:
            result.error = SandboxFailure(outcome.kind, outcome.payload, outcome.traceback)  # type: ignore[arg-type]
        if result.error is not None:
            log.info("%s: %s() failed: %s", TIER_LABEL, entry, result.error.kind)
        return result

    def close(self) -> None:
        """Nothing to release."""
