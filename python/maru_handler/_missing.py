"""Clear errors for names of the original package that have no counterpart here."""

from __future__ import annotations


def missing_attribute(module: str, name: str, not_provided: dict[str, str]) -> AttributeError:
    """The AttributeError for ``module.name``: says why when the original had it."""
    why = not_provided.get(name)
    if why is None:
        return AttributeError(f"module {module!r} has no attribute {name!r}")
    return AttributeError(
        f"{module}.{name} is part of the original Maru's server-based design and is not provided "
        f"by Maru on CXL: {why} (see docs/lmcache.md)"
    )
