"""The capability library: verified, typed functions kept, found by meaning, run in a sandbox.

from symbiont.library import Library, Capability
lib = Library()                      # default store; sandbox tier from $SYMBIONT_SANDBOX
lib.import_dir("examples/hr")
lib.search("how much is employee E007 paid")[0].capability.id   # 'get_salary_details'
lib.run("get_salary_details", {"employee_id": "E007"}).output
"""

from __future__ import annotations

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
    CapabilityNotFound,
    CapabilityRefused,
    ExampleFailure,
    ImportReport,
    InvalidInput,
    Library,
    RunResult,
    SearchResult,
    default_data_root,
)

__all__ = [
    "STATUSES",
    "Capability",
    "CapabilityDeprecated",
    "CapabilityNotFound",
    "CapabilityPermissions",
    "CapabilityRefused",
    "CapabilityStats",
    "Check",
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
