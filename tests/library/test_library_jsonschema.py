"""JSON Schema derived from a capability's source, and validation errors that name the field."""

from __future__ import annotations

import ast

import pytest

from symbiont.errors import CapabilityError
from symbiont.library.jsonschema import SchemaError, function_schemas, validate

SOURCE = """
from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Literal, NotRequired, Optional, TypedDict

from pydantic import BaseModel, Field

Colour = Literal["red", "green"]


class Point(TypedDict):
    x: float
    y: float
    label: NotRequired[str]


class Options(TypedDict, total=False):
    verbose: bool


@dataclass
class Box:
    corner: Point
    tags: list[str] = field(default_factory=list)
    size: int = 1


class Person(BaseModel):
    name: str
    age: int = Field(..., ge=0)
    nickname: str | None = None


def entry(
    points: list[Point],
    colour: Colour,
    box: Box,
    who: Person,
    scale: float = 1.0,
    opts: Optional[Options] = None,
    mode: typing.Union[int, str] = 0,
    *,
    pair: tuple[int, str] = (1, "a"),
    counts: dict[str, int] | None = None,
) -> dict[str, list[Point]]:
    return {}
"""


def schemas() -> tuple[dict, dict]:
    return function_schemas(ast.parse(SOURCE), "entry")


def test_parameters_become_properties_with_required_and_defaults() -> None:
    inp, out = schemas()
    assert inp["type"] == "object"
    assert inp["additionalProperties"] is False
    assert inp["required"] == ["points", "colour", "box", "who"]
    props = inp["properties"]
    assert props["points"] == {"type": "array", "items": {"$ref": "#/$defs/Point"}}
    assert props["colour"] == {"enum": ["red", "green"]}
    assert props["scale"] == {"type": "number", "default": 1.0}
    assert props["opts"]["anyOf"] == [{"$ref": "#/$defs/Options"}, {"type": "null"}]
    assert props["mode"]["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert props["pair"]["prefixItems"] == [{"type": "integer"}, {"type": "string"}]
    assert props["counts"]["anyOf"][0] == {
        "type": "object",
        "additionalProperties": {"type": "integer"},
    }
    assert out["type"] == "object"
    assert out["additionalProperties"]["items"] == {"$ref": "#/$defs/Point"}


def test_typeddict_dataclass_and_pydantic_definitions() -> None:
    inp, _ = schemas()
    defs = inp["$defs"]
    assert defs["Point"]["required"] == ["x", "y"]  # label is NotRequired
    assert defs["Options"].get("required", []) == []  # total=False
    assert defs["Box"]["required"] == ["corner"]  # tags and size have defaults
    assert defs["Box"]["properties"]["corner"] == {"$ref": "#/$defs/Point"}
    assert defs["Person"]["required"] == ["name", "age"]  # Field(...) is still required
    assert "nickname" in defs["Person"]["properties"]


def test_unsupported_hint_is_refused_naming_the_parameter() -> None:
    src = "import socket\ndef f(s: socket.socket) -> int:\n    return 1\n"
    with pytest.raises(SchemaError, match="parameter 's' of f"):
        function_schemas(ast.parse(src), "f")


def test_missing_annotations_are_refused() -> None:
    with pytest.raises(SchemaError, match="parameter 'x' has no type annotation"):
        function_schemas(ast.parse("def f(x) -> int:\n    return 1\n"), "f")
    with pytest.raises(SchemaError, match="no return annotation"):
        function_schemas(ast.parse("def f(x: int):\n    return 1\n"), "f")
    with pytest.raises(SchemaError, match=r"\*args"):
        function_schemas(ast.parse("def f(*args: int) -> int:\n    return 1\n"), "f")


def test_schema_error_is_a_capability_error() -> None:
    assert issubclass(SchemaError, CapabilityError)


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        (
            {"colour": "red", "box": {"corner": {"x": 1, "y": 2}}, "who": {"name": "a", "age": 1}},
            "missing the required field 'points'",
        ),
        (
            {
                "points": [],
                "colour": "blue",
                "box": {"corner": {"x": 1, "y": 2}},
                "who": {"name": "a", "age": 1},
            },
            'input field \'colour\': expected one of "red", "green", got "blue"',
        ),
        (
            {
                "points": [{"x": 1, "y": "2"}],
                "colour": "red",
                "box": {"corner": {"x": 1, "y": 2}},
                "who": {"name": "a", "age": 1},
            },
            "input field 'points[0].y': expected number, got string",
        ),
        (
            {
                "points": [],
                "colour": "red",
                "box": {"corner": {"x": 1, "y": 2}},
                "who": {"name": "a", "age": 1},
                "extra": 1,
            },
            "unknown field 'extra'",
        ),
        (
            {
                "points": [],
                "colour": "red",
                "box": {"corner": {"x": 1}},
                "who": {"name": "a", "age": 1},
            },
            "missing the required field 'box.corner.y'",
        ),
        (
            {
                "points": [],
                "colour": "red",
                "box": {"corner": {"x": 1, "y": 2}},
                "who": {"name": "a", "age": True},
            },
            "input field 'who.age': expected integer, got boolean",
        ),
    ],
)
def test_validation_errors_name_the_field(value: dict, needle: str) -> None:
    inp, _ = schemas()
    errors = validate(value, inp)
    assert any(needle in e for e in errors), errors


def test_valid_input_has_no_errors() -> None:
    inp, _ = schemas()
    value = {
        "points": [{"x": 1, "y": 2.5, "label": "a"}],
        "colour": "green",
        "box": {"corner": {"x": 0, "y": 0}, "tags": ["t"]},
        "who": {"name": "Ada", "age": 36, "nickname": None},
        "opts": {"verbose": True},
        "mode": "fast",
        "pair": [3, "b"],
        "counts": None,
    }
    assert validate(value, inp) == []


def test_each_schema_carries_only_the_definitions_it_uses() -> None:
    src = (
        "from typing import TypedDict\n"
        "class In(TypedDict):\n    a: int\n"
        "class Leaf(TypedDict):\n    b: str\n"
        "class Out(TypedDict):\n    leaf: Leaf\n"
        "def f(x: In) -> Out:\n    return {'leaf': {'b': ''}}\n"
    )
    inp, out = function_schemas(ast.parse(src), "f")
    assert set(inp["$defs"]) == {"In"}
    assert set(out["$defs"]) == {"Out", "Leaf"}  # reached through Out
