"""Get family details: part of the example HR capability library (see examples/hr/README.md)."""

from __future__ import annotations

import json
from typing import Any, TypedDict

from symbiont.host import read_file

DATABASE = "employee_database.json"


class Child(TypedDict):
    name: str
    birth_year: int


class FamilyDetails(TypedDict):
    employee_id: str
    name: str
    marital_status: str
    spouse_name: str | None
    children: list[Child]
    dependants: int


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


def get_family_details(employee_id: str) -> FamilyDetails:
    """Marital status, spouse and children of one employee."""
    emp = _employee(_load(), employee_id)
    fam = emp["family"]
    children = list(fam["children"])
    spouse = fam["spouse_name"]
    return {
        "employee_id": emp["employee_id"],
        "name": _name(emp),
        "marital_status": fam["marital_status"],
        "spouse_name": spouse,
        "children": children,
        "dependants": len(children) + (1 if spouse else 0),
    }
