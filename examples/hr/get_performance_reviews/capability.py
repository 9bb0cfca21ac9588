"""Get performance reviews: part of the example HR capability library (see examples/hr/README.md)."""

from __future__ import annotations

import json
from typing import Any, TypedDict

from symbiont.host import read_file

DATABASE = "employee_database.json"


class Review(TypedDict):
    year: int
    rating: int
    reviewer: str
    summary: str
    goals: list[str]


class PerformanceReviews(TypedDict):
    employee_id: str
    name: str
    reviews: list[Review]
    average_rating: float | None


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


def get_performance_reviews(employee_id: str, year: int | None = None) -> PerformanceReviews:
    """Performance reviews of one employee, all years or just `year`."""
    emp = _employee(_load(), employee_id)
    reviews = [r for r in emp["performance_reviews"] if year is None or r["year"] == year]
    average = round(sum(r["rating"] for r in reviews) / len(reviews), 2) if reviews else None
    return {
        "employee_id": emp["employee_id"],
        "name": _name(emp),
        "reviews": reviews,
        "average_rating": average,
    }
