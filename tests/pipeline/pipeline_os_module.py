"""A module that itself imports denied modules: its names must not leak into candidates."""

from __future__ import annotations

import os
from subprocess import run as run_command

LIMIT = 10


def count_files(names: list[str]) -> int:
    return len(names)


def _keep() -> object:
    return os, run_command
