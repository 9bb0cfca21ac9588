"""`symbiont doctor`: which sandbox protections this machine gives, and which it lacks.

It starts a real process-tier zygote (which probes the kernel the way every call relies on)
and asks the confined-trial executor for its own report, then prints one line per
protection. Exit status 0 when nothing is missing, 1 otherwise, so CI can insist.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
from typing import Any

from symbiont.errors import SymbiontError

# What each process-tier protection stops, in the words the output uses.
PROCESS_PROTECTIONS = {
    "network namespace": "no network interfaces; http_get goes through the host's checks",
    "mount namespace": (
        "only the Python installation, import paths, /dev/null, /dev/zero, /dev/urandom "
        "and a per-call /scratch exist: stat, access, inotify and chmod elsewhere find nothing"
    ),
    "IPC namespace": "SysV and POSIX IPC objects are the call's own and die with its worker",
    "PID namespace": "workers see no host process and die with their zygote",
    "UTS namespace": "a hostname of its own",
    "unprivileged uid": "a dedicated uid/gid, no supplementary groups, no capabilities",
    "task limit": "RLIMIT_NPROC bounds threads and processes (raw clone included)",
    "scratch quota": "/scratch is a per-call tmpfs with a size and inode cap, gone after it",
    "landlock": "reads limited to the Python installation, writes to the scratch",
    "seccomp": (
        "no exec, sockets, new processes, ptrace, mounts, namespaces, keyrings, file "
        "metadata changes (mode, owner, times, xattrs) or SysV IPC; signals only to itself"
    ),
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "doctor", help="show which sandbox protections this machine gives and which it lacks"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run_doctor)


def _process_tier() -> dict[str, Any]:
    from symbiont.errors import SandboxError
    from symbiont.sandbox.process import ProcessSandbox

    try:
        with ProcessSandbox(allow_weaker_isolation=True, preload=()) as sandbox:
            return sandbox.probe()
    except SandboxError as exc:
        return {"error": str(exc)}


def _confined_trials() -> dict[str, str]:
    try:
        from symbiont import trial
    except ImportError as exc:
        return {"confined trials": f"missing: symbiont.trial does not import ({exc})"}
    report = getattr(trial, "confinement_report", None)
    if report is None:
        return {"confined trials": "missing: this version has no confinement report"}
    return dict(report())


def gather() -> dict[str, Any]:
    """The whole report as plain data (also what --json prints)."""
    return {
        "machine": {
            "kernel": platform.release(),
            "architecture": platform.machine(),
            "python": sys.version.split()[0],
            "user": "root" if os.geteuid() == 0 else f"uid {os.geteuid()} (not root)",
        },
        "process": _process_tier(),
        "trial": _confined_trials(),
        "wasm": {
            "wasmtime": "installed"
            if importlib.util.find_spec("wasmtime") is not None
            else "missing: pip install wasmtime"
        },
    }


def _ids(info: dict[str, Any]) -> str:
    first, last = info.get("uid"), info.get("last_uid")
    if last is None or last == first:
        return f"uid {first}, gid {info.get('gid')}"
    return f"uids and gids {first}–{last}, one per concurrent worker"


def _process_lines(info: dict[str, Any]) -> tuple[list[str], int]:
    if "error" in info:
        return [f"  ✗ the process tier cannot start: {info['error']}"], 1
    lines: list[str] = []
    missing = 0
    details = {
        "unprivileged uid": _ids(info),
        "task limit": f"at most {info.get('max_tasks')} tasks" if info.get("max_tasks") else "",
        "landlock": f"ABI {info.get('landlock_abi')}",
    }
    for name, why in info.get("protections", {}).items():
        if why is None:
            extra = details.get(name)
            what = PROCESS_PROTECTIONS.get(name, "")
            lines.append(f"  ✓ {name}: {what}" + (f" ({extra})" if extra else ""))
        else:
            missing += 1
            lines.append(f"  ✗ {name}: MISSING: {why}")
    return lines, missing


def run_doctor(args: argparse.Namespace) -> int:
    report = gather()
    process_lines, missing = _process_lines(report["process"])
    trial_missing = sum(1 for state in report["trial"].values() if state.startswith("missing"))
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0 if missing + trial_missing == 0 else 1
    machine = report["machine"]
    print(
        f"symbiont doctor: Linux {machine['kernel']} ({machine['architecture']}), "
        f"Python {machine['python']}, running as {machine['user']}"
    )
    print("\nprocess tier (capabilities, per call):")
    for line in process_lines:
        print(line)
    print("\nconfined trials (evolvable functions):")
    for name, state in report["trial"].items():
        mark = "✗" if state.startswith("missing") else "✓"
        print(f"  {mark} {name}: {state}")
    print("\nwasm tier:")
    for name, state in report["wasm"].items():
        print(f"  {'✗' if state.startswith('missing') else '✓'} {name}: {state}")
    total = missing + trial_missing
    if total:
        print(f"\n{total} protection(s) missing on this machine (see above).")
    else:
        print("\nevery protection is in effect on this machine.")
    return 0 if total == 0 else 1


def main() -> int:  # pragma: no cover - `python -m symbiont.cli.doctor`
    parser = argparse.ArgumentParser(prog="symbiont doctor")
    parser.add_argument("--json", action="store_true")
    try:
        return run_doctor(parser.parse_args())
    except SymbiontError as exc:
        print(f"symbiont doctor: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
