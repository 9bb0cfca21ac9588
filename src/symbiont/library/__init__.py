"""The capability library: verified, typed functions kept, found by meaning, run in a sandbox.

from symbiont.library import Library, Capability
lib = Library()                      # default store; sandbox tier from $SYMBIONT_SANDBOX
lib.import_dir("examples/hr")
lib.search("how much is employee E007 paid")[0].capability.id   # 'get_salary_details'
lib.run("get_salary_details", {"employee_id": "E007"}).output

Names are imported lazily: the store's capability repository imports
`symbiont.library.capability` (plain data) and should not pay for the whole library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from symbiont.library.capability import (
        STATUSES,
        Capability,
        CapabilityPermissions,
        CapabilityStats,
        Check,
        Example,
    )
    from symbiont.library.jsonschema import SchemaError, function_schemas, validate
    from symbiont.library.library import (
        CapabilityDeprecated,
        CapabilityExists,
        CapabilityNotFound,
        CapabilityRefused,
        DoctorEntry,
        ExampleFailure,
        ImportReport,
        InvalidInput,
        Library,
        RunResult,
        SearchResult,
        default_data_root,
    )

_WHERE = {
    **dict.fromkeys(
        ("STATUSES", "Capability", "CapabilityPermissions", "CapabilityStats", "Check", "Example"),
        "symbiont.library.capability",
    ),
    **dict.fromkeys(("SchemaError", "function_schemas", "validate"), "symbiont.library.jsonschema"),
    **dict.fromkeys(
        (
            "CapabilityDeprecated",
            "CapabilityExists",
            "CapabilityNotFound",
            "CapabilityRefused",
            "DoctorEntry",
            "ExampleFailure",
            "ImportReport",
            "InvalidInput",
            "Library",
            "RunResult",
            "SearchResult",
            "default_data_root",
        ),
        "symbiont.library.library",
    ),
}

__all__ = [
    "STATUSES",
    "Capability",
    "CapabilityDeprecated",
    "CapabilityExists",
    "CapabilityNotFound",
    "CapabilityPermissions",
    "CapabilityRefused",
    "CapabilityStats",
    "Check",
    "DoctorEntry",
    "Example",
    "ExampleFailure",
    "ImportReport",
    "InvalidInput",
    "Library",
    "RunResult",
    "SchemaError",
    "SearchResult",
    "default_data_root",
    "function_schemas",
    "validate",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'symbiont.library' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
