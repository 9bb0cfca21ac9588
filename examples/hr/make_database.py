"""Generate `data/hr/employee_database.json`: 60 fictional employees, E001..E060.

Deterministic (a fixed seed and fixed name lists), so the committed JSON can be regenerated
byte for byte and reviewed as a diff:

    python examples/hr/make_database.py            # rewrites data/hr/employee_database.json
    python examples/hr/make_database.py --check    # exit 1 if the committed file differs

Every person, plate and phone number is made up.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

SEED = 20240607
COUNT = 60
OUT = Path(__file__).resolve().parent / "data" / "hr" / "employee_database.json"

FIRST = [
    "Ada",
    "Bruno",
    "Chloe",
    "Dmitri",
    "Elena",
    "Farid",
    "Greta",
    "Hiro",
    "Ines",
    "Jonas",
    "Kavya",
    "Liam",
    "Maya",
    "Nils",
    "Olga",
    "Pedro",
    "Quinn",
    "Rosa",
    "Sami",
    "Tara",
    "Umar",
    "Vera",
    "Wen",
    "Ximena",
    "Yusuf",
    "Zoe",
]
LAST = [
    "Almeida",
    "Berger",
    "Chen",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Larsen",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quaresma",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Umarov",
    "Varga",
    "Weber",
    "Xu",
    "Yilmaz",
    "Zimmermann",
]
DEPARTMENTS = {
    "Engineering": [
        "Software Engineer",
        "Senior Software Engineer",
        "Staff Engineer",
        "QA Engineer",
    ],
    "Finance": ["Accountant", "Financial Analyst", "Controller"],
    "Sales": ["Account Executive", "Sales Manager", "Sales Development Rep"],
    "Marketing": ["Marketing Specialist", "Content Writer", "Brand Manager"],
    "People": ["HR Generalist", "Recruiter", "People Partner"],
    "Operations": ["Operations Analyst", "Office Manager", "Facilities Coordinator"],
}
LOCATIONS = ["Berlin", "Lisbon", "Amsterdam", "Warsaw", "Lyon"]
GRADES = {
    "P1": (38000, 52000),
    "P2": (50000, 68000),
    "P3": (65000, 90000),
    "P4": (85000, 120000),
    "P5": (110000, 160000),
}
CARS = [
    ("Volkswagen", "Golf"),
    ("Toyota", "Corolla"),
    ("Tesla", "Model 3"),
    ("Skoda", "Octavia"),
    ("Renault", "Zoe"),
    ("BMW", "320i"),
    ("Peugeot", "308"),
    ("Hyundai", "Kona"),
]
COLORS = ["black", "white", "silver", "blue", "red", "grey"]
HEALTH = ["basic", "standard", "premium"]
RELATIONS = ["spouse", "partner", "parent", "sibling", "friend"]
REVIEW_TEXT = {
    2: "Below expectations; agreed a development plan with clear monthly goals.",
    3: "Meets expectations; reliable delivery and good collaboration with the team.",
    4: "Exceeds expectations; led a key project and mentored two colleagues.",
    5: "Outstanding; shaped the department's roadmap and raised the bar for quality.",
}


def _date(rng: random.Random, year_lo: int, year_hi: int) -> str:
    return f"{rng.randint(year_lo, year_hi):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _phone(rng: random.Random) -> str:
    return f"+49 30 {rng.randint(1000000, 9999999)}"


def _person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def build() -> dict[str, object]:
    rng = random.Random(SEED)
    employees: dict[str, dict[str, object]] = {}
    for n in range(1, COUNT + 1):
        eid = f"E{n:03d}"
        first, last = FIRST[(n - 1) % len(FIRST)], LAST[(n * 7) % len(LAST)]
        department = list(DEPARTMENTS)[(n - 1) % len(DEPARTMENTS)]
        title = rng.choice(DEPARTMENTS[department])
        grade = rng.choice(list(GRADES))
        lo, hi = GRADES[grade]
        base = rng.randrange(lo, hi, 500)
        hire_year = rng.randint(2012, 2024)
        history = []
        salary = int(base * 0.85) // 500 * 500
        for year in range(max(hire_year, 2021), 2026):
            history.append(
                {"effective_date": f"{year}-04-01", "base": salary, "reason": "annual review"}
            )
            salary = min(base, int(salary * 1.05) // 500 * 500)
        history[-1]["base"] = base
        married = rng.random() < 0.55
        children = [
            {"name": f"{rng.choice(FIRST)} {last}", "birth_year": rng.randint(2005, 2023)}
            for _ in range(rng.choice([0, 0, 1, 2, 3]))
        ]
        has_car = rng.random() < 0.6
        make, model = rng.choice(CARS)
        car = (
            {
                "make": make,
                "model": model,
                "year": rng.randint(2015, 2025),
                "plate": f"B-{rng.choice('ABCDEFGHKLMNPRSTUVWXYZ')}{rng.choice('ABCDEFGHKLMNPRSTUVWXYZ')} {rng.randint(100, 9999)}",
                "color": rng.choice(COLORS),
                "parking_spot": f"P{rng.randint(1, 120):03d}",
            }
            if has_car
            else None
        )
        annual = rng.choice([25, 26, 28, 30])
        reviews = []
        for year in range(max(hire_year + 1, 2021), 2026):
            rating = rng.choice([2, 3, 3, 3, 4, 4, 5])
            reviews.append(
                {
                    "year": year,
                    "rating": rating,
                    "reviewer": f"E{rng.randint(1, COUNT):03d}",
                    "summary": REVIEW_TEXT[rating],
                    "goals": [f"Goal {i + 1} for {year + 1}" for i in range(rng.randint(1, 3))],
                }
            )
        employees[eid] = {
            "employee_id": eid,
            "first_name": first,
            "last_name": last,
            "email": f"{first.lower()}.{last.lower()}@example.com",
            "department": department,
            "title": title,
            "manager_id": None if n <= 6 else f"E{(n - 1) % 6 + 1:03d}",
            "location": rng.choice(LOCATIONS),
            "hire_date": f"{hire_year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "salary": {
                "base": base,
                "currency": "EUR",
                "pay_grade": grade,
                "bonus_pct": rng.choice([0, 5, 8, 10, 15]),
                "pay_frequency": "monthly",
                "history": history,
            },
            "hr": {
                "employment_status": rng.choice(["active"] * 9 + ["on_leave"]),
                "contract_type": rng.choice(["permanent"] * 4 + ["fixed_term"]),
                "employment_type": rng.choice(["full_time"] * 4 + ["part_time"]),
                "work_hours_per_week": 40,
                "probation_passed": hire_year < 2024,
                "disciplinary_actions": rng.choice([0] * 8 + [1]),
                "national_id_last4": f"{rng.randint(0, 9999):04d}",
                "notes": rng.choice(
                    ["", "", "Relocated from another office.", "Returning after parental leave."]
                ),
            },
            "car": car,
            "family": {
                "marital_status": "married"
                if married
                else rng.choice(["single", "single", "divorced"]),
                "spouse_name": _person(rng) if married else None,
                "children": children,
            },
            "emergency_contacts": [
                {"name": _person(rng), "relationship": rng.choice(RELATIONS), "phone": _phone(rng)}
                for _ in range(rng.choice([1, 2]))
            ],
            "leave": {
                "annual_allowance_days": annual,
                "annual_used_days": rng.randint(0, annual - 5),
                "carried_over_days": rng.randint(0, 5),
                "sick_days_taken": rng.randint(0, 8),
                "parental_leave_days_used": rng.choice([0, 0, 0, 20]),
                "year": 2025,
            },
            "benefits": {
                "health_plan": rng.choice(HEALTH),
                "dental": rng.random() < 0.7,
                "vision": rng.random() < 0.5,
                "pension_contribution_pct": rng.choice([3, 4, 5, 6]),
                "life_insurance": rng.random() < 0.6,
                "gym_membership": rng.random() < 0.4,
                "public_transport_pass": not has_car,
                "meal_allowance_eur_per_month": rng.choice([0, 60, 100]),
            },
            "performance_reviews": reviews,
        }
    return {"schema_version": 1, "company": "Example GmbH", "employees": employees}


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed file")
    args = parser.parse_args()
    text = render()
    if args.check:
        same = OUT.is_file() and OUT.read_text(encoding="utf-8") == text
        print("up to date" if same else f"{OUT} differs from the generator's output")
        return 0 if same else 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({COUNT} employees)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
