"""A module with type errors of its own (a test fixture: the baseline must absorb them)."""

from __future__ import annotations

from types import SimpleNamespace

try:
    import not_a_real_module_for_symbiont_tests as missing
except ImportError:  # it never exists: the point is the type checker's unresolved-import
    missing = SimpleNamespace(VALUE=1)

WRONG: int = "not an int"  # a deliberate type error of the module itself


def value() -> int:
    """Return the missing module's value."""
    return missing.VALUE
