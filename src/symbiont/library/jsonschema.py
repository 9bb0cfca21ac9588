"""JSON Schema from a capability's type hints, and a validator for the schemas it makes.

The schema is derived from the *source* (the `ast` of the capability module), never by
importing it: capability code is untrusted and runs only inside a sandbox, so the host must
learn its signature without executing a line of it. Supported, as pydantic-ai's private
`_function_schema` supports them at run time:

- builtins: `str`, `int`, `float`, `bool`, `None`, `list[X]`, `dict[str, X]`, `tuple[...]`,
  `set[X]`, `Any`/`object`; `Optional[X]`, `Union[...]`, `X | Y`, `Literal[...]`,
  `Annotated[X, ...]`; the `typing` spellings (`List`, `Dict`, ...) too;
- classes defined in the same module: `TypedDict` (with `total=False`, `Required`,
  `NotRequired`, inheritance), `@dataclass`, pydantic `BaseModel` subclasses and `Enum`s
  with literal values; module-level aliases (`Status = Literal["a", "b"]`).

Named classes go to `$defs` and are referenced with `$ref`, so recursive types work.
`validate` checks a JSON value against such a schema and names the offending field.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from symbiont import pyast
from symbiont.errors import CapabilityError

JSONSchema = dict[str, Any]

_TYPING_PREFIXES = ("typing.", "typing_extensions.", "collections.abc.", "builtins.", "t.")
_SCALARS: dict[str, JSONSchema] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "None": {"type": "null"},
    "NoneType": {"type": "null"},
    "Any": {},
    "object": {},
    "Text": {"type": "string"},
}
_ARRAYS = {"list", "List", "Sequence", "MutableSequence", "Iterable", "Collection"}
_SETS = {"set", "Set", "frozenset", "FrozenSet", "AbstractSet", "MutableSet"}
_MAPPINGS = {"dict", "Dict", "Mapping", "MutableMapping"}


class SchemaError(CapabilityError):
    """A type hint that cannot be turned into JSON Schema (so the capability is refused)."""


@dataclass
class _Context:
    classes: dict[str, ast.ClassDef]
    aliases: dict[str, ast.expr]
    defs: dict[str, JSONSchema] = field(default_factory=dict)
    building: set[str] = field(default_factory=set)
    where: str = ""


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base is not None else None
    return None


def _simple_name(node: ast.expr) -> str | None:
    """`typing.Optional` -> `Optional`; a module-local name stays as it is."""
    dotted = _dotted(node)
    if dotted is None:
        return None
    for prefix in _TYPING_PREFIXES:
        if dotted.startswith(prefix):
            return dotted[len(prefix) :]
    if "." in dotted:
        return dotted.rpartition(".")[2]
    return dotted


def _module_context(tree: ast.Module) -> _Context:
    classes: dict[str, ast.ClassDef] = {}
    aliases: dict[str, ast.expr] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            classes[node.name] = node
        elif (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            aliases[node.targets[0].id] = node.value
        elif (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.value is not None
            and _simple_name(node.annotation) == "TypeAlias"
        ):
            aliases[node.target.id] = node.value
    return _Context(classes, aliases)


def function_schemas(tree: ast.Module, entry: str) -> tuple[JSONSchema, JSONSchema]:
    """(input schema, output schema) of the module-level function `entry` in `tree`.

    The input schema is an object with one property per parameter (a capability is called
    as `entry(**input)`); parameters with a default are optional and carry the default.
    Raises `SchemaError` naming the parameter whose hint cannot be expressed.
    """
    fn = next(
        (
            n
            for n in tree.body
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == entry
        ),
        None,
    )
    if fn is None:
        raise SchemaError(f"the capability source defines no module-level function {entry!r}")
    ctx = _module_context(tree)
    args = fn.args
    if args.posonlyargs:
        raise SchemaError(
            f"{entry}(): positional-only parameters cannot be passed by name; a capability "
            "is called with keyword arguments only, so remove the '/'"
        )
    if args.vararg is not None:
        raise SchemaError(
            f"{entry}(): *{args.vararg.arg} cannot be given in a JSON object; "
            "declare named parameters instead"
        )
    properties: dict[str, JSONSchema] = {}
    required: list[str] = []
    positional_defaults: list[ast.expr | None] = [None] * (len(args.args) - len(args.defaults))
    positional_defaults += list(args.defaults)
    pairs = list(zip(args.args, positional_defaults, strict=True))
    pairs += list(zip(args.kwonlyargs, args.kw_defaults, strict=True))
    for arg, default in pairs:
        if arg.annotation is None:
            raise SchemaError(
                f"{entry}(): parameter {arg.arg!r} has no type annotation; annotate it "
                f"(e.g. `{arg.arg}: str`) so its JSON Schema can be derived"
            )
        ctx.where = f"parameter {arg.arg!r} of {entry}()"
        prop = dict(_schema(arg.annotation, ctx))
        if default is None:
            required.append(arg.arg)
        else:
            # a non-literal default: optional, but no default to show
            with contextlib.suppress(ValueError, SyntaxError, TypeError):
                prop["default"] = pyast.literal_eval(default)
        properties[arg.arg] = prop
    input_schema: JSONSchema = {"type": "object", "properties": properties}
    if required:
        input_schema["required"] = required
    if args.kwarg is not None:
        ctx.where = f"**{args.kwarg.arg} of {entry}()"
        input_schema["additionalProperties"] = (
            _schema(args.kwarg.annotation, ctx) if args.kwarg.annotation is not None else True
        )
    else:
        input_schema["additionalProperties"] = False
    if fn.returns is None:
        raise SchemaError(
            f"{entry}() has no return annotation; declare what it returns (e.g. `-> dict`) "
            "so its output schema can be derived"
        )
    ctx.where = f"the return type of {entry}()"
    output_schema: JSONSchema = dict(_schema(fn.returns, ctx))
    for schema in (input_schema, output_schema):
        used = _reachable_defs(schema, ctx.defs)
        if used:
            schema["$defs"] = {name: ctx.defs[name] for name in ctx.defs if name in used}
    return input_schema, output_schema


def _reachable_defs(schema: Any, defs: dict[str, JSONSchema]) -> set[str]:
    """Names of the `$defs` that `schema` refers to, directly or through other defs."""
    seen: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = ref.rpartition("/")[2]
                if name in defs and name not in seen:
                    seen.add(name)
                    stack.append(defs[name])
            stack.extend(v for k, v in node.items() if k != "$defs")
        elif isinstance(node, list):
            stack.extend(node)
    return seen


def _unsupported(node: ast.expr, ctx: _Context, why: str = "") -> SchemaError:
    text = ast.unparse(node)
    return SchemaError(
        f"cannot derive a JSON Schema for {ctx.where}: `{text}`"
        + (f" ({why})" if why else "")
        + "; use JSON types: str, int, float, bool, None, list[...], dict[str, ...], "
        "Optional/Union/Literal, or a TypedDict, dataclass or pydantic model defined in "
        "the capability's module"
    )


def _schema(node: ast.expr, ctx: _Context) -> JSONSchema:
    if isinstance(node, ast.Constant):
        if node.value is None:
            return {"type": "null"}
        if isinstance(node.value, str):  # a string annotation: parse and convert
            try:
                inner = pyast.parse(node.value, mode="eval").body
            except SyntaxError as exc:
                raise _unsupported(node, ctx, "not a valid annotation") from exc
            return _schema(inner, ctx)
        raise _unsupported(node, ctx)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _union([node.left, node.right], ctx)
    if isinstance(node, ast.Subscript):
        return _generic(node, ctx)
    name = _simple_name(node)
    if name is None:
        raise _unsupported(node, ctx)
    if name in _SCALARS:
        return dict(_SCALARS[name])
    if name in _ARRAYS or name == "tuple" or name == "Tuple":
        return {"type": "array"}
    if name in _SETS:
        return {"type": "array", "uniqueItems": True}
    if name in _MAPPINGS:
        return {"type": "object"}
    if name in ctx.classes:
        return _class_ref(ctx.classes[name], ctx)
    if name in ctx.aliases:
        alias = ctx.aliases.pop(name)  # guard against `A = A`
        try:
            return _schema(alias, ctx)
        finally:
            ctx.aliases[name] = alias
    raise _unsupported(node, ctx, f"unknown type {name!r}")


def _args(node: ast.Subscript) -> list[ast.expr]:
    return list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]


def _union(members: list[ast.expr], ctx: _Context) -> JSONSchema:
    flat: list[JSONSchema] = []
    for m in members:
        s = _schema(m, ctx)
        flat.extend(s["anyOf"] if set(s) == {"anyOf"} else [s])
    return flat[0] if len(flat) == 1 else {"anyOf": flat}


def _generic(node: ast.Subscript, ctx: _Context) -> JSONSchema:
    base = _simple_name(node.value)
    args = _args(node)
    if base in ("Optional",):
        return _union([args[0], ast.Constant(None)], ctx)
    if base == "Union":
        return _union(args, ctx)
    if base in ("Annotated", "Required", "NotRequired", "ReadOnly", "Final"):
        return _schema(args[0], ctx)
    if base == "Literal":
        values: list[Any] = []
        for a in args:
            try:
                values.append(pyast.literal_eval(a))
            except ValueError as exc:
                raise _unsupported(node, ctx, "Literal values must be literals") from exc
        return {"enum": values} if len(values) > 1 else {"const": values[0]}
    if base in _ARRAYS:
        return {"type": "array", "items": _schema(args[0], ctx)}
    if base in _SETS:
        return {"type": "array", "items": _schema(args[0], ctx), "uniqueItems": True}
    if base in ("tuple", "Tuple"):
        if len(args) == 2 and isinstance(args[1], ast.Constant) and args[1].value is Ellipsis:
            return {"type": "array", "items": _schema(args[0], ctx)}
        items = [_schema(a, ctx) for a in args]
        return {
            "type": "array",
            "prefixItems": items,
            "minItems": len(items),
            "maxItems": len(items),
        }
    if base in _MAPPINGS:
        if len(args) != 2:
            raise _unsupported(node, ctx, "give both key and value types")
        key = _schema(args[0], ctx)
        if key.get("type") != "string" and "enum" not in key and "const" not in key:
            raise _unsupported(node, ctx, "JSON object keys are strings")
        return {"type": "object", "additionalProperties": _schema(args[1], ctx)}
    raise _unsupported(node, ctx)


def _decorator_names(cls: ast.ClassDef) -> set[str]:
    out: set[str] = set()
    for d in cls.decorator_list:
        target = d.func if isinstance(d, ast.Call) else d
        name = _simple_name(target)
        if name:
            out.add(name)
    return out


def _class_kind(cls: ast.ClassDef, ctx: _Context, depth: int = 0) -> str | None:
    if "dataclass" in _decorator_names(cls):
        return "dataclass"
    for b in cls.bases:
        name = _simple_name(b)
        if name == "TypedDict":
            return "typeddict"
        if name in ("BaseModel", "RootModel"):
            return "pydantic"
        if name in ("Enum", "StrEnum", "IntEnum"):
            return "enum"
        if name in ctx.classes and depth < 20:
            kind = _class_kind(ctx.classes[name], ctx, depth + 1)
            if kind is not None:
                return kind
    return None


def _class_ref(cls: ast.ClassDef, ctx: _Context) -> JSONSchema:
    ref = {"$ref": f"#/$defs/{cls.name}"}
    if cls.name in ctx.defs or cls.name in ctx.building:
        return ref
    kind = _class_kind(cls, ctx)
    if kind is None:
        raise SchemaError(
            f"cannot derive a JSON Schema for {ctx.where}: class {cls.name!r} is not a "
            "TypedDict, dataclass, pydantic model or Enum, so it has no JSON form"
        )
    ctx.building.add(cls.name)
    try:
        ctx.defs[cls.name] = _enum_schema(cls) if kind == "enum" else _record(cls, kind, ctx)
    finally:
        ctx.building.discard(cls.name)
    return ref


def _enum_schema(cls: ast.ClassDef) -> JSONSchema:
    values: list[Any] = []
    for stmt in cls.body:
        if isinstance(stmt, ast.Assign):
            try:
                values.append(pyast.literal_eval(stmt.value))
            except ValueError:
                continue
    return {"title": cls.name, "enum": values}


def _fields(
    cls: ast.ClassDef, kind: str, ctx: _Context, depth: int = 0
) -> tuple[dict[str, JSONSchema], list[str]]:
    props: dict[str, JSONSchema] = {}
    required: list[str] = []
    for b in cls.bases:  # inherited fields first, as Python orders them
        name = _simple_name(b)
        if name in ctx.classes and depth < 20:
            p, r = _fields(ctx.classes[name], kind, ctx, depth + 1)
            props.update(p)
            required.extend(x for x in r if x not in required)
    total = True
    for kw in cls.keywords:
        if kw.arg == "total" and isinstance(kw.value, ast.Constant):
            total = bool(kw.value.value)
    for stmt in cls.body:
        if not isinstance(stmt, ast.AnnAssign) or not isinstance(stmt.target, ast.Name):
            continue
        ann = stmt.annotation
        wrapper = _simple_name(ann.value) if isinstance(ann, ast.Subscript) else None
        if wrapper == "ClassVar" or _simple_name(ann) == "ClassVar":
            continue
        fname = stmt.target.id
        props[fname] = _schema(ann, ctx)
        if kind == "typeddict":
            is_required = (
                total if wrapper not in ("Required", "NotRequired") else (wrapper == "Required")
            )
        else:
            is_required = stmt.value is None or _required_field_call(stmt.value)
        if is_required and fname not in required:
            required.append(fname)
        elif not is_required and fname in required:
            required.remove(fname)
    return props, required


def _required_field_call(value: ast.expr) -> bool:
    """`field()` / `Field(...)` without a default or default_factory is still required."""
    if not isinstance(value, ast.Call) or _simple_name(value.func) not in ("field", "Field"):
        return False
    if any(kw.arg in ("default", "default_factory") for kw in value.keywords):
        return False
    if value.args:
        first = value.args[0]
        return isinstance(first, ast.Constant) and first.value is Ellipsis
    return True


def _record(cls: ast.ClassDef, kind: str, ctx: _Context) -> JSONSchema:
    props, required = _fields(cls, kind, ctx)
    out: JSONSchema = {"title": cls.name, "type": "object", "properties": props}
    if required:
        out["required"] = required
    if kind in ("typeddict", "dataclass"):
        out["additionalProperties"] = False
    return out


# ----------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------


def _describe(schema: JSONSchema, root: JSONSchema) -> str:
    """A short human name for what `schema` accepts: 'string', 'integer or null', ..."""
    schema = _resolve(schema, root)
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(v) for v in schema["enum"])
    if "anyOf" in schema:
        return " or ".join(_describe(s, root) for s in schema["anyOf"])
    t = schema.get("type")
    if t == "array" and isinstance(schema.get("items"), dict):
        return f"array of {_describe(schema['items'], root)}"
    if t == "object" and "title" in schema:
        return f"object ({schema['title']})"
    return str(t) if t else "any JSON value"


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _short(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _resolve(schema: JSONSchema, root: JSONSchema) -> JSONSchema:
    seen = 0
    while "$ref" in schema and seen < 50:
        ref = str(schema["$ref"])
        name = ref.rpartition("/")[2]
        target = root.get("$defs", {}).get(name)
        if target is None:
            return {}
        schema = target
        seen += 1
    return schema


def _matches_type(value: Any, t: str) -> bool:
    actual = _type_of(value)
    return actual == t or (t == "number" and actual == "integer")


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def validate(value: Any, schema: JSONSchema, *, what: str = "input") -> list[str]:
    """Every way `value` breaks `schema`, as messages naming the field; [] when it fits.

    Messages with a typo hint ("did you mean ...?") come first: they are the ones a person
    or a model can act on at once."""
    errors: list[str] = []
    _check(value, schema, schema, "", what, errors)
    return sorted(errors, key=lambda e: "did you mean" not in e)


def _where(what: str, path: str) -> str:
    return f"{what} field {path!r}" if path else what


def _check(
    value: Any, schema: JSONSchema, root: JSONSchema, path: str, what: str, errors: list[str]
) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        errors.append(
            f"{_where(what, path)}: {value!r} is not a JSON number (NaN and Infinity are refused)"
        )
        return
    schema = _resolve(schema, root)
    if not schema:
        return
    if "anyOf" in schema:
        for option in schema["anyOf"]:
            trial: list[str] = []
            _check(value, option, root, path, what, trial)
            if not trial:
                return
        errors.append(
            f"{_where(what, path)}: expected {_describe(schema, root)}, "
            f"got {_type_of(value)} {_short(value)}"
        )
        return
    if "const" in schema and value != schema["const"]:
        errors.append(
            f"{_where(what, path)}: expected {_describe(schema, root)}, got {_short(value)}"
        )
        return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(
            f"{_where(what, path)}: expected {_describe(schema, root)}, got {_short(value)}"
        )
        return
    t = schema.get("type")
    if isinstance(t, str) and not _matches_type(value, t):
        errors.append(
            f"{_where(what, path)}: expected {_describe(schema, root)}, "
            f"got {_type_of(value)} {_short(value)}"
        )
        return
    if isinstance(value, dict):
        _check_object(value, schema, root, path, what, errors)
    elif isinstance(value, list | tuple):
        _check_array(list(value), schema, root, path, what, errors)


def _check_object(
    value: dict[str, Any],
    schema: JSONSchema,
    root: JSONSchema,
    path: str,
    what: str,
    errors: list[str],
) -> None:
    props: dict[str, JSONSchema] = schema.get("properties", {})
    unknown = [k for k in value if k not in props]
    for name in schema.get("required", []):
        if name not in value:
            kind = _describe(props.get(name, {}), root)
            close = difflib.get_close_matches(name, unknown, n=1, cutoff=0.6)
            hint = f"; did you mean {_join(path, close[0])!r}?" if close else ""
            errors.append(
                f"{what} is missing the required field {_join(path, name)!r} ({kind}{hint})"
            )
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in props:
            _check(item, props[key], root, _join(path, key), what, errors)
        elif extra is False:
            missing = [p for p in props if p not in value]
            close = difflib.get_close_matches(key, missing, n=1, cutoff=0.6)
            if close:
                errors.append(
                    f"{what} has an unknown field {_join(path, key)!r} (did you mean "
                    f"{_join(path, close[0])!r}?)"
                )
                continue
            known = ", ".join(props) or "none"
            errors.append(
                f"{what} has an unknown field {_join(path, key)!r} (expected fields: {known})"
            )
        elif isinstance(extra, dict):
            _check(item, extra, root, _join(path, key), what, errors)


def _check_array(
    value: list[Any], schema: JSONSchema, root: JSONSchema, path: str, what: str, errors: list[str]
) -> None:
    prefix = schema.get("prefixItems")
    if isinstance(prefix, list):
        if len(value) != len(prefix):
            errors.append(
                f"{_where(what, path)}: expected an array of {len(prefix)} items, got {len(value)}"
            )
            return
        for i, (item, sub) in enumerate(zip(value, prefix, strict=True)):
            _check(item, sub, root, _join(path, i), what, errors)
        return
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            _check(item, items, root, _join(path, i), what, errors)
            if len(errors) > 20:
                return
