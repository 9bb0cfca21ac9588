"""Get leave balance: part of the example HR capability library (see examples/hr/README.md)."""

from __future__ import annotations

import json
from typing import Any, TypedDict

from symbiont.host import read_file

DATABASE = "employee_database.json"


class LeaveBalance(TypedDict):
    employee_id: str
    name: str
    year: int
    annual_allowance_days: int
    annual_used_days: int
    carried_over_days: int
    remaining_days: int
    sick_days_taken: int
    parental_leave_days_used: int


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


def get_leave_balance(employee_id: str) -> LeaveBalance:
    """Remaining and used leave days of one employee for the current leave year."""
    emp = _employee(_load(), employee_id)
    lv = emp["leave"]
    remaining = lv["annual_allowance_days"] + lv["carried_over_days"] - lv["annual_used_days"]
    return {
        "employee_id": emp["employee_id"],
        "name": _name(emp),
        "year": lv["year"],
        "annual_allowance_days": lv["annual_allowance_days"],
        "annual_used_days": lv["annual_used_days"],
        "carried_over_days": lv["carried_over_days"],
        "remaining_days": remaining,
        "sick_days_taken": lv["sick_days_taken"],
        "parental_leave_days_used": lv["parental_leave_days_used"],
    }
