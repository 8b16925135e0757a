"""The SQL of SLA clocks and timers: an inbox's SLA setting, the conversations with work due (SLA
breaches to mark, snoozes to wake) and the organizations that have some, and the list filters on SLA
state. Scoped to one organization like every repository, except the discovery functions, which
return organization ids only (SECURITY DEFINER, migration a7c3e9f1b2d4; decision 0039)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.conversations.models import (
    UNMARKED_FIRST_RESPONSE,
    UNMARKED_NEXT_RESPONSE,
    UNMARKED_RESOLUTION,
    Conversation,
    Inbox,
    SlaPolicy,
)
from aisupport.conversations.sla import Setting
from aisupport.core.db import rows_of, scoped

C = Conversation
# A running clock not marked yet, by its due column: the partial indexes' conditions, word for word,
# so the planner uses them.
UNMARKED = (
    (C.sla_first_response_due_at, UNMARKED_FIRST_RESPONSE),
    (C.sla_next_response_due_at, UNMARKED_NEXT_RESPONSE),
    (C.sla_resolution_due_at, UNMARKED_RESOLUTION),
)


async def setting_of(db: AsyncSession, organization_id: uuid.UUID, inbox_id: uuid.UUID) -> Setting:
    """The SLA targets (of the inbox's policy, if any) and business hours of an inbox."""
    query = scoped(
        select(Inbox.business_hours, SlaPolicy.targets)
        .select_from(Inbox)
        .outerjoin(
            SlaPolicy,
            and_(SlaPolicy.organization_id == Inbox.organization_id, SlaPolicy.id == Inbox.sla_policy_id),
        )
        .where(Inbox.id == inbox_id),
        Inbox,
        organization_id,
    )
    row = (await db.execute(query)).one_or_none()
    return Setting.of(row.targets, row.business_hours) if row is not None else Setting.of(None, None)


# --- Across organizations (ids only) -------------------------------------------------------------------


async def _organizations(db: AsyncSession, function: str, moment: datetime) -> list[uuid.UUID]:
    rows = await db.execute(text(f"SELECT {function}(:moment)"), {"moment": moment})
    return [row[0] for row in rows]


async def organizations_with_sla_due(db: AsyncSession, now: datetime) -> list[uuid.UUID]:
    """Organizations with a running SLA clock due by `now` and not marked breached."""
    return await _organizations(db, "organizations_with_sla_due", now)


async def organizations_with_snoozes_due(db: AsyncSession, now: datetime) -> list[uuid.UUID]:
    """Organizations with a conversation snoozed until `now` or earlier."""
    return await _organizations(db, "organizations_with_snoozes_due", now)


# --- Within one organization ------------------------------------------------------------------------------


def _overdue(now: datetime) -> ColumnElement[bool]:
    return or_(*(and_(text(condition), column <= now) for column, condition in UNMARKED))


async def overdue(
    db: AsyncSession, organization_id: uuid.UUID, now: datetime, *, limit: int
) -> list[Conversation]:
    """Up to `limit` conversations with a clock due by `now` not marked, locked until the transaction
    ends and read afresh (a row changed meanwhile is checked again as it is now)."""
    query = (
        rows_of(C, organization_id)
        .where(_overdue(now))
        .order_by(C.id)
        .limit(limit)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list((await db.execute(query)).scalars())


async def snoozes_due(
    db: AsyncSession, organization_id: uuid.UUID, now: datetime, *, limit: int
) -> list[Conversation]:
    """Up to `limit` conversations snoozed until `now` or earlier, locked and read afresh."""
    query = (
        rows_of(C, organization_id)
        .where(C.status == "snoozed", C.snoozed_until <= now)
        .order_by(C.snoozed_until, C.id)
        .limit(limit)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list((await db.execute(query)).scalars())


async def unresolved_in_inboxes(
    db: AsyncSession,
    organization_id: uuid.UUID,
    inbox_ids: list[uuid.UUID],
    *,
    after: uuid.UUID | None,
    limit: int,
) -> list[Conversation]:
    """A batch of the inboxes' conversations not resolved, by id after `after`, locked and read afresh."""
    query = rows_of(C, organization_id).where(C.inbox_id.in_(inbox_ids), C.status != "resolved")
    if after is not None:
        query = query.where(C.id > after)
    query = query.order_by(C.id).limit(limit).with_for_update().execution_options(populate_existing=True)
    return list((await db.execute(query)).scalars())


async def inbox_ids_with_policy(
    db: AsyncSession, organization_id: uuid.UUID, policy_id: uuid.UUID
) -> list[uuid.UUID]:
    query = scoped(select(Inbox.id).where(Inbox.sla_policy_id == policy_id), Inbox, organization_id)
    return list((await db.execute(query)).scalars())


# --- List filters ----------------------------------------------------------------------------------------


def breached_filter() -> ColumnElement[bool]:
    """A clock past its due time and not met since (marked or not yet): the customer still waits past
    the target. Resolved conversations never match."""
    now = func.now()
    return or_(
        and_(C.first_response_at.is_(None), C.status != "resolved", C.sla_first_response_due_at <= now),
        and_(
            C.sla_next_response_started_at.is_not(None),
            C.sla_next_response_met_at.is_(None),
            C.sla_next_response_due_at <= now,
        ),
        and_(C.status != "resolved", C.sla_resolution_due_at <= now),
    )


def due_soon_filter(minutes: int) -> ColumnElement[bool]:
    """A running clock due within the next `minutes` (not yet past)."""
    now = func.now()
    until = now + func.make_interval(0, 0, 0, 0, 0, minutes)
    return or_(*(and_(text(condition), column > now, column <= until) for column, condition in UNMARKED))
