"""Imports an evolvable by name long before it is evolved, as a user's module would."""

from __future__ import annotations

from core_targets import tagged


def call_tagged() -> tuple[int, int]:
    return tagged(3)
