"""Update employee salary: part of the example HR capability library (see examples/hr/README.md)."""

from __future__ import annotations

import datetime
import json
import math
from typing import Any, TypedDict

from symbiont.host import read_file, write_file

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


MAX_BASE = 1_000_000


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


def update_employee_salary(
    employee_id: str, new_base: float, effective_date: str, reason: str = "salary update"
) -> SalaryDetails:
    """Set a new base salary; validates everything before writing anything."""
    db = _load()
    emp = _employee(db, employee_id)
    if not math.isfinite(new_base) or new_base <= 0:
        raise ValueError(f"new_base must be a positive amount, got {new_base}")
    if new_base > MAX_BASE:
        raise ValueError(f"new_base {new_base} is above the plausible maximum of {MAX_BASE}")
    try:
        datetime.date.fromisoformat(effective_date)
    except ValueError:
        raise ValueError(f"effective_date must be YYYY-MM-DD, got {effective_date!r}") from None
    s = emp["salary"]
    base = int(new_base) if float(new_base).is_integer() else round(new_base, 2)
    s["base"] = base
    s["history"].append({"effective_date": effective_date, "base": base, "reason": reason})
    write_file(DATABASE, json.dumps(db, indent=2, ensure_ascii=False) + "\n")
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
