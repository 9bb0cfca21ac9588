"""Update employee car details: part of the example HR capability library (see examples/hr/README.md)."""

from __future__ import annotations

import json
import re
from typing import Any, TypedDict

from symbiont.host import read_file, write_file

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


PLATE = re.compile(r"^[A-Z]{1,3}-[A-Z]{1,2} [0-9]{1,4}[EH]?$")


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


def update_employee_car_details(
    employee_id: str,
    make: str,
    model: str,
    year: int,
    plate: str,
    color: str = "unknown",
    parking_spot: str = "",
) -> CarDetails:
    """Set the employee's car; validates everything before writing anything."""
    db = _load()
    emp = _employee(db, employee_id)
    make, model, plate = make.strip(), model.strip(), plate.strip().upper()
    if not make or not model:
        raise ValueError("make and model must not be empty")
    if not 1990 <= year <= 2030:
        raise ValueError(f"year must be between 1990 and 2030, got {year}")
    if not PLATE.match(plate):
        raise ValueError(f"plate {plate!r} is not a valid German plate such as 'B-AB 1234'")
    for other in db["employees"].values():
        if other is not emp and other.get("car") and other["car"]["plate"] == plate:
            raise ValueError(f"plate {plate!r} is already registered to {other['employee_id']}")
    previous = emp.get("car") or {}
    car: Car = {
        "make": make,
        "model": model,
        "year": year,
        "plate": plate,
        "color": color.strip() or "unknown",
        "parking_spot": parking_spot.strip() or previous.get("parking_spot", ""),
    }
    emp["car"] = car
    write_file(DATABASE, json.dumps(db, indent=2, ensure_ascii=False) + "\n")
    return {"employee_id": emp["employee_id"], "name": _name(emp), "has_car": True, "car": car}
