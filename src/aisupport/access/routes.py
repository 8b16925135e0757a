"""How a route declares who may call it: a permission dependency (`requires(...)`, access/dependencies.py),
the widget's visitor dependency (`current_visitor`, access/visitor.py), or the `@public` marker on its
endpoint. A test walks every route and fails on one that declares
neither; the OpenAPI document reads the same declarations (401/403 where they apply)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
PUBLIC = "public"


def public(endpoint: Endpoint) -> Endpoint:
    """Marks a route's endpoint as open to anyone (it does its own checks, if any). A marker, not a
    dependency: it costs the route nothing per request."""
    endpoint.access = PUBLIC  # type: ignore[attr-defined]
    return endpoint


def declared_access(call: object) -> Any:
    """What an endpoint or a route dependency declares: its permission, "public", "widget_visitor",
    or None."""
    return getattr(call, "access", None) or getattr(call, "permission", None)
