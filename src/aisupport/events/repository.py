"""Reading the outbox, scoped to one organization (row-level security scopes it again)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.core.db import rows_of, scoped
from aisupport.events.models import Event, EventCounter


async def after(db: AsyncSession, organization_id: uuid.UUID, sequence: int, *, limit: int) -> list[Event]:
    """The organization's events numbered after `sequence`, in order, at most `limit`."""
    query = rows_of(Event, organization_id).where(Event.sequence > sequence)
    return list((await db.scalars(query.order_by(Event.sequence).limit(limit))).all())


async def bounds(db: AsyncSession, organization_id: uuid.UUID) -> tuple[int | None, int]:
    """The organization's first event still kept (None: none kept) and its last sequence given out
    (0: none yet; events purged leave it as it was)."""
    first = await db.scalar(scoped(select(func.min(Event.sequence)), Event, organization_id))
    last = await db.scalar(scoped(select(EventCounter.last_sequence), EventCounter, organization_id))
    return first, last or 0


async def organizations_with_events_before(db: AsyncSession, moment: datetime) -> list[uuid.UUID]:
    rows = await db.execute(select(func.organizations_with_events_before(moment)))
    return [row[0] for row in rows]


async def purge(db: AsyncSession, organization_id: uuid.UUID, before: datetime, *, limit: int) -> int:
    """Delete up to `limit` of the organization's events older than `before`, oldest first; how many."""
    oldest: Any = (
        scoped(select(Event.sequence), Event, organization_id)
        .where(Event.occurred_at < before)
        .order_by(Event.sequence)
        .limit(limit)
    )
    result = await db.execute(
        scoped(delete(Event), Event, organization_id).where(Event.sequence.in_(oldest.scalar_subquery()))
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def envelope(event: Event) -> dict[str, Any]:
    """The event as consumers receive it (docs/events.md): JSON-ready."""
    return {
        "id": str(event.id),
        "type": event.type,
        "organization_id": str(event.organization_id),
        "sequence": event.sequence,
        "occurred_at": event.occurred_at.isoformat().replace("+00:00", "Z"),
        "data": event.payload,
    }
