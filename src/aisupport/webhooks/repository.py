"""All SQL of webhooks, scoped to one organization (row-level security scopes it again)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, literal, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.core.db import row_of, rows_of, scoped
from aisupport.core.pagination import keyset
from aisupport.events.models import Event
from aisupport.webhooks.models import WebhookAttempt, WebhookCursor, WebhookDelivery, WebhookEndpoint


async def endpoint(
    db: AsyncSession, organization_id: uuid.UUID, endpoint_id: uuid.UUID, *, lock: bool = False
) -> WebhookEndpoint | None:
    return await db.scalar(
        row_of(WebhookEndpoint, organization_id, WebhookEndpoint.id == endpoint_id, lock=lock)
    )


async def endpoints(
    db: AsyncSession,
    organization_id: uuid.UUID,
    *,
    enabled_only: bool = False,
    after: tuple[datetime, uuid.UUID] | None = None,
    limit: int | None = None,
) -> list[WebhookEndpoint]:
    """The organization's endpoints, oldest first (a page of them with `after` and `limit`)."""
    query = rows_of(WebhookEndpoint, organization_id)
    if enabled_only:
        query = query.where(WebhookEndpoint.enabled)
    query = keyset(query, (WebhookEndpoint.created_at, WebhookEndpoint.id), after, limit)
    return list((await db.scalars(query)).all())


async def delivery(
    db: AsyncSession, organization_id: uuid.UUID, delivery_id: uuid.UUID, *, lock: bool = False
) -> WebhookDelivery | None:
    return await db.scalar(
        row_of(WebhookDelivery, organization_id, WebhookDelivery.id == delivery_id, lock=lock)
    )


async def deliveries_by_id(
    db: AsyncSession, organization_id: uuid.UUID, delivery_ids: list[uuid.UUID]
) -> list[WebhookDelivery]:
    """These deliveries, locked until the transaction ends, in the order given (missing ones left out)."""
    query = (
        rows_of(WebhookDelivery, organization_id)
        .where(WebhookDelivery.id.in_(delivery_ids))
        .order_by(WebhookDelivery.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    found = {delivery.id: delivery for delivery in (await db.scalars(query)).all()}
    return [found[delivery_id] for delivery_id in delivery_ids if delivery_id in found]


async def endpoints_by_id(
    db: AsyncSession, organization_id: uuid.UUID, endpoint_ids: set[uuid.UUID], *, lock: bool = False
) -> dict[uuid.UUID, WebhookEndpoint]:
    query = rows_of(WebhookEndpoint, organization_id).where(WebhookEndpoint.id.in_(endpoint_ids))
    if lock:
        query = query.order_by(WebhookEndpoint.id).with_for_update().execution_options(populate_existing=True)
    return {endpoint.id: endpoint for endpoint in (await db.scalars(query)).all()}


async def events_by_sequence(
    db: AsyncSession, organization_id: uuid.UUID, sequences: list[int]
) -> list[Event]:
    if not sequences:
        return []
    return list(
        (await db.scalars(rows_of(Event, organization_id).where(Event.sequence.in_(sequences)))).all()
    )


async def deliveries(
    db: AsyncSession,
    organization_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    *,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[WebhookDelivery]:
    """The endpoint's deliveries, newest first."""
    query = rows_of(WebhookDelivery, organization_id).where(WebhookDelivery.endpoint_id == endpoint_id)
    if before is not None:
        query = query.where(tuple_(WebhookDelivery.created_at, WebhookDelivery.id) < before)
    query = query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()).limit(limit)
    return list((await db.scalars(query)).all())


async def attempts(
    db: AsyncSession, organization_id: uuid.UUID, delivery_id: uuid.UUID
) -> list[WebhookAttempt]:
    query = (
        rows_of(WebhookAttempt, organization_id)
        .where(WebhookAttempt.delivery_id == delivery_id)
        .order_by(WebhookAttempt.attempted_at, WebhookAttempt.id)
    )
    return list((await db.scalars(query)).all())


async def last_of_next_events(
    db: AsyncSession, organization_id: uuid.UUID, after: int, limit: int
) -> int | None:
    """The sequence of the `limit`-th event after `after` (or of the last one, if fewer); None if none."""
    following = (
        scoped(select(Event.sequence), Event, organization_id)
        .where(Event.sequence > after)
        .order_by(Event.sequence)
        .limit(limit)
        .subquery()
    )
    found: int | None = await db.scalar(select(func.max(following.c.sequence)))
    return found


async def add_deliveries(
    db: AsyncSession, organization_id: uuid.UUID, after: int, upto: int
) -> list[uuid.UUID]:
    """One pending delivery per event numbered in (`after`, `upto`] and enabled endpoint subscribed to
    its type (all types when it names none) that existed when the event occurred, made by one INSERT
    ... SELECT in the database; their ids, in event order."""
    endpoint = WebhookEndpoint
    pairs = (
        scoped(
            select(
                func.gen_random_uuid(),
                Event.organization_id,
                endpoint.id,
                Event.sequence,
                Event.id,
                Event.type,
                literal("pending"),
                literal(0),
            ),
            Event,
            organization_id,
        )
        .join(endpoint, and_(endpoint.organization_id == Event.organization_id, endpoint.enabled.is_(True)))
        .where(
            Event.sequence > after,
            Event.sequence <= upto,
            or_(func.cardinality(endpoint.event_types) == 0, Event.type == func.any(endpoint.event_types)),
            Event.occurred_at >= endpoint.created_at,
        )
        .order_by(Event.sequence, endpoint.id)
    )
    columns = [
        "id",
        "organization_id",
        "endpoint_id",
        "event_sequence",
        "event_id",
        "event_type",
        "status",
        "attempts",
    ]
    inserted = await db.execute(
        pg_insert(WebhookDelivery).from_select(columns, pairs).returning(WebhookDelivery.id)
    )
    return list(inserted.scalars().all())


async def mark_succeeded(
    db: AsyncSession, organization_id: uuid.UUID, delivery_ids: list[uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID]:
    """Mark these deliveries succeeded, those still pending; their endpoints by delivery id."""
    if not delivery_ids:
        return {}
    changed = await db.execute(
        scoped(update(WebhookDelivery), WebhookDelivery, organization_id)
        .where(WebhookDelivery.id.in_(delivery_ids), WebhookDelivery.status == "pending")
        .values(
            status="succeeded",
            attempts=WebhookDelivery.attempts + 1,
            next_attempt_at=None,
            updated_at=func.now(),
        )
        .returning(WebhookDelivery.id, WebhookDelivery.endpoint_id)
        .execution_options(synchronize_session=False)
    )
    return {row.id: row.endpoint_id for row in changed}


async def reset_failures(db: AsyncSession, organization_id: uuid.UUID, endpoint_ids: set[uuid.UUID]) -> None:
    """A success ends an endpoint's run of failures (written only where there was one)."""
    if endpoint_ids:
        await db.execute(
            scoped(update(WebhookEndpoint), WebhookEndpoint, organization_id)
            .where(WebhookEndpoint.id.in_(endpoint_ids), WebhookEndpoint.consecutive_failures != 0)
            .values(consecutive_failures=0)
            .execution_options(synchronize_session=False)
        )


async def add_attempts(db: AsyncSession, organization_id: uuid.UUID, rows: list[dict[str, Any]]) -> None:
    if rows:
        await db.execute(
            insert(WebhookAttempt), [{**row, "organization_id": organization_id} for row in rows]
        )


async def locked_cursor(db: AsyncSession, organization_id: uuid.UUID) -> int:
    """The dispatcher's place, its row locked until the transaction ends (dispatchers queue here)."""
    await db.execute(
        pg_insert(WebhookCursor)
        .values(organization_id=organization_id, last_sequence=0)
        .on_conflict_do_nothing()
    )
    cursor = await db.scalar(
        scoped(select(WebhookCursor.last_sequence), WebhookCursor, organization_id).with_for_update()
    )
    return cursor or 0


async def place_cursor(db: AsyncSession, organization_id: uuid.UUID, sequence: int) -> None:
    """Put the dispatcher's place at `sequence` (its row made if new)."""
    await db.execute(
        pg_insert(WebhookCursor)
        .values(organization_id=organization_id, last_sequence=sequence)
        .on_conflict_do_update(
            index_elements=[WebhookCursor.organization_id], set_={"last_sequence": sequence}
        )
    )


async def move_cursor(db: AsyncSession, organization_id: uuid.UUID, sequence: int) -> None:
    row = await db.get(WebhookCursor, organization_id)
    assert row is not None
    row.last_sequence = sequence
    await db.flush()


async def add(db: AsyncSession, row: WebhookEndpoint | WebhookDelivery | WebhookAttempt) -> None:
    db.add(row)
    await db.flush()


async def remove(db: AsyncSession, row: WebhookEndpoint) -> None:
    await db.delete(row)
    await db.flush()
