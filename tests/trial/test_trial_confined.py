"""Confined trials (the default): what the child may no longer do, and what still works.

Jobs here are trusted test code that tries each thing directly; the hostile versions, past
the policy guard and through the evolve loop, are in tests/security/test_trial_attacks.py.
Where it helps, the same job runs unconfined (`confine=False`) to show the test can fail.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from symbiont import trial as trial_mod
from symbiont.sandbox import _confine
from symbiont.trial import TrialLimits, register_secret, run_forked

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

QUICK = TrialLimits(timeout_s=5.0)


def outcome(fn: Any) -> Any:
    """Run fn in the job; its value, or the name of the exception it raised."""
    try:
        return fn()
    except Exception as exc:
        return type(exc).__name__


def test_confined_is_the_default_and_fork_is_unconfined() -> None:
    assert run_forked(lambda: 1, QUICK).mode == "confined"
    assert run_forked(lambda: 1, QUICK, confine=False).mode == "fork"


def test_this_kernel_provides_every_protection() -> None:
    report = trial_mod.confinement_report()
    assert report, report
    missing = {name: state for name, state in report.items() if not state.startswith("active")}
    assert missing == {}, missing


def test_unconfined_fork_says_so_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setattr(trial_mod, "_UNCONFINED_ANNOUNCED", False)
    target = tmp_path / "written.txt"
    with caplog.at_level(logging.WARNING, logger="symbiont.trial"):
        first = run_forked(lambda: target.write_text("fork") and "wrote", QUICK, confine=False)
        run_forked(lambda: 1, QUICK, confine=False)
    assert first.value == "wrote" and target.read_text() == "fork"  # today's behaviour
    said = [r.getMessage() for r in caplog.records if "unconfined" in r.getMessage()]
    assert len(said) == 1 and "trusted code only" in said[0]


# -- descriptors ------------------------------------------------------------------------------


def test_inherited_descriptors_are_closed(tmp_path: Path) -> None:
    held = tmp_path / "held.txt"
    held.write_text("the program's own file\n")
    fd = os.open(held, os.O_RDWR)
    sock = socket.socket()
    try:

        def job() -> list[Any]:
            still_open = []
            for n in range(256):
                try:
                    os.fstat(n)
                    still_open.append(n)
                except OSError:
                    pass
            return still_open

        confined = run_forked(job, QUICK).value
        unconfined = run_forked(job, QUICK, confine=False).value
    finally:
        os.close(fd)
        sock.close()
    assert confined == [0, 1, 2, 3]  # stdio and the report pipe
    assert fd in unconfined and sock.fileno() not in confined
    assert held.read_text() == "the program's own file\n"


# -- secrets --------------------------------------------------------------------------------


def test_environment_is_empty_and_its_credentials_are_wiped_in_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    value = f"sk-env-{uuid.uuid4().hex}"
    monkeypatch.setenv("SYMBIONT_TEST_API_KEY", value)
    # Where the value lives, found without symbiont's help: the bytes object os.environ
    # holds, and the C string getenv() points into.
    held = os.environ._data[b"SYMBIONT_TEST_API_KEY"]  # type: ignore[attr-defined]
    bytes_address = id(held) + sys.getsizeof(b"") - 1
    getenv = ctypes.CDLL(None).getenv
    getenv.restype = ctypes.c_void_p
    c_address = getenv(b"SYMBIONT_TEST_API_KEY")
    size = len(value)

    def job() -> dict[str, Any]:
        return {
            "environ": dict(os.environ),
            "getenv": getenv(b"SYMBIONT_TEST_API_KEY"),
            "bytes": ctypes.string_at(bytes_address, size).decode("latin-1"),
            "c": ctypes.string_at(c_address, size).decode("latin-1"),
        }

    confined = run_forked(job, QUICK).value
    unconfined = run_forked(job, QUICK, confine=False).value
    assert unconfined["bytes"] == value and unconfined["c"] == value  # the addresses are right
    assert confined["environ"] == {} and confined["getenv"] is None
    assert value not in (confined["bytes"], confined["c"])
    assert set(confined["bytes"]) == {"\x00"} and set(confined["c"]) == {"\x00"}
    assert os.environ["SYMBIONT_TEST_API_KEY"] == value  # the parent keeps it


_BLOCK_PROBE = """
import ctypes, json, sys
from symbiont.trial import TrialLimits, run_forked
getenv = ctypes.CDLL(None).getenv
getenv.restype = ctypes.c_void_p
address = getenv(b"SYMBIONT_PLAIN_MARKER")  # a C string of the initial environment block
size = len(sys.argv[1])
read = lambda: ctypes.string_at(address, size).decode("latin-1")
print(json.dumps([run_forked(read, TrialLimits(timeout_s=5.0), confine=c).value for c in (True, False)]))
"""


def test_the_initial_environment_block_is_wiped_whatever_the_names() -> None:
    # A name that does not look like a credential: only the wipe of the whole block the
    # process started with (what /proc/<pid>/environ shows) removes its value.
    marker = f"plain-{uuid.uuid4().hex}"
    env = {"PATH": os.environ.get("PATH", "/usr/bin"), "SYMBIONT_PLAIN_MARKER": marker}
    proc = subprocess.run(
        [sys.executable, "-c", _BLOCK_PROBE, marker],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    confined, unconfined = json.loads(proc.stdout)
    assert unconfined == marker  # the address is right
    assert confined == "\x00" * len(marker)


def test_registered_secret_is_wiped_in_the_child_only() -> None:
    secret = f"tok-{uuid.uuid4().hex}"
    holder = {"api_key": secret}
    assert register_secret(secret)
    result = run_forked(lambda: holder["api_key"], QUICK)
    assert result.ok and result.value == "\x00" * len(secret)
    assert holder["api_key"] == secret and secret.startswith("tok-")
    raw = f"raw-{uuid.uuid4().hex}".encode()
    assert register_secret(raw)
    assert run_forked(lambda: raw.hex(), QUICK).value == "00" * len(raw)
    assert run_forked(lambda: raw.hex(), QUICK, confine=False).value == raw.hex()


@pytest.mark.parametrize("value", [None, "", "abc", b"ab", 12345])
def test_register_secret_ignores_what_is_no_secret(value: Any) -> None:
    assert register_secret(value) is False


# -- network, files, processes ----------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, list[int]]]:
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(1)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield server, accepted
    server.close()


def test_no_network(listener: tuple[socket.socket, list[int]]) -> None:
    server, accepted = listener
    port = server.getsockname()[1]

    def job() -> dict[str, Any]:
        return {
            "tcp": outcome(lambda: socket.create_connection(("127.0.0.1", port), timeout=1)),
            "udp": outcome(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)),
            "inet6": outcome(lambda: socket.socket(socket.AF_INET6)),
            "unix": outcome(lambda: socket.socket(socket.AF_UNIX)),
            "netlink": outcome(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)),
            "pair": outcome(lambda: len(socket.socketpair())),
        }

    value = run_forked(job, QUICK).value
    assert value == {
        "tcp": "PermissionError",
        "udp": "PermissionError",
        "inet6": "PermissionError",
        "unix": "PermissionError",
        "netlink": "PermissionError",
        "pair": 2,  # a connected pair inside the process: an event loop needs one
    }
    assert accepted == []


def test_an_event_loop_and_threads_still_work() -> None:
    async def inner() -> int:
        await asyncio.sleep(0)
        return 7

    def job() -> list[int]:
        out: list[int] = []
        t = threading.Thread(target=lambda: out.append(asyncio.run(inner())))
        t.start()
        t.join()
        return out

    assert run_forked(job, QUICK).value == [7]


def test_reads_only_what_imports_need_and_writes_nothing(tmp_path: Path) -> None:
    outside = tmp_path / "data.txt"
    outside.write_text("private")

    def job() -> dict[str, Any]:
        sys.modules.pop("wave", None)  # an import the parent did not do: read from disk
        return {
            "import": outcome(lambda: __import__("wave").__name__),
            "read_outside": outcome(outside.read_text),
            "read_etc": outcome(lambda: Path("/etc/hostname").read_text()),
            "write_tmp": outcome(lambda: (tmp_path / "new.txt").write_text("x")),
            "write_shm": outcome(lambda: Path("/dev/shm/symbiont-trial").write_text("x")),
            "append": outcome(lambda: outside.open("a").write("x")),
            "unlink": outcome(outside.unlink),
            "mkdir": outcome(lambda: (tmp_path / "d").mkdir()),
            "proc_self": outcome(lambda: os.listdir("/proc/self/fd")),
            "devnull": outcome(lambda: Path("/dev/null").write_text("discarded")),
        }

    value = run_forked(job, QUICK).value
    assert value == {
        "import": "wave",
        "read_outside": "PermissionError",
        "read_etc": "PermissionError",
        "write_tmp": "PermissionError",
        "write_shm": "PermissionError",
        "append": "PermissionError",
        "unlink": "PermissionError",
        "mkdir": "PermissionError",
        "proc_self": "PermissionError",
        "devnull": 9,
    }
    assert outside.read_text() == "private"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.txt"]
    assert not Path("/dev/shm/symbiont-trial").exists()


def test_signals_reach_only_the_child_itself() -> None:
    sibling = subprocess.Popen(["sleep", "30"])
    try:

        def job() -> dict[str, Any]:
            return {
                "self": outcome(lambda: os.kill(os.getpid(), 0)),
                "parent": outcome(lambda: os.kill(os.getppid(), 0)),
                "sibling": outcome(lambda: os.kill(sibling.pid, 9)),
                "everyone": outcome(lambda: os.kill(-1, 9)),
                "group": outcome(lambda: os.killpg(os.getpgid(os.getppid()), 9)),
            }

        value = run_forked(job, QUICK).value
        assert sibling.poll() is None  # still running
    finally:
        sibling.kill()
        sibling.wait()
    assert value == {
        "self": None,
        "parent": "PermissionError",
        "sibling": "PermissionError",
        "everyone": "PermissionError",
        "group": "PermissionError",
    }


def test_no_new_processes_and_no_way_back() -> None:
    def job() -> dict[str, Any]:
        libc = ctypes.CDLL(None, use_errno=True)
        return {
            "fork": outcome(os.fork),
            "subprocess": outcome(lambda: subprocess.run(["true"])),
            "spawn": outcome(lambda: os.posix_spawn("/bin/true", ["true"], {})),
            "exec": outcome(lambda: os.execv("/bin/true", ["true"])),
            # PR_SET_PDEATHSIG 0: opting out of dying with the parent is refused.
            "pdeathsig": libc.prctl(1, 0, 0, 0, 0),
        }

    value = run_forked(job, QUICK).value
    assert value == {
        "fork": "PermissionError",
        "subprocess": "PermissionError",
        "spawn": "PermissionError",
        "exec": "PermissionError",
        "pdeathsig": -1,
    }


# -- the kernel lacks something; a step fails ------------------------------------------------


def test_a_missing_protection_is_reported_once_and_trials_run(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    listener: tuple[socket.socket, list[int]],
) -> None:
    # Pretend this kernel has no seccomp: a network namespace takes over the network part.
    monkeypatch.setattr(_confine, "seccomp_available", lambda: "pretend: no seccomp here")
    monkeypatch.setattr(trial_mod, "_CONFINEMENT", None)  # rebuilt; the old one is restored
    server, accepted = listener
    port = server.getsockname()[1]

    def job() -> dict[str, Any]:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # Landlock covers TCP only
        return {
            "tcp": outcome(lambda: socket.create_connection(("127.0.0.1", port), timeout=1)),
            "udp": outcome(lambda: udp.sendto(b"x", ("127.0.0.1", port))),
        }

    try:
        with caplog.at_level(logging.WARNING, logger="symbiont.trial"):
            first = run_forked(job, QUICK)
            second = run_forked(lambda: 5, QUICK)
        report = trial_mod.confinement_report()
    finally:
        built = trial_mod._CONFINEMENT
        if built is not None and built.ruleset is not None:
            os.close(built.ruleset)
    said = [r.getMessage() for r in caplog.records if "pretend: no seccomp here" in r.getMessage()]
    assert len(said) == 1 and "run without" in said[0]
    assert any(state == "missing: pretend: no seccomp here" for state in report.values())
    assert report["no network"] == "active (network namespace)"
    assert first.ok and first.value["tcp"] in ("PermissionError", "OSError")
    assert first.value["udp"] == "OSError"  # network unreachable: the namespace's loopback is down
    assert second.ok and second.value == 5
    assert accepted == []


def test_a_confinement_step_that_fails_fails_the_trial(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def broken(ruleset: int) -> None:
        raise OSError(1, "landlock_restrict_self: pretend failure")

    monkeypatch.setattr(_confine, "enter_landlock", broken)
    marker = tmp_path / "ran"
    result = run_forked(lambda: marker.write_text("ran") and "ran", QUICK)
    assert not result.ok and result.value is None
    assert result.diagnostic is not None and result.diagnostic.kind == "exit"
    assert "could not be confined" in result.diagnostic.message
    assert "Landlock" in (result.diagnostic.detail or "")
    assert not marker.exists()  # the job never ran
