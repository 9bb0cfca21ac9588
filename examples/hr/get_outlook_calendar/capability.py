"""Get Outlook calendar: part of the example HR capability library (see examples/hr/README.md)."""

from __future__ import annotations

import datetime
import json
import random
from typing import Any, TypedDict

from symbiont.host import now_ms, read_file

DATABASE = "employee_database.json"


class CalendarEvent(TypedDict):
    date: str
    start: str
    end: str
    subject: str
    location: str
    attendees: list[str]


class Calendar(TypedDict):
    employee_id: str
    name: str
    start_date: str
    days: int
    events: list[CalendarEvent]


SUBJECTS = [
    ("Team stand-up", "Teams"),
    ("1:1 with manager", "Room 2.14"),
    ("Sprint planning", "Room 3.01"),
    ("Customer call", "Teams"),
    ("Design review", "Room 1.05"),
    ("Lunch & learn", "Cafeteria"),
    ("Quarterly planning", "Board room"),
]


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


def get_outlook_calendar(
    employee_id: str, start_date: str | None = None, days: int = 5
) -> Calendar:
    """Mock Outlook events of one employee, deterministic per employee and day."""
    if not 1 <= days <= 31:
        raise ValueError(f"days must be between 1 and 31, got {days}")
    db = _load()
    emp = _employee(db, employee_id)
    if start_date is None:
        first = datetime.datetime.fromtimestamp(now_ms() / 1000, datetime.UTC).date()
    else:
        try:
            first = datetime.date.fromisoformat(start_date)
        except ValueError:
            raise ValueError(f"start_date must be YYYY-MM-DD, got {start_date!r}") from None
    colleagues = sorted(db["employees"])
    events: list[CalendarEvent] = []
    for offset in range(days):
        day = first + datetime.timedelta(days=offset)
        if day.weekday() >= 5:
            continue
        rng = random.Random(f"{emp['employee_id']}/{day.isoformat()}")
        for hour in sorted(rng.sample(range(9, 17), rng.randint(1, 3))):
            subject, location = rng.choice(SUBJECTS)
            attendees = [emp["employee_id"], *rng.sample(colleagues, 2)]
            events.append(
                {
                    "date": day.isoformat(),
                    "start": f"{hour:02d}:00",
                    "end": f"{hour:02d}:{rng.choice(['30', '45'])}",
                    "subject": subject,
                    "location": location,
                    "attendees": attendees,
                }
            )
    return {
        "employee_id": emp["employee_id"],
        "name": _name(emp),
        "start_date": first.isoformat(),
        "days": days,
        "events": events,
    }
