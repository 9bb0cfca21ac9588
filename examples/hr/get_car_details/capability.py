"""Get company car details: part of the example HR capability library (see examples/hr/README.md)."""

from __future__ import annotations

import json
from typing import Any, TypedDict

from symbiont.host import read_file

DATABASE = "employee_database.json"


class Car(TypedDict):
    make: str
    model: str
    year: int
    plate: str
    color: str
    parking_spot: str


class CarDetails(TypedDict):
    employee_id: str
    name: str
    has_car: bool
    car: Car | None


def _load() -> dict[str, Any]:
    return json.loads(read_file(DATABASE))


def _employee(db: dict[str, Any], employee_id: str) -> dict[str, Any]:
    key = employee_id.strip().upper()
    employees = db.get("employees", {})
    if key not in employees:
        raise LookupError(
            f"no employee with id {employee_id!r} (ids look like E001..E{len(employees):03d})"
        )
    return employees[key]


def _name(emp: dict[str, Any]) -> str:
    return f"{emp['first_name']} {emp['last_name']}"


def get_car_details(employee_id: str) -> CarDetails:
    """The employee's registered car, if any."""
    emp = _employee(_load(), employee_id)
    car = emp.get("car")
    return {
        "employee_id": emp["employee_id"],
        "name": _name(emp),
        "has_car": car is not None,
        "car": car,
    }
