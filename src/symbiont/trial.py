"""Trials: run a candidate where it cannot hurt the live process.

`run_forked` forks the live process. The child inherits the real program state
copy-on-write (nothing expensive is rebuilt), runs a zero-argument `job` (which swaps the
candidate in and runs the user's check or metric) and reports back over a pipe as JSON,
never pickle. Whatever the candidate does — hang, segfault, exhaust memory, recurse without
end, call `sys.exit` or `os._exit`, print megabytes — ends as a `Diagnostic` in the parent,
which stays alive and responsive:

* wall-clock timeout: the parent waits with `poll` on the pipes and a pidfd (the child's
  exit), never on a blocking read, and SIGKILLs the child's process group on expiry;
* memory: `RLIMIT_AS` in the child (its current address space plus `memory_bytes`), so a
  memory bomb raises `MemoryError` in the child instead of waking the OOM killer;
* crashes: death by a signal is reported with the signal's name, plus the Python traceback
  that `faulthandler` wrote to the child's stderr;
* no core files (`RLIMIT_CORE` 0 and not dumpable), no zombies (every child is reaped, even
  when the waiting thread is interrupted), no leaked descriptors, no orphans (the child
  dies with its parent, and processes the job started die with the trial).

A trial is **confined** by default (`confine=True`, mode "confined"): before the job runs,
the child confines itself with the process sandbox tier's machinery (`sandbox._confine`),
because a candidate that gets past the policy guard would otherwise act with the program's
full authority:

* descriptors: every inherited one is closed except the report pipe and stdio (pipes the
  runner made), so the program's database, sockets and files are out of reach;
* secrets: the environment is emptied (os.environ and the C environ); the values of
  credential-like names (*KEY*, *TOKEN*, *SECRET*, *PASSWORD*, ...), the initial
  environment block, and every object given to `register_secret` (model clients' API keys)
  are overwritten with zeros in the child's memory (the parent keeps its values: the
  child's pages are copies);
* no network: seccomp denies `socket()` for every family (`socketpair(AF_UNIX)` stays, an
  event loop needs it); Landlock (ABI ≥ 4) denies TCP as well; a network namespace is the
  fallback where seccomp is missing;
* files: Landlock, read-only and only beneath the Python installation, sys.path and the
  system libraries (what imports need), nothing writable but /dev/null; no capabilities;
  seccomp denies changing modes, owners, times and extended attributes;
* other processes: seccomp denies signals to anyone but the child itself, ptrace,
  `process_vm_readv`/`writev`, System V IPC and every new process (fork, vfork, clone
  without CLONE_THREAD; clone3 and exec), so nothing outlives the trial; the child is not
  dumpable, dies with its parent (and may not undo that), and cannot open
  /proc/<parent>/mem (Landlock grants no /proc, and denies ptrace access out of its domain);
* rlimits: the memory limit above, no core files, a CPU-time backstop.

Not covered: memory the program maps shared (MAP_SHARED, e.g. SQLite's WAL index or a
multiprocessing array) stays shared with the child, since finding those mappings means
reading /proc/self/maps in every child (about a millisecond); copies of a secret the
program made and freed (an HTTP header the SDK built) may linger in freed memory; and a
job's own report is the candidate's to write, so only what the child can still read can
leak through it.

Where the kernel lacks a protection, confined trials run with the others and say which one
is missing, once, on the "symbiont.trial" logger (`confinement_report` lists them). A step
that fails in the child fails the trial: it never runs half-confined without saying so.
`confine=False` (mode "fork") is the unconfined fork for trusted code: the job may write
files, use the network and start processes, and the first such trial says so.

As with any fork of a threaded program, a lock another thread held at the moment of the
fork stays held in the child; the runner gives the child fresh stdio objects and takes no
locks itself, but a job that takes a lock of the program may time out on it.

`run_inprocess` runs the job in the calling thread: no isolation at all, for trusted and
very fast evaluations only. It cannot stop a job that runs too long (it reports the overrun
afterwards), cannot survive a crash, and does not capture output (redirecting `sys.stdout`
would steal the output of the program's other threads). Exceptions still become diagnostics.

`exception_diagnostic` turns an exception into a `Diagnostic` whose traceback is trimmed to
the candidate's own frames: candidate code is compiled with pseudo file names such as
``<symbiont mod.fn rev3>`` whose lines are registered in `linecache`.
"""

from __future__ import annotations

import contextlib
import errno
import faulthandler
import fcntl
import gc
import importlib
import io
import json
import linecache
import logging
import math
import operator
import os
import re
import resource
import select
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from itertools import compress
from typing import Any, NoReturn

from symbiont.diagnostics import Diagnostic, caret_excerpt
from symbiont.errors import SandboxError
from symbiont.sandbox import _confine, _landlock

__all__ = [
    "TrialLimits",
    "TrialResult",
    "confinement_report",
    "exception_diagnostic",
    "register_secret",
    "run_forked",
    "run_inprocess",
]

log = logging.getLogger("symbiont.trial")

# Python ≥ 3.12 warns when a multi-threaded process forks. Forking a threaded program is
# exactly what a trial does, and the child is written for it (no locks, fresh stdio, only
# async-signal-tolerant work before the job); silence the warning for this module only.
warnings.filterwarnings(
    "ignore",
    message=r".*use of fork\(\) may lead to deadlocks",
    category=DeprecationWarning,
    module=re.escape(__name__) + "$",
)

# The C half of `signal`: the same functions without the enum conversions of the Python
# wrappers, which cost a child measurable time (every object it touches is a page copy).
try:
    _signal: Any = importlib.import_module("_signal")
except ImportError:  # pragma: no cover - not CPython
    _signal = signal

_THIS_FILE = __file__
_CHUNK = 65536
_EXIT_HARNESS_FAILED = 70  # EX_SOFTWARE: the child's own harness failed before reporting
_MAX_MESSAGE = 1000
_MAX_LINE = 2000
_INNERMOST_FRAMES = 3  # kept when the exception has no candidate frame (a failing assert)
_MAX_FRAME_LINES = 40  # formatted traceback lines kept; the middle is elided beyond that
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_USE_PIDFD = hasattr(os, "pidfd_open")

# Descriptors of trials in flight. A child forked by one thread closes the pipe ends of the
# trials other threads are running, so their parents are not kept waiting for an EOF.
_OPEN_FDS: set[int] = set()
_FORK_LOCK = threading.Lock()


@dataclass(frozen=True)
class TrialLimits:
    """What one trial may spend. `memory_bytes` is *extra* address space beyond what the
    child inherits (the live program's size), None for no memory limit."""

    timeout_s: float = 10.0
    memory_bytes: int | None = 1 << 30
    max_result_bytes: int = 1 << 20
    tail_bytes: int = 4096  # how much of the end of stdout and of stderr to keep

    def __post_init__(self) -> None:
        if not (isinstance(self.timeout_s, int | float) and self.timeout_s > 0):
            raise ValueError(
                f"TrialLimits.timeout_s must be a positive number of seconds, not {self.timeout_s!r}"
            )
        if self.memory_bytes is not None and not (
            isinstance(self.memory_bytes, int) and self.memory_bytes > 0
        ):
            raise ValueError(
                f"TrialLimits.memory_bytes must be a positive int or None, not {self.memory_bytes!r}"
            )
        if not (isinstance(self.max_result_bytes, int) and self.max_result_bytes > 0):
            raise ValueError(
                f"TrialLimits.max_result_bytes must be a positive int, not {self.max_result_bytes!r}"
            )
        if not (isinstance(self.tail_bytes, int) and self.tail_bytes >= 0):
            raise ValueError(f"TrialLimits.tail_bytes must be an int ≥ 0, not {self.tail_bytes!r}")


@dataclass
class TrialResult:
    """The outcome of one trial. `value` is the job's return value after a JSON round trip
    (so both modes hand back the same types); on failure it is None and `diagnostic` says
    why (stage "trial"; kind exception, timeout, crash, memory, exit, recursion or
    invalid_result)."""

    ok: bool
    value: Any
    diagnostic: Diagnostic | None
    stdout_tail: str
    stderr_tail: str
    duration_s: float
    mode: str  # "confined" | "fork" (unconfined) | "inprocess"


# -- exceptions as diagnostics ---------------------------------------------------------------


def _short(text: str, limit: int) -> str:
    return (
        text
        if len(text) <= limit
        else text[: limit - 25] + f"... [{len(text) - limit + 25} more chars]"
    )


def _exception_kind(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return "exit"
    if isinstance(exc, MemoryError):
        return "memory"
    if isinstance(exc, RecursionError):
        return "recursion"
    return "exception"


def _exception_text(exc: BaseException) -> str:
    """'ExcType: message' (just 'ExcType' when the message is empty); never raises."""
    name = type(exc).__qualname__
    if "<locals>" in name:  # a class defined in a function: its own name reads better
        name = type(exc).__name__
    try:
        text = str(exc)
    except Exception:  # a broken __str__ must not hide the exception itself
        text = "<str() of the exception failed>"
    return _short(f"{name}: {text}" if text else name, _MAX_MESSAGE)


def _char_col(line: str, byte_offset: int | None) -> int | None:
    """A 0-based UTF-8 byte offset (what code positions hold) as a 1-based character column."""
    if byte_offset is None:
        return None
    return len(line.encode("utf-8")[:byte_offset].decode("utf-8", "replace")) + 1


def _excerpt(frame: traceback.FrameSummary) -> tuple[int | None, str | None]:
    """Column and caret excerpt of a candidate frame, from the lines in `linecache`."""
    lineno = frame.lineno
    if lineno is None:
        return None, None
    lines = linecache.getlines(frame.filename)
    if not lines or lineno > len(lines):
        return None, None
    text = lines[lineno - 1].rstrip("\n")
    col = _char_col(text, getattr(frame, "colno", None))
    end_col = None
    if col is not None and getattr(frame, "end_lineno", None) == lineno:
        end_col = _char_col(text, getattr(frame, "end_colno", None))
    return col, caret_excerpt("".join(lines), lineno, col, end_col)


def _format_frames(frames: list[traceback.FrameSummary]) -> list[str]:
    # StackSummary.format collapses a line repeated many times (plain recursion); mutual
    # recursion is not collapsed, so the middle of a long traceback is elided as well.
    out: list[str] = []
    for chunk in traceback.StackSummary.from_list(frames).format():
        out.extend(chunk.splitlines(keepends=True))
    if len(out) > _MAX_FRAME_LINES:
        head, tail = _MAX_FRAME_LINES // 4, _MAX_FRAME_LINES * 3 // 4
        out = [*out[:head], f"  ... [{len(out) - head - tail} lines omitted] ...\n", *out[-tail:]]
    return out


def exception_diagnostic(
    exc: BaseException, *, frame_prefix: str | None = "<symbiont", stage: str = "trial"
) -> Diagnostic:
    """Turn an exception into a Diagnostic a model can act on.

    `message` is "ExcType: message"; `kind` is exit (SystemExit), memory, recursion or
    exception. `line`/`col`/`excerpt` point into the candidate's own source at the innermost
    frame whose file name starts with `frame_prefix`. `detail` is the traceback trimmed to
    those frames plus the exception line; when there is no candidate frame (say, an
    assertion in the user's check) the innermost few frames are kept instead, so the failing
    assertion and its message are still shown. Never raises.
    """
    kind = _exception_kind(exc)
    message = _exception_text(exc)
    try:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != _THIS_FILE]
    except Exception:  # an unreadable traceback still leaves the message
        return Diagnostic(stage, kind, message)
    ours = [f for f in frames if frame_prefix and f.filename.startswith(frame_prefix)]
    line = col = None
    excerpt = None
    if ours:
        shown = ours
        line = ours[-1].lineno
        col, excerpt = _excerpt(ours[-1])
        head = "Traceback (most recent call last; only the candidate's frames):\n"
    else:
        shown = frames[-_INNERMOST_FRAMES:]
        head = "Traceback (most recent call last; innermost frames):\n"
    parts = [head] if shown else []
    if shown:
        parts += _format_frames(shown)
    with contextlib.suppress(Exception):
        parts += [_short(s, _MAX_LINE) for s in traceback.format_exception_only(type(exc), exc)]
    if not parts or not parts[-1].strip():
        parts.append(message + "\n")
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if cause is not None:
        how = "raised from" if exc.__cause__ is not None else "raised while handling"
        parts.append(f"({how} {_exception_text(cause)})\n")
    return Diagnostic(stage, kind, message, line, col, excerpt, "".join(parts).rstrip("\n"))


# -- results as JSON -------------------------------------------------------------------------


def _invalid(message: str) -> Diagnostic:
    return Diagnostic("trial", "invalid_result", message)


# Made once: `json.dumps` with any non-default argument builds a new encoder per call, and
# in a forked child each object that set-up touches costs a copy-on-write page fault.
# (`encode` keeps no state between calls, so threads may share it.)
_ENCODER = json.JSONEncoder(separators=(",", ":"))
_DECODER = json.JSONDecoder()


_SCAN = _DECODER.scan_once  # type: ignore[attr-defined]  # what decode calls, minus 2 regexes


def _child_encoder() -> Callable[[Any], str]:
    """`_ENCODER.encode` with its C encoder built once, for a forked child, where each
    object built per call is a page fault. Not for threads: the encoder's dict of objects
    being encoded (the circular-reference check) is shared. An exception part-way leaves
    entries, and the objects they hold, in it: it is emptied before each use (a pool worker
    encodes many results)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator
        return _ENCODER.encode
    markers: dict[int, Any] = {}
    try:
        encoder = make(
            markers,
            _ENCODER.default,
            json.encoder.encode_basestring_ascii,
            None,
            _ENCODER.key_separator,
            _ENCODER.item_separator,
            False,
            False,
            True,
        )
    except TypeError:  # a signature this Python does not have
        return _ENCODER.encode

    def encode(obj: Any) -> str:
        markers.clear()
        return "".join(encoder(obj, 0))

    return encode


_CHILD_ENCODE = _child_encoder()


def _encode_ok(
    value: Any, max_bytes: int, encode: Callable[[Any], str] = _ENCODER.encode
) -> tuple[bytes | None, Diagnostic | None]:
    """The success envelope as JSON bytes, or an invalid_result diagnostic."""
    try:
        data = encode({"ok": True, "value": value}).encode("ascii")
    except (TypeError, ValueError, RecursionError) as exc:
        return None, _invalid(
            f"the trial's result is not JSON-serialisable ({_exception_text(exc)}); return "
            "only dict (str keys), list, str, int, float, bool or None"
        )
    if len(data) > max_bytes:
        return None, _invalid(
            f"the trial's result is {len(data)} bytes of JSON, over the limit of {max_bytes} "
            "bytes; return a smaller summary"
        )
    return data, None


def _encode_failure(diag: Diagnostic) -> bytes:
    return _ENCODER.encode({"ok": False, "diagnostic": diag.to_dict()}).encode("ascii")


def _decode(data: bytes) -> tuple[bool, Any, Diagnostic | None] | None:
    """Parse the child's report; None when it is not a complete, well-formed report."""
    try:
        text = data.decode("utf-8")
        obj, end = _SCAN(text, 0)  # json.loads, minus its per-call steps
    except (ValueError, RecursionError, StopIteration):  # UnicodeDecodeError is a ValueError
        return None
    if end != len(text) or not isinstance(obj, dict):  # the child writes no whitespace
        return None
    if obj.get("ok") is True and "value" in obj:
        return True, obj["value"], None
    diag = obj.get("diagnostic")
    if obj.get("ok") is False and isinstance(diag, dict):
        try:
            return False, None, Diagnostic.from_dict(diag)
        except (KeyError, TypeError):
            return None
    return None


# -- confinement (worked out in the parent, applied by the child) -----------------------------

_MIN_SECRET_CHARS = 4  # shorter values are no secret (and may be interpreter-wide singletons)
_SECRETS: dict[int, tuple[str | bytes, tuple[int, int]]] = {}  # id → (object, its characters)
_SECRET_REGIONS: tuple[tuple[Any, Any], ...] = ()  # _SECRETS' regions as ctypes objects
_SECRETS_LOCK = threading.Lock()


def register_secret(value: str | bytes | None) -> bool:
    """Have every confined trial overwrite `value` with zeros in its child's memory.

    For credentials the program holds, such as a model client's API key: register the very
    object the client keeps (`register_secret(self.api_key)`), since the child wipes that
    object's characters, not other copies of the same text. The parent's value is untouched.
    The object is kept alive for as long as the program runs. Returns False (and does
    nothing) for None, values shorter than 4 characters and objects whose layout cannot be
    read (non-CPython). Environment variables need no registration: the child's environment
    is emptied, and the values of names like *KEY*, *TOKEN*, *SECRET*, *PASSWORD* (see
    `_confine.SECRET_NAME`) and the whole initial environment block are overwritten.
    """
    if not isinstance(value, str | bytes) or len(value) < _MIN_SECRET_CHARS:
        return False
    region = _confine.data_region(value)
    if region is None:
        return False
    global _SECRET_REGIONS
    with _SECRETS_LOCK:
        _SECRETS[id(value)] = (value, region)
        _SECRET_REGIONS = _confine.as_pointers(region for _obj, region in _SECRETS.values())
    return True


@dataclass(frozen=True, slots=True)
class _Confinement:
    """What a confined child applies; built once (again when sys.path changes)."""

    key: tuple[str, str, list[str]]  # prefix, base prefix, a copy of sys.path: built for
    ruleset: int | None  # Landlock ruleset descriptor (close-on-exec), None without Landlock
    seccomp: _confine.SeccompProgram | None
    netns: bool  # enter a network namespace (only where seccomp cannot deny sockets)
    env_block: tuple[Any, Any] | None  # (address, size) as ctypes objects (`as_pointers`)
    report: dict[str, str]  # protection → "active" or "missing: why"


_CONFINEMENT: _Confinement | None = None
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE = 1, 4
# Calls a trial never needs beyond the process tier's list: file metadata Landlock does not
# cover, and System V IPC (shared with every process of the machine).
_TRIAL_DENIED = (
    "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat",
    "utime", "utimes", "futimesat", "utimensat", "setxattr", "lsetxattr", "fsetxattr",
    "setxattrat", "removexattr", "lremovexattr", "fremovexattr", "removexattrat", "shmget",
    "shmat", "shmctl", "shmdt", "msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop",
    "semctl", "semtimedop",
)  # fmt: skip


def _probe_netns() -> str | None:
    """Can a child enter a network namespace? Tried once in a throwaway child."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the probe child
        code = 1
        try:
            _confine.enter_network_namespace()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        return None
    return "unshare(CLONE_NEWNET) failed (no CAP_SYS_ADMIN and no user namespaces)"


def _build_confinement(
    key: tuple[str, str, list[str]], previous: _Confinement | None
) -> _Confinement:
    report: dict[str, str] = {}
    missing: dict[str, str] = {}
    seccomp_error = _confine.seccomp_available()
    program = None
    if seccomp_error is None:
        program = _confine.seccomp_program(
            extra_denied=_TRIAL_DENIED,
            unix_socketpair=True,
            denied_prctl=(_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE),
            bucketed=True,  # installed by every trial: the cheaper layout to install
        )
        report["seccomp (no signals to others, ptrace, new processes, sockets)"] = "active"
    else:
        missing["seccomp (no signals to others, ptrace, new processes, sockets)"] = seccomp_error
    abi = _landlock.abi_version() if sys.platform.startswith("linux") else 0
    ruleset = None
    landlock = "Landlock (read-only imports, no writes)"
    if abi >= 1:
        try:
            ruleset = _confine.read_only_ruleset(abi, _confine.read_only_paths())
            report[landlock] = f"active (ABI {abi})"
        except OSError as exc:
            missing[landlock] = f"the ruleset could not be built: {exc}"
    else:
        missing[landlock] = "Landlock is not available in this kernel (or disabled at boot)"
    netns = False
    network = "no network"
    if program is not None:
        report[network] = "active (seccomp denies socket())" + (
            "; Landlock denies TCP" if abi >= 4 else ""
        )
    else:
        netns_error = _probe_netns() if sys.platform.startswith("linux") else "not Linux"
        if netns_error is None:
            netns = True
            report[network] = "active (network namespace)"
        elif abi >= 4:
            report[network] = "partly: Landlock denies TCP; UDP and unix sockets are open"
        else:
            missing[network] = netns_error
    if previous is not None and previous.ruleset is not None:
        os.close(previous.ruleset)  # under _FORK_LOCK: no child is about to use it
    report.update({name: f"missing: {why}" for name, why in missing.items()})
    if missing and (previous is None or set(missing) - _missing(previous.report)):
        log.warning(
            "confined trials on this machine run without: %s",
            "; ".join(f"{name} ({why})" for name, why in missing.items()),
        )
    block = _confine.environment_block()
    env_block = _confine.as_pointers([block])[0] if block is not None else None
    return _Confinement(key, ruleset, program, netns, env_block, report)


def _missing(report: dict[str, str]) -> set[str]:
    return {name for name, state in report.items() if state.startswith("missing")}


def _confinement() -> _Confinement:
    """The current confinement plan; call with _FORK_LOCK held (it may replace the ruleset).

    The check reads sys.path without touching its strings (a list compared with a copy of
    itself skips identical items), so the parent writes no page it need not after a fork.
    """
    global _CONFINEMENT
    c = _CONFINEMENT
    if c is None or c.key[2] != sys.path or c.key[0] != sys.prefix or c.key[1] != sys.base_prefix:
        c = _CONFINEMENT = _build_confinement(
            (sys.prefix, sys.base_prefix, list(sys.path)), _CONFINEMENT
        )
    return c


def confinement_report() -> dict[str, str]:
    """Which protections a confined trial gets on this machine: name → "active ..." or
    "missing: why"."""
    with _FORK_LOCK:
        return dict(_confinement().report)


_UNCONFINED_ANNOUNCED = False


def _announce_unconfined() -> None:
    global _UNCONFINED_ANNOUNCED
    if not _UNCONFINED_ANNOUNCED:
        _UNCONFINED_ANNOUNCED = True
        log.warning(
            "unconfined fork trial (trial='fork'): candidates run with this program's full "
            "authority (files, network, environment, processes); use it for trusted code only"
        )


class _ConfinementError(Exception):
    pass


def _confine_child(result_w: int, plan: _ChildPlan) -> int:
    """Confine the child before the job runs; returns the report pipe's new number.

    The order matters: seccomp comes last since it denies calls the other steps make, and
    descriptors are closed after Landlock has used its ruleset descriptor.
    """
    c = plan.confinement
    assert c is not None
    step = "death with the parent, not dumpable"
    try:
        if _PRCTL is not None:  # Linux
            # An unconfined fork does these best-effort (_child_limits); here a failure
            # stops the trial.
            _confine.die_with_parent(plan.parent_pid)
            _confine.set_not_dumpable()
        step = "wiping secrets and the environment"
        _confine.scrub_environment(plan.wipe, c.env_block)  # registered secrets too
        step = "rlimits"
        resource.setrlimit(resource.RLIMIT_CPU, (plan.cpu_seconds, plan.cpu_seconds + 1))
        if c.netns:
            step = "network namespace"
            _confine.enter_network_namespace()
        if c.ruleset is not None:
            step = "Landlock"
            _confine.enter_landlock(c.ruleset)
        step = "closing inherited descriptors"
        result_w = _confine.close_descriptors(result_w)
        if _PRCTL is not None:  # Linux capabilities
            step = "dropping capabilities"
            _confine.drop_capabilities(bounding=c.seccomp is None)  # seccomp denies execve
        if c.seccomp is not None:
            step = "seccomp"
            # Landlock set no-new-privs already (both need it).
            _confine.install_seccomp(c.seccomp, os.getpid(), no_new_privs=c.ruleset is None)
    except Exception as exc:
        raise _ConfinementError(f"confining the trial failed at {step}: {exc}") from None
    return result_w


# -- the child -------------------------------------------------------------------------------

_MEMORY_FALLBACK = _encode_failure(
    Diagnostic(
        "trial",
        "memory",
        "MemoryError: the trial ran out of memory (its report could not even be formatted)",
    )
)


def _above_stdio(fd: int) -> int:
    """`fd`, or a duplicate of it numbered ≥ 3 (a parent with closed stdio hands out 0-2)."""
    return fd if fd > 2 else fcntl.fcntl(fd, fcntl.F_DUPFD, 3)


@dataclass(slots=True)
class _ChildPlan:
    """What the child applies, worked out in the parent before the fork.

    Every object a child touches costs it a copy-on-write page fault, so anything that can
    be computed beforehand is: in the parent it is nearly free.
    """

    reset_signals: tuple[int, ...]  # back to SIG_DFL: Python-level handlers, and SIGCHLD
    address_limit: int | None  # RLIMIT_AS for the child, None to leave it alone
    core_hard: int  # the hard RLIMIT_CORE (the soft one becomes 0)
    parent_pid: int
    confinement: _Confinement | None  # None: an unconfined fork
    wipe: tuple[tuple[Any, Any], ...]  # (address, size) as ctypes objects: secrets to zero
    cpu_seconds: int  # RLIMIT_CPU of a confined child: a backstop behind the wall clock
    affinity: set[int] | None = None  # the forking thread's CPUs, when it may use several


# Every core may burn CPU for the whole wall-clock limit before the parent kills the child.
# (os.cpu_count reads a file under /sys each time: once is enough for a backstop.)
_CPUS = os.cpu_count() or 1


def _plan(limits: TrialLimits, confine: bool) -> _ChildPlan:
    # Signals with a Python handler (getsignal never raises for the valid signals in
    # _SIGNALS); no Python-level loop, whose objects the parent would write after each fork.
    reset = list(compress(_SIGNALS, map(callable, map(_signal.getsignal, _SIGNALS))))
    reset.append(_SIGCHLD)  # if ignored (auto-reaping), a job could not wait for its own
    address_limit = None
    if limits.memory_bytes is not None:
        current = _address_space()
        if current is not None:
            address_limit = current + limits.memory_bytes
            hard = resource.getrlimit(resource.RLIMIT_AS)[1]
            if hard != resource.RLIM_INFINITY:
                address_limit = min(address_limit, hard)
    confinement = None
    wipe: tuple[tuple[Any, Any], ...] = ()
    if confine:
        confinement = _confinement()
        wipe = _SECRET_REGIONS + _environment_regions()
    return _ChildPlan(
        tuple(reset),
        address_limit,
        resource.getrlimit(resource.RLIMIT_CORE)[1],
        os.getpid(),
        confinement,
        wipe,
        math.ceil(limits.timeout_s * _CPUS) + 1,
        _affinity(),
    )


# -- the fork on the parent's CPU -------------------------------------------------------------
#
# The parent sleeps as soon as it has forked, so the child is forked onto the parent's CPU
# (the thread is pinned to it for the fork, and both put the CPU set back at once): it runs
# where the pages it copies are in the cache, without waking an idle CPU (in a virtual
# machine waking a halted vCPU takes about 0.1 ms), and its exit wakes the parent on the
# same CPU. Measured on 2 cores: 0.4 to 0.8 ms less CPU per trial.

_getcpu = _confine.sched_getcpu


def _affinity() -> set[int] | None:
    """The calling thread's CPUs, or None when there is no choice to make (or no API)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    try:
        cpus = os.sched_getaffinity(0)
    except OSError:
        return None
    return cpus if len(cpus) > 1 else None


def _pin_to_this_cpu(plan: _ChildPlan) -> bool:
    if plan.affinity is None:
        return False
    try:
        os.sched_setaffinity(0, (_getcpu(),))
    except OSError:
        return False
    return True


def _restore_affinity(plan: _ChildPlan) -> None:
    """Put the thread's CPU set back (in the parent after the fork, in the child first)."""
    if plan.affinity is None:
        return
    try:
        os.sched_setaffinity(0, plan.affinity)
    except OSError:  # a CPU of the set went offline meanwhile: every CPU there is
        _quietly(os.sched_setaffinity, 0, range(os.cpu_count() or 1))


# (key, names of the credential-like variables, their regions), see _environment_regions.
_ENV_CACHE: tuple[tuple[tuple[int, ...], list[Any]], tuple[bytes, ...], tuple[Any, ...]] = (
    ((-1,), []),  # no environment array starts with the address -1: the first call scans
    (),
    (),
)


def _environment_regions() -> tuple[tuple[Any, Any], ...]:
    """`_confine.environment_regions` (as ctypes objects), recomputed only when the
    environment changed.

    Every change through `os.environ` or `putenv` changes the C-level `environ` array
    (setenv puts a new string in, unsetenv takes one out), except setting a variable to the
    value it already has: the C string is reused, but `os.environ` holds a new bytes object.
    So the key is the C array's entries plus the very objects that hold the credentials'
    values (compared by identity), which also spares the parent touching (and, after a
    fork, copying) the other values.
    """
    global _ENV_CACHE
    (c_strings, held), names, regions = _ENV_CACHE
    data = os.environ._data  # type: ignore[attr-defined]
    values = list(map(data.get, names))
    if not (_confine.c_environ_is(c_strings) and all(map(operator.is_, values, held))):
        regions = _confine.as_pointers(_confine.environment_regions())
        names = tuple(n for n in data if _confine.SECRET_NAME.search(n))
        values = list(map(data.get, names))
        _ENV_CACHE = ((tuple(_confine.c_environ()), values), names, regions)
    return regions


def _make_stdio() -> tuple[io.TextIOWrapper, io.TextIOWrapper, io.TextIOWrapper]:
    def writer(fd: int) -> io.TextIOWrapper:
        raw = io.BufferedWriter(io.FileIO(fd, "w", closefd=False))
        return io.TextIOWrapper(
            raw, encoding="utf-8", errors="backslashreplace", line_buffering=True
        )

    reader = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)))
    return reader, writer(1), writer(2)


def _prepare_stdio() -> None:
    """Make the stdin, stdout and stderr objects for children once, in the parent.

    The parent never uses them, so their locks are never held and their buffers are always
    empty at a fork; each child gets its own copy-on-write copy bound to its fds 0-2. (A
    parent whose fds 0-2 are closed cannot make them: its children make their own.)
    """
    global _STDIO
    if _STDIO is None:
        with contextlib.suppress(OSError):
            _STDIO = _make_stdio()


_STDIO: tuple[io.TextIOWrapper, io.TextIOWrapper, io.TextIOWrapper] | None = None
_SIGNALS = tuple(int(s) for s in signal.valid_signals())
_SIGCHLD = int(signal.SIGCHLD)


def _quietly(call: Callable[..., Any], *args: Any) -> None:
    """`call(*args)`, errors ignored: a best-effort step. (Not `contextlib.suppress`: in a
    forked child every object a step touches is a page copied, and one plain function
    touches fewer than a context manager's object and methods.)"""
    try:  # noqa: SIM105 - see above
        call(*args)
    except Exception:
        pass


def _child_setup(
    result_w: int, out_w: int, err_w: int, plan: _ChildPlan
) -> tuple[int, list[Any], tuple[io.TextIOWrapper, io.TextIOWrapper]]:
    """Make the forked child safe to run a job in.

    Returns the result pipe's descriptor (possibly renumbered), objects to keep alive until
    `_exit`, and the child's own stdout and stderr objects (to flush at the end). Each
    object the child touches here is a page it copies, so the steps are plain calls
    (best-effort ones through `_quietly`) on values the parent worked out (`_plan`).
    """
    _restore_affinity(plan)  # forked on the parent's CPU only (see _pin_to_this_cpu)
    if result_w < 3 or out_w < 3 or err_w < 3:  # a parent with closed stdio hands out 0-2
        result_w, out_w, err_w = _above_stdio(result_w), _above_stdio(out_w), _above_stdio(err_w)
    _quietly(os.setpgid, 0, 0)  # own process group: a timeout kills the job's children too
    # Descriptors: stdin from /dev/null (never consume the parent's input), stdout/stderr
    # into our pipes, and no ends of other trials' pipes (a confined child closes every
    # descriptor above its report pipe in `_confine_child`, these included).
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    if plan.confinement is None:
        for fd in {devnull, out_w, err_w, *_OPEN_FDS} - {result_w, 0, 1, 2}:
            _quietly(os.close, fd)
    # A job may run trials of its own: free the fork lock (the copy inherited is held, by a
    # thread that does not exist here), empty the descriptor registry, and below, stdio
    # objects for its children.
    global _STDIO
    _quietly(_FORK_LOCK.release)  # held by the parent's thread at the fork, if anyone's
    _OPEN_FDS.clear()
    # Signals: nothing the parent installed applies here. Python handlers (asyncio's, the
    # program's, SIGINT's KeyboardInterrupt) go back to the default action, and asyncio's
    # wakeup fd (shared with the parent's loop!) is detached.
    _quietly(_signal.set_wakeup_fd, -1)
    _quietly(_signal.pthread_sigmask, _signal.SIG_SETMASK, ())
    for sig in plan.reset_signals:
        _quietly(_signal.signal, sig, _signal.SIG_DFL)
    # Fresh stdio objects: a thread of the parent may have held the old ones' locks at the
    # moment of fork, and their buffers hold the parent's unflushed output (which must not
    # be written twice). The old objects are kept alive, never flushed, and die with _exit.
    old = [sys.stdin, sys.stdout, sys.stderr]
    sys.stdin, sys.stdout, sys.stderr = _STDIO or _make_stdio()
    _STDIO = None
    # A segfault prints the Python stack to our stderr (fd 2) before the child dies of it.
    _quietly(faulthandler.enable, 2, False)
    # Garbage the parent had not collected yet is not finalised here (a finaliser could
    # flush a parent's file a second time); only the job's own objects are collected.
    gc.freeze()
    aio = sys.modules.get("asyncio")
    if aio is not None:  # called from an event loop's thread: let the job run its own loop
        _quietly(aio.events._set_running_loop, None)
    _child_limits(plan)
    return result_w, old, (sys.stdout, sys.stderr)


_STATM: tuple[int, int] | None = None  # (pid, descriptor of /proc/self/statm)


def _address_space() -> int | None:
    """This process's address space in bytes (/proc/self/statm), None if unreadable.

    The file stays open (close-on-exec) and is read with pread, which the kernel answers
    afresh: opening it costs more than the read. Reopened in a forked process (the
    descriptor would show the parent) and when a read fails or does not look like statm
    (seven numbers: someone closed the descriptor, and the number may name another file).
    """
    global _STATM
    pid = os.getpid()
    if _STATM is not None and _STATM[0] == pid:
        size = _statm_size(_STATM[1])
        if size is not None:
            return size
    try:
        fd = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    _STATM = (pid, fd)
    return _statm_size(fd)


def _statm_size(fd: int) -> int | None:
    try:
        fields = os.pread(fd, 256, 0).split()
        return int(fields[0]) * _PAGE_SIZE if len(fields) == 7 and fields[6].isdigit() else None
    except (OSError, ValueError):
        return None


def _child_limits(plan: _ChildPlan) -> None:
    _quietly(resource.setrlimit, resource.RLIMIT_CORE, (0, plan.core_hard))
    if plan.address_limit is not None:  # soft = hard: the job cannot raise it back
        _quietly(resource.setrlimit, resource.RLIMIT_AS, (plan.address_limit,) * 2)
    if plan.confinement is not None:
        return  # `_confine_child` does the rest, and fails the trial if it cannot
    if _PRCTL is not None:
        _quietly(_PRCTL, 4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: not even a piped core handler runs
        # PR_SET_PDEATHSIG: if the parent dies (killed, crashed), the child is killed too
        # instead of running on as an orphan. It fires when the forking *thread* ends, and
        # that thread waits in run_forked for as long as the child lives.
        _quietly(_PRCTL, 1, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != plan.parent_pid:  # the parent died before the line above
        os._exit(_EXIT_HARNESS_FAILED)


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError, ImportError):
        return None


_PRCTL: Callable[..., int] | None = None
_PRCTL_LOADED = False


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _child_main(
    job: Callable[[], Any],
    limits: TrialLimits,
    plan: _ChildPlan,
    frame_prefix: str | None,
    result_w: int,
    out_w: int,
    err_w: int,
) -> NoReturn:
    """Runs in the forked child and never returns: every path ends in os._exit, so the
    parent's code (its event loop, atexit handlers, finalisers) never runs here."""
    code = _EXIT_HARNESS_FAILED
    me = os.getpid()
    try:
        result_w, _keep, ours = _child_setup(result_w, out_w, err_w, plan)
        if plan.confinement is not None:
            result_w = _confine_child(result_w, plan)
        payload = _run_job_in_child(job, limits, frame_prefix)
        if os.getpid() == me:  # (if the job forked and its child returned too, one reports)
            for stream in ours:
                _quietly(stream.flush)
            try:
                _write_all(result_w, payload)
            except MemoryError:
                _write_all(result_w, _MEMORY_FALLBACK)
        code = 0
    except BaseException as exc:  # the harness itself failed: say why on stderr
        with contextlib.suppress(BaseException):
            os.write(2, f"symbiont trial harness failed: {exc!r}\n".encode("utf-8", "replace"))
    finally:
        os._exit(code)


def _run_job_in_child(
    job: Callable[[], Any], limits: TrialLimits, frame_prefix: str | None
) -> bytes:
    try:
        value = job()
    except BaseException as exc:
        # Free the job's locals first: after a memory bomb they hold the memory.
        traceback.clear_frames(exc.__traceback__)
        try:
            return _encode_failure(exception_diagnostic(exc, frame_prefix=frame_prefix))
        except MemoryError:
            return _MEMORY_FALLBACK
        except Exception:  # an exception too odd to format: report at least its kind
            return _encode_failure(Diagnostic("trial", _exception_kind(exc), _exception_text(exc)))
    try:
        data, diag = _encode_ok(value, limits.max_result_bytes, _CHILD_ENCODE)
    except MemoryError:
        return _MEMORY_FALLBACK
    del value
    if data is not None:
        return data
    assert diag is not None
    return _encode_failure(diag)


# -- the parent ------------------------------------------------------------------------------


class _Tail:
    """The last `keep` bytes of a stream, and how many bytes it carried in all."""

    __slots__ = ("buf", "keep", "total")

    def __init__(self, keep: int) -> None:
        self.buf = bytearray()
        self.keep = keep
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        if self.keep:
            self.buf += data
            if len(self.buf) > 2 * self.keep + _CHUNK:
                del self.buf[: -self.keep]

    def text(self) -> str:
        if not self.buf:  # nothing kept (the usual case): skip the regular expression
            return ""
        # faulthandler ends a crash report with one long "Extension modules: ..." line that
        # says nothing about the candidate and would push the report itself out of the tail.
        buf = re.sub(rb"\nExtension modules: [^\n]*", b"", bytes(self.buf))
        self.total -= len(self.buf) - len(buf)
        self.buf = bytearray(buf)
        fault = buf.rfind(b"Fatal Python error") if self.keep else -1
        if fault != -1 and len(buf) - fault > self.keep:
            # A crash report lists the innermost frame first: keep its head, not its tail.
            data = buf[fault : fault + self.keep]
            before = self.total - (len(buf) - fault)
            later = len(buf) - fault - len(data)
            head = f"[... {before} earlier bytes omitted ...]\n" if before else ""
            body = data.decode("utf-8", "replace")
            return f"{head}{body}\n[... {later} later bytes (outer frames) omitted ...]"
        data = bytes(self.buf[-self.keep :]) if self.keep else b""
        if len(data) < self.total:  # cut mid-stream: drop a split UTF-8 sequence's tail
            data = data.lstrip(bytes(range(0x80, 0xC0)))
        text = data.decode("utf-8", "replace")
        omitted = self.total - len(data)
        return f"[... {omitted} earlier bytes omitted ...]\n{text}" if omitted and text else text


class _Sink:
    """The result pipe's bytes, up to a cap (past it the child is misbehaving)."""

    __slots__ = ("buf", "cap", "over")

    def __init__(self, cap: int) -> None:
        self.buf = bytearray()
        self.cap = cap
        self.over = False

    def add(self, data: bytes) -> None:
        if len(self.buf) + len(data) > self.cap:
            self.over = True
        else:
            self.buf += data


def _kill_group(pid: int) -> None:
    """SIGKILL the child's process group (the job's own children too); the child itself
    when the group does not exist. Only called while `pid` is unreaped, so the id cannot
    have been reused."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        _quietly(os.kill, pid, signal.SIGKILL)


def _exited_nowait(pid: int) -> bool:
    """Has the child exited? Leaves it unreaped (so its id stays ours)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


_DATA, _EMPTY, _EOF = 0, 1, 2


def _read_available(fd: int, sink: _Tail | _Sink) -> int:
    """Read once without blocking: _DATA (got some), _EMPTY (nothing now) or _EOF."""
    try:
        data = os.read(fd, _CHUNK)
    except BlockingIOError:
        return _EMPTY
    except OSError:
        return _EOF
    if not data:
        return _EOF
    sink.add(data)
    return _DATA


def _poller(sinks: dict[int, _Tail | _Sink]) -> select.poll:
    """A poll object watching the pipes; made before the fork (see run_forked)."""
    poller = select.poll()
    for fd in sinks:
        poller.register(fd, select.POLLIN)
    return poller


def _collect(
    pid: int,
    pidfd: int | None,
    sinks: dict[int, _Tail | _Sink],
    deadline: float,
    result: _Sink,
    poller: select.poll,
) -> bool:
    """Read the child's pipes until it exits or the deadline passes; True on timeout.

    Never blocks on a read: the read ends are non-blocking and every wait is a `poll`
    bounded by the deadline. With a pidfd the child's exit wakes the poll directly (a
    grandchild holding a pipe open cannot keep us waiting); without one, EOF on every pipe
    or a periodic non-reaping `waitid` tells us. `poller` watches the pipes already.
    """
    live = set(sinks)
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    slice_s = 0.001
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return True
        if pidfd is not None:
            wait_ms = None if math.isinf(remaining) else remaining * 1000.0
        else:
            wait_ms = min(remaining, slice_s) * 1000.0
            slice_s = min(slice_s * 2, 0.05)
        events = poller.poll(wait_ms)
        exited = False
        for fd, _ev in events:
            if fd == pidfd:
                exited = True
            elif fd in live and _read_available(fd, sinks[fd]) == _EOF:
                live.discard(fd)
                poller.unregister(fd)
        if result.over:
            return False
        if pidfd is None and (not live or not events):
            exited = _exited_nowait(pid)
            if not live and not exited:
                # Every pipe is closed: the child is finishing its _exit (or closed them
                # and runs on); nothing is left to poll, so look at it now and then.
                pause = 0.0002
                while not _exited_nowait(pid):
                    if time.monotonic() >= deadline:
                        return True
                    time.sleep(pause)
                    pause = min(pause * 2, 0.01)
                exited = True
        if exited:
            # The child is gone, so everything it wrote is in the pipes: drain them.
            for fd in list(live):
                while _read_available(fd, sinks[fd]) == _DATA and not result.over:
                    pass  # stops at EOF, or when only a grandchild still holds the pipe
            return False


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def timeout_diagnostic(timeout_s: float) -> Diagnostic:
    """A trial killed at its time limit (the forked trial and the pool's workers)."""
    return Diagnostic(
        "trial",
        "timeout",
        f"the trial did not finish within {timeout_s:g} s and was killed; the candidate may "
        "loop forever or be far too slow",
    )


def oversize_diagnostic(cap: int) -> Diagnostic:
    """A trial stopped for writing more than `cap` bytes of result."""
    return _invalid(f"the trial wrote more than {cap} bytes of result; it was stopped")


def no_report_diagnostic(code: int | None) -> Diagnostic:
    """A trial process that exited (code `code`, None: unknown) without reporting."""
    how = "an unknown status" if code is None else f"code {code}"
    return Diagnostic(
        "trial",
        "exit",
        f"the trial process exited with {how} before reporting a result (os._exit or a "
        "fatal error); a candidate must return, never end the process",
    )


def _crash_diagnostic(signum: int, stderr: str, frame_prefix: str | None) -> Diagnostic:
    name = _signal_name(signum)
    what = signal.strsignal(signum) or name
    message = f"the trial process was killed by {name} ({what})"
    if signum == signal.SIGKILL:
        message += ", possibly by the kernel's out-of-memory killer"
    elif signum == signal.SIGSEGV:
        message += ": the candidate crashed the interpreter (bad memory access)"
    start = stderr.rfind("Fatal Python error")
    detail = None
    if start >= 0:  # faulthandler's report, without the trial runner's own frames
        kept: list[str] = []
        repeats = 0
        for ln in stderr[start:].strip().splitlines():
            if _THIS_FILE in ln:
                continue
            if kept and ln == kept[-1]:
                repeats += 1
                continue
            if repeats:
                kept.append(f"  [previous line repeated {repeats} more times]")
                repeats = 0
            kept.append(ln)
        if repeats:
            kept.append(f"  [previous line repeated {repeats} more times]")
        detail = _short("\n".join(kept), 3000)
    line = None
    if detail and frame_prefix:
        # faulthandler lists the most recent call first: the first candidate frame wins.
        for m in re.finditer(r'File "([^"]*)", line (\d+)', detail):
            if m.group(1).startswith(frame_prefix):
                line = int(m.group(2))
                break
    return Diagnostic("trial", "crash", message, line=line, detail=detail)


def run_forked(
    job: Callable[[], Any],
    limits: TrialLimits = TrialLimits(),  # frozen: a shared default is safe
    *,
    frame_prefix: str | None = "<symbiont",
    confine: bool = True,
) -> TrialResult:
    """Run `job()` in a forked child of this process and report what happened.

    The child sees the live state copy-on-write; nothing it does reaches the parent except
    its JSON report and the tails of its stdout and stderr. With `confine` (the default) the
    child is confined first (see the module's docstring; mode "confined"); `confine=False`
    is the unconfined fork for trusted code (mode "fork"). Safe to call from any thread,
    from several threads at once, and from an asyncio event loop's thread (it blocks that
    thread for the trial's duration; use `asyncio.to_thread` to keep the loop running).
    """
    global _PRCTL, _PRCTL_LOADED, _USE_PIDFD
    if not callable(job):
        raise TypeError(f"run_forked needs a zero-argument callable, not {type(job).__name__}")
    if not _PRCTL_LOADED:
        _PRCTL, _PRCTL_LOADED = _load_prctl(), True
    if not confine:
        _announce_unconfined()
    mode = "confined" if confine else "fork"
    started = time.perf_counter()
    deadline = time.monotonic() + limits.timeout_s
    fds: list[int] = []
    pid = 0
    pidfd: int | None = None
    reaped = False
    try:
        with _FORK_LOCK:  # pipes are registered before any other thread forks
            plan = _plan(limits, confine)  # under the lock: it may replace the ruleset
            _prepare_stdio()
            try:
                result_r, result_w = os.pipe()
                fds += (result_r, result_w)
                out_r, out_w = os.pipe()
                fds += (out_r, out_w)
                err_r, err_w = os.pipe()
                fds += (err_r, err_w)
                _OPEN_FDS.update(fds)
                # Whatever the parent can do before the fork it does: after it, each page
                # the parent writes while the child lives is copied (the child's own
                # copies are what a trial costs).
                for fd in (result_r, out_r, err_r):
                    os.set_blocking(fd, False)  # the child closes these ends
                result = _Sink(limits.max_result_bytes + (1 << 20))
                out, err = _Tail(limits.tail_bytes), _Tail(limits.tail_bytes)
                sinks: dict[int, _Tail | _Sink] = {result_r: result, out_r: out, err_r: err}
                poller = _poller(sinks)
                pinned = _pin_to_this_cpu(plan)
                pid = -1  # stays so if the fork fails
                try:
                    pid = os.fork()
                finally:
                    if pinned and pid != 0:  # the parent (or a failed fork): as it was
                        _restore_affinity(plan)
            except OSError as exc:  # out of descriptors or processes: not the candidate's fault
                pid = 0
                raise SandboxError(f"could not start a forked trial: {exc}") from exc
            if pid == 0:  # pragma: no cover - the child; coverage cannot follow os._exit
                _child_main(job, limits, plan, frame_prefix, result_w, out_w, err_w)
        _quietly(os.setpgid, pid, pid)  # also here: a timeout may come before the child ran
        for fd in (result_w, out_w, err_w):
            # Unregister before closing: once closed, the number may name a descriptor of
            # the program, which a concurrent trial's child must not close.
            _OPEN_FDS.discard(fd)
            fds.remove(fd)
            os.close(fd)
        if _USE_PIDFD:
            try:
                pidfd = os.pidfd_open(pid)
            except OSError as exc:
                if exc.errno in (errno.ENOSYS, errno.EPERM):  # old kernel or seccomp: poll
                    _USE_PIDFD = False
        timed_out = _collect(pid, pidfd, sinks, deadline, result, poller)
        _kill_group(pid)  # a timeout, or leftovers: processes the job started die with it
        try:
            _, status = os.waitpid(pid, 0)
            code: int | None = os.waitstatus_to_exitcode(status)
        except ChildProcessError:  # someone else reaped it (a SIGCHLD handler of the program)
            code = None
        reaped = True
        duration = time.perf_counter() - started
        stdout_tail, stderr_tail = out.text(), err.text()
        report = None if result.over else _decode(bytes(result.buf))

        def done(ok: bool, value: Any, diag: Diagnostic | None) -> TrialResult:
            return TrialResult(ok, value, diag, stdout_tail, stderr_tail, duration, mode)

        if timed_out:
            return done(False, None, timeout_diagnostic(limits.timeout_s))
        if result.over:
            return done(False, None, oversize_diagnostic(result.cap))
        if report is not None:
            return done(*report)
        if code is not None and code < 0:
            return done(False, None, _crash_diagnostic(-code, stderr_tail, frame_prefix))
        if result.buf:
            return done(False, None, _invalid("the trial's report was garbled (not valid JSON)"))
        if code == _EXIT_HARNESS_FAILED and "confining the trial failed" in stderr_tail:
            return done(
                False,
                None,
                Diagnostic(
                    "trial",
                    "exit",
                    "the trial could not be confined, so the candidate was not run (a fault "
                    "of this machine or of symbiont, not of the candidate)",
                    detail=stderr_tail[stderr_tail.rfind("confining the trial failed") :],
                ),
            )
        if code == _EXIT_HARNESS_FAILED and "symbiont trial harness failed" in stderr_tail:
            return done(
                False,
                None,
                Diagnostic(
                    "trial",
                    "exit",
                    "the trial runner failed in the child before the job ran",
                    detail=stderr_tail[stderr_tail.rfind("symbiont trial harness failed") :],
                ),
            )
        return done(False, None, no_report_diagnostic(code))
    finally:
        if pid > 0 and not reaped:  # interrupted (KeyboardInterrupt in the waiting thread)
            _kill_group(pid)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        if pidfd is not None:
            os.close(pidfd)
        for fd in fds:
            _OPEN_FDS.discard(fd)
            _quietly(os.close, fd)


def run_inprocess(
    job: Callable[[], Any],
    limits: TrialLimits = TrialLimits(),  # frozen: a shared default is safe
    *,
    frame_prefix: str | None = "<symbiont",
) -> TrialResult:
    """Run `job()` in the calling thread: fast, and **no isolation at all**.

    For trusted, very fast evaluations only. A crash, `os._exit` or memory exhaustion takes
    the whole program down; state the job mutates stays mutated. The timeout cannot be
    enforced (there is no safe way to stop a Python thread): a job that overruns it is
    reported as a timeout after it returns. Output is not captured (tails are empty), since
    redirecting `sys.stdout` would capture the program's other threads as well. Exceptions,
    including `SystemExit`, become diagnostics; `KeyboardInterrupt` is re-raised, as it is
    far likelier to come from the person at the terminal than from the candidate.
    """
    if not callable(job):
        raise TypeError(f"run_inprocess needs a zero-argument callable, not {type(job).__name__}")
    started = time.perf_counter()

    def done(ok: bool, value: Any, diag: Diagnostic | None) -> TrialResult:
        return TrialResult(ok, value, diag, "", "", time.perf_counter() - started, "inprocess")

    try:
        value = job()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        return done(False, None, exception_diagnostic(exc, frame_prefix=frame_prefix))
    elapsed = time.perf_counter() - started
    if elapsed > limits.timeout_s:
        return done(
            False,
            None,
            Diagnostic(
                "trial",
                "timeout",
                f"the trial took {elapsed:.3g} s, over the limit of {limits.timeout_s:g} s (an "
                "in-process trial cannot be stopped early; it was judged when it returned)",
            ),
        )
    data, diag = _encode_ok(value, limits.max_result_bytes)
    if data is None:
        return done(False, None, diag)
    return done(True, json.loads(data)["value"], None)
