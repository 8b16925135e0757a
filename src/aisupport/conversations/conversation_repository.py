"""All SQL for conversations and messages, scoped to the caller's organization (core.db.scoped and
rows_of); row-level security scopes it again in the database."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    String,
    Uuid,
    cast,
    column,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.contacts.models import Contact
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
    team_id: uuid.UUID | None = None
    tags: tuple[str, ...] = ()  # every one of them
    priority: str | None = None
    created_after: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive
    updated_after: datetime | None = None  # inclusive
    updated_before: datetime | None = None  # exclusive


Sort = Literal["last_activity", "relevance"]
# Where a match may be (the `matched_in` of a hit), in the order of _matches. Subject and contact count
# double in the rank (conversation_search_hits).
SOURCES = ("subject", "messages", "contact")


@dataclass(frozen=True)
class Listed:
    """A conversation of a list; with a search, how well and where it matched."""

    conversation: Conversation
    rank: float | None = None
    matched_in: list[str] | None = None


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


@dataclass(frozen=True)
class SearchOutlook:
    """What the database foresees of a search: whether it names a word an index can look up (not just
    punctuation or exclusions), and how many documents the planner expects to match."""

    indexable: bool
    estimated_matches: float


async def search_outlook(db: AsyncSession, organization_id: uuid.UUID, query: str) -> SearchOutlook:
    """The outlook of a search `query` (websearch syntax), in one round trip. It also has the rest of
    the transaction planned for its own values (custom plans): how selective a search is decides its
    plan, and a generic plan cannot know it."""
    row = (
        await db.execute(
            select(
                func.querytree(func.websearch_to_tsquery(text("'simple'::regconfig"), query)),
                func.conversation_search_estimate(organization_id, query),
                func.set_config("plan_cache_mode", "force_custom_plan", True),
            )
        )
    ).one()
    return SearchOutlook(indexable=row[0] not in (None, "", "T"), estimated_matches=float(row[1] or 0))


def _filtered(query: Select[Any], organization_id: uuid.UUID, filters: ConversationFilters) -> Select[Any]:
    conditions: list[ColumnElement[bool]] = []
    if filters.status is not None:
        conditions.append(Conversation.status == filters.status)
    if filters.unassigned:
        conditions.append(Conversation.assignee_id.is_(None))
    elif filters.assignee_id is not None:
        conditions.append(Conversation.assignee_id == filters.assignee_id)
    equal: tuple[tuple[Any, object], ...] = (
        (Conversation.inbox_id, filters.inbox_id),
        (Conversation.contact_id, filters.contact_id),
        (Conversation.team_id, filters.team_id),
        (Conversation.priority, filters.priority),
    )
    for attribute, value in equal:
        if value is not None:
            conditions.append(attribute == value)
    if filters.tags:
        # Checked on the rows the list reads in its order (decision 0041: no index under row-level
        # security for `@>`); with the other filters, the row's own tags.
        conditions.append(Conversation.tags.contains(cast(list(filters.tags), ARRAY(String(50)))))
    ranges: tuple[tuple[Any, datetime | None, datetime | None], ...] = (
        (Conversation.created_at, filters.created_after, filters.created_before),
        (Conversation.updated_at, filters.updated_after, filters.updated_before),
    )
    for attribute, after, before in ranges:
        if after is not None:
            conditions.append(attribute >= after)
        if before is not None:
            conditions.append(attribute < before)
    if filters.sla == "breached":
        conditions.append(sla_repository.breached_filter())
    elif filters.sla == "due_soon":
        conditions.append(sla_repository.due_soon_filter(filters.due_within))
    return query.where(*conditions)


def _hits(organization_id: uuid.UUID, search: str) -> Any:
    """Each document of the organization matching `search`, as (conversation id, rank, source): the
    subject, every message but activity (notes included), the contact's name and email, subject and
    contact ranked double. Looked up by conversation_search_hits (migration 15119fee7164) through the
    GIN indexes of tenant-prefixed lexemes, which read this organization's postings only."""
    return func.conversation_search_hits(organization_id, search).table_valued(
        column("conversation_id", Uuid), column("rank", Float), column("source", String), name="hits"
    )


def conversations_query(
    organization_id: uuid.UUID,
    filters: ConversationFilters,
    *,
    search: str | None = None,
    sort: Sort = "last_activity",
    walk: bool = False,
    before: Sequence[Any] | None = None,
    limit: int,
) -> Select[Any]:
    """The query of a page of conversations, narrowed by `filters` and, with `search`, to those
    matching it (once each, with where they matched). Sorted newest activity first, or by `relevance`
    (rank, then id, descending); `before` is the previous page's last (sort key, id).

    A search is answered one of two ways (decision 0041). By default every matching document is found
    through the GIN indexes, then grouped by conversation (its best rank) and sorted: the cost grows
    with the number of matches. With `walk` (newest first only, for words in many messages), the
    conversations are read newest first and each is asked whether a document of it matches, until the
    page is full: the cost grows with how rare matching conversations are."""
    query = _filtered(rows_of(Conversation, organization_id), organization_id, filters)
    order: tuple[Any, ...] = (Conversation.last_activity_at, Conversation.id)
    if search is not None and walk and sort == "last_activity":
        in_subject, in_messages, in_contact = _matches(organization_id, search)
        query = query.where(or_(in_subject, in_messages, in_contact)).add_columns(
            in_subject.label("in_subject"), in_messages.label("in_messages"), in_contact.label("in_contact")
        )
    elif search is not None:
        hits = _hits(organization_id, search)
        ranked = (
            select(
                hits.c.conversation_id.label("id"),
                func.max(hits.c.rank).label("rank"),
                func.array_agg(aggregate_order_by(hits.c.source.distinct(), hits.c.source)).label(
                    "matched_in"
                ),
            )
            .group_by(hits.c.conversation_id)
            .subquery("ranked")
        )
        query = query.join(ranked, ranked.c.id == Conversation.id).add_columns(
            ranked.c.rank, ranked.c.matched_in
        )
        if sort == "relevance":
            order = (ranked.c.rank, Conversation.id)
    if before is not None:
        query = query.where(tuple_(*order) < tuple(before))
    return query.order_by(*(column.desc() for column in order)).limit(limit)


def _matches(organization_id: uuid.UUID, search: str) -> tuple[Any, Any, Any]:
    """Whether the subject, a message, the contact of the conversation at hand matches `search`. The
    two lookups are fenced (OFFSET 0) so the planner asks them row by row, through the conversation's
    messages index and the contact's key, instead of first hashing every match of the organization."""
    tsquery = func.search_query(organization_id, search)
    in_messages = exists(
        select(literal(1))
        .where(
            Message.organization_id == Conversation.organization_id,
            Message.conversation_id == Conversation.id,
            Message.search.op("@@")(tsquery),
        )
        .offset(0)
    )
    in_contact = exists(
        select(literal(1))
        .where(
            Contact.organization_id == Conversation.organization_id,
            Contact.id == Conversation.contact_id,
            Contact.search.op("@@")(tsquery),
        )
        .offset(0)
    )
    return func.coalesce(Conversation.search.op("@@")(tsquery), False), in_messages, in_contact


# Above this many matching documents (the planner's estimate), a newest-first search walks the
# conversations instead of collecting every match (decision 0041, measured).
WALK_ABOVE = 5000


async def conversations(
    db: AsyncSession,
    organization_id: uuid.UUID,
    filters: ConversationFilters,
    *,
    search: str | None = None,
    sort: Sort = "last_activity",
    walk: bool = False,
    before: Sequence[Any] | None,
    limit: int,
) -> list[Listed]:
    """A page of conversations (see conversations_query)."""
    query = conversations_query(
        organization_id, filters, search=search, sort=sort, walk=walk, before=before, limit=limit
    )
    if search is None:
        return [Listed(row) for row in (await db.execute(query)).scalars()]
    rows = (await db.execute(query)).all()
    if walk:
        return [Listed(row[0], None, _sources(row[1:])) for row in rows]
    return [Listed(row, rank, list(matched_in)) for row, rank, matched_in in rows]


def _sources(flags: Sequence[bool]) -> list[str]:
    return [name for name, hit in zip(SOURCES, flags, strict=True) if hit]


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
