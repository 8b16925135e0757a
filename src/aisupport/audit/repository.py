"""All SQL that reads the audit log (writing is `service.record`, in the caller's transaction)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.audit.models import AuditEvent
from aisupport.core.db import rows_of


async def events(
    db: AsyncSession,
    organization_id: uuid.UUID,
    *,
    before_id: int | None,
    limit: int,
    action: str | None,
    actor_user_id: uuid.UUID | None,
    since: datetime | None,
    until: datetime | None,
) -> list[AuditEvent]:
    """A page of one organization's audit log, newest first (keyset on the event id)."""
    query = rows_of(AuditEvent, organization_id).order_by(AuditEvent.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if actor_user_id is not None:
        query = query.where(AuditEvent.actor_user_id == actor_user_id)
    if since is not None:
        query = query.where(AuditEvent.occurred_at >= since)
    if until is not None:
        query = query.where(AuditEvent.occurred_at < until)
    return list((await db.execute(query)).scalars())
