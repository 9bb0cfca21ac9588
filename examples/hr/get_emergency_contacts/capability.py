"""Get emergency contacts: part of the example HR capability library (see examples/hr/README.md)."""

from __future__ import annotations

import json
from typing import Any, TypedDict

from symbiont.host import read_file

DATABASE = "employee_database.json"


class Contact(TypedDict):
    name: str
    relationship: str
    phone: str


class EmergencyContacts(TypedDict):
    employee_id: str
    name: str
    contacts: list[Contact]


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


def get_emergency_contacts(employee_id: str) -> EmergencyContacts:
    """Emergency contacts of one employee."""
    emp = _employee(_load(), employee_id)
    return {
        "employee_id": emp["employee_id"],
        "name": _name(emp),
        "contacts": list(emp["emergency_contacts"]),
    }
