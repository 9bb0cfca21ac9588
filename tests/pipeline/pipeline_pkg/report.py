from __future__ import annotations

from . import units
from .units import meters


def describe(distance: float) -> str:
    """Render a distance."""
    return units.meters(distance) + meters(0.0)[:0]
