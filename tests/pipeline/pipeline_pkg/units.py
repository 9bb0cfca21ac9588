from __future__ import annotations


def meters(x: float) -> str:
    return f"{x} m"
