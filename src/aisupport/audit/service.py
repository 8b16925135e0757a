"""The audit log: append-only, one organization's security-relevant events, written in the same
transaction as the change they record (the service's role may insert and read, never update or delete)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.audit.models import AuditEvent
from aisupport.core.client import Client


@dataclass(frozen=True)
class Actor:
    """Who did it: a person, an API key, a widget visitor, the AI, the system, or nobody known (a failed
    sign-in names its target instead). Derived from the principal (`Principal.actor`); `kind` follows
    from the ids when not given."""

    kind: str = ""
    user_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    visitor_id: uuid.UUID | None = None

    def __post_init__(self) -> None:
        if not self.kind:
            inferred = "member" if self.user_id else "api_key" if self.api_key_id else "anonymous"
            object.__setattr__(self, "kind", inferred)


async def record(
    db: AsyncSession,
    organization_id: uuid.UUID,
    action: str,
    *,
    actor: Actor,
    client: Client | None = None,
    target: tuple[str, uuid.UUID | str] | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one event; the session's tenant must be `organization_id` (row-level security checks it)."""
    db.add(
        AuditEvent(
            organization_id=organization_id,
            action=action,
            actor_kind=actor.kind,
            actor_user_id=actor.user_id,
            actor_api_key_id=actor.api_key_id,
            target_type=target[0] if target else None,
            target_id=str(target[1]) if target else None,
            ip=client.ip if client else None,
            user_agent=client.user_agent if client else None,
            details=details or {},
        )
    )
    await db.flush()
