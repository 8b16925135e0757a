"""Who wrote a message or uploaded a file, as stored beside it: a type and an id."""

from __future__ import annotations

import uuid

from aisupport.access.principal import Principal


def author_of(principal: Principal) -> tuple[str, uuid.UUID | None]:
    """`member` and the user, `api_key` and the key, `widget_visitor` and the visitor, or the
    principal's kind with no id."""
    if principal.kind == "member":
        return "member", principal.user_id
    if principal.kind == "api_key":
        return "api_key", principal.api_key_id
    if principal.kind == "widget_visitor":
        return "widget_visitor", principal.visitor_id
    return str(principal.kind), None
