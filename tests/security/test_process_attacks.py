"""Attacks on the `process` tier that go past the file and network checks of `test_attacks.py`.

Each program below is a hostile capability run through a real `ProcessSandbox`: it changes
file metadata outside its folders, probes files it should not know about, watches other
folders, hoards SysV shared memory or passes data from one call to the next through IPC,
creates threads with raw `clone`, digs a scratch tree deeper than the interpreter's recursion
limit or fills its scratch, and forges the result frames the worker sends to the parent.

After every attack the host is checked: this process and the sandbox still answer a benign
call, the zygote has no extra children, no task of the worker's uid is left, the host's SysV
IPC objects (/proc/sysvipc) and the scratch folders in the temporary directory are as before,
and nothing outside the capability's data folder changed (names, modes, sizes, times,
extended attributes).
"""

from __future__ import annotations

import ctypes
import glob
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from symbiont.sandbox._process_worker import WORKER_ID_BASE
from symbiont.sandbox.base import Limits, Permissions, SandboxResult
from symbiont.sandbox.process import ProcessSandbox

# 64 MB, as in the report that found SysV shared memory escaping the limit (512 MB under it).
LIMITS = Limits(
    timeout_s=20.0,  # generous: the machine is shared; no attack here needs time to fail
    memory_bytes=64 * 1024 * 1024,
    max_output_bytes=64 * 1024,
    max_file_bytes=4 * 1024 * 1024,
)
MQ_NAME = "/symbiont-attack-carry"
SHM_KEY = 0x5EC12E7
MSG_KEY = 0x5EC12E8
# What the capability should never be able to learn or change.
SHADOW = "/etc/shadow"
STDLIB_FILE = os.__file__
MAX_WORKER_TASKS = 64  # what this suite accepts as "a thread cap" (the tier uses less)
SHARED_MEMORY_SLACK_MB = 48  # below the 64 MB segments and the 512 MB hoard the attacks try


# ---------------------------------------------------------------------------------------
# the sandbox and the host's state
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox() -> Iterator[ProcessSandbox]:
    sb = ProcessSandbox()
    warm = sb.run("def main():\n    return 1\n", "main", "{}", Permissions(), LIMITS)
    assert warm.ok, warm.error
    yield sb
    sb.close()


def _proc_status(pid: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
    except OSError:
        pass
    return fields


def _descendants(root: int) -> set[int]:
    """Pids below `root` in the host's process tree."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            ppid = _proc_status(entry).get("PPid")
            if ppid and ppid.isdigit():
                children.setdefault(int(ppid), []).append(int(entry))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _tasks_of_uid(uid: int) -> list[str]:
    return [
        entry
        for entry in os.listdir("/proc")
        if entry.isdigit() and _proc_status(entry).get("Uid", "").split()[:1] == [str(uid)]
    ]


def _ours(cuid: int) -> bool:
    """A creator uid a worker of ours can have: ours, or the dedicated worker range."""
    return cuid == os.geteuid() or WORKER_ID_BASE <= cuid < WORKER_ID_BASE + (1 << 27)


def _sysv_objects() -> dict[str, set[str]]:
    """Ids of the host's SysV shared memory segments, message queues and semaphores that
    this process or a worker created (other programs on the machine, a PostgreSQL server
    for one, make their own: those are neither compared nor removed)."""
    found: dict[str, set[str]] = {}
    for kind in ("shm", "msg", "sem"):
        with open(f"/proc/sysvipc/{kind}") as fh:
            header, *rows = fh.read().splitlines()
        cuid = header.split().index("cuid")
        found[kind] = {
            row.split()[1] for row in rows if row.strip() and _ours(int(row.split()[cuid]))
        }
    return found


def _scratch_folders() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "symbiont-scratch-*")))


def _file_facts(path: Path) -> tuple[Any, ...]:
    info = os.lstat(path)
    xattrs: list[str] = []
    if not path.is_symlink():
        try:
            xattrs = sorted(os.listxattr(path))
        except OSError:
            xattrs = ["<unreadable>"]
    return (info.st_mode, info.st_uid, info.st_gid, info.st_size, info.st_mtime_ns, xattrs)


@dataclass
class Env:
    root: Path
    data: Path
    outside: Path
    target: Path

    def inputs(self) -> dict[str, Any]:
        return {"outside": str(self.outside), "target": str(self.target), "data": str(self.data)}

    def permissions(self) -> Permissions:
        return Permissions(data_dir=self.data, read_files=True, write_files=True)

    def facts(self) -> dict[str, tuple[Any, ...]]:
        """Every path under the test root outside the data folder, and the stdlib file."""
        found = {STDLIB_FILE: _file_facts(Path(STDLIB_FILE))}
        for dirpath, dirnames, filenames in os.walk(self.root):
            if Path(dirpath) == self.data or self.data in Path(dirpath).parents:
                continue
            for name in dirnames + filenames:
                path = Path(dirpath) / name
                found[str(path)] = _file_facts(path)
        return found


@pytest.fixture
def env(tmp_path: Path) -> Env:
    data, outside = tmp_path / "data", tmp_path / "outside"
    data.mkdir()
    outside.mkdir()
    target = outside / "target.txt"
    target.write_text("not yours")
    target.chmod(0o644)
    os.utime(target, (1_000_000_000, 1_000_000_000))
    return Env(tmp_path, data, outside, target)


@dataclass
class HostState:
    zygote_tree: set[int]
    sysv: dict[str, set[str]]
    scratch: set[str]
    facts: dict[str, tuple[Any, ...]]
    threads: int
    shared_memory_kb: int  # SysV segments and tmpfs pages, machine-wide


def _shared_memory_kb() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("Shmem:"):
                return int(line.split()[1])
    return 0


def _workers(sandbox: ProcessSandbox) -> set[int]:
    """The zygotes and their workers, less the one worker kept confined ahead of the next
    call (it has run nothing). Asking the zygote for it also has it reap every worker that
    exited: a call returns once its worker has exited, a moment before that."""
    spare = sandbox.probe().get("spare")
    found = _descendants(os.getpid())
    for pid in list(found):
        nspid = _proc_status(str(pid)).get("NSpid", "").split()
        if spare is not None and len(nspid) > 1 and nspid[-1] == str(spare):
            found.discard(pid)
    return found


def _host_state(sandbox: ProcessSandbox, env: Env) -> HostState:
    return HostState(
        _workers(sandbox),
        _sysv_objects(),
        _scratch_folders(),
        env.facts(),
        len(os.listdir("/proc/self/task")),
        _shared_memory_kb(),
    )


def _assert_host_healthy(sandbox: ProcessSandbox, env: Env, before: HostState) -> None:
    benign = sandbox.run("def main(a, b):\n    return a + b\n", "main", '{"a": 40, "b": 2}')
    assert benign.ok and benign.output == 42, benign.error
    after = _host_state(sandbox, env)
    assert after.zygote_tree == before.zygote_tree, "the zygote has other children than before"
    worker_uid = sandbox.probe().get("uid")
    if worker_uid not in (None, os.geteuid()):
        assert _tasks_of_uid(worker_uid) == [], "tasks of the worker's uid are still running"
    assert after.sysv == before.sysv, f"SysV IPC objects changed: {after.sysv} vs {before.sysv}"
    assert after.scratch == before.scratch, f"scratch left behind: {after.scratch - before.scratch}"
    changed = {
        path: (before.facts.get(path), fact)
        for path, fact in after.facts.items()
        if before.facts.get(path) != fact
    }
    assert not changed and after.facts.keys() == before.facts.keys(), changed
    assert after.threads == before.threads
    # Other programs on the machine move this too; a hoard left behind moves it by far more.
    grown_mb = (after.shared_memory_kb - before.shared_memory_kb) / 1024
    assert grown_mb < SHARED_MEMORY_SLACK_MB, f"shared memory grew by {grown_mb:.0f} MB"


def _run(sandbox: ProcessSandbox, env: Env, source: str, **inputs: Any) -> SandboxResult:
    return sandbox.run(source, "main", json.dumps(inputs), env.permissions(), LIMITS)


def _assert_kind(result: SandboxResult, kind: str) -> None:
    assert result.error is not None, f"not contained: the capability returned {result.output!r}"
    assert result.error.kind == kind, (result.error.kind, result.error.message)


# ---------------------------------------------------------------------------------------
# file metadata outside the folders (Landlock does not cover it; the worker ran as root)
# ---------------------------------------------------------------------------------------

_LIBC = "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n\n"
_RAISE = "    err = ctypes.get_errno()\n    raise OSError(err, os.strerror(err))\n"

METADATA_ATTACKS = {
    "chmod_setuid_outside": "import os\n\ndef main(target):\n    os.chmod(target, 0o4777)\n",
    "fchmodat_stdlib_by_ctypes": _LIBC + "def main():\n"
    "    AT_FDCWD = -100\n"
    f"    if libc.fchmodat(AT_FDCWD, {STDLIB_FILE!r}.encode(), 0o4777, 0) != 0:\n"
    + _RAISE.replace("    ", "        "),
    "utime_outside": "import os\n\ndef main(target):\n    os.utime(target, (0, 0))\n",
    "setxattr_outside": "import os\n\ndef main(target):\n"
    "    os.setxattr(target, 'user.pwned', b'1')\n",
    "chown_outside": "import os\n\ndef main(target):\n    os.chown(target, 0, 0)\n",
    "fchmod_own_scratch_file": "import os\n\ndef main():\n"
    "    fd = os.open('mine', os.O_CREAT | os.O_WRONLY, 0o600)\n    os.fchmod(fd, 0o4777)\n",
    "utime_stdlib": f"import os\n\ndef main():\n    os.utime({STDLIB_FILE!r}, (0, 0))\n",
}


@pytest.mark.parametrize("name", sorted(METADATA_ATTACKS))
def test_metadata_changes_are_refused(sandbox: ProcessSandbox, env: Env, name: str) -> None:
    before = _host_state(sandbox, env)
    result = _run(sandbox, env, METADATA_ATTACKS[name], **_wanted(METADATA_ATTACKS[name], env))
    _assert_kind(result, "denied")  # seccomp answers EPERM before any path is looked at
    _assert_host_healthy(sandbox, env, before)
    assert oct(env.target.stat().st_mode & 0o7777) == oct(0o644)
    assert env.target.stat().st_mtime == 1_000_000_000


def _wanted(source: str, env: Env) -> dict[str, Any]:
    """The inputs the source's main() takes."""
    header = source[source.index("def main(") + 9 : source.index(")", source.index("def main("))]
    return {name.strip(): env.inputs()[name.strip()] for name in header.split(",") if name.strip()}


# ---------------------------------------------------------------------------------------
# what exists: stat, access, listings, inotify
# ---------------------------------------------------------------------------------------

PROBE_SOURCE = (
    "import os\n\n"
    "def main(outside, data):\n"
    "    seen = {}\n"
    f"    for path in ({SHADOW!r}, '/etc/passwd', '/proc/1/environ', outside, data, '/tmp',\n"
    "                 '/etc', '/proc', '/sys', '/home', '/var', '/run', '/dev/shm'):\n"
    "        seen[path] = [os.path.exists(path), os.access(path, os.F_OK),\n"
    "                      os.access(path, os.R_OK)]\n"
    "    listing = {}\n"
    "    for p in seen:\n"
    "        try:\n"
    "            listing[p] = sorted(os.listdir(p))\n"
    "        except FileNotFoundError:\n"
    "            pass\n"
    "        except PermissionError:\n"
    "            listing[p] = []  # Landlock: not even the way down can be listed\n"
    "    return {'seen': seen, 'listing': listing, 'scratch': os.path.isdir('/scratch')}\n"
)


def _on_the_way(read_only: list[str]) -> dict[str, set[str]]:
    """For each folder above a read-only mount (the Python installation and import paths,
    wherever the checkout lives: under /tmp or /home in a fresh clone), the entries that
    lead down to a mount: all the worker may see in it."""
    way: dict[str, set[str]] = {}
    for path in read_only:
        parts = Path(path).parts
        for i in range(1, len(parts)):
            way.setdefault(str(Path(*parts[:i])), set()).add(parts[i])
    return way


def test_files_outside_do_not_exist_for_the_worker(sandbox: ProcessSandbox, env: Env) -> None:
    before = _host_state(sandbox, env)
    result = _run(sandbox, env, PROBE_SOURCE, outside=str(env.outside), data=str(env.data))
    assert result.ok, result.error
    seen, listing = result.output["seen"], result.output["listing"]
    way = _on_the_way(sandbox.probe()["read_only"])
    for path, flags in seen.items():
        if path in way:  # a folder above an import path: only the way down is there
            assert set(listing[path]) <= way[path], (path, listing[path])
        else:
            assert flags == [False, False, False], (path, flags)
    assert not {env.outside.as_posix(), env.data.as_posix(), SHADOW} & set(way)
    assert result.output["scratch"] is True  # the probe itself sees what it should
    _assert_host_healthy(sandbox, env, before)


@pytest.mark.parametrize(
    "source",
    [
        f"import os\n\ndef main():\n    return oct(os.stat({SHADOW!r}).st_mode)\n",
        f"import os\n\ndef main():\n    return os.stat({SHADOW!r}).st_size\n",
        "import os\n\ndef main(outside):\n    return os.listdir(outside)\n",
        "import os\n\ndef main():\n    return os.listdir('/proc')\n",
    ],
    ids=["stat_shadow_mode", "stat_shadow_size", "listdir_outside", "listdir_proc"],
)
def test_stat_outside_sees_nothing(sandbox: ProcessSandbox, env: Env, source: str) -> None:
    before = _host_state(sandbox, env)
    result = _run(sandbox, env, source, **_wanted(source, env))
    _assert_kind(result, "exception")
    assert "FileNotFoundError" in result.error.message  # not "permission denied": nothing there
    _assert_host_healthy(sandbox, env, before)


INOTIFY = (
    _LIBC + "def main(path):\n"
    "    fd = libc.inotify_init1(0)\n"
    "    if fd < 0:\n" + _RAISE.replace("    ", "        ") + ""
    "    if libc.inotify_add_watch(fd, path.encode(), 0xFFF) < 0:\n"
    + _RAISE.replace("    ", "        ")
    + "    return 'watching ' + path\n"
)


@pytest.mark.parametrize("which", ["outside", "etc", "data"])
def test_inotify_cannot_watch_other_folders(sandbox: ProcessSandbox, env: Env, which: str) -> None:
    path = {"outside": str(env.outside), "etc": "/etc", "data": str(env.data)}[which]
    before = _host_state(sandbox, env)
    result = _run(sandbox, env, INOTIFY, path=path)
    _assert_kind(result, "exception")
    assert "FileNotFoundError" in result.error.message
    _assert_host_healthy(sandbox, env, before)


# ---------------------------------------------------------------------------------------
# IPC: SysV shared memory beyond the memory limit, data carried from one call to the next
# ---------------------------------------------------------------------------------------

SHM_HOARD = (
    _LIBC + "def main():\n"
    "    libc.shmat.restype = ctypes.c_void_p\n"
    "    size = 512 * 1024 * 1024\n"
    f"    shmid = libc.shmget({SHM_KEY}, ctypes.c_size_t(size), 0o1000 | 0o600)\n"
    "    if shmid < 0:\n" + _RAISE.replace("    ", "        ") + ""
    "    addr = libc.shmat(shmid, None, 0)\n"
    "    if addr in (None, ctypes.c_void_p(-1).value):\n" + _RAISE.replace("    ", "        ") + ""
    "    ctypes.memset(addr, 7, size)\n"
    "    return 'hoarded'\n"
)
SHM_PRIVATE = (
    _LIBC + "def main():\n"
    "    ids = []\n"
    "    for _ in range(8):\n"
    "        shmid = libc.shmget(0, ctypes.c_size_t(64 * 1024 * 1024), 0o1000 | 0o666)\n"
    "        if shmid < 0:\n" + _RAISE.replace("    ", "            ") + ""
    "        ids.append(shmid)\n"
    "    return ids\n"
)
SEM_GET = (
    _LIBC + "def main():\n"
    "    if libc.semget(0x5EC12E9, 16, 0o1000 | 0o666) < 0:\n" + _RAISE.replace("    ", "        ")
)


@pytest.mark.parametrize(
    "source", [SHM_HOARD, SHM_PRIVATE, SEM_GET], ids=["shm_512mb", "shm_many", "semget"]
)
def test_sysv_ipc_is_refused(sandbox: ProcessSandbox, env: Env, source: str) -> None:
    before = _host_state(sandbox, env)
    result = _run(sandbox, env, source)
    _assert_kind(result, "denied")
    _assert_host_healthy(sandbox, env, before)


MSG_SEND = (
    _LIBC + "def main(secret):\n"
    f"    q = libc.msgget({MSG_KEY}, 0o1000 | 0o666)\n"
    "    if q < 0:\n" + _RAISE.replace("    ", "        ") + ""
    "    body = ctypes.create_string_buffer(8 + 64)\n"
    "    ctypes.memmove(body, (1).to_bytes(8, 'little') + secret.encode(), 8 + len(secret))\n"
    "    if libc.msgsnd(q, body, 64, 0) < 0:\n" + _RAISE.replace("    ", "        ") + ""
    "    return 'sent'\n"
)
MSG_RECEIVE = (
    _LIBC + "def main():\n"
    f"    q = libc.msgget({MSG_KEY}, 0)\n"
    "    if q < 0:\n" + _RAISE.replace("    ", "        ") + ""
    "    body = ctypes.create_string_buffer(8 + 64)\n"
    "    if libc.msgrcv(q, body, 64, 0, 0o4000) < 0:\n" + _RAISE.replace("    ", "        ") + ""
    "    return body.raw[8:].rstrip(b'\\0').decode()\n"
)
MQ_SEND = (
    _LIBC + "def main(secret):\n"
    f"    q = libc.mq_open({MQ_NAME!r}.encode(), 0o100 | 0o2, 0o600, None)\n"
    "    if q < 0:\n" + _RAISE.replace("    ", "        ") + ""
    "    if libc.mq_send(q, secret.encode(), len(secret), 0) < 0:\n"
    + _RAISE.replace("    ", "        ")
    + "    return 'sent'\n"
)
MQ_RECEIVE = (
    _LIBC + "def main():\n"
    f"    q = libc.mq_open({MQ_NAME!r}.encode(), 0o2 | 0o4000)\n"
    "    if q < 0:\n" + _RAISE.replace("    ", "        ") + ""
    "    buf = ctypes.create_string_buffer(1 << 16)\n"
    "    n = libc.mq_receive(q, buf, 1 << 16, None)\n"
    "    if n < 0:\n" + _RAISE.replace("    ", "        ") + ""
    "    return buf.raw[:n].decode()\n"
)


@pytest.fixture(autouse=True)
def _remove_leaked_sysv_objects() -> Iterator[None]:
    """Should an attack get through (say, against an older tier), leave the host clean."""
    before = _sysv_objects()
    yield
    libc = ctypes.CDLL(None, use_errno=True)
    ipc_rmid = 0
    remove = {"shm": libc.shmctl, "msg": libc.msgctl, "sem": libc.semctl}
    for kind, ids in _sysv_objects().items():
        for leaked in ids - before[kind]:
            if kind == "sem":
                remove[kind](int(leaked), 0, ipc_rmid)
            else:
                remove[kind](int(leaked), ipc_rmid, None)


@pytest.fixture
def no_host_queue() -> Iterator[None]:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mq_unlink(MQ_NAME.encode())
    yield
    assert libc.mq_unlink(MQ_NAME.encode()) != 0, "a POSIX message queue reached the host"


@pytest.mark.parametrize(
    ("send", "receive", "send_kind"),
    [(MSG_SEND, MSG_RECEIVE, "denied"), (MQ_SEND, MQ_RECEIVE, None)],
    ids=["sysv_msg", "posix_mq"],
)
def test_no_message_survives_the_call(
    sandbox: ProcessSandbox,
    env: Env,
    no_host_queue: None,
    send: str,
    receive: str,
    send_kind: str | None,
) -> None:
    secret = "carried-over-4b1e"
    before = _host_state(sandbox, env)
    sent = _run(sandbox, env, send, secret=secret)
    if send_kind is None:  # POSIX queues: the worker's own IPC namespace, if Landlock allows
        assert sent.ok or sent.error.kind == "denied", sent.error
    else:
        _assert_kind(sent, send_kind)
    received = _run(sandbox, env, receive)
    assert received.error is not None, f"the next call received {received.output!r}"
    assert received.error.kind in ("denied", "exception"), received.error
    assert secret not in repr(received.output) + received.error.message
    _assert_host_healthy(sandbox, env, before)


# ---------------------------------------------------------------------------------------
# tasks: raw clone threads, thread bombs with tiny stacks
# ---------------------------------------------------------------------------------------

RAW_CLONE = (
    _LIBC + "KEEP = []\n\n\ndef main(attempts):\n"
    "    flags = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000  # VM FS FILES SIGHAND THREAD SYSVSEM\n"
    "    slot = 16 * 1024\n"
    "    stacks = ctypes.create_string_buffer(slot * attempts)\n"
    "    KEEP.append(stacks)  # the threads run on it after main() returns\n"
    "    base = ctypes.addressof(stacks)\n"
    "    pause = ctypes.cast(libc.pause, ctypes.c_void_p)\n"
    "    libc.clone.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]\n"
    "    made = 0\n"
    "    for i in range(attempts):\n"
    "        top = (base + (i + 1) * slot - 64) & ~15\n"
    "        if libc.clone(pause, top, flags, None) < 0:\n"
    "            break\n"
    "        made += 1\n"
    "    return made\n"
)
THREAD_BOMB = (
    "import threading, time\n\n"
    "def main(attempts):\n"
    "    threading.stack_size(32 * 1024)\n"
    "    for _ in range(attempts):\n"
    "        threading.Thread(target=time.sleep, args=(600,), daemon=True).start()\n"
    "    return attempts\n"
)


def test_raw_clone_threads_are_capped(sandbox: ProcessSandbox, env: Env) -> None:
    before = _host_state(sandbox, env)
    result = _run(sandbox, env, RAW_CLONE, attempts=2000)
    assert result.ok, result.error  # clone fails with EAGAIN at the cap; the attack counts
    assert 0 <= result.output < MAX_WORKER_TASKS, f"{result.output} raw clone threads"
    _assert_host_healthy(sandbox, env, before)


def test_thread_bomb_with_tiny_stacks_is_capped(sandbox: ProcessSandbox, env: Env) -> None:
    before = _host_state(sandbox, env)
    # 200 stacks of 32 KB fit the memory limit many times over: only a task cap stops them.
    result = _run(sandbox, env, THREAD_BOMB, attempts=200)
    _assert_kind(result, "exception")
    assert "can't start new thread" in result.error.message
    _assert_host_healthy(sandbox, env, before)


# ---------------------------------------------------------------------------------------
# scratch: deeper than the recursion limit, larger than its quota
# ---------------------------------------------------------------------------------------

DEEP_TREE = (
    "import os\n\n"
    "def main(depth, files):\n"
    "    for i in range(depth):\n"
    "        os.mkdir('d')\n"
    "        if files:\n"
    "            with open('f', 'wb') as fh:\n"
    "                fh.write(b'x' * 1024)\n"
    "        os.symlink('/', 'root_link')  # a cleanup that follows links would wipe the host\n"
    "        os.chdir('d')\n"
    "    return depth\n"
)
FILL_SCRATCH = (
    "import os\n\n"
    "def main():\n"
    "    written, chunk = 0, b'x' * (1024 * 1024)\n"
    "    try:\n"
    "        for i in range(200):\n"
    "            with open(f'fill{i}', 'wb') as fh:\n"
    "                for _ in range(4):\n"
    "                    fh.write(chunk)\n"
    "                    fh.flush()\n"
    "                    written += len(chunk)\n"
    "    except OSError as exc:\n"
    "        return [written, exc.errno]\n"
    "    return [written, 0]\n"
)


@pytest.mark.parametrize("files", [False, True], ids=["folders", "folders_and_files"])
def test_scratch_tree_deeper_than_the_recursion_limit(
    sandbox: ProcessSandbox, env: Env, files: bool
) -> None:
    before = _host_state(sandbox, env)
    result = _run(sandbox, env, DEEP_TREE, depth=1100, files=files)  # run() must not raise
    assert result.ok and result.output == 1100, result.error
    _assert_host_healthy(sandbox, env, before)


def test_scratch_has_a_quota(sandbox: ProcessSandbox, env: Env) -> None:
    import errno

    before = _host_state(sandbox, env)
    result = _run(sandbox, env, FILL_SCRATCH)
    assert result.ok, result.error
    written, code = result.output
    assert code == errno.ENOSPC, result.output
    # The quota is whole megabytes of file data; allow for the tmpfs's own bookkeeping.
    assert written <= max(16 * 1024 * 1024, 4 * LIMITS.max_file_bytes), written
    _assert_host_healthy(sandbox, env, before)


# ---------------------------------------------------------------------------------------
# forged frames: the capability writes raw frames on the worker's socket
# ---------------------------------------------------------------------------------------

FORGE = (
    "import os, stat, struct\n\n"
    "def main(kind, payload):\n"
    "    for fd in range(3, 64):\n"
    "        try:\n"
    "            if stat.S_ISSOCK(os.fstat(fd).st_mode):\n"
    "                data = payload.encode('latin-1')\n"
    "                os.write(fd, struct.pack('>cI', kind.encode(), len(data)) + data)\n"
    "                os._exit(0)\n"
    "        except OSError:\n"
    "            pass\n"
    "    return 'no socket found'\n"
)
FORGED_FRAMES = {
    "result_infinity": ("R", "Infinity"),
    "result_nan_in_list": ("R", "[1, NaN]"),
    "result_overflowing_number": ("R", '{"x": 1e999}'),
    "result_not_utf8": ("R", '"\xff\xfe"'),
    "failure_fake_memory": ("E", json.dumps({"kind": "memory", "message": "fake"})),
    "failure_fake_timeout": ("E", json.dumps({"kind": "timeout", "message": "fake"})),
    "failure_fake_crash": ("E", json.dumps({"kind": "crash", "message": "fake"})),
    "failure_unknown_kind": ("E", json.dumps({"kind": "pwned", "message": "fake"})),
    "failure_message_not_text": ("E", json.dumps({"kind": "exception", "message": [1, 2]})),
    "failure_infinity": ("E", '{"kind": "exception", "message": "x", "traceback": Infinity}'),
    "setup_failure_after_start": ("S", json.dumps({"message": "fake setup failure"})),
    "unknown_frame": ("Z", "{}"),
}


@pytest.mark.parametrize("name", sorted(FORGED_FRAMES))
def test_forged_frames_are_invalid_output(sandbox: ProcessSandbox, env: Env, name: str) -> None:
    kind, payload = FORGED_FRAMES[name]
    before = _host_state(sandbox, env)
    result = _run(sandbox, env, FORGE, kind=kind, payload=payload)
    _assert_kind(result, "invalid_output")
    _assert_host_healthy(sandbox, env, before)


def test_honest_results_still_pass_the_strict_check(sandbox: ProcessSandbox, env: Env) -> None:
    source = "def main():\n    return {'big': 1e308, 'small': -1e-308, 'text': 'Infinity'}\n"
    result = _run(sandbox, env, source)
    assert result.ok and result.output == {"big": 1e308, "small": -1e-308, "text": "Infinity"}
    memory = _run(sandbox, env, "def main():\n    return len(bytearray(1024 ** 3))\n")
    _assert_kind(memory, "memory")  # a real MemoryError is still reported as such
    assert memory.error.traceback and "bytearray" in memory.error.traceback
