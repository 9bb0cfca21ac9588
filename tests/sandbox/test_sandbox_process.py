"""The process tier (real workers, real kernel features), the inprocess tier and the factory."""

from __future__ import annotations

import glob
import json
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from symbiont.errors import CapabilityError, SandboxError
from symbiont.sandbox import Limits, Permissions, get_sandbox
from symbiont.sandbox._seccomp import build_filter
from symbiont.sandbox.inprocess import InProcessSandbox
from symbiont.sandbox.process import ProcessSandbox, remove_tree, strict_json

ADD = "def main(a, b):\n    return a + b\n"


@pytest.fixture(scope="module")
def sb() -> Iterator[ProcessSandbox]:
    sandbox = ProcessSandbox()
    yield sandbox
    sandbox.close()


def test_probe_reports_full_isolation_on_this_machine(sb: ProcessSandbox) -> None:
    info = sb.probe()
    assert info["missing"] == {}, info["missing"]
    assert info["landlock_abi"] >= 1
    assert all(not p.startswith("/etc") and p != "/" for p in info["read_only"])
    assert info["protections"] and all(why is None for why in info["protections"].values())
    assert info["scratch"] == "tmpfs"


def test_worker_identity_and_namespaces(sb: ProcessSandbox) -> None:
    source = (
        "import os, resource, socket\n"
        "def main():\n"
        "    return {'ids': [os.getuid(), os.geteuid(), os.getgid(), os.getegid()],\n"
        "            'groups': os.getgroups(), 'pid': os.getpid(),\n"
        "            'host': socket.gethostname(),\n"
        "            'nproc': resource.getrlimit(resource.RLIMIT_NPROC)[0]}\n"
    )
    result = sb.run(source, "main", "{}")
    assert result.ok, result.error
    out = result.output
    if os.geteuid() == 0:
        assert 0 not in out["ids"] and len(set(out["ids"])) == 1  # one unprivileged id
        assert 0 < out["nproc"] <= 64
    assert out["groups"] == []
    assert out["pid"] != os.getpid() and out["pid"] < 100  # numbered in its own namespace
    assert out["host"] != socket.gethostname()


def test_strict_json_refuses_what_json_module_accepts() -> None:
    for text in ("Infinity", "-Infinity", "NaN", "[1e999]", '{"a": -1e400}'):
        json.loads(text)  # the standard library takes these...
        with pytest.raises(ValueError):
            strict_json(text)  # ...the boundary does not
    assert strict_json('{"a": [1.5, -2e-300, "NaN"]}') == {"a": [1.5, -2e-300, "NaN"]}


def _deep_tree(root: Path, depth: int, outside: Path) -> None:
    """`depth` nested folders (deeper than PATH_MAX allows by name), each with a file and
    a symlink to `outside`."""
    root.mkdir()
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir("d", dir_fd=fd)
        os.close(os.open("f", os.O_CREAT | os.O_WRONLY, 0o600, dir_fd=fd))
        os.symlink(str(outside), "link", dir_fd=fd)
        child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
    os.close(fd)


def test_remove_tree_goes_deeper_than_recursion_and_path_limits(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    scratch = tmp_path / "scratch"
    _deep_tree(scratch, 1100, outside)
    remove_tree(str(scratch))  # must not raise (RecursionError, ENAMETOOLONG, ...)
    assert not scratch.exists()
    assert (outside / "keep.txt").read_text() == "keep"  # links removed, never followed
    remove_tree(str(tmp_path / "missing"))  # nothing there: still no error


def test_host_folder_scratch_when_there_is_no_mount_namespace() -> None:
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "symbiont-scratch-*")))
    with ProcessSandbox(allow_weaker_isolation=True, _without=("mount namespace",)) as weak:
        info = weak.probe()
        assert set(info["missing"]) >= {"mount namespace", "scratch quota"}
        assert "mount namespace" in weak.run(ADD, "main", '{"a": 1, "b": 2}').tier
        deep = (
            "import os\n"
            "def main(depth):\n"
            "    for _ in range(depth):\n"
            "        os.mkdir('d')\n"
            "        os.chdir('d')\n"
            "    return depth\n"
        )
        result = weak.run(deep, "main", '{"depth": 1100}')
        assert result.ok and result.output == 1100, result.error
        hidden = weak.run(
            "import os\ndef main():\n    return os.path.exists('/etc')\n", "main", "{}"
        )
        assert hidden.ok and hidden.output is True  # Landlock still stops reading it, though
    after = set(glob.glob(os.path.join(tempfile.gettempdir(), "symbiont-scratch-*")))
    assert after <= before


def test_runs_and_returns_json(sb: ProcessSandbox) -> None:
    result = sb.run(ADD, "main", '{"a": 2, "b": 3}')
    assert result.ok and result.output == 5 and result.tier == "process"
    assert sb.run(ADD, "main", "[1, 2]").output == 3


def test_host_calls_are_brokered_by_the_parent(sb: ProcessSandbox, tmp_path: Path) -> None:
    source = (
        "from symbiont.host import read_file, write_file, log, now_ms\n"
        "def main():\n"
        "    write_file('out.txt', read_file('in.txt').upper())\n"
        "    log('done')\n"
        "    return now_ms() > 0\n"
    )
    (tmp_path / "in.txt").write_text("abc")
    perms = Permissions(data_dir=tmp_path, read_files=True, write_files=True)
    result = sb.run(source, "main", "{}", perms)
    assert result.ok and result.output is True, result.error
    assert (tmp_path / "out.txt").read_text() == "ABC"
    assert result.logs == ["done"]
    assert [c.name for c in result.host_calls] == ["read_file", "write_file", "log", "now_ms"]


def test_worker_sees_no_environment_and_works_in_a_fresh_scratch(sb: ProcessSandbox) -> None:
    os.environ["SYMBIONT_PROCESS_TEST_KEY"] = "sk-nope"
    try:
        source = (
            "import os\n"
            "def main():\n"
            "    open('note', 'w').write('x')\n"
            "    return [dict(os.environ), os.getcwd(), sorted(os.listdir('.'))]\n"
        )
        first = sb.run(source, "main", "{}")
        second = sb.run(source, "main", "{}")
    finally:
        del os.environ["SYMBIONT_PROCESS_TEST_KEY"]
    assert first.output[0] == {} and first.output[2] == ["note"]
    assert second.output[2] == ["note"]  # the first call's file is gone: a fresh scratch
    assert first.output[1] == second.output[1] == "/scratch"  # a tmpfs in its own mount ns
    assert not os.path.exists("/scratch")  # which the host never sees


def test_failures_have_kinds_and_trimmed_tracebacks(sb: ProcessSandbox) -> None:
    result = sb.run("def main():\n    return 1 / 0\n", "main", "{}")
    assert result.error is not None and result.error.kind == "exception"
    assert "ZeroDivisionError" in result.error.message
    assert result.error.traceback and "process_runner" not in result.error.traceback
    assert 'File "<capability>", line 2' in result.error.traceback
    missing = sb.run("def other():\n    pass\n", "main", "{}")
    assert missing.error is not None and "main" in missing.error.message
    unavailable = sb.run("import no_such_module_xyz\ndef main():\n    pass\n", "main", "{}")
    assert unavailable.error is not None and unavailable.error.kind == "unavailable"


def test_timeout_memory_crash(sb: ProcessSandbox) -> None:
    loop = sb.run(
        "def main():\n    while True:\n        pass\n", "main", "{}", limits=Limits(timeout_s=0.5)
    )
    assert loop.error is not None and loop.error.kind == "timeout"
    assert loop.duration_s < 3
    mem = sb.run("def main():\n    return len(bytearray(2 * 1024**3))\n", "main", "{}")
    assert mem.error is not None and mem.error.kind == "memory"
    crash = sb.run(
        "import os, signal\ndef main():\n    os.kill(os.getpid(), signal.SIGSEGV)\n", "main", "{}"
    )
    assert crash.error is not None and crash.error.kind == "crash"
    assert "segmentation" in crash.error.message
    assert sb.run(ADD, "main", '{"a": 1, "b": 1}').output == 2  # still healthy


# A worker confined ahead of the next call (the zygote's spare) must be indistinguishable,
# from inside, from one forked for the call, and must never serve a call with other limits.
CONFINEMENT = (
    "import ctypes, os, socket\n"
    "def main(size):\n"
    "    libc = ctypes.CDLL(None, use_errno=True)\n"
    "    try:\n"
    "        socket.socket()\n"
    "        sock = 'allowed'\n"
    "    except PermissionError:\n"
    "        sock = 'denied'\n"
    "    listing = sorted(os.listdir('.'))\n"
    "    try:\n"
    "        with open('big', 'wb') as fh:\n"
    "            fh.write(b'x' * size)\n"
    "        wrote = 'ok'\n"
    "    except OSError as exc:\n"
    "        wrote = exc.errno\n"
    "    return {'uid': os.getuid(), 'seccomp': libc.prctl(21, 0, 0, 0, 0), 'socket': sock,\n"
    "            'scratch': listing, 'env': dict(os.environ), 'proc': os.path.exists('/proc'),\n"
    "            'wrote': wrote}\n"
)


def _confinement(sb: ProcessSandbox, limits: Limits) -> dict[str, object]:
    result = sb.run(CONFINEMENT, "main", json.dumps({"size": 2 * 1024 * 1024}), limits=limits)
    assert result.ok, result.error
    return result.output


def test_a_spare_worker_is_confined_like_a_fresh_one_and_keeps_to_its_limits() -> None:
    import errno

    roomy, tight = Limits(max_file_bytes=8 << 20), Limits(max_file_bytes=1 << 20)
    with ProcessSandbox(preload=()) as one:
        fresh = _confinement(one, roomy)  # the first call of these limits: a forked worker
        assert one.probe()["spare"] is None
        again = _confinement(one, roomy)  # the same limits twice: a spare is confined ahead
        assert one.probe()["spare"] is not None, "no worker was confined ahead"
        spared = _confinement(one, roomy)  # served by the spare
        tight_first = _confinement(one, tight)  # other limits: the spare must not serve it
        _confinement(one, tight)
        tight_spared = _confinement(one, tight)
        roomy_again = _confinement(one, roomy)
    for seen in (fresh, again, spared, tight_first, tight_spared, roomy_again):
        if os.geteuid() == 0:
            assert seen["uid"] != 0
        assert seen["seccomp"] == 2 and seen["socket"] == "denied"
        assert seen["scratch"] == [] and seen["env"] == {} and seen["proc"] is False
    assert fresh["wrote"] == spared["wrote"] == roomy_again["wrote"] == "ok"
    assert tight_first["wrote"] == tight_spared["wrote"] == errno.EFBIG


def test_a_worker_that_cannot_confine_itself_says_so_and_runs_nothing() -> None:
    """Limits the kernel refuses (a negative memory limit: tmpfs and setrlimit reject it)
    make confinement fail: every call, whether its worker was forked for it or confined
    ahead as the spare, ends as a setup failure; the capability never runs."""
    bad = Limits(memory_bytes=-1)
    with ProcessSandbox(preload=()) as one:
        results = [one.run(ADD, "main", '{"a": 1, "b": 2}', limits=bad) for _ in range(4)]
        assert one.run(ADD, "main", '{"a": 1, "b": 2}').output == 3  # still healthy
    for result in results:
        assert result.error is not None and result.error.kind == "crash", result
        assert "setup failed" in result.error.message and result.output is None


def test_more_callers_than_worker_slots_share_one_zygote_and_its_spare() -> None:
    """12 threads, 8 worker slots, one of them often the spare's: every call answers with
    its own result and the zygote never refuses one (slots of workers that exited are
    reaped before a request would be turned away)."""
    import threading

    source = "import time\ndef main(t):\n    time.sleep(t)\n    return t\n"
    results: list[tuple[float, object]] = []
    with ProcessSandbox(preload=()) as one:

        def caller(i: int) -> None:
            for j in range(6):
                t = ((i * 7 + j) % 5) * 0.01
                result = one.run(source, "main", json.dumps({"t": t}))
                results.append((t, result.output if result.ok else result.error))

        threads = [threading.Thread(target=caller, args=(i,)) for i in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not any(z.broken for z in one._all)
    assert len(results) == 72
    assert all(output == t for t, output in results), [r for r in results if r[0] != r[1]][:3]


def test_without_a_spare_worker_every_call_forks_its_own() -> None:
    with ProcessSandbox(preload=(), _without=("spare worker",)) as one:
        outputs = [one.run(ADD, "main", '{"a": 1, "b": 2}').output for _ in range(3)]
        assert one.probe()["spare"] is None
    assert outputs == [3, 3, 3]


def test_bad_input_json_is_a_capability_error(sb: ProcessSandbox) -> None:
    with pytest.raises(CapabilityError, match="not valid JSON"):
        sb.run(ADD, "main", "{nope")


def test_seccomp_filter_shape() -> None:
    prog = build_filter(1234, "x86_64")
    assert len(prog) % 8 == 0 and len(prog) // 8 < 4096
    assert build_filter(1234, "aarch64") != prog


def test_no_scratch_folders_leak(sb: ProcessSandbox) -> None:
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "symbiont-scratch-*")))
    for _ in range(3):
        sb.run(ADD, "main", '{"a": 1, "b": 2}')
    sb.run(
        "def main():\n    while True:\n        pass\n", "main", "{}", limits=Limits(timeout_s=0.3)
    )
    after = set(glob.glob(os.path.join(tempfile.gettempdir(), "symbiont-scratch-*")))
    assert after <= before


def test_pool_of_two_serves_parallel_calls() -> None:
    import threading

    with ProcessSandbox(pool_size=2, preload=()) as pool:
        results = []

        def go() -> None:
            results.append(
                pool.run(
                    "import time\ndef main():\n    time.sleep(0.3)\n    return 1\n", "main", "{}"
                )
            )

        threads = [threading.Thread(target=go) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [r.output for r in results] == [1, 1]


# -- inprocess and the factory ---------------------------------------------------------------


def test_inprocess_tier_says_it_has_no_isolation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = get_sandbox("inprocess")
    assert isinstance(sandbox, InProcessSandbox)
    (tmp_path / "x.txt").write_text("hi")
    source = "from symbiont.host import read_file\ndef main(p):\n    return read_file(p)\n"
    perms = Permissions(data_dir=tmp_path, read_files=True)
    with caplog.at_level("INFO", logger="symbiont.sandbox"):
        result = sandbox.run(source, "main", '{"p": "x.txt"}', perms)
        denied = sandbox.run(source, "main", '{"p": "../x.txt"}', perms)
    assert result.output == "hi" and result.tier == "inprocess (no isolation)"
    assert denied.error is not None and denied.error.kind == "denied"
    assert caplog.records and all(
        "inprocess (no isolation)" in r.getMessage() for r in caplog.records
    )


def test_factory() -> None:
    with pytest.raises(SandboxError, match="unknown sandbox tier"):
        get_sandbox("docker")
    process = get_sandbox("process", pool_size=1)
    assert isinstance(process, ProcessSandbox)
    process.close()
    with pytest.raises(SandboxError):
        get_sandbox("inprocess", pool_size=3)


def test_a_missing_protection_is_refused_by_name() -> None:
    strict = ProcessSandbox(_without=("mount namespace",))
    with pytest.raises(SandboxError, match="mount namespace"):
        strict.run(ADD, "main", '{"a": 1, "b": 2}')
    strict.close()


def test_doctor_reports_every_protection(capsys: pytest.CaptureFixture[str]) -> None:
    from symbiont.cli import main
    from symbiont.cli.doctor import PROCESS_PROTECTIONS, _process_lines

    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["process"]["protections"]) == set(PROCESS_PROTECTIONS)
    assert report["trial"] and report["machine"]["kernel"]
    assert main(["doctor"]) == 0
    text = capsys.readouterr().out
    assert "✗" not in text and text.count("✓") >= len(PROCESS_PROTECTIONS)
    lines, missing = _process_lines(
        {"protections": {"IPC namespace": None, "seccomp": "no filter here"}, "uid": 7}
    )
    assert missing == 1 and any("MISSING: no filter here" in line for line in lines)


def test_a_slow_host_function_does_not_hold_up_another_call() -> None:
    """One zygote (pool_size=1): a call blocked in http_get on a stalling server must not
    keep a second call from running; the second one finishes while the first still waits."""
    import http.server
    import threading

    reached, release = threading.Event(), threading.Event()

    class Stall(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            reached.set()
            release.wait(30)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stall)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    perms = Permissions(http_allow=("127.0.0.1",), allow_private_network=True)
    slow_source = "from symbiont.host import http_get\ndef main(url):\n    return http_get(url)\n"
    results: list[object] = []
    with ProcessSandbox(pool_size=1, preload=()) as one:
        assert one.run(ADD, "main", '{"a": 1, "b": 1}').output == 2  # the zygote is up
        slow = threading.Thread(
            target=lambda: results.append(
                one.run(
                    slow_source,
                    "main",
                    json.dumps({"url": f"http://127.0.0.1:{port}/"}),
                    perms,
                    Limits(timeout_s=60),
                )
            )
        )
        slow.start()
        try:
            assert reached.wait(30), "the slow call never reached the server"
            quick = one.run(ADD, "main", '{"a": 40, "b": 2}')
            still_waiting = slow.is_alive()
        finally:
            release.set()
            slow.join(60)
            server.shutdown()
            server.server_close()
    assert quick.ok and quick.output == 42, quick.error
    assert still_waiting, "the second call ran only after the slow one had finished"
    assert len(results) == 1
