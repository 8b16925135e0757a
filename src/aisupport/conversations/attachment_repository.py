"""All SQL for message attachments, scoped to the caller's organization (core.db.scoped and rows_of);
row-level security scopes it again in the database."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Uuid, any_, cast, delete, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.conversations.models import MessageAttachment
from aisupport.core.db import row_of, rows_of, scoped


async def add(db: AsyncSession, attachment: MessageAttachment) -> None:
    db.add(attachment)
    await db.flush()


async def attachment(
    db: AsyncSession, organization_id: uuid.UUID, conversation_id: uuid.UUID, attachment_id: uuid.UUID
) -> MessageAttachment | None:
    """The attachment, if it belongs to this conversation."""
    return await db.scalar(
        row_of(
            MessageAttachment,
            organization_id,
            MessageAttachment.id == attachment_id,
            MessageAttachment.conversation_id == conversation_id,
        )
    )


async def lock_uploads(
    db: AsyncSession, organization_id: uuid.UUID, conversation_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, MessageAttachment]:
    """Those of `ids` that are uploads of this conversation, locked (in id order) until the transaction
    ends and read afresh: a writer that waited sees them attached, or purged, by the one before it."""
    query = (
        rows_of(MessageAttachment, organization_id)
        .where(MessageAttachment.id.in_(ids), MessageAttachment.conversation_id == conversation_id)
        .order_by(MessageAttachment.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {row.id: row for row in (await db.execute(query)).scalars()}


async def of_messages(
    db: AsyncSession, organization_id: uuid.UUID, message_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[MessageAttachment]]:
    """The attachments of these messages (one query), each message's in its order."""
    found: dict[uuid.UUID, list[MessageAttachment]] = {}
    if not message_ids:
        return found
    query = (
        rows_of(MessageAttachment, organization_id)
        # One array parameter, not one per id: the same statement text whatever the page's size.
        .where(MessageAttachment.message_id == any_(cast(list(message_ids), ARRAY(Uuid))))
        .order_by(MessageAttachment.message_id, MessageAttachment.position)
    )
    for row in (await db.execute(query)).scalars():
        assert row.message_id is not None
        found.setdefault(row.message_id, []).append(row)
    return found


async def delete_of_conversations(
    db: AsyncSession, organization_id: uuid.UUID, conversation_ids: Sequence[uuid.UUID]
) -> list[str]:
    """Delete every attachment of these conversations; their storage keys."""
    statement = (
        scoped(delete(MessageAttachment), MessageAttachment, organization_id)
        .where(MessageAttachment.conversation_id.in_(conversation_ids))
        .returning(MessageAttachment.storage_key)
    )
    return list((await db.execute(statement)).scalars())


async def organizations_with_stale_uploads(db: AsyncSession, before: datetime) -> list[uuid.UUID]:
    """The organizations with uploads never attached made before `before` (a SECURITY DEFINER function:
    the caller has no tenant yet, and gets organization ids only)."""
    rows = await db.execute(text("SELECT app_orgs_with_stale_uploads(:before)"), {"before": before})
    return [row[0] for row in rows]


async def delete_stale_uploads(
    db: AsyncSession, organization_id: uuid.UUID, before: datetime, *, limit: int
) -> list[str]:
    """Delete up to `limit` of the organization's uploads never attached made before `before`, skipping
    any a message is attaching right now (locked); their storage keys."""
    stale = (
        scoped(select(MessageAttachment.id), MessageAttachment, organization_id)
        .where(MessageAttachment.message_id.is_(None), MessageAttachment.created_at < before)
        .order_by(MessageAttachment.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    statement = (
        scoped(delete(MessageAttachment), MessageAttachment, organization_id)
        .where(MessageAttachment.id.in_(stale.scalar_subquery()), MessageAttachment.message_id.is_(None))
        .returning(MessageAttachment.storage_key)
    )
    return list((await db.execute(statement)).scalars())
