"""The events of conversations and messages (events/catalogue.py), emitted in the change's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.conversations.conversation_schemas import AttachmentOut, ConversationOut, MessageOut
from aisupport.conversations.models import Conversation, Message, MessageAttachment
from aisupport.events.outbox import emit


def conversation_event(db: AsyncSession, type: str, conversation: Conversation, **extra: Any) -> None:
    """`type` with the conversation as it is now, and `extra` fields (JSON-ready)."""
    conversation_events(db, conversation, [(type, extra)])


def conversation_events(
    db: AsyncSession, conversation: Conversation, events: Sequence[tuple[str, dict[str, Any]]]
) -> None:
    """Several events of one change, each with the conversation as it is now (shown once for all)."""
    shown = ConversationOut.model_validate(conversation).model_dump(mode="json")
    for type, extra in events:
        emit(
            db,
            conversation.organization_id,
            type,
            {"conversation": shown, **extra},
            conversation_id=conversation.id,
        )


def messages_created(
    db: AsyncSession,
    messages: Iterable[Message | dict[str, Any]],
    attachments: Sequence[MessageAttachment] = (),
) -> None:
    """`message.created` for each message (a mapped one, or the row inserted as a dict)."""
    files = [AttachmentOut.model_validate(attachment).model_dump(mode="json") for attachment in attachments]
    for message in messages:
        shown = MessageOut.model_validate(message).model_dump(mode="json")
        organization_id = message["organization_id"] if isinstance(message, dict) else message.organization_id
        emit(
            db,
            organization_id,
            "message.created",
            {"message": {**shown, "attachments": files}},
            conversation_id=uuid.UUID(shown["conversation_id"]),
            private=shown["private"],
        )
