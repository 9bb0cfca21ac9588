"""The hostile programs of the attack suite, each with the error kind expected per tier.

Each attack is a capability (source + entry + input + permissions) that tries to escape.
`expect` maps a tier to the error kind that proves containment; where a tier simply lacks the
facility (no `os.fork`, no `ctypes` in WebAssembly) the kind differs and says so. The input
carries the paths and ports of the test environment (see `Env`), so sources stay literal.
`docs/security.md` renders this list as a table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from symbiont.sandbox.base import Limits

# Tight limits keep the suite fast; the capability cannot tell.
LIMITS = Limits(
    timeout_s=1.5,
    memory_bytes=256 * 1024 * 1024,
    max_output_bytes=64 * 1024,
    max_log_bytes=16 * 1024,
    max_file_bytes=64 * 1024,
    max_http_bytes=64 * 1024,
    http_timeout_s=2.0,
)


@dataclass(frozen=True)
class Attack:
    name: str
    what: str  # one line for the table
    source: str
    expect: dict[str, str]  # tier -> error kind
    protection: dict[str, str]  # tier -> what stops it
    perms: str = "files"  # "none" | "files" | "http" | "http_private" | "read_only"
    input_keys: tuple[str, ...] = ()  # keys of Env.inputs() passed to main(**input)
    limits: Limits = LIMITS
    outside_writes: tuple[str, ...] = field(default_factory=tuple)


def both(kind: str) -> dict[str, str]:
    return {"wasm": kind, "process": kind}


HOST = "host functions (host-side checks)"
WASM_FS = "no filesystem preopened in the WebAssembly instance"
WASM_NOFN = "the function does not exist in CPython on WASI"
LANDLOCK = "Landlock (read-only Python + read-write scratch only)"
SECCOMP = "seccomp filter (EPERM)"
MOUNT_NS = "mount namespace: the path does not exist for the worker (Landlock behind it)"

ATTACKS: list[Attack] = [
    Attack(
        "read_etc_passwd_open",
        "read /etc/passwd with open()",
        "def main():\n    return open('/etc/passwd').read()\n",
        both("exception"),
        {"wasm": WASM_FS, "process": MOUNT_NS},
    ),
    Attack(
        "read_etc_passwd_host",
        "read /etc/passwd with read_file()",
        "from symbiont.host import read_file\n\ndef main():\n    return read_file('/etc/passwd')\n",
        both("denied"),
        both(HOST + ": absolute path"),
    ),
    Attack(
        "env_api_key",
        "read an API key from os.environ",
        "import os\n\ndef main():\n    return os.environ['SYMBIONT_TEST_SECRET']\n",
        both("exception"),
        {"wasm": "the instance gets no environment", "process": "environment cleared"},
    ),
    Attack(
        "env_parent_proc",
        "read the parent's /proc/<pid>/environ",
        "import os\n\ndef main():\n"
        "    pid = os.getppid() if hasattr(os, 'getppid') else 1\n"
        "    return open(f'/proc/{pid}/environ', 'rb').read().decode('latin-1')\n",
        both("exception"),
        {"wasm": WASM_FS, "process": MOUNT_NS + ": no /proc"},
    ),
    Attack(
        "write_outside_open",
        "write a file outside the data folder with open()",
        "def main(outside):\n    open(outside + '/pwned.txt', 'w').write('pwned')\n    return 'written'\n",
        both("exception"),
        {"wasm": WASM_FS, "process": MOUNT_NS},
        input_keys=("outside",),
    ),
    Attack(
        "write_tmp_open",
        "write /tmp/symbiont_pwned with open()",
        "def main():\n    open('/tmp/symbiont_pwned', 'w').write('pwned')\n    return 'written'\n",
        both("exception"),
        {"wasm": WASM_FS, "process": MOUNT_NS},
    ),
    Attack(
        "write_outside_host",
        "write_file() to an absolute path outside",
        "from symbiont.host import write_file\n\n"
        "def main(outside):\n    write_file(outside + '/pwned.txt', 'pwned')\n    return 'written'\n",
        both("denied"),
        both(HOST + ": absolute path"),
        input_keys=("outside",),
    ),
    Attack(
        "dotdot_read",
        "read_file('../other/secret.txt') traversal",
        "from symbiont.host import read_file\n\n"
        "def main():\n    return read_file('../other_capability/secret.txt')\n",
        both("denied"),
        both(HOST + ": '..' refused"),
    ),
    Attack(
        "dotdot_write",
        "write_file('sub/../../outside/x') traversal",
        "from symbiont.host import write_file\n\n"
        "def main():\n    write_file('sub/../../outside/pwned.txt', 'pwned')\n    return 'written'\n",
        both("denied"),
        both(HOST + ": '..' refused"),
    ),
    Attack(
        "symlink_escape_read",
        "read through a symlink planted in the data folder",
        "from symbiont.host import read_file\n\ndef main():\n    return read_file('escape')\n",
        both("denied"),
        both(HOST + ": realpath containment + O_NOFOLLOW"),
    ),
    Attack(
        "symlink_dir_escape_write",
        "write through a planted directory symlink",
        "from symbiont.host import write_file\n\n"
        "def main():\n    write_file('escape_dir/pwned.txt', 'pwned')\n    return 'written'\n",
        both("denied"),
        both(HOST + ": realpath containment + O_NOFOLLOW"),
    ),
    Attack(
        "other_capability_open",
        "open() another capability's data file",
        "def main(other):\n    return open(other + '/secret.txt').read()\n",
        both("exception"),
        {"wasm": WASM_FS, "process": MOUNT_NS},
        input_keys=("other",),
    ),
    Attack(
        "other_capability_host",
        "read_file() another capability's data file",
        "from symbiont.host import read_file\n\n"
        "def main(other):\n    return read_file(other + '/secret.txt')\n",
        both("denied"),
        both(HOST + ": absolute path"),
        input_keys=("other",),
    ),
    Attack(
        "socket_connect",
        "open a TCP socket to the host's loopback server",
        "import socket\n\ndef main(port):\n"
        "    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
        "    s.connect(('127.0.0.1', port))\n    return 'connected'\n",
        {"wasm": "unavailable", "process": "denied"},
        {"wasm": "no socket module in the wasm build", "process": SECCOMP + " + netns"},
        input_keys=("port",),
    ),
    Attack(
        "http_loopback",
        "http_get to 127.0.0.1 (allowlisted name, private address)",
        "from symbiont.host import http_get\n\n"
        "def main(port):\n    return http_get(f'http://127.0.0.1:{port}/ok')\n",
        both("denied"),
        both(HOST + ": private address refused"),
        perms="http",
        input_keys=("port",),
    ),
    Attack(
        "http_metadata",
        "http_get to 169.254.169.254 (cloud metadata)",
        "from symbiont.host import http_get\n\n"
        "def main():\n    return http_get('http://169.254.169.254/latest/meta-data/')\n",
        both("denied"),
        both(HOST + ": link-local refused"),
        perms="http",
    ),
    Attack(
        "http_not_allowlisted",
        "http_get to a host not on the allowlist",
        "from symbiont.host import http_get\n\n"
        "def main():\n    return http_get('https://example.com/')\n",
        both("denied"),
        both(HOST + ": allowlist"),
        perms="http",
    ),
    Attack(
        "http_name_to_loopback",
        "http_get to a name that resolves to loopback (localhost)",
        "from symbiont.host import http_get\n\n"
        "def main(port):\n    return http_get(f'http://localhost:{port}/ok')\n",
        both("denied"),
        both(HOST + ": resolved address checked, then connected to"),
        perms="http",
        input_keys=("port",),
    ),
    Attack(
        "http_redirect_denied_host",
        "allowed server redirects to 169.254.169.254",
        "from symbiont.host import http_get\n\n"
        "def main(port):\n    return http_get(f'http://127.0.0.1:{port}/redirect-metadata')\n",
        both("denied"),
        both(HOST + ": each redirect re-checked"),
        perms="http_private",
        input_keys=("port",),
    ),
    Attack(
        "http_redirect_file_scheme",
        "allowed server redirects to file:///etc/passwd",
        "from symbiont.host import http_get\n\n"
        "def main(port):\n    return http_get(f'http://127.0.0.1:{port}/redirect-file')\n",
        both("denied"),
        both(HOST + ": http/https only"),
        perms="http_private",
        input_keys=("port",),
    ),
    Attack(
        "subprocess_run",
        "subprocess.run(['cat', '/etc/passwd'])",
        "import subprocess\n\ndef main():\n"
        "    return subprocess.run(['cat', '/etc/passwd'], capture_output=True).stdout.decode()\n",
        {"wasm": "unavailable", "process": "denied"},
        {
            "wasm": "no subprocess module in the wasm build",
            "process": SECCOMP + ": no fork/clone/execve",
        },
    ),
    Attack(
        "os_system",
        "os.system('cat /etc/passwd > /tmp/symbiont_pwned')",
        "import os\n\ndef main():\n"
        "    rc = os.system('cat /etc/passwd > /tmp/symbiont_pwned')\n"
        "    if rc != 0:\n        raise PermissionError(f'os.system failed: {rc}')\n    return rc\n",
        {"wasm": "exception", "process": "denied"},
        {"wasm": WASM_NOFN, "process": SECCOMP + ": no fork/clone/execve"},
    ),
    Attack(
        "os_exec",
        "os.execv('/bin/sh', ...)",
        "import os\n\ndef main():\n    os.execv('/bin/sh', ['sh', '-c', 'id'])\n",
        {"wasm": "exception", "process": "denied"},
        {"wasm": WASM_NOFN, "process": SECCOMP + ": execve"},
    ),
    Attack(
        "ctypes_execve",
        "ctypes: call libc execve directly",
        "import ctypes, os\n\ndef main():\n"
        "    libc = ctypes.CDLL(None, use_errno=True)\n"
        "    argv = (ctypes.c_char_p * 2)(b'/bin/sh', None)\n"
        "    libc.execve(b'/bin/sh', argv, None)\n"
        "    err = ctypes.get_errno()\n    raise OSError(err, os.strerror(err))\n",
        {"wasm": "unavailable", "process": "denied"},
        {"wasm": "no ctypes in the wasm build", "process": SECCOMP + ": execve"},
    ),
    Attack(
        "ctypes_segfault",
        "ctypes: dereference NULL",
        "import ctypes\n\ndef main():\n    return ctypes.c_char.from_address(8).value.decode('latin-1')\n",
        {"wasm": "unavailable", "process": "crash"},
        {
            "wasm": "no ctypes in the wasm build",
            "process": "separate worker; parent sees the signal",
        },
    ),
    Attack(
        "fork_bomb",
        "while True: os.fork()",
        "import os\n\ndef main():\n    while True:\n        os.fork()\n",
        {"wasm": "exception", "process": "denied"},
        {"wasm": WASM_NOFN, "process": SECCOMP + ": fork/clone without CLONE_THREAD"},
    ),
    Attack(
        "thread_bomb",
        "start 10 000 sleeping threads",
        "import threading, time\n\ndef main():\n"
        "    for _ in range(10000):\n"
        "        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
        "    return 'started'\n",
        both("exception"),
        {
            "wasm": "no threads in the instance",
            "process": "RLIMIT_NPROC task cap under the dedicated uid (RLIMIT_AS behind it)",
        },
    ),
    Attack(
        "memory_bomb",
        "allocate 1 GB at once (limit 256 MB)",
        "def main():\n    data = bytearray(1024**3)\n    return len(data)\n",
        both("memory"),
        {"wasm": "Store memory limit", "process": "RLIMIT_AS"},
    ),
    Attack(
        "memory_bomb_gradual",
        "grow a list by 8 MB chunks forever",
        "def main():\n    hoard = []\n    while True:\n        hoard.append(bytearray(8 * 1024**2))\n",
        both("memory"),
        {"wasm": "Store memory limit", "process": "RLIMIT_AS"},
    ),
    Attack(
        "infinite_loop",
        "while True: pass",
        "def main():\n    while True:\n        pass\n",
        both("timeout"),
        {"wasm": "epoch deadline", "process": "wall-clock SIGKILL by the parent"},
    ),
    Attack(
        "deep_recursion",
        "unbounded Python recursion",
        "def f(n):\n    return f(n + 1) + 1\n\ndef main():\n    return f(0)\n",
        both("exception"),
        both("interpreter recursion limit"),
    ),
    Attack(
        "c_stack_overflow",
        "recursion limit lifted, C-level recursion (json.loads('[' * 10**6))",
        "import json, sys\n\ndef main():\n    sys.setrecursionlimit(10**8)\n"
        "    return json.loads('[' * 10**6 + ']' * 10**6)\n",
        both("crash"),
        {
            "wasm": "stack exhaustion traps the instance",
            "process": "separate worker; SIGSEGV seen by the parent",
        },
    ),
    Attack(
        "huge_output",
        "return a 2 MB string (limit 64 KB)",
        "def main():\n    return 'x' * (2 * 1024 * 1024)\n",
        both("output_too_large"),
        both("output size cap"),
    ),
    Attack(
        "huge_log",
        "log 100 MB through log()",
        "from symbiont.host import log\n\ndef main():\n"
        "    for _ in range(100_000):\n        log('x' * 1000)\n    return 'done'\n",
        both("output_too_large"),
        both(HOST + ": log cap"),
    ),
    Attack(
        "file_too_large_host",
        "write_file() of 1 MB (limit 64 KB)",
        "from symbiont.host import write_file\n\n"
        "def main():\n    write_file('big.txt', 'x' * (1024 * 1024))\n    return 'written'\n",
        both("exception"),
        both(HOST + ": size limit (HostError too_large)"),
    ),
    Attack(
        "file_too_large_direct",
        "write 10 MB to a local file with open()",
        "def main():\n    with open('big.bin', 'wb') as fh:\n"
        "        fh.write(b'x' * (10 * 1024 * 1024))\n    return 'written'\n",
        both("exception"),
        {"wasm": WASM_FS, "process": "RLIMIT_FSIZE (EFBIG) in the scratch folder"},
    ),
    Attack(
        "signal_tamper_loop",
        "ignore SIGALRM/SIGXCPU/SIGTERM, then loop",
        "try:\n    import signal\nexcept ImportError:\n    signal = None\n\n\ndef main():\n"
        "    for name in ('SIGALRM', 'SIGXCPU', 'SIGTERM', 'SIGINT'):\n"
        "        if signal is not None and hasattr(signal, name):\n"
        "            try:\n"
        "                signal.signal(getattr(signal, name), signal.SIG_IGN)\n"
        "            except (OSError, ValueError):\n"
        "                pass\n"
        "    while True:\n        pass\n",
        both("timeout"),
        {"wasm": "epoch deadline", "process": "SIGKILL cannot be ignored"},
    ),
    Attack(
        "kill_parent",
        "os.kill(os.getppid(), SIGKILL)",
        "import os\n\ndef main():\n    os.kill(os.getppid(), 9)  # SIGKILL\n    return 'killed'\n",
        {"wasm": "exception", "process": "denied"},
        {"wasm": WASM_NOFN, "process": SECCOMP + ": signals only to itself; Landlock signal scope"},
    ),
    Attack(
        "kill_everything",
        "os.kill(-1, SIGKILL) (every process the user owns)",
        "import os\n\ndef main():\n    os.kill(-1, 9)  # SIGKILL\n    return 'killed'\n",
        {"wasm": "exception", "process": "denied"},
        {"wasm": WASM_NOFN, "process": SECCOMP + ": signals only to itself"},
    ),
    Attack(
        "monkeypatch_host",
        "patch symbiont.host / HostFunctions to skip checks, then read ../",
        "import symbiont.host as h\n\ndef main():\n"
        "    try:\n"
        "        import symbiont.sandbox.hostfns as hf\n"
        "        hf.HostFunctions._parts = staticmethod(lambda path, allow_root: path.split('/'))\n"
        "        hf.HostFunctions._contained = staticmethod(lambda root, parts: parts)\n"
        "        hf.address_is_public = lambda addr: True\n"
        "    except ImportError:\n"
        "        pass\n"
        "    h.address_is_public = lambda addr: True\n"
        "    return h.read_file('../other_capability/secret.txt')\n",
        both("denied"),
        both(HOST + ": checks run in the host process, not in the capability"),
    ),
    Attack(
        "non_json_object",
        "return object()",
        "def main():\n    return object()\n",
        both("invalid_output"),
        both("JSON-only boundary"),
    ),
    Attack(
        "non_json_nan",
        "return float('nan')",
        "def main():\n    return float('nan')\n",
        both("invalid_output"),
        both("strict JSON (allow_nan=False)"),
    ),
    Attack(
        "exit_without_result",
        "os._exit(0) before returning",
        "import os\n\ndef main():\n    os._exit(0)\n",
        both("crash"),
        both("the runner ended without a result"),
    ),
]
