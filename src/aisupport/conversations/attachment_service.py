"""Business rules of message attachments (issue 11, point 5; decision 0038).

A file is uploaded to a conversation first (streamed to object storage, then its row written), and
attached to a message when the message names it (`attachment_ids`), in the message's transaction,
under a lock on each upload's row: an upload is attached once, to one message. Uploads never attached
are purged after a day (conversations/tasks.py). A contact's erasure deletes the attachments of its
conversations: rows in its transaction, files by a job queued in that same transaction.

Never commits, except that an upload ends its read transaction before it streams (no database
connection is held while a client sends a file).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.access.principal import Principal
from aisupport.contacts import service as contacts
from aisupport.conversations import attachment_repository as repo
from aisupport.conversations import conversation_repository as conversations
from aisupport.conversations import errors
from aisupport.conversations.authors import author_of
from aisupport.conversations.models import Conversation, Message, MessageAttachment
from aisupport.conversations.tasks import delete_files_later
from aisupport.core import uploads
from aisupport.core.db import release_connection
from aisupport.storage import ObjectNotFoundError, Storage, StorageError, object_key
from aisupport.storage import errors as storage_errors
from aisupport.storage.upload import store_upload

FOREIGN_KEY_VIOLATION = "23503"


async def upload(
    db: AsyncSession,
    principal: Principal,
    storage: Storage,
    conversation_id: uuid.UUID,
    *,
    content_type: str | None,
    body: AsyncIterator[bytes],
    max_bytes: int,
) -> MessageAttachment:
    """Store the one file of a multipart/form-data `body` as an upload of the conversation: 404 for no
    such conversation, 415 if the body is not multipart, 413 past `max_bytes`, 422 for no file, an
    empty one or another part; in every refusal nothing is stored."""
    organization_id = principal.organization_id
    if await conversations.conversation(db, organization_id, conversation_id) is None:
        raise errors.conversation_not_found()
    await release_connection(db)  # the file may take minutes to arrive
    attachment_id = uuid.uuid4()
    key = object_key(organization_id, "attachments", str(conversation_id), str(attachment_id))
    upload_ = await store_upload(
        storage,
        key,
        content_type=content_type,
        body=body,
        max_bytes=max_bytes,
        too_large=errors.attachment_too_large,
    )
    stored = upload_.stored
    try:
        kind, identity = author_of(principal)
        attachment = MessageAttachment(
            id=attachment_id,
            organization_id=organization_id,
            conversation_id=conversation_id,
            filename=upload_.filename,
            content_type=stored.content_type,
            size=stored.size,
            sha256=stored.sha256,
            storage_key=key,
            uploaded_by_type=kind,
            uploaded_by_id=identity,
        )
        try:
            async with db.begin_nested():
                await repo.add(db, attachment)
        except IntegrityError as error:  # the conversation went while the file arrived
            if getattr(error.orig, "sqlstate", None) != FOREIGN_KEY_VIOLATION:
                raise
            raise errors.conversation_not_found() from None
    except BaseException:
        # No row refers to the file: it goes at once. (Only a failed commit after this point leaves a
        # file no row names: decision 0038.)
        with contextlib.suppress(StorageError, OSError):
            await storage.delete(key)
        raise
    return attachment


@dataclass(frozen=True)
class Download:
    """A file to send: its row, the Content-Type to send it with, and its content (first chunk read)."""

    attachment: MessageAttachment
    content_type: str
    disposition: str
    content: AsyncIterator[bytes]


async def download(
    db: AsyncSession,
    principal: Principal,
    storage: Storage,
    conversation_id: uuid.UUID,
    attachment_id: uuid.UUID,
) -> Download:
    """The attachment's content, ready to stream: 404 if it is not this conversation's, or if its file
    is gone (an erasure that committed while this request read the row)."""
    attachment = await repo.attachment(db, principal.organization_id, conversation_id, attachment_id)
    if attachment is None:
        raise errors.attachment_not_found()
    await release_connection(db)  # nothing more to read: no connection held while the file goes out
    chunks = aiter(storage.stream(attachment.storage_key))
    try:
        first = await anext(chunks, b"")
    except ObjectNotFoundError:
        raise errors.attachment_not_found() from None
    except (StorageError, OSError):
        raise storage_errors.storage_unavailable() from None
    return Download(
        attachment=attachment,
        content_type=uploads.served_content_type(attachment.content_type),
        disposition=uploads.content_disposition(attachment.filename),
        content=_prepended(first, chunks),
    )


async def _prepended(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


async def lock_uploads(
    db: AsyncSession, organization_id: uuid.UUID, conversation: Conversation, ids: Sequence[uuid.UUID]
) -> list[MessageAttachment]:
    """The uploads `ids` names, in its order, locked: 422 if one is not an upload of this conversation
    (`unknown_attachment`) or is attached to a message already (`attachment_already_attached`)."""
    if not ids:
        return []
    found = await repo.lock_uploads(db, organization_id, conversation.id, ids)
    if any(attachment_id not in found for attachment_id in ids):
        raise errors.unknown_attachment()
    if any(row.message_id is not None for row in found.values()):
        raise errors.attachment_already_attached()
    return [found[attachment_id] for attachment_id in ids]


async def attach(db: AsyncSession, message: Message, uploads_: Sequence[MessageAttachment]) -> None:
    """Attach the locked uploads to the message, in their order."""
    for position, attachment in enumerate(uploads_):
        attachment.message_id = message.id
        attachment.position = position
    if uploads_:
        await db.flush()


async def of_messages(
    db: AsyncSession, organization_id: uuid.UUID, message_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[MessageAttachment]]:
    return await repo.of_messages(db, organization_id, message_ids)


@contacts.on_erase
async def _erase_attachments(db: AsyncSession, organization_id: uuid.UUID, contact_id: uuid.UUID) -> None:
    """Delete the attachments of the contact's conversations; their files are deleted by a job queued
    in this transaction (so a rollback deletes nothing)."""
    conversation_ids = await conversations.conversation_ids_of(db, organization_id, contact_id)
    if conversation_ids:
        keys = await repo.delete_of_conversations(db, organization_id, conversation_ids)
        await delete_files_later(db, organization_id, keys)
