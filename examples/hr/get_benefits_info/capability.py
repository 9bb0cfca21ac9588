"""Get benefits information: part of the example HR capability library (see examples/hr/README.md)."""

from __future__ import annotations

import json
from typing import Any, TypedDict

from symbiont.host import read_file

DATABASE = "employee_database.json"


class Benefits(TypedDict):
    employee_id: str
    name: str
    health_plan: str
    dental: bool
    vision: bool
    pension_contribution_pct: float
    life_insurance: bool
    gym_membership: bool
    public_transport_pass: bool
    meal_allowance_eur_per_month: float


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


def get_benefits_info(employee_id: str) -> Benefits:
    """Benefits one employee is enrolled in."""
    emp = _employee(_load(), employee_id)
    b = emp["benefits"]
    return {
        "employee_id": emp["employee_id"],
        "name": _name(emp),
        "health_plan": b["health_plan"],
        "dental": b["dental"],
        "vision": b["vision"],
        "pension_contribution_pct": b["pension_contribution_pct"],
        "life_insurance": b["life_insurance"],
        "gym_membership": b["gym_membership"],
        "public_transport_pass": b["public_transport_pass"],
        "meal_allowance_eur_per_month": b["meal_allowance_eur_per_month"],
    }
