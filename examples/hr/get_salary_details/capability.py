"""Get salary details: part of the example HR capability library (see examples/hr/README.md)."""

from __future__ import annotations

import json
from typing import Any, TypedDict

from symbiont.host import read_file

DATABASE = "employee_database.json"


class SalaryChange(TypedDict):
    effective_date: str
    base: float
    reason: str


class SalaryDetails(TypedDict):
    employee_id: str
    name: str
    base: float
    currency: str
    pay_grade: str
    bonus_pct: float
    pay_frequency: str
    history: list[SalaryChange]


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


def get_salary_details(employee_id: str) -> SalaryDetails:
    """Salary record of one employee (base, currency, grade, bonus, history)."""
    emp = _employee(_load(), employee_id)
    s = emp["salary"]
    return {
        "employee_id": emp["employee_id"],
        "name": _name(emp),
        "base": s["base"],
        "currency": s["currency"],
        "pay_grade": s["pay_grade"],
        "bonus_pct": s["bonus_pct"],
        "pay_frequency": s["pay_frequency"],
        "history": list(s["history"]),
    }
