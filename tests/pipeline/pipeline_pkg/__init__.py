"""A package, so relative imports can be type-checked."""
