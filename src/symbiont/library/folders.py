"""Capabilities as readable folders: `<dir>/<id>/capability.py` + `capability.toml`.

The folder form is for people and git: the source is a plain Python file a reviewer can
read and a linter can check, the metadata a small TOML file. Schemas are not written (they
are derived from the source on import) and neither are run statistics (they belong to the
store that ran it). TOML is read with `tomllib`; it is written here by hand, because the
subset needed (strings, numbers, booleans, arrays, inline tables, arrays of tables) is
small and a writer dependency is not worth it. JSON `null`, which TOML cannot express, is
written as an `*_json` string key (`expect_json = '{"car": null}'`).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from symbiont.errors import CapabilityError
from symbiont.library.capability import (
    STATUSES,
    Capability,
    CapabilityPermissions,
    Example,
    validate_id,
)

SOURCE_FILE = "capability.py"
META_FILE = "capability.toml"
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


# ----------------------------------------------------------------------------------------
# writing TOML
# ----------------------------------------------------------------------------------------


def _key(k: str) -> str:
    return k if _BARE_KEY.match(k) else _string(k)


def _string(s: str) -> str:
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _multiline(s: str) -> str:
    """A long string as a TOML multi-line basic string (readable summaries)."""
    body = _string(s)[1:-1].replace("\\n", "\n")
    return '"""\n' + body + '"""'


def toml_representable(value: Any) -> bool:
    """True when `value` has a TOML form (no null anywhere, string keys, finite floats)."""
    if value is None:
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, bool | int | str):
        return True
    if isinstance(value, list | tuple):
        return all(toml_representable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and toml_representable(v) for k, v in value.items())
    return False


def toml_value(value: Any) -> str:
    """The inline TOML form of a JSON value (call `toml_representable` first)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise CapabilityError(f"cannot write {value!r} as TOML")


def _assign(lines: list[str], key: str, value: Any) -> None:
    """`key = value`, or `key_json = '...'` when the value has no TOML form."""
    if toml_representable(value):
        lines.append(f"{_key(key)} = {toml_value(value)}")
    else:
        lines.append(f"{_key(key + '_json')} = {_string(json.dumps(value, ensure_ascii=False))}")


def capability_toml(cap: Capability) -> str:
    lines = [
        f"id = {_string(cap.id)}",
        f"name = {_string(cap.name)}",
        f"entry = {_string(cap.entry)}",
        f"version = {cap.version}",
        "summary = "
        + (
            _multiline(
                textwrap.fill(cap.summary, 92, break_on_hyphens=False, break_long_words=False)
            )
            if len(cap.summary) > 60
            else _string(cap.summary)
        ),
    ]
    if cap.parents:
        lines.append(f"parents = {toml_value(list(cap.parents))}")
    if cap.status != "active":
        lines.append(f"status = {_string(cap.status)}")
        if cap.status_reason:
            lines.append(f"status_reason = {_string(cap.status_reason)}")
        if cap.replaced_by:
            lines.append(f"replaced_by = {_string(cap.replaced_by)}")
    lines += ["", "[permissions]"]
    for k, v in cap.permissions.to_dict().items():
        lines.append(f"{_key(k)} = {toml_value(v)}")
    for ex in cap.examples:
        lines += ["", "[[examples]]"]
        if ex.name:
            lines.append(f"name = {_string(ex.name)}")
        _assign(lines, "input", ex.input)
        if ex.check is None:
            _assign(lines, "expect", ex.expect)
        else:
            _assign(lines, "check", ex.check.to_dict())
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------


def _unjson(table: dict[str, Any], where: str) -> dict[str, Any]:
    """Fold `x_json = '...'` keys back into `x`."""
    out: dict[str, Any] = {}
    for k, v in table.items():
        if k.endswith("_json") and isinstance(v, str):
            try:
                out[k[: -len("_json")]] = json.loads(v)
            except json.JSONDecodeError as exc:
                raise CapabilityError(
                    f"{where}: {k} is not valid JSON ({exc.msg} at line {exc.lineno}, "
                    f"column {exc.colno})"
                ) from None
        else:
            out[k] = v
    return out


def read_capability_dir(folder: Path) -> Capability:
    """Read one capability folder; errors name the file and what is wrong."""
    src_path, meta_path = folder / SOURCE_FILE, folder / META_FILE
    if not src_path.is_file():
        raise CapabilityError(f"{folder} has no {SOURCE_FILE}")
    if not meta_path.is_file():
        raise CapabilityError(f"{folder} has no {META_FILE}")
    try:
        source = src_path.read_text(encoding="utf-8")
        meta = tomllib.loads(meta_path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise CapabilityError(f"{meta_path} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CapabilityError(f"cannot read {folder}: {exc}") from None
    known = {
        "id",
        "name",
        "entry",
        "version",
        "summary",
        "parents",
        "status",
        "status_reason",
        "replaced_by",
        "permissions",
        "examples",
    }
    unknown = set(meta) - known
    if unknown:
        raise CapabilityError(f"{meta_path}: unknown key(s) {sorted(unknown)}")
    cap_id = validate_id(str(meta.get("id", folder.name)))
    examples = []
    for i, table in enumerate(meta.get("examples", [])):
        where = f"{meta_path}, example {i + 1}"
        try:
            examples.append(Example.from_dict(_unjson(table, where)))
        except CapabilityError as exc:
            raise CapabilityError(f"{where}: {exc}") from None
    status = str(meta.get("status", "active"))
    if status not in STATUSES:
        raise CapabilityError(f"{meta_path}: status must be one of {', '.join(STATUSES)}")
    try:
        perms = CapabilityPermissions.from_dict(meta.get("permissions"))
        cap = Capability.from_source(
            source,
            id=cap_id,
            name=meta.get("name"),
            summary=meta.get("summary"),
            entry=meta.get("entry"),
            examples=examples,
            permissions=perms,
            parents=[str(p) for p in meta.get("parents", [])],
        )
    except CapabilityError as exc:
        raise CapabilityError(f"{folder}: {exc}") from None
    return cap.with_(
        version=int(meta.get("version", 1)),
        status=status,
        status_reason=meta.get("status_reason"),
        replaced_by=meta.get("replaced_by"),
    )


def iter_capability_dirs(root: Path) -> Iterator[Path]:
    """Capability folders under `root` (sorted), or `root` itself if it is one."""
    if (root / META_FILE).is_file():
        yield root
        return
    for child in sorted(root.iterdir()):
        if child.is_dir() and (child / META_FILE).is_file():
            yield child


def write_capability_dir(cap: Capability, root: Path) -> Path:
    """Write `<root>/<id>/capability.py` and `capability.toml`; returns the folder."""
    folder = root / cap.id
    folder.mkdir(parents=True, exist_ok=True)
    source = cap.source if cap.source.endswith("\n") else cap.source + "\n"
    _atomic_write(folder / SOURCE_FILE, source)
    _atomic_write(folder / META_FILE, capability_toml(cap))
    return folder


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def copy_seed_data(src: Path, dest: Path) -> list[str]:
    """Copy the files of `src` into `dest` that `dest` lacks (never overwrites); the names."""
    copied: list[str] = []
    dest.mkdir(parents=True, exist_ok=True)
    for item in sorted(src.iterdir()):
        target = dest / item.name
        if target.exists() or item.name.startswith("."):
            continue
        if item.is_dir():
            shutil.copytree(item, target)
        else:
            shutil.copy2(item, target)
        copied.append(item.name)
    return copied
