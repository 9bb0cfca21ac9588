"""Build, cache and load the wasm sandbox runner component.

The runner (CPython + `guest/symbiont_guest.py`, built by componentize-py against
`wit/runner.wit`) takes ~20 s to build and ~15 s to JIT-compile, so both happen once per
machine: the component is cached under `$SYMBIONT_CACHE`, `$XDG_CACHE_HOME/symbiont` or
`~/.cache/symbiont`, in a folder named by a hash of everything that affects it (WIT, guest
source, the componentize-py and wasmtime native libraries, engine settings). Next to it sits the
serialized compiled form, which a new process maps in a few milliseconds.

Concurrency: builders take an exclusive `flock` on a lock file and write to temporary
names that are renamed into place, so two processes building at once produce one runner
and a reader never sees half a file. A cached file that does not load (truncated,
corrupt, from another CPU or wasmtime) is rebuilt, not fatal.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import wasmtime
from wasmtime.component import Component

from symbiont.errors import SandboxError

PACKAGE_DIR = Path(__file__).resolve().parent
WIT_DIR = PACKAGE_DIR / "wit"
GUEST_DIR = PACKAGE_DIR / "guest"
WORLD = "runner"
GUEST_MODULE = "symbiont_guest"
BUILD_MESSAGE = "building the wasm sandbox runner (once per machine)…"
# Engine settings the compiled artifact depends on (a serialized component only loads
# into an engine configured the same way); part of the cache key.
ENGINE_SETTINGS = "epoch_interruption=1;memory_init_cow=1"

Progress = Callable[[str], None]


def stderr_progress(message: str) -> None:
    """Default progress reporter: one line to stderr."""
    print(f"symbiont: {message}", file=sys.stderr, flush=True)


def make_engine() -> wasmtime.Engine:
    """The engine every runner instance uses (settings must match `ENGINE_SETTINGS`)."""
    config = wasmtime.Config()
    config.epoch_interruption = True
    config.memory_init_cow = True
    return wasmtime.Engine(config)


def cache_root() -> Path:
    """Where symbiont caches machine-local artifacts."""
    explicit = os.environ.get("SYMBIONT_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "symbiont"
    return Path.home() / ".cache" / "symbiont"


def _native_fingerprint(module: str) -> str:
    """Identify an installed native package by its shared libraries (size, mtime).

    Cheaper at start-up than `importlib.metadata` (which costs ~40 ms to import), and
    stricter: a reinstall of the same version also counts as a change.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return f"{module}=missing"
    folder = Path(spec.origin).parent
    parts = [module]
    for lib in sorted(folder.rglob("*.so")):
        st = lib.stat()
        parts.append(f"{lib.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns}")
    return ";".join(parts)


def _inputs() -> list[Path]:
    files = sorted(WIT_DIR.glob("*.wit")) + sorted(GUEST_DIR.glob("*.py"))
    if (
        not any(p.suffix == ".wit" for p in files)
        or not (GUEST_DIR / f"{GUEST_MODULE}.py").exists()
    ):
        raise SandboxError(f"the wasm runner sources are missing from {PACKAGE_DIR}")
    return files


def runner_key() -> str:
    """Hash of everything the built runner depends on."""
    h = hashlib.sha256()
    for path in _inputs():
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for part in (
        _native_fingerprint("componentize_py"),
        _native_fingerprint("wasmtime"),
        ENGINE_SETTINGS,
        f"{sys.platform}-{os.uname().machine}",
    ):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:20]


def runner_dir() -> Path:
    return cache_root() / f"wasm-runner-{runner_key()}"


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    lock_path = directory / ".lock"
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _atomic_write(target: Path, data: bytes | bytearray) -> None:
    import tempfile  # build-time only, like subprocess below: not on a cached start-up

    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _componentize(target: Path) -> None:
    """Run componentize-py in a child process with a scrubbed environment.

    The child's environment matters: componentize-py snapshots the interpreter after
    importing the guest, so anything in `os.environ` then could end up in the cached
    component. It gets only PATH and HOME (and no VIRTUAL_ENV, so nothing from the host's
    site-packages is bundled).
    """
    import subprocess
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(target.parent)}
    cmd = [
        sys.executable,
        "-c",
        "import sys; from componentize_py import script; "
        "sys.argv[0] = 'componentize-py'; sys.exit(script())",
        "-q",
        "-d",
        str(WIT_DIR),
        "-w",
        WORLD,
        "componentize",
        "-p",
        str(GUEST_DIR),
        GUEST_MODULE,
        "-o",
        tmp,
    ]
    try:
        proc = subprocess.run(
            cmd, cwd=target.parent, env=env, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip()[-2000:]
            raise SandboxError(
                f"componentize-py failed to build the wasm runner (exit {proc.returncode}):\n"
                f"{detail}"
            )
        with open(tmp, "rb") as built:
            os.fsync(built.fileno())
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _wasm_ok(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(8) == b"\0asm\x0d\0\x01\0" and os.fstat(f.fileno()).st_size > 1024
    except OSError:
        return False


def _compile(engine: wasmtime.Engine, wasm: Path, cwasm: Path) -> Component:
    component = Component.from_file(engine, wasm)
    _atomic_write(cwasm, component.serialize())
    return component


def ensure_built(
    engine: wasmtime.Engine, progress: Progress | None = None
) -> tuple[Path, Component | None]:
    """Make sure `runner.wasm` and `runner.cwasm` exist; return the folder.

    Returns the compiled component too when this call had to compile it (so the caller
    need not deserialize what it just produced), else None.
    """
    directory = runner_dir()
    wasm, cwasm = directory / "runner.wasm", directory / "runner.cwasm"
    if _wasm_ok(wasm) and cwasm.is_file():
        return directory, None
    report = progress or stderr_progress
    with _locked(directory):
        compiled: Component | None = None
        timings = _read_timings(directory)
        if not _wasm_ok(wasm):  # re-checked under the lock: another process may have built it
            report(BUILD_MESSAGE)
            started = time.perf_counter()
            _componentize(wasm)
            timings["componentize_s"] = round(time.perf_counter() - started, 2)
            report(f"componentize-py built the runner in {timings['componentize_s']:.1f} s")
            with contextlib.suppress(FileNotFoundError):
                cwasm.unlink()  # stale compiled form of an older runner.wasm
        if not cwasm.is_file():
            report("compiling the wasm sandbox runner to native code (once per machine)…")
            started = time.perf_counter()
            compiled = _compile(engine, wasm, cwasm)
            timings["compile_s"] = round(time.perf_counter() - started, 2)
            report(f"compiled in {timings['compile_s']:.1f} s; cached in {directory}")
        _atomic_write(directory / "build.json", json.dumps(timings).encode())
        return directory, compiled


def _read_timings(directory: Path) -> dict[str, float]:
    """How long this machine took to build the cached runner (for the benchmark)."""
    try:
        data = json.loads((directory / "build.json").read_text())
    except (OSError, ValueError):
        return {}
    return {k: float(v) for k, v in data.items()} if isinstance(data, dict) else {}


def build_timings() -> dict[str, float]:
    """Seconds spent building (`componentize_s`) and compiling (`compile_s`) the runner."""
    return _read_timings(runner_dir())


def load_component(engine: wasmtime.Engine, progress: Progress | None = None) -> Component:
    """Load the runner, building and compiling it first if this machine has no cache."""
    directory, compiled = ensure_built(engine, progress)
    if compiled is not None:
        return compiled
    cwasm = directory / "runner.cwasm"
    try:
        return Component.deserialize_file(engine, str(cwasm))
    except wasmtime.WasmtimeError as exc:
        report = progress or stderr_progress
        report(f"the cached compiled runner does not load ({_first_line(exc)}); recompiling")
        with _locked(directory):
            try:
                return Component.deserialize_file(engine, str(cwasm))  # fixed meanwhile?
            except wasmtime.WasmtimeError:
                pass
            with contextlib.suppress(FileNotFoundError):
                cwasm.unlink()
            try:
                return _compile(engine, directory / "runner.wasm", cwasm)
            except wasmtime.WasmtimeError:
                (directory / "runner.wasm").unlink(missing_ok=True)
        directory, compiled = ensure_built(engine, progress)
        return compiled or Component.deserialize_file(engine, str(directory / "runner.cwasm"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
