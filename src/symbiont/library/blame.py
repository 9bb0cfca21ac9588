"""Who a failed run is attributed to: the capability, or not.

Deprecation retires a capability "for everyone", so only failures that are the
capability's fault count towards it:

- **capability** — an exception or crash in its code, a timeout, memory, an output that is
  not JSON or breaks the declared return type, a host function it had no permission for;
- **declared** — an error the capability is *meant* to give: one of its examples declares
  it (`check = { error = "no employee with id 'E999'" }` covers the same message for
  `E998`: the example's input values in the declared text match any value), or its output
  schema has an `error` field. Returning it is correct behaviour;
- **host** — a transient failure of the world around it: the last failing host call was an
  `http_get` that could not connect, timed out, could not resolve the host, or got a 5xx
  answer; or the sandbox tier lacks something the code needs.

(An input the schema rejects never runs: `Library.run` raises `InvalidInput` first and
records nothing.)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from symbiont.library.capability import Capability, outcome_error

if TYPE_CHECKING:
    from symbiont.sandbox import HostCall, SandboxResult

__all__ = ["Blame", "declared_error", "failure_blame", "transient_host_failure"]

Blame = Literal["capability", "declared", "host"]

# Reasons recorded by the host functions (sandbox/hostfns.py) for a failing http_get that
# says nothing about the capability: connection refused or reset, unreachable network,
# timeouts, DNS failures, server errors.
_TRANSIENT_HTTP = re.compile(
    r"^(?:io: HTTP 5\d\d\b|io: http_get failed\b|timeout:|not_found: cannot resolve\b|"
    r"not_found: \S+ has no address\b)"
)


def failure_blame(
    cap: Capability, value: Mapping[str, Any], result: SandboxResult, error: str
) -> Blame:
    """Who the failed run of `cap` on `value` is attributed to (`error`: its error text)."""
    if result.error is not None:
        kind = result.error.kind
        if kind == "unavailable":
            return "host"
        if kind != "exception":
            return "capability"
        if transient_host_failure(result.host_calls):
            return "host"
        return "declared" if declared_error(cap, value, error) else "capability"
    if outcome_error(result.output) is None:
        return "capability"  # an output that breaks the declared return type
    if declared_error(cap, value, error) or _schema_declares_error(cap.output_schema):
        return "declared"
    if transient_host_failure(result.host_calls):
        return "host"  # it caught the host's failure and returned it as an error value
    return "capability"


def transient_host_failure(calls: Iterable[HostCall]) -> bool:
    """The last host call that failed is an `http_get` that failed for a passing reason."""
    failed = [c for c in calls if c.reason is not None]
    if not failed:
        return False
    last = failed[-1]
    return last.name == "http_get" and bool(_TRANSIENT_HTTP.match(last.reason or ""))


def declared_error(cap: Capability, value: Mapping[str, Any], error: str) -> bool:
    """An example of `cap` declares this error (the same message, for any input value)."""
    text = error.casefold()
    for example in cap.examples:
        declared = example.check.error if example.check is not None else None
        if not declared or not declared.strip():
            continue  # `error = ""` accepts any error: it declares none in particular
        if _pattern(declared, example.input).search(text):
            return True
    return False


def _pattern(declared: str, example_input: Mapping[str, Any]) -> re.Pattern[str]:
    """The declared text as a pattern where the example's own input values match anything."""
    text = declared.casefold()
    values = sorted(
        {str(v).casefold() for v in example_input.values() if _scalar(v) and len(str(v)) >= 2},
        key=len,
        reverse=True,
    )
    if not values:
        return re.compile(re.escape(text))
    parts = re.split("(" + "|".join(re.escape(v) for v in values) + ")", text)
    return re.compile(
        "".join(".{1,200}?" if i % 2 else re.escape(part) for i, part in enumerate(parts))
    )


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _schema_declares_error(
    schema: Mapping[str, Any], root: Mapping[str, Any] | None = None, depth: int = 0
) -> bool:
    """The output schema has an `error` property (itself, through `$ref`, or in one of its
    alternatives; recursive definitions are followed a few levels only)."""
    root = schema if root is None else root
    if depth > 8:
        return False
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = (root.get("$defs") or {}).get(ref.removeprefix("#/$defs/"))
        if isinstance(target, Mapping) and target is not schema:
            return _schema_declares_error(target, root, depth + 1)
    if "error" in (schema.get("properties") or {}):
        return True
    for key in ("anyOf", "oneOf"):
        for alternative in schema.get(key) or ():
            if isinstance(alternative, Mapping) and _schema_declares_error(
                alternative, root, depth + 1
            ):
                return True
    return False
