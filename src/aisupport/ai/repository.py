"""The AI's reads and writes (scoped through core.db like every repository)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.ai.compose import Turn
from aisupport.ai.models import AiBudgetMonth, AiConversation, AiDraft, AiSettings, AiUsage
from aisupport.conversations.models import Conversation, Inbox, Message
from aisupport.core.db import row_of, rows_of, scoped

TURNS = 8  # the conversation's last messages a reply is written from

DEFAULT_THRESHOLDS = {"category": 0.6, "priority": 0.7, "language": 0.7, "sentiment": 0.7}
DEFAULT_MAX_TOKENS = 500


def default_settings(organization_id: uuid.UUID) -> AiSettings:
    """What an organization that configured nothing gets: offline, no budget (nothing is spent)."""
    return AiSettings(
        organization_id=organization_id,
        provider="offline",
        base_url=None,
        model=None,
        api_key_sealed=None,
        max_tokens=DEFAULT_MAX_TOKENS,
        input_price=None,
        output_price=None,
        monthly_token_budget=None,
        monthly_cost_budget=None,
        thresholds=dict(DEFAULT_THRESHOLDS),
        sensitive_topics=[],
        version=0,
    )


async def settings_of(
    db: AsyncSession, organization_id: uuid.UUID, *, lock: bool = False
) -> AiSettings | None:
    query = rows_of(AiSettings, organization_id)
    return await db.scalar(query.with_for_update() if lock else query)


async def effective_settings(db: AsyncSession, organization_id: uuid.UUID) -> AiSettings:
    return await settings_of(db, organization_id) or default_settings(organization_id)


async def conversation_state(
    db: AsyncSession, organization_id: uuid.UUID, conversation_id: uuid.UUID, *, lock: bool = False
) -> AiConversation:
    """The AI's state in a conversation (made on first use; locked for a decision if `lock`)."""
    await db.execute(
        insert(AiConversation)
        .values(organization_id=organization_id, conversation_id=conversation_id)
        .on_conflict_do_nothing()
    )
    query = rows_of(AiConversation, organization_id).where(AiConversation.conversation_id == conversation_id)
    state = await db.scalar(query.with_for_update() if lock else query)
    assert state is not None
    return state


async def find_state(
    db: AsyncSession, organization_id: uuid.UUID, conversation_id: uuid.UUID
) -> AiConversation | None:
    return await db.scalar(
        rows_of(AiConversation, organization_id).where(AiConversation.conversation_id == conversation_id)
    )


async def turns(db: AsyncSession, organization_id: uuid.UUID, conversation_id: uuid.UUID) -> list[Turn]:
    """The conversation's last customer and agent messages, oldest first (notes and activity excluded)."""
    rows = (
        await db.execute(
            scoped(select(Message.kind, Message.body), Message, organization_id)
            .where(Message.conversation_id == conversation_id, Message.kind.in_(("incoming", "outgoing")))
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(TURNS)
        )
    ).all()
    return [Turn("customer" if kind == "incoming" else "agent", body) for kind, body in reversed(rows)]


async def message(db: AsyncSession, organization_id: uuid.UUID, message_id: uuid.UUID) -> Message | None:
    return await db.scalar(row_of(Message, organization_id, Message.id == message_id))


async def inbox(db: AsyncSession, organization_id: uuid.UUID, inbox_id: uuid.UUID) -> Inbox | None:
    return await db.scalar(row_of(Inbox, organization_id, Inbox.id == inbox_id))


async def draft(
    db: AsyncSession, organization_id: uuid.UUID, draft_id: uuid.UUID, *, lock: bool = False
) -> AiDraft | None:
    query = rows_of(AiDraft, organization_id).where(AiDraft.id == draft_id)
    return await db.scalar(query.with_for_update() if lock else query)


async def budget_month(db: AsyncSession, organization_id: uuid.UUID, month: date) -> AiBudgetMonth | None:
    return await db.scalar(rows_of(AiBudgetMonth, organization_id).where(AiBudgetMonth.month == month))


async def usage(
    db: AsyncSession, organization_id: uuid.UUID, since: datetime, until: datetime, by: str
) -> list[dict[str, Any]]:
    """The ledger between `since` and `until`, summed by day, feature and model (`by`: `day` groups by
    day only, and so on; `all` by the three)."""
    day = func.date_trunc("day", AiUsage.created_at).label("day")
    groupings: dict[str, list[Any]] = {"day": [day], "feature": [AiUsage.feature], "model": [AiUsage.model]}
    keys = groupings.get(by, [day, AiUsage.feature, AiUsage.model])
    query = (
        scoped(
            select(
                *keys,
                func.count().label("calls"),
                func.count().filter(AiUsage.succeeded.is_(False)).label("failed"),
                func.coalesce(func.sum(AiUsage.tokens_in), 0).label("tokens_in"),
                func.coalesce(func.sum(AiUsage.tokens_out), 0).label("tokens_out"),
                func.coalesce(func.sum(AiUsage.cost), 0.0).label("cost"),
                func.coalesce(func.avg(AiUsage.latency_ms), 0.0).label("mean_latency_ms"),
            ),
            AiUsage,
            organization_id,
        )
        .where(AiUsage.created_at >= since, AiUsage.created_at < until)
        .group_by(*keys)
        .order_by(*keys)
    )
    return [dict(row._mapping) for row in (await db.execute(query)).all()]


async def forget_contact(db: AsyncSession, organization_id: uuid.UUID, contact_id: uuid.UUID) -> None:
    """Remove what the AI wrote from an erased contact's words: its summaries and triage readings, and
    its drafts' text (a model may have quoted the customer)."""
    conversations = scoped(select(Conversation.id), Conversation, organization_id).where(
        Conversation.contact_id == contact_id
    )
    await db.execute(
        scoped(update(AiConversation), AiConversation, organization_id)
        .where(AiConversation.conversation_id.in_(conversations))
        .values(summary=None, summary_method=None, triage=None)
    )
    await db.execute(
        scoped(update(AiDraft), AiDraft, organization_id)
        .where(AiDraft.conversation_id.in_(conversations))
        .values(body="", citations=[])
    )
