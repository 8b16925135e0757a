"""All SQL for conversations and messages, scoped to the caller's organization (core.db.scoped and
rows_of); row-level security scopes it again in the database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.conversations import sla_repository
from aisupport.conversations.models import Conversation, ConversationCounter, Inbox, Message, Team
from aisupport.core.db import row_of, rows_of, scoped
from aisupport.organizations.models import Membership

AGENT_ROLES = ("owner", "admin", "agent")


@dataclass(frozen=True)
class ConversationFilters:
    """What a list of conversations is narrowed to; every one optional, all combined."""

    status: str | None = None
    assignee_id: uuid.UUID | None = None
    unassigned: bool = False
    inbox_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    sla: str | None = None  # "breached" or "due_soon" (within `due_within` minutes)
    due_within: int = 60


async def next_number(db: AsyncSession, organization_id: uuid.UUID) -> int:
    """The organization's next conversation number. One statement on the organization's counter row
    (created by the first call): concurrent creations queue on that row until their transaction ends,
    so numbers have no duplicates, and no gaps unless a creating transaction rolls back."""
    statement = (
        pg_insert(ConversationCounter)
        .values(organization_id=organization_id, last_number=1)
        .on_conflict_do_update(
            index_elements=[ConversationCounter.organization_id],
            set_={"last_number": ConversationCounter.last_number + 1},
        )
        .returning(ConversationCounter.last_number)
    )
    number: int = (await db.execute(statement)).scalar_one()
    return number


async def inbox(db: AsyncSession, organization_id: uuid.UUID, inbox_id: uuid.UUID) -> Inbox | None:
    return await db.scalar(rows_of(Inbox, organization_id).where(Inbox.id == inbox_id))


async def team_exists(db: AsyncSession, organization_id: uuid.UUID, team_id: uuid.UUID) -> bool:
    return await db.scalar(rows_of(Team, organization_id).where(Team.id == team_id)) is not None


async def is_agent(db: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """Whether `user_id` is a member of the organization with the agent role or above, held (FOR KEY
    SHARE) until the transaction ends: a removal of the member waits for this assignment, then
    unassigns it with the rest (conversations/assignment.py)."""
    query = scoped(
        select(Membership.user_id).where(Membership.user_id == user_id, Membership.role.in_(AGENT_ROLES)),
        Membership,
        organization_id,
    )
    return await db.scalar(query.with_for_update(read=True, key_share=True)) is not None


async def add(db: AsyncSession, row: Conversation | Message) -> None:
    db.add(row)
    await db.flush()


async def conversation(
    db: AsyncSession, organization_id: uuid.UUID, conversation_id: uuid.UUID, *, lock: bool = False
) -> Conversation | None:
    """The conversation; with `lock`, locked until the transaction ends and read afresh."""
    return await db.scalar(
        row_of(Conversation, organization_id, Conversation.id == conversation_id, lock=lock)
    )


async def conversations(
    db: AsyncSession,
    organization_id: uuid.UUID,
    filters: ConversationFilters,
    *,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Conversation]:
    """A page of conversations, newest activity first (keyset on last activity, then id, descending)."""
    query = rows_of(Conversation, organization_id)
    if filters.status is not None:
        query = query.where(Conversation.status == filters.status)
    if filters.unassigned:
        query = query.where(Conversation.assignee_id.is_(None))
    elif filters.assignee_id is not None:
        query = query.where(Conversation.assignee_id == filters.assignee_id)
    if filters.inbox_id is not None:
        query = query.where(Conversation.inbox_id == filters.inbox_id)
    if filters.contact_id is not None:
        query = query.where(Conversation.contact_id == filters.contact_id)
    if filters.sla == "breached":
        query = query.where(sla_repository.breached_filter())
    elif filters.sla == "due_soon":
        query = query.where(sla_repository.due_soon_filter(filters.due_within))
    if before is not None:
        query = query.where(tuple_(Conversation.last_activity_at, Conversation.id) < before)
    query = query.order_by(Conversation.last_activity_at.desc(), Conversation.id.desc()).limit(limit)
    return list((await db.execute(query)).scalars())


async def messages(
    db: AsyncSession,
    organization_id: uuid.UUID,
    conversation_id: uuid.UUID,
    *,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Message]:
    """A page of a conversation's messages, newest first."""
    query = rows_of(Message, organization_id).where(Message.conversation_id == conversation_id)
    if before is not None:
        query = query.where(tuple_(Message.created_at, Message.id) < before)
    query = query.order_by(Message.created_at.desc(), Message.id.desc()).limit(limit)
    return list((await db.execute(query)).scalars())


async def move_conversations(
    db: AsyncSession, organization_id: uuid.UUID, from_contact: uuid.UUID, to_contact: uuid.UUID
) -> None:
    """Every conversation of `from_contact` now belongs to `to_contact` (a contact merge)."""
    await db.execute(
        scoped(update(Conversation), Conversation, organization_id)
        .where(Conversation.contact_id == from_contact)
        .values(contact_id=to_contact, version=Conversation.version + 1, updated_at=func.now())
    )


async def conversation_ids_of(
    db: AsyncSession, organization_id: uuid.UUID, contact_id: uuid.UUID
) -> list[uuid.UUID]:
    """The contact's conversations, locked until the transaction ends."""
    query = (
        rows_of(Conversation, organization_id)
        .where(Conversation.contact_id == contact_id)
        .order_by(Conversation.id)
        .with_for_update()
    )
    return [row.id for row in (await db.execute(query)).scalars()]


async def empty_bodies(
    db: AsyncSession, organization_id: uuid.UUID, conversation_ids: list[uuid.UUID]
) -> None:
    """Empty the body of every message of these conversations (a contact's erasure)."""
    await db.execute(
        scoped(update(Message), Message, organization_id)
        .where(Message.conversation_id.in_(conversation_ids))
        .values(body="")
    )


async def add_messages(db: AsyncSession, rows: list[dict[str, object]]) -> None:
    if rows:
        await db.execute(insert(Message), rows)
