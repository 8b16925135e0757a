"""Business rules of conversations and their messages (issue 11, points 4 and 5).

Never commits. Every function acts in the principal's organization; the request's transaction is
already scoped to it (row-level security). A change to a conversation locks its row first, so
concurrent changes queue up: with `If-Match`, the later of two writers finds another version and
answers 412. Each change adds one to `version` (the ETag). Changes of status, priority, assignee, team
and tags write an `activity` message naming who made them (decision 0036).

States: `open`, `pending` (waiting on the customer), `snoozed` (until `snoozed_until`), `resolved`.
Any state may be set by a member; an incoming message on a `snoozed` or `resolved` conversation
reopens it (`open`, `reopened_count` + 1, an activity message). An outgoing message sets
`first_response_at` once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.access.principal import Principal
from aisupport.contacts import service as contacts
from aisupport.contacts.models import Contact
from aisupport.conversations import conversation_repository as repo
from aisupport.conversations import errors
from aisupport.conversations.conversation_repository import ConversationFilters, Listed, Sort
from aisupport.conversations.models import Conversation, Message
from aisupport.core.db import rows_of

TRACKED = ("status", "priority", "assignee_id", "team_id", "tags")
CHANGEABLE = (*TRACKED, "snoozed_until", "subject", "custom_attributes")
PRIVATE_KINDS = ("note", "activity")


def _author(principal: Principal) -> tuple[str, uuid.UUID | None]:
    if principal.kind == "member":
        return "member", principal.user_id
    if principal.kind == "api_key":
        return "api_key", principal.api_key_id
    return str(principal.kind), None


def _who(principal: Principal) -> str:
    kind, identity = _author(principal)
    return f"{kind} {identity}" if identity is not None else kind


def _message(
    conversation: Conversation, kind: str, body: str, author: tuple[str, uuid.UUID | None]
) -> Message:
    return Message(
        organization_id=conversation.organization_id,
        conversation_id=conversation.id,
        kind=kind,
        private=kind in PRIVATE_KINDS,
        body=body,
        author_type=author[0],
        author_id=author[1],
        created_at=datetime.now(UTC),  # the clock, not the transaction's start: keeps their order
    )


async def _activity(db: AsyncSession, principal: Principal, conversation: Conversation, text: str) -> None:
    await repo.add(db, _message(conversation, "activity", f"{_who(principal)} {text}", _author(principal)))


async def create_conversation(
    db: AsyncSession, principal: Principal, fields: dict[str, Any], first: dict[str, Any] | None
) -> Conversation:
    """Create a conversation numbered next in its organization, with an optional first message."""
    organization_id = principal.organization_id
    if not await repo.inbox_exists(db, organization_id, fields["inbox_id"]):
        raise errors.unknown_reference("inbox_id")
    contact = await db.scalar(rows_of(Contact, organization_id).where(Contact.id == fields["contact_id"]))
    if contact is None:
        raise errors.unknown_reference("contact_id")
    if contact.erased_at is not None:
        raise errors.contact_erased()
    now = datetime.now(UTC)
    conversation = Conversation(
        organization_id=organization_id,
        number=await repo.next_number(db, organization_id),
        status="open",
        reopened_count=0,
        version=1,
        last_activity_at=now,
        updated_at=now,
        **fields,
    )
    await repo.add(db, conversation)
    if first is not None:
        await _post(db, principal, conversation, first["kind"], first["body"])
    return conversation


async def get_conversation(
    db: AsyncSession, principal: Principal, conversation_id: uuid.UUID
) -> Conversation:
    conversation = await repo.conversation(db, principal.organization_id, conversation_id)
    if conversation is None:
        raise errors.conversation_not_found()
    return conversation


async def _locked(
    db: AsyncSession, principal: Principal, conversation_id: uuid.UUID, if_match: int | None
) -> Conversation:
    conversation = await repo.conversation(db, principal.organization_id, conversation_id, lock=True)
    if conversation is None:
        raise errors.conversation_not_found()
    if if_match is not None and conversation.version != if_match:
        raise errors.precondition_failed()
    return conversation


async def list_conversations(
    db: AsyncSession,
    principal: Principal,
    filters: ConversationFilters,
    *,
    search: str | None = None,
    sort: Sort = "last_activity",
    before: Sequence[Any] | None,
    limit: int,
) -> list[Listed]:
    """A page of conversations narrowed by `filters` and the full-text `search` (decision 0041).
    Everyone who may list conversations is a member or an integration key allowed to read notes, so
    notes are searched too."""
    if filters.created_after and filters.created_before and filters.created_after >= filters.created_before:
        raise errors.bad_range("created")
    if filters.updated_after and filters.updated_before and filters.updated_after >= filters.updated_before:
        raise errors.bad_range("updated")
    if sort == "relevance" and search is None:
        raise errors.relevance_needs_search()
    walk = False
    if search is not None:
        outlook = await repo.search_outlook(db, principal.organization_id, search)
        if not outlook.indexable:
            raise errors.search_without_words()
        walk = sort == "last_activity" and outlook.estimated_matches > repo.WALK_ABOVE
    return await repo.conversations(
        db,
        principal.organization_id,
        filters,
        search=search,
        sort=sort,
        walk=walk,
        before=before,
        limit=limit,
    )


def _shown(value: object) -> str:
    if value is None:
        return "nobody"
    if isinstance(value, list):
        return "[" + ", ".join(str(item) for item in value) + "]"
    return str(value)


async def update_conversation(
    db: AsyncSession,
    principal: Principal,
    conversation_id: uuid.UUID,
    changes: dict[str, Any],
    *,
    if_match: int | None,
) -> Conversation:
    """Change the fields given (checked before anything is written); 412 if `if_match` is not the
    current version. A change to what it already is writes nothing."""
    conversation = await _locked(db, principal, conversation_id, if_match)
    organization_id = principal.organization_id
    changes = {name: value for name, value in changes.items() if getattr(conversation, name) != value}
    if changes.get("assignee_id") is not None and not await repo.is_agent(
        db, organization_id, changes["assignee_id"]
    ):
        raise errors.not_an_agent()
    if changes.get("team_id") is not None and not await repo.team_exists(
        db, organization_id, changes["team_id"]
    ):
        raise errors.unknown_reference("team_id")
    now = datetime.now(UTC)
    status = changes.get("status", conversation.status)
    snoozed_until = changes.get("snoozed_until", conversation.snoozed_until)
    if status == "snoozed":
        if snoozed_until is None or snoozed_until <= now:
            raise errors.snooze_needs_time()
    elif "status" in changes:
        changes["snoozed_until"] = None
    elif changes.get("snoozed_until") is not None:
        raise errors.snooze_needs_time()
    changes = {name: value for name, value in changes.items() if getattr(conversation, name) != value}
    if not changes:
        return conversation
    before = {name: getattr(conversation, name) for name in TRACKED}
    if "status" in changes:
        _set_status(conversation, status, now)
    for name, value in changes.items():
        if name != "status":
            setattr(conversation, name, value)
    conversation.version += 1
    conversation.updated_at = conversation.last_activity_at = now
    await db.flush()
    for name in TRACKED:
        if name in changes:
            label = name.removesuffix("_id")
            await _activity(
                db,
                principal,
                conversation,
                f"changed {label} from {_shown(before[name])} to {_shown(changes[name])}",
            )
    return conversation


def _set_status(conversation: Conversation, status: str, now: datetime) -> None:
    if conversation.status == "resolved" and status != "resolved":
        conversation.reopened_count += 1
        conversation.resolved_at = None
    if status == "resolved":
        conversation.resolved_at = now
    conversation.status = status


async def post_message(
    db: AsyncSession, principal: Principal, conversation_id: uuid.UUID, kind: str, body: str
) -> Message:
    conversation = await _locked(db, principal, conversation_id, None)
    return await _post(db, principal, conversation, kind, body)


async def _post(
    db: AsyncSession, principal: Principal, conversation: Conversation, kind: str, body: str
) -> Message:
    """Add a message to a conversation locked (or created) in this transaction, with its effects."""
    now = datetime.now(UTC)
    message = _message(conversation, kind, body, _author(principal))
    await repo.add(db, message)
    reopened = kind == "incoming" and conversation.status in ("snoozed", "resolved")
    if reopened:
        previous = conversation.status
        conversation.reopened_count += 1
        conversation.status = "open"
        conversation.snoozed_until = conversation.resolved_at = None
    if kind == "outgoing" and conversation.first_response_at is None:
        conversation.first_response_at = now
    if kind in ("incoming", "outgoing"):
        conversation.last_message_at = now
    conversation.version += 1
    conversation.updated_at = conversation.last_activity_at = now
    await db.flush()
    if reopened:
        await _activity(db, principal, conversation, f"reopened by an incoming message (was {previous})")
    return message


async def list_messages(
    db: AsyncSession,
    principal: Principal,
    conversation_id: uuid.UUID,
    *,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Message]:
    await get_conversation(db, principal, conversation_id)
    return await repo.messages(db, principal.organization_id, conversation_id, before=before, limit=limit)


# --- What a contact's merge or erasure does to conversations (hooks run in its transaction) -------------


@contacts.on_merge
async def _move_to_kept_contact(
    db: AsyncSession, organization_id: uuid.UUID, kept_id: uuid.UUID, merged_id: uuid.UUID
) -> None:
    await repo.move_conversations(db, organization_id, merged_id, kept_id)


@contacts.on_erase
async def _erase_message_bodies(db: AsyncSession, organization_id: uuid.UUID, contact_id: uuid.UUID) -> None:
    """Empty every message body of the contact's conversations, and note it in each of them."""
    conversation_ids = await repo.conversation_ids_of(db, organization_id, contact_id)
    if not conversation_ids:
        return
    await repo.empty_bodies(db, organization_id, conversation_ids)
    now = datetime.now(UTC)
    await repo.add_messages(
        db,
        [
            {
                "id": uuid.uuid4(),
                "organization_id": organization_id,
                "conversation_id": conversation_id,
                "kind": "activity",
                "private": True,
                "body": "message bodies removed: the contact was erased",
                "author_type": "system",
                "author_id": None,
                "created_at": now,
            }
            for conversation_id in conversation_ids
        ],
    )
