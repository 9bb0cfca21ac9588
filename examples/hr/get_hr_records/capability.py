"""Get HR records: part of the example HR capability library (see examples/hr/README.md)."""

from __future__ import annotations

import json
from typing import Any, TypedDict

from symbiont.host import read_file

DATABASE = "employee_database.json"


class HRRecord(TypedDict):
    employee_id: str
    name: str
    department: str
    title: str
    manager_id: str | None
    location: str
    hire_date: str
    employment_status: str
    contract_type: str
    employment_type: str
    work_hours_per_week: int
    probation_passed: bool
    disciplinary_actions: int
    notes: str


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


def get_hr_records(employee_id: str) -> HRRecord:
    """HR employment record of one employee."""
    emp = _employee(_load(), employee_id)
    hr = emp["hr"]
    return {
        "employee_id": emp["employee_id"],
        "name": _name(emp),
        "department": emp["department"],
        "title": emp["title"],
        "manager_id": emp["manager_id"],
        "location": emp["location"],
        "hire_date": emp["hire_date"],
        "employment_status": hr["employment_status"],
        "contract_type": hr["contract_type"],
        "employment_type": hr["employment_type"],
        "work_hours_per_week": hr["work_hours_per_week"],
        "probation_passed": hr["probation_passed"],
        "disciplinary_actions": hr["disciplinary_actions"],
        "notes": hr["notes"],
    }
