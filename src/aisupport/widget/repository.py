"""All SQL of the widget, scoped to the visitor's organization (core.db.scoped and rows_of); row-level
security scopes it again. What a visitor may see is decided in one place, `_visible`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from aisupport.access.visitor import Visitor
from aisupport.contacts.models import Contact
from aisupport.conversations.models import Conversation, Message, MessageAttachment
from aisupport.core.db import row_of, rows_of, scoped
from aisupport.widget.models import WidgetVisitor, WidgetVisitorConversation

WIDGET_INBOX = text("SELECT organization_id, allowed_origins FROM widget_inbox(:inbox_id)")


async def widget_inbox(engine: AsyncEngine, inbox_id: uuid.UUID) -> tuple[uuid.UUID, list[str]] | None:
    """The organization of a widget inbox and its allowed origins, before any tenant is known (one
    round trip, in autocommit); None if there is no such widget inbox."""
    async with engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        row = (await connection.execute(WIDGET_INBOX, {"inbox_id": inbox_id})).first()
    return None if row is None else (row.organization_id, list(row.allowed_origins))


async def contact_by_external_id(
    db: AsyncSession, organization_id: uuid.UUID, external_id: str
) -> Contact | None:
    return await db.scalar(row_of(Contact, organization_id, Contact.external_id == external_id))


async def email_taken(db: AsyncSession, organization_id: uuid.UUID, email: str) -> bool:
    query = scoped(select(Contact.id), Contact, organization_id).where(
        func.lower(Contact.email) == email.lower()
    )
    return await db.scalar(query.limit(1)) is not None


async def add_visitor(db: AsyncSession, visitor: WidgetVisitor) -> None:
    db.add(visitor)
    await db.flush()


async def verified_visitor(
    db: AsyncSession, organization_id: uuid.UUID, inbox_id: uuid.UUID, contact_id: uuid.UUID, now: datetime
) -> WidgetVisitor:
    """The one verified visitor of the contact in the inbox, made if it is not there yet (two sessions
    at once make one)."""
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "organization_id": organization_id,
        "inbox_id": inbox_id,
        "contact_id": contact_id,
        "verified": True,
        "last_seen_at": now,
    }
    await db.execute(
        insert(WidgetVisitor)
        .values(values)
        .on_conflict_do_nothing(
            index_elements=["organization_id", "inbox_id", "contact_id"], index_where=text("verified")
        )
    )
    found = await db.scalar(
        row_of(
            WidgetVisitor,
            organization_id,
            WidgetVisitor.inbox_id == inbox_id,
            WidgetVisitor.contact_id == contact_id,
            WidgetVisitor.verified.is_(True),
        ).execution_options(populate_existing=True)
    )
    assert found is not None  # inserted, or there before
    return found


async def visitor(
    db: AsyncSession, organization_id: uuid.UUID, visitor_id: uuid.UUID, *, lock: bool = False
) -> WidgetVisitor | None:
    query = row_of(WidgetVisitor, organization_id, WidgetVisitor.id == visitor_id)
    return await db.scalar(query.with_for_update() if lock else query)


async def contact(db: AsyncSession, organization_id: uuid.UUID, contact_id: uuid.UUID) -> Contact | None:
    return await db.scalar(row_of(Contact, organization_id, Contact.id == contact_id))


async def link(db: AsyncSession, visitor: Visitor, conversation_id: uuid.UUID) -> None:
    db.add(
        WidgetVisitorConversation(
            organization_id=visitor.organization_id, visitor_id=visitor.id, conversation_id=conversation_id
        )
    )
    await db.flush()


def _visible(visitor: Visitor) -> Any:
    """The conversations the visitor may see: of their contact in their inbox; an anonymous visitor,
    only those they started."""
    condition = and_(Conversation.inbox_id == visitor.inbox_id, Conversation.contact_id == visitor.contact_id)
    if visitor.verified:
        return condition
    started = exists().where(
        WidgetVisitorConversation.organization_id == Conversation.organization_id,
        WidgetVisitorConversation.visitor_id == visitor.id,
        WidgetVisitorConversation.conversation_id == Conversation.id,
    )
    return and_(condition, started)


async def visible_conversation(
    db: AsyncSession, visitor: Visitor, conversation_id: uuid.UUID
) -> Conversation | None:
    query = rows_of(Conversation, visitor.organization_id).where(
        Conversation.id == conversation_id, _visible(visitor)
    )
    return await db.scalar(query)


async def visible_conversation_ids(db: AsyncSession, visitor: Visitor) -> set[uuid.UUID]:
    query = scoped(select(Conversation.id), Conversation, visitor.organization_id).where(_visible(visitor))
    return set((await db.scalars(query)).all())


async def open_conversations(db: AsyncSession, visitor: Visitor) -> int:
    query = scoped(select(func.count()), Conversation, visitor.organization_id).where(
        _visible(visitor), Conversation.status != "resolved"
    )
    return int(await db.scalar(query) or 0)


async def conversations(
    db: AsyncSession, visitor: Visitor, *, before: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[Conversation]:
    """A page of the visitor's conversations, newest first."""
    query = rows_of(Conversation, visitor.organization_id).where(_visible(visitor))
    if before is not None:
        query = query.where(tuple_(Conversation.created_at, Conversation.id) < before)
    query = query.order_by(Conversation.created_at.desc(), Conversation.id.desc()).limit(limit)
    return list((await db.scalars(query)).all())


async def own_uploads(
    db: AsyncSession, visitor: Visitor, conversation_id: uuid.UUID, ids: list[uuid.UUID]
) -> set[uuid.UUID]:
    """Those of `ids` that this visitor uploaded to this conversation."""
    query = scoped(select(MessageAttachment.id), MessageAttachment, visitor.organization_id).where(
        MessageAttachment.conversation_id == conversation_id,
        MessageAttachment.id.in_(ids),
        MessageAttachment.uploaded_by_type == "widget_visitor",
        MessageAttachment.uploaded_by_id == visitor.id,
    )
    return set((await db.scalars(query)).all())


async def attachment_visible(
    db: AsyncSession, visitor: Visitor, conversation_id: uuid.UUID, attachment_id: uuid.UUID
) -> bool:
    """Whether the visitor may download the attachment: one of a public message of the conversation, or
    their own upload not attached yet."""
    public_message = exists().where(
        Message.organization_id == MessageAttachment.organization_id,
        Message.id == MessageAttachment.message_id,
        Message.private.is_(False),
    )
    own_upload = and_(
        MessageAttachment.message_id.is_(None),
        MessageAttachment.uploaded_by_type == "widget_visitor",
        MessageAttachment.uploaded_by_id == visitor.id,
    )
    query = scoped(select(MessageAttachment.id), MessageAttachment, visitor.organization_id).where(
        MessageAttachment.conversation_id == conversation_id,
        MessageAttachment.id == attachment_id,
        or_(public_message, own_upload),
    )
    return await db.scalar(query) is not None


async def touch(db: AsyncSession, organization_id: uuid.UUID, visitor_id: uuid.UUID, now: datetime) -> None:
    await db.execute(
        scoped(update(WidgetVisitor), WidgetVisitor, organization_id)
        .where(WidgetVisitor.id == visitor_id)
        .values(last_seen_at=now)
    )


async def move_visitors(
    db: AsyncSession, organization_id: uuid.UUID, from_contact: uuid.UUID, to_contact: uuid.UUID
) -> None:
    """A merge: the merged contact's visitors become the kept one's; a verified one whose inbox already
    has the kept contact's verified visitor goes (its token ends; a new proof finds the kept one's)."""
    kept_verified = (
        scoped(select(WidgetVisitor.inbox_id), WidgetVisitor, organization_id)
        .where(WidgetVisitor.contact_id == to_contact, WidgetVisitor.verified.is_(True))
        .scalar_subquery()
    )
    await db.execute(
        scoped(delete(WidgetVisitor), WidgetVisitor, organization_id).where(
            WidgetVisitor.contact_id == from_contact,
            WidgetVisitor.verified.is_(True),
            WidgetVisitor.inbox_id.in_(kept_verified),
        )
    )
    await db.execute(
        scoped(update(WidgetVisitor), WidgetVisitor, organization_id)
        .where(WidgetVisitor.contact_id == from_contact)
        .values(contact_id=to_contact)
    )


async def delete_visitors_of(db: AsyncSession, organization_id: uuid.UUID, contact_id: uuid.UUID) -> None:
    await db.execute(
        scoped(delete(WidgetVisitor), WidgetVisitor, organization_id).where(
            WidgetVisitor.contact_id == contact_id
        )
    )
