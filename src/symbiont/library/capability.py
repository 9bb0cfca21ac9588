"""What a capability is: typed source plus the metadata that makes it findable and trustworthy.

A `Capability` is plain data (it is stored, exported to TOML and shown in the CLI); the
checks that decide whether one may be *kept* live in `Library.add`. The checks here are
the ones that need no code to run: a usable id, a summary written for retrieval, examples
of a known form.
"""

from __future__ import annotations

import ast
import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from symbiont import pyast
from symbiont.errors import CapabilityError

Status = Literal["active", "legacy", "deprecated"]
STATUSES: tuple[str, ...] = ("active", "legacy", "deprecated")

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,79}$")

# Summaries that say nothing about what a capability does (the Self-Evolving Agent Runtime
# stored "implemented successfully" for its tools, which ruins retrieval).
_EMPTY_SUMMARY_PATTERNS = (
    r"implemented successfully",
    r"successfully implemented",
    r"successfully created",
    r"created successfully",
    r"auto-?generated",
    r"^(todo|tbd|fixme|n/?a|none|test|placeholder|description|summary)\b",
    r"^(a |the )?(capability|function|tool|helper|code)\.?$",
    r"^(it )?(works|done|ok|okay)\.?$",
)


# ----------------------------------------------------------------------------------------
# examples: input -> expected output, or input -> predicate
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check:
    """A predicate over a capability's output, serialisable to TOML.

    - `keys`: the output is an object having (at least) these keys;
    - `contains`: an object output contains this object (recursively, as a subset), a
      string contains this substring, an array contains this element;
    - `expr`: a small Python expression over `output` and `input` (comparisons,
      arithmetic, `len`, `min`, `all`, ... — no attribute access but a few string and dict
      methods, no imports), evaluated without builtins;
    - `error`: the call must *fail* (an exception or a returned `{"error": ...}`) with a
      message containing this text ("" for any error).
    All given parts must hold.
    """

    keys: tuple[str, ...] = ()
    contains: Any = None
    expr: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.keys:
            out["keys"] = list(self.keys)
        if self.contains is not None:
            out["contains"] = self.contains
        if self.expr is not None:
            out["expr"] = self.expr
        if self.error is not None:
            out["error"] = self.error
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Check:
        unknown = set(data) - {"keys", "contains", "expr", "error"}
        if unknown:
            raise CapabilityError(
                f"unknown check field(s) {sorted(unknown)}; a check has keys, contains, "
                "expr and/or error"
            )
        keys = data.get("keys", ())
        if isinstance(keys, str) or not all(isinstance(k, str) for k in keys):
            raise CapabilityError("check.keys must be a list of strings")
        expr = data.get("expr")
        if expr is not None:
            compile_predicate(str(expr))  # refuse a bad expression when it is declared
        error = data.get("error")
        if not keys and data.get("contains") is None and expr is None and error is None:
            raise CapabilityError(
                "an empty check verifies nothing; give at least one of keys, contains, expr "
                'or error (for example check = { keys = ["id"] }), or an exact `expect`'
            )
        return cls(
            tuple(keys),
            data.get("contains"),
            None if expr is None else str(expr),
            None if error is None else str(error),
        )

    def describe(self) -> str:
        return ", ".join(
            f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in self.to_dict().items()
        )


@dataclass(frozen=True, slots=True)
class Example:
    """One test of a capability: call it with `input`; compare with `expect` or `check`."""

    input: dict[str, Any]
    expect: Any = None  # the exact expected output (used when check is None)
    check: Check | None = None
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"input": self.input}
        if self.name:
            out["name"] = self.name
        if self.check is None:
            out["expect"] = self.expect
        else:
            out["check"] = self.check.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Example:
        if not isinstance(data, Mapping):
            raise CapabilityError(f"an example must be a table/object, not {data!r}")
        unknown = set(data) - {"input", "expect", "check", "name"}
        if unknown:
            raise CapabilityError(
                f"unknown example field(s) {sorted(unknown)}; an example has input, "
                "expect or check, and an optional name"
            )
        if "input" not in data or not isinstance(data["input"], Mapping):
            raise CapabilityError(
                f"an example needs an `input` object (the keyword arguments), got {data!r}"
            )
        if ("expect" in data) == ("check" in data):
            raise CapabilityError(
                "an example needs exactly one of `expect` (the exact output) or `check` "
                f"(a predicate): {data!r}"
            )
        check = Check.from_dict(data["check"]) if "check" in data else None
        return cls(dict(data["input"]), data.get("expect"), check, str(data.get("name", "")))

    def label(self, index: int) -> str:
        return f"example {index + 1}" + (f" ({self.name})" if self.name else "")


def outcome_error(output: Any) -> str | None:
    """The error a *returned* value reports, e.g. `{"error": "no such employee"}`; else None.

    A capability that catches its own exception and returns an error value has failed just
    as much as one that raised, and counts so for deprecation.
    """
    if isinstance(output, dict) and output.get("error") not in (None, False, ""):
        err = output["error"]
        return err if isinstance(err, str) else json.dumps(err, ensure_ascii=False)
    return None


def check_example(example: Example, output: Any, error: str | None) -> str | None:
    """None when the example holds for this outcome; else why not, in one sentence."""
    error = error if error is not None else outcome_error(output)
    chk = example.check
    if chk is not None and chk.error is not None:
        if error is None:
            return f"expected the call to fail with an error containing {chk.error!r}, but it succeeded"
        if chk.error.lower() not in error.lower():
            return f"expected an error containing {chk.error!r}, got the error {error!r}"
        return None
    if error is not None:
        return f"the call failed: {error}"
    if chk is None:
        if not json_equal(output, example.expect):
            return "the output differs from the expected output"
        return None
    if chk.keys:
        if not isinstance(output, dict):
            return f"expected an object with keys {list(chk.keys)}, got {type(output).__name__}"
        missing = [k for k in chk.keys if k not in output]
        if missing:
            return f"the output lacks the key(s) {missing}"
    if chk.contains is not None and not contains(output, chk.contains):
        return f"the output does not contain {json.dumps(chk.contains, ensure_ascii=False)}"
    if chk.expr is not None:
        try:
            ok = eval_predicate(chk.expr, output=output, input=example.input)
        except Exception as exc:  # the predicate itself failed on this output
            return f"the check `{chk.expr}` raised {type(exc).__name__}: {exc}"
        if not ok:
            return f"the check `{chk.expr}` is false"
    return None


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values; tuples are arrays and floats compare to 1e-9 relative."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b if isinstance(a, bool) and isinstance(b, bool) else False
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def contains(output: Any, part: Any) -> bool:
    if isinstance(part, dict):
        return isinstance(output, dict) and all(
            k in output
            and (contains(output[k], v) if isinstance(v, dict) else json_equal(output[k], v))
            for k, v in part.items()
        )
    if isinstance(output, str):
        return isinstance(part, str) and part in output
    if isinstance(output, list):
        return any(
            json_equal(x, part) or (isinstance(part, dict) and contains(x, part)) for x in output
        )
    return json_equal(output, part)


# ----------------------------------------------------------------------------------------
# the predicate language: a whitelisted subset of Python expressions
# ----------------------------------------------------------------------------------------

_SAFE_FUNCS: dict[str, Any] = {
    "len": len,
    "abs": abs,
    "min": min,
    "max": max,
    "sum": sum,
    "sorted": sorted,
    "any": any,
    "all": all,
    "round": round,
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list": list,
    "set": set,
    "isinstance": isinstance,
    "dict": dict,
}
_SAFE_METHODS = frozenset(
    {
        "get",
        "keys",
        "values",
        "items",
        "startswith",
        "endswith",
        "lower",
        "upper",
        "strip",
        "count",
        "split",
    }
)
_SAFE_NODES = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.BinOp,
    ast.Add,
    ast.Sub,
    ast.Div,
    ast.FloorDiv,
    ast.Mod,
    ast.Compare,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.Is,
    ast.IsNot,
    ast.Subscript,
    ast.Slice,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.Store,
    ast.List,
    ast.Tuple,
    ast.Dict,
    ast.Set,
    ast.Call,
    ast.IfExp,
    ast.GeneratorExp,
    ast.ListComp,
    ast.comprehension,
    ast.Attribute,
)


def compile_predicate(expr: str) -> Any:
    """Compile a check expression after refusing anything outside the whitelist."""
    try:
        tree = pyast.parse(expr, mode="eval")
    except SyntaxError as exc:
        raise CapabilityError(
            f"the check expression {expr!r} is not valid Python: {exc.msg}"
        ) from None
    bound = {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }
    allowed = {"output", "input", *bound, *_SAFE_FUNCS}
    for node in ast.walk(tree):
        if not isinstance(node, _SAFE_NODES):
            raise CapabilityError(
                f"the check expression {expr!r} uses {type(node).__name__}, which checks may "
                "not use (no '*', '**', lambdas, imports or walrus)"
            )
        if isinstance(node, ast.Name) and node.id not in allowed:
            raise CapabilityError(
                f"the check expression {expr!r} names {node.id!r}; it may use only `output`, "
                f"`input`, comprehension variables and {', '.join(sorted(_SAFE_FUNCS))}"
            )
        if isinstance(node, ast.Attribute) and node.attr not in _SAFE_METHODS:
            raise CapabilityError(
                f"the check expression {expr!r} uses `.{node.attr}`; only the methods "
                f"{', '.join(sorted(_SAFE_METHODS))} are allowed"
            )
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, int | float)
            and abs(node.value) > 10**15
        ):
            raise CapabilityError(f"the check expression {expr!r} has a too large number")
    return pyast.compile_tree(tree, "<check>", "eval")


def eval_predicate(expr: str, *, output: Any, input: Any) -> bool:
    code = compile_predicate(expr)
    return bool(eval(code, {"__builtins__": {}}, {**_SAFE_FUNCS, "output": output, "input": input}))


# ----------------------------------------------------------------------------------------
# the capability
# ----------------------------------------------------------------------------------------


class SourceSyntaxError(CapabilityError):
    """A capability's source does not parse; says where, with the line and a caret."""

    def __init__(self, message: str, line: int | None = None, col: int | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.col = col

    @classmethod
    def from_syntax_error(cls, source: str, exc: SyntaxError) -> SourceSyntaxError:
        from symbiont.diagnostics import caret_excerpt

        where = f" at line {exc.lineno}" + (f", column {exc.offset}" if exc.offset else "")
        message = f"the source has a syntax error{where}: {exc.msg}"
        if exc.lineno:
            message += "\n" + caret_excerpt(source, exc.lineno, exc.offset or 1).rstrip("\n")
        return cls(message, exc.lineno, exc.offset)


@dataclass(frozen=True, slots=True)
class CapabilityPermissions:
    """What a capability may do through `symbiont.host`.

    `data` names a shared data folder (`<data_root>/<data>/`); by default a capability's
    data folder is `<data_root>/<id>/`. The twelve HR capabilities share `hr`.
    `side_effects` marks a capability that changes something outside its data folder (sends a
    message, books a room through an API): like `write_files`, it makes the capability a
    *writer*, which an agent offers only for tasks that ask for a change.
    """

    http_allow: tuple[str, ...] = ()
    allow_private_network: bool = False
    read_files: bool = False
    write_files: bool = False
    data: str | None = None
    side_effects: bool = False

    @property
    def writes(self) -> bool:
        """Running it may change data or the world (write_files or side_effects)."""
        return self.write_files or self.side_effects

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "read_files": self.read_files,
            "write_files": self.write_files,
            "http_allow": list(self.http_allow),
            "allow_private_network": self.allow_private_network,
        }
        if self.data is not None:
            out["data"] = self.data
        if self.side_effects:  # only when set, so existing folders and stores read the same
            out["side_effects"] = True
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> CapabilityPermissions:
        data = dict(data or {})
        unknown = set(data) - {
            "http_allow",
            "allow_private_network",
            "read_files",
            "write_files",
            "data",
            "side_effects",
        }
        if unknown:
            raise CapabilityError(
                f"unknown permission(s) {sorted(unknown)}; permissions are http_allow, "
                "allow_private_network, read_files, write_files, side_effects and data"
            )
        http = data.get("http_allow", ())
        if isinstance(http, str):
            http = (http,)
        folder = data.get("data")
        if folder is not None:
            validate_id(str(folder), what="data folder name")
        return cls(
            tuple(str(h) for h in http),
            bool(data.get("allow_private_network", False)),
            bool(data.get("read_files", False)),
            bool(data.get("write_files", False)),
            None if folder is None else str(folder),
            bool(data.get("side_effects", False)),
        )


@dataclass(frozen=True, slots=True)
class CapabilityStats:
    runs: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    p50_latency_s: float | None = None
    last_error: str | None = None
    last_run_at: float | None = None


@dataclass(frozen=True, slots=True)
class Capability:
    """A verified, typed function plus what is needed to find, run and retire it.

    Build one with `Capability.from_source(...)` or read one from a folder; the schemas are
    derived from the type hints when it is added to a `Library`.
    """

    id: str
    name: str
    summary: str
    source: str
    entry: str
    examples: tuple[Example, ...] = ()
    permissions: CapabilityPermissions = CapabilityPermissions()
    input_schema: dict[str, Any] = field(default_factory=dict)
    output_schema: dict[str, Any] = field(default_factory=dict)
    version: int = 1
    parents: tuple[str, ...] = ()
    status: Status = "active"
    status_reason: str | None = None
    replaced_by: str | None = None
    stats: CapabilityStats = CapabilityStats()
    created_at: float = 0.0
    updated_at: float = 0.0

    @classmethod
    def from_source(
        cls,
        source: str,
        *,
        id: str | None = None,
        name: str | None = None,
        summary: str | None = None,
        entry: str | None = None,
        examples: Sequence[Example | Mapping[str, Any]] = (),
        permissions: CapabilityPermissions | Mapping[str, Any] | None = None,
        parents: Sequence[str] = (),
    ) -> Capability:
        """A capability from its source; `entry` defaults to `id` or the only public function,
        `summary` to the entry's docstring."""
        try:
            tree = pyast.parse(source)
        except SyntaxError as exc:
            if entry is None:  # no entry can be found in a source that does not parse
                raise SourceSyntaxError.from_syntax_error(source, exc) from None
            tree = None  # the entry is named: the build's parse stage reports the error
        functions = [
            n.name
            for n in (tree.body if tree is not None else [])
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and not n.name.startswith("_")
        ]
        if entry is None:
            if id is not None and id in functions:
                entry = id
            elif len(functions) == 1:
                entry = functions[0]
            else:
                raise CapabilityError(
                    "name the entry function: the source defines "
                    + (
                        f"several public functions ({', '.join(functions)})"
                        if functions
                        else "no public function"
                    )
                )
        if summary is None and tree is not None:
            node = next((n for n in tree.body if getattr(n, "name", None) == entry), None)
            doc = (
                ast.get_docstring(node)
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                else None
            )
            summary = doc or ""
        perms = (
            permissions
            if isinstance(permissions, CapabilityPermissions)
            else CapabilityPermissions.from_dict(permissions)
        )
        exs = tuple(e if isinstance(e, Example) else Example.from_dict(e) for e in examples)
        cap_id = id or entry.lower()
        return cls(
            id=cap_id,
            name=name or cap_id.replace("_", " ").replace("-", " ").capitalize(),
            summary=summary or "",
            source=source,
            entry=entry,
            examples=exs,
            permissions=perms,
            parents=tuple(parents),
        )

    def with_(self, **changes: Any) -> Capability:
        """A copy with `changes`; examples and permissions may be given as plain dicts."""
        if "examples" in changes:
            changes["examples"] = tuple(
                e if isinstance(e, Example) else Example.from_dict(e) for e in changes["examples"]
            )
        perms = changes.get("permissions")
        if perms is not None and not isinstance(perms, CapabilityPermissions):
            changes["permissions"] = CapabilityPermissions.from_dict(perms)
        for key in ("parents",):
            if key in changes:
                changes[key] = tuple(changes[key])
        return replace(self, **changes)

    @property
    def data_folder_name(self) -> str:
        return self.permissions.data or self.id

    def param_names(self) -> tuple[str, ...]:
        return tuple(self.input_schema.get("properties", {}))


def validate_id(value: str, *, what: str = "capability id") -> str:
    if not _ID_RE.match(value) or ".." in value:
        raise CapabilityError(
            f"invalid {what} {value!r}: use 1-80 lowercase letters, digits, '_', '-' or '.', "
            "starting with a letter or digit (it names a folder)"
        )
    return value


def validate_summary(summary: str, *, capability_id: str = "") -> str:
    """Refuse a summary that cannot help retrieval; returns it stripped."""
    text = " ".join(summary.split())
    owner = f" of {capability_id!r}" if capability_id else ""
    low = text.lower()
    for pattern in _EMPTY_SUMMARY_PATTERNS:
        if re.search(pattern, low):
            raise CapabilityError(
                f"the summary{owner} ({text!r}) says nothing about what the capability does; "
                "write what it does, what it takes and what it returns (it is what search matches)"
            )
    if len(text) < 20 or len(text.split()) < 4:
        raise CapabilityError(
            f"the summary{owner} is too short ({text!r}); write a sentence or two saying what "
            "it does, its inputs and its outputs, in words a task description would use"
        )
    return text


def now() -> float:
    return time.time()
