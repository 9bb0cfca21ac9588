"""Get employee profile: part of the example HR capability library (see examples/hr/README.md)."""

from __future__ import annotations

import json
from typing import Any, TypedDict

from symbiont.host import read_file

DATABASE = "employee_database.json"


class Manager(TypedDict):
    employee_id: str
    name: str


class Profile(TypedDict):
    employee_id: str
    name: str
    email: str
    department: str
    title: str
    location: str
    hire_date: str
    manager: Manager | None
    direct_reports: list[str]


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


def get_employee_profile(employee_id: str) -> Profile:
    """Directory profile of one employee."""
    db = _load()
    emp = _employee(db, employee_id)
    manager: Manager | None = None
    if emp["manager_id"]:
        boss = _employee(db, emp["manager_id"])
        manager = {"employee_id": boss["employee_id"], "name": _name(boss)}
    reports = sorted(
        e["employee_id"] for e in db["employees"].values() if e["manager_id"] == emp["employee_id"]
    )
    return {
        "employee_id": emp["employee_id"],
        "name": _name(emp),
        "email": emp["email"],
        "department": emp["department"],
        "title": emp["title"],
        "location": emp["location"],
        "hire_date": emp["hire_date"],
        "manager": manager,
        "direct_reports": reports,
    }
