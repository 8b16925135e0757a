"""Writing events: `emit` in the transaction of the change; the session writes them to the outbox just
before COMMIT (numbered, then a NOTIFY that PostgreSQL delivers only if the transaction commits). A
transaction that rolls back writes nothing; one that commits always has its events (decision 0046)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uuid_utils.compat as uuid7
from psycopg.types.json import Jsonb
from sqlalchemy import event, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.util import await_

from aisupport.core.db import mark_written
from aisupport.core.jobs import defer_unless_queued
from aisupport.core.metrics import EVENTS_WRITTEN
from aisupport.core.tenancy import TenantSession
from aisupport.events.catalogue import CATALOGUE
from aisupport.events.models import EventCounter

# The channel every API process listens on; a notification's payload is "<organization id>:<last sequence>".
CHANNEL = "aisupport_events"
PENDING = "pending_events"
DISPATCH_TASK = "webhooks:dispatch"  # webhooks/tasks.py; named, not imported (it is a layer above)


WRITE = text(
    """
    WITH counter AS (
        INSERT INTO event_counters AS counter (organization_id, last_sequence)
        VALUES (:organization, :count)
        ON CONFLICT (organization_id) DO UPDATE SET last_sequence = counter.last_sequence + :count
        RETURNING last_sequence, webhooks
    ), written AS (
        INSERT INTO events
               (organization_id, sequence, id, type, occurred_at, conversation_id, private, payload)
        SELECT :organization, counter.last_sequence - :count + item.position, item.id, item.type,
               item.occurred_at, item.conversation_id, item.private, item.payload
          FROM counter,
               unnest(CAST(:ids AS uuid[]), CAST(:types AS text[]), CAST(:times AS timestamptz[]),
                      CAST(:conversations AS uuid[]), CAST(:private AS boolean[]), CAST(:payloads AS jsonb[]))
               WITH ORDINALITY AS item(id, type, occurred_at, conversation_id, private, payload, position)
    )
    SELECT last_sequence, webhooks, pg_notify(:channel, CAST(:organization AS text) || ':' || last_sequence)
      FROM counter
    """
)


@dataclass
class Pending:
    organization_id: uuid.UUID
    type: str
    payload: dict[str, Any]
    conversation_id: uuid.UUID | None
    private: bool
    id: uuid.UUID = field(default_factory=uuid7.uuid7)
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def emit(
    db: AsyncSession,
    organization_id: uuid.UUID,
    type: str,
    payload: dict[str, Any],
    *,
    conversation_id: uuid.UUID | None = None,
    private: bool = False,
) -> None:
    """Record an event of the catalogue (`payload` JSON-ready: `model_dump(mode="json")`), written with
    the transaction's commit, in the order emitted."""
    if type not in CATALOGUE:
        raise ValueError(f"{type} is not in the event catalogue")
    db.info.setdefault(PENDING, []).append(Pending(organization_id, type, payload, conversation_id, private))
    mark_written(db)


@event.listens_for(TenantSession, "before_commit")
def _write_pending(session: Session) -> None:
    pending: list[Pending] = session.info.pop(PENDING, [])
    organizations = list(dict.fromkeys(item.organization_id for item in pending))
    for organization_id in organizations:
        events = [item for item in pending if item.organization_id == organization_id]
        # Taken last, held only through the commit: concurrent transactions of the organization queue
        # here for a moment, and the numbers follow commit order (a stream never sees 7 before 6). One
        # statement: the counter, the events, the notification.
        written = session.execute(
            WRITE,
            {
                "organization": organization_id,
                "count": len(events),
                "ids": [item.id for item in events],
                "types": [item.type for item in events],
                "times": [item.occurred_at for item in events],
                "conversations": [item.conversation_id for item in events],
                "private": [item.private for item in events],
                "payloads": [Jsonb(item.payload) for item in events],
                "channel": CHANNEL,
            },
        ).one()
        webhooks = written.webhooks
        for item in events:
            EVENTS_WRITTEN.labels(item.type).inc()
        if webhooks:  # the dispatcher turns the new events into deliveries, once this commits
            driver_connection = session.connection().connection.driver_connection
            # One dispatcher queued per organization at a time: a burst of commits is dispatched in batches.
            lock = f"{DISPATCH_TASK}:{organization_id}"
            await_(
                defer_unless_queued(
                    driver_connection, DISPATCH_TASK, lock, organization_id=str(organization_id)
                )
            )


async def follow_for_webhooks(db: AsyncSession, organization_id: uuid.UUID, *, on: bool) -> int | None:
    """Whether the organization's commits with events queue the webhook dispatcher (it has an enabled
    endpoint). Turned on from off: the organization's last sequence (deliveries start after it)."""
    was = (
        await db.execute(
            select(EventCounter.webhooks, EventCounter.last_sequence)
            .where(EventCounter.organization_id == organization_id)
            .with_for_update()
        )
    ).one_or_none()
    await db.execute(
        pg_insert(EventCounter)
        .values(organization_id=organization_id, webhooks=on)
        .on_conflict_do_update(index_elements=[EventCounter.organization_id], set_={"webhooks": on})
    )
    if on and (was is None or not was.webhooks):
        return was.last_sequence if was is not None else 0
    return None


@event.listens_for(TenantSession, "after_rollback")
def _forget_pending(session: Session) -> None:
    session.info.pop(PENDING, None)
