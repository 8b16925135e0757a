"""Business rules of the widget API (docs/widget.md, decision 0049). Never commits.

A session makes or finds the visitor: anonymous (a new contact of their own, seeing only the
conversations they start), or verified by a proof signed with the inbox's identity secret (the contact
with that `external_id`, made if there is none, and every conversation of it in the inbox). A claim of
identity without a valid proof is refused, never matched to a contact. Everything else acts as the
visitor through the conversations' own services, after checking that the conversation is theirs: a
conversation that is not is answered 404, as if it did not exist.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.access.principal import Principal
from aisupport.access.visitor import Visitor
from aisupport.contacts import errors as contact_errors
from aisupport.contacts import service as contacts
from aisupport.contacts.models import Contact
from aisupport.conversations import attachment_service as attachments
from aisupport.conversations import conversation_service as conversations
from aisupport.conversations import errors as conversation_errors
from aisupport.conversations import service as inboxes
from aisupport.conversations.conversation_repository import MessageRow
from aisupport.conversations.models import Conversation, ConversationRating, Message, MessageAttachment
from aisupport.core.config import Settings
from aisupport.core.errors import AppError
from aisupport.storage import Storage
from aisupport.widget import errors, identity
from aisupport.widget import repository as repo
from aisupport.widget.models import WidgetVisitor
from aisupport.widget.schemas import SessionStart


@dataclass(frozen=True)
class Started:
    visitor: WidgetVisitor
    contact: Contact


async def start_session(
    db: AsyncSession, settings: Settings, organization_id: uuid.UUID, inbox_id: uuid.UUID, claim: SessionStart
) -> Started:
    """A visitor for this session: anonymous without a claim, verified with a proven one; 403
    `identity_not_proven` for a claim without a valid proof."""
    now = datetime.now(UTC)
    system = Principal.system(organization_id)
    proven = await _proven(db, settings, organization_id, inbox_id, claim)
    if proven is None:
        contact = await contacts.create_contact(db, system, {"last_seen_at": now})
        visitor = WidgetVisitor(
            organization_id=organization_id,
            inbox_id=inbox_id,
            contact_id=contact.id,
            verified=False,
            last_seen_at=now,
        )
        await repo.add_visitor(db, visitor)
        return Started(visitor, contact)
    contact = await _contact_of(db, system, proven)
    if contact.erased_at is not None:  # emptied of its external_id, it cannot be found again; to be sure
        raise errors.identity_not_proven("this identity was erased")
    return Started(await repo.verified_visitor(db, organization_id, inbox_id, contact.id, now), contact)


async def _proven(
    db: AsyncSession, settings: Settings, organization_id: uuid.UUID, inbox_id: uuid.UUID, claim: SessionStart
) -> identity.Identity | None:
    claims_identity = claim.identity_token is not None or any(
        value is not None for value in (claim.external_id, claim.identity_hash, claim.email, claim.name)
    )
    if not claims_identity:
        return None
    system = Principal.system(organization_id)
    secret = inboxes.identity_secret_of(settings, await inboxes.inbox(db, system, inbox_id))
    if secret is None:
        raise errors.identity_not_proven("this inbox has no identity secret")
    if claim.identity_token is not None:
        return identity.from_identity_token(
            secret, claim.identity_token, max_seconds=settings.WIDGET_IDENTITY_TOKEN_MAX_SECONDS
        )
    if claim.external_id is None or claim.identity_hash is None:
        raise errors.identity_not_proven(
            "send `external_id` with its `identity_hash`, or an `identity_token`"
        )
    if not identity.from_identity_hash(secret, claim.external_id, claim.identity_hash):
        raise errors.identity_not_proven("`identity_hash` does not match `external_id`")
    return identity.Identity(claim.external_id, claim.email, claim.name)


async def _contact_of(db: AsyncSession, system: Principal, proven: identity.Identity) -> Contact:
    """The contact with the proven `external_id`; made if there is none, with the name and email given
    (an email another contact has is left out: it is never a way into that contact)."""
    organization_id = system.organization_id
    found = await repo.contact_by_external_id(db, organization_id, proven.external_id)
    if found is not None:
        return found
    fields = {"external_id": proven.external_id, "name": proven.name, "last_seen_at": datetime.now(UTC)}
    if proven.email is not None and not await repo.email_taken(db, organization_id, proven.email):
        fields["email"] = proven.email
    try:
        return await contacts.create_contact(db, system, fields)
    except AppError as error:
        if error.code != "contact_exists":
            raise
    # Made meanwhile by a session that went first (or the email was taken meanwhile): read it, or make
    # it without the email.
    found = await repo.contact_by_external_id(db, organization_id, proven.external_id)
    if found is not None:
        return found
    fields.pop("email", None)
    return await contacts.create_contact(db, system, fields)


async def renew(db: AsyncSession, visitor: Visitor) -> Contact:
    """The visitor seen again (a session renewed); their contact."""
    await repo.touch(db, visitor.organization_id, visitor.id, datetime.now(UTC))
    found = await repo.contact(db, visitor.organization_id, visitor.contact_id)
    if found is None:  # merged away between the token's check and here
        raise contact_errors.contact_not_found()
    return found


async def conversation(db: AsyncSession, visitor: Visitor, conversation_id: uuid.UUID) -> Conversation:
    """One of the visitor's conversations; 404 for any other."""
    found = await repo.visible_conversation(db, visitor, conversation_id)
    if found is None:
        raise conversation_errors.conversation_not_found()
    return found


async def list_conversations(
    db: AsyncSession, visitor: Visitor, *, before: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[Conversation]:
    return await repo.conversations(db, visitor, before=before, limit=limit)


async def start_conversation(
    db: AsyncSession, settings: Settings, visitor: Visitor, subject: str | None, body: str
) -> Conversation:
    """A new conversation of the visitor with their first message; 409 past
    WIDGET_MAX_OPEN_CONVERSATIONS open ones (counted under a lock on the visitor, so two at once
    cannot both pass)."""
    if await repo.visitor(db, visitor.organization_id, visitor.id, lock=True) is None:
        raise conversation_errors.conversation_not_found()
    limit = settings.WIDGET_MAX_OPEN_CONVERSATIONS
    if await repo.open_conversations(db, visitor) >= limit:
        raise errors.too_many_open_conversations(limit)
    fields = {"inbox_id": visitor.inbox_id, "contact_id": visitor.contact_id, "subject": subject}
    created = await conversations.create_conversation(
        db, visitor.principal, fields, {"kind": "incoming", "body": body}
    )
    await repo.link(db, visitor, created.id)
    return created


async def post_message(
    db: AsyncSession, visitor: Visitor, conversation_id: uuid.UUID, body: str, attachment_ids: list[uuid.UUID]
) -> tuple[Message, list[MessageAttachment]]:
    """An incoming message from the visitor, with their own uploads to the conversation attached."""
    await conversation(db, visitor, conversation_id)
    if attachment_ids and await repo.own_uploads(db, visitor, conversation_id, attachment_ids) != set(
        attachment_ids
    ):
        raise conversation_errors.unknown_attachment()
    return await conversations.post_message(
        db, visitor.principal, conversation_id, "incoming", body, attachment_ids
    )


async def list_messages(
    db: AsyncSession,
    visitor: Visitor,
    conversation_id: uuid.UUID,
    *,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> tuple[list[MessageRow], dict[uuid.UUID, list[MessageAttachment]]]:
    """A page of the conversation's public messages (never notes or activity), newest first, and their
    attachments."""
    await conversation(db, visitor, conversation_id)
    rows = await conversations.list_messages(
        db, visitor.principal, conversation_id, before=before, limit=limit, public_only=True
    )
    found = await conversations.attachments_of(
        db, visitor.principal, [row.id for row in rows if row.has_attachments]
    )
    return rows, found


async def upload(
    db: AsyncSession,
    visitor: Visitor,
    storage: Storage,
    conversation_id: uuid.UUID,
    *,
    content_type: str | None,
    body: AsyncIterator[bytes],
    max_bytes: int,
) -> MessageAttachment:
    await conversation(db, visitor, conversation_id)
    return await attachments.upload(
        db,
        visitor.principal,
        storage,
        conversation_id,
        content_type=content_type,
        body=body,
        max_bytes=max_bytes,
    )


async def download(
    db: AsyncSession, visitor: Visitor, storage: Storage, conversation_id: uuid.UUID, attachment_id: uuid.UUID
) -> attachments.Download:
    """An attachment of a public message of the visitor's conversation, or their own upload; 404 else."""
    await conversation(db, visitor, conversation_id)
    if not await repo.attachment_visible(db, visitor, conversation_id, attachment_id):
        raise conversation_errors.attachment_not_found()
    return await attachments.download(db, visitor.principal, storage, conversation_id, attachment_id)


async def rate(
    db: AsyncSession, visitor: Visitor, conversation_id: uuid.UUID, score: int, comment: str | None
) -> ConversationRating:
    """Rate one of the visitor's resolved conversations (again: the rating is replaced); 409 if it is
    not resolved."""
    await conversation(db, visitor, conversation_id)
    return await conversations.rate_conversation(db, visitor.principal, conversation_id, score, comment)


@contacts.on_merge
async def _follow_the_kept_contact(
    db: AsyncSession, organization_id: uuid.UUID, kept_id: uuid.UUID, merged_id: uuid.UUID
) -> None:
    await repo.move_visitors(db, organization_id, merged_id, kept_id)


@contacts.on_erase
async def _end_visitors(db: AsyncSession, organization_id: uuid.UUID, contact_id: uuid.UUID) -> None:
    """An erased contact's visitors go: their tokens end, and a new anonymous session is a new contact."""
    await repo.delete_visitors_of(db, organization_id, contact_id)
