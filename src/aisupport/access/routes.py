"""How a route declares who may call it: a permission dependency (`requires(...)`, in auth) or the
`public` marker. A test walks every route and fails on one that declares neither."""

from __future__ import annotations

from typing import Any


async def public() -> None:
    """Marks a route as open to anyone (it does its own checks, if any)."""


def declared_access(dependency: object) -> Any:
    """What a route dependency declares: its permission, "public", or None."""
    if dependency is public:
        return "public"
    return getattr(dependency, "permission", None)
