"""Business rules of conversations and their messages (issue 11, points 4 and 5).

Never commits. Every function acts in the principal's organization; the request's transaction is
already scoped to it (row-level security). A change to a conversation locks its row first, so
concurrent changes queue up: with `If-Match`, the later of two writers finds another version and
answers 412. Each change adds one to `version` (the ETag). Changes of status, priority, assignee, team
and tags write an `activity` message naming who made them (decision 0036).

States: `open`, `pending` (waiting on the customer), `snoozed` (until `snoozed_until`), `resolved`.
Any state may be set by a member; an incoming message on a `snoozed` or `resolved` conversation
reopens it (`open`, `reopened_count` + 1, an activity message). An outgoing message sets
`first_response_at` once. A snooze ends at `snoozed_until` (`wake_snoozed`, run by a periodic job).

SLA clocks (conversations/sla.py computes them; decision 0039) move with creation, messages, status
and priority changes; a clock past its due time is marked breached (`mark_sla_breaches`, run by a
periodic job, and at once before a change that would end the clock), with an `activity` message and
an audit event `conversation.sla_breached`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.access.principal import Principal
from aisupport.audit import service as audit
from aisupport.audit.service import Actor
from aisupport.contacts import service as contacts
from aisupport.contacts.models import Contact
from aisupport.conversations import assignment, errors, published, sla, tag_service
from aisupport.conversations import attachment_service as attachments
from aisupport.conversations import conversation_repository as repo
from aisupport.conversations import sla_repository as timers
from aisupport.conversations.authors import author_of
from aisupport.conversations.conversation_repository import ConversationFilters, Listed, Sort
from aisupport.conversations.models import Conversation, ConversationRating, Message, MessageAttachment
from aisupport.conversations.sla import Setting
from aisupport.core.db import plan_for_values, rows_of
from aisupport.core.jobs import defer

TRACKED = ("status", "priority", "assignee_id", "team_id", "tags")
CHANGEABLE = (*TRACKED, "snoozed_until", "subject", "custom_attributes")
PRIVATE_KINDS = ("note", "activity")
SYSTEM: tuple[str, uuid.UUID | None] = ("system", None)
# The AI's jobs (ai/tasks.py): named, not imported (a layer above).
AI_TASK = "ai:respond"
AI_SUMMARY_TASK = "ai:summarize"


def _who(principal: Principal) -> str:
    kind, identity = author_of(principal)
    return f"{kind} {identity}" if identity is not None else kind


def _message(
    conversation: Conversation,
    kind: str,
    body: str,
    author: tuple[str, uuid.UUID | None],
    ai: dict[str, Any] | None = None,
) -> Message:
    return Message(
        ai=ai,
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
    await _system_line(db, conversation, f"{_who(principal)} {text}", author_of(principal))


async def record_activity(
    db: AsyncSession, principal: Principal, conversation: Conversation, text: str
) -> None:
    """An activity message `<who> <text>` in the conversation (for a layer above: the AI)."""
    await _activity(db, principal, conversation, text)


async def _system_line(
    db: AsyncSession, conversation: Conversation, text: str, author: tuple[str, uuid.UUID | None] = SYSTEM
) -> None:
    """An activity message (and its event)."""
    message = _message(conversation, "activity", text, author)
    await repo.add(db, message)
    published.messages_created(db, [message])


async def create_conversation(
    db: AsyncSession, principal: Principal, fields: dict[str, Any], first: dict[str, Any] | None
) -> Conversation:
    """Create a conversation numbered next in its organization, with an optional first message."""
    organization_id = principal.organization_id
    inbox = await repo.inbox(db, organization_id, fields["inbox_id"])
    if inbox is None:
        raise errors.unknown_reference("inbox_id")
    contact = await db.scalar(rows_of(Contact, organization_id).where(Contact.id == fields["contact_id"]))
    if contact is None:
        raise errors.unknown_reference("contact_id")
    if contact.erased_at is not None:
        raise errors.contact_erased()
    await tag_service.ensure(db, organization_id, fields.get("tags", []))
    number = await repo.next_number(db, organization_id)
    team_id = inbox.team_id  # the team that works the inbox
    assignee_id = await assignment.pick_for_new(db, inbox, team_id)
    now = datetime.now(UTC)
    conversation = Conversation(
        organization_id=organization_id,
        number=number,
        team_id=team_id,
        assignee_id=assignee_id,
        status="open",
        reopened_count=0,
        version=1,
        last_activity_at=now,
        updated_at=now,
        created_at=now,
        **fields,
    )
    sla.start(conversation, await timers.setting_of(db, organization_id, fields["inbox_id"]), now)
    await repo.add(db, conversation)
    published.conversation_event(db, "conversation.created", conversation)
    if first is not None:
        message = await _post(db, principal, conversation, first["kind"], first["body"])
        published.messages_created(db, [message])
    if assignee_id is not None:
        await assignment.record_auto_assignment(db, conversation)
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
    await plan_for_values(db)  # the best plan depends on the organization's size, the filters, the words
    broad = False
    if search is not None:
        outlook = await repo.search_outlook(db, principal.organization_id, search)
        if not outlook.indexable:
            raise errors.search_without_words()
        broad = outlook.estimated_matches > repo.BROAD_ABOVE
    return await repo.conversations(
        db,
        principal.organization_id,
        filters,
        search=search,
        sort=sort,
        broad=broad,
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
    await tag_service.ensure(db, principal.organization_id, changes.get("tags") or [])
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
    before = {name: getattr(conversation, name) for name in CHANGEABLE}
    setting = None
    if "status" in changes or "priority" in changes:
        setting = await timers.setting_of(db, organization_id, conversation.inbox_id)
        await _mark_breaches(db, conversation, now)  # those due before the change ends or pauses a clock
    reopened = "status" in changes and conversation.status == "resolved"
    if "status" in changes:
        _set_status(conversation, status, now)
    for name, value in changes.items():
        if name != "status":
            setattr(conversation, name, value)
    if setting is not None and "status" in changes:
        sla.status_changed(conversation, before["status"], now, setting)
    elif setting is not None:
        sla.refresh(conversation, setting)  # a new priority, new targets
    conversation.version += 1
    conversation.updated_at = conversation.last_activity_at = now
    await db.flush()
    previous = {name: to_jsonable_python(value) for name, value in before.items() if name in changes}
    events: list[tuple[str, dict[str, Any]]] = [("conversation.updated", {"changes": previous})]
    if "assignee_id" in changes:
        events.append(("conversation.assigned", {"previous_assignee_id": previous["assignee_id"]}))
    if "status" in changes:
        events.append(("conversation.status_changed", {"previous_status": previous["status"]}))
    published.conversation_events(db, conversation, events)
    for name in TRACKED:
        if name in changes:
            label = name.removesuffix("_id")
            await _activity(
                db,
                principal,
                conversation,
                f"changed {label} from {_shown(before[name])} to {_shown(changes[name])}",
            )
    if reopened and "assignee_id" not in changes:
        await assignment.after_reopening(db, conversation)
    if changes.get("status") == "resolved" and await _ai_on(db, conversation):
        await defer(
            db, AI_SUMMARY_TASK, organization_id=str(organization_id), conversation_id=str(conversation.id)
        )
    return conversation


async def _ai_on(db: AsyncSession, conversation: Conversation) -> bool:
    mode = await repo.inbox_ai_mode(db, conversation.organization_id, conversation.inbox_id)
    return mode not in (None, "off")


def _set_status(conversation: Conversation, status: str, now: datetime) -> None:
    if conversation.status == "resolved" and status != "resolved":
        conversation.reopened_count += 1
        conversation.resolved_at = None
    if status == "resolved":
        conversation.resolved_at = now
    conversation.status = status


async def post_message(
    db: AsyncSession,
    principal: Principal,
    conversation_id: uuid.UUID,
    kind: str,
    body: str,
    attachment_ids: Sequence[uuid.UUID] = (),
    *,
    ai: dict[str, Any] | None = None,
) -> tuple[Message, list[MessageAttachment]]:
    """Add a message, with uploads of the conversation attached to it in the order given (422 if one is
    not an upload of this conversation or is attached already); `ai`: what the AI had to do with it."""
    conversation = await _locked(db, principal, conversation_id, None)
    uploads = await attachments.lock_uploads(db, principal.organization_id, conversation, attachment_ids)
    message = await _post(db, principal, conversation, kind, body, ai)
    await attachments.attach(db, message, uploads)
    published.messages_created(db, [message], uploads)
    return message, uploads


async def _post(
    db: AsyncSession,
    principal: Principal,
    conversation: Conversation,
    kind: str,
    body: str,
    ai: dict[str, Any] | None = None,
) -> Message:
    """Add a message to a conversation locked (or created) in this transaction, with its effects (a
    customer's message in an inbox whose AI is on queues the AI's turn)."""
    now = datetime.now(UTC)
    message = _message(conversation, kind, body, author_of(principal), ai)
    if kind == "outgoing":
        await _mark_breaches(db, conversation, now)  # a reply after the due time meets it late
    previous = conversation.status
    reopened = kind == "incoming" and previous in ("snoozed", "resolved")
    setting: Setting | None = None
    if reopened or sla.awaits_setting(conversation, kind):
        setting = await timers.setting_of(db, conversation.organization_id, conversation.inbox_id)
    if reopened:
        assert setting is not None
        conversation.reopened_count += 1
        conversation.status = "open"
        conversation.snoozed_until = conversation.resolved_at = None
        sla.status_changed(conversation, previous, now, setting)
    if kind == "outgoing" and conversation.first_response_at is None:
        conversation.first_response_at = now
    sla.message_posted(conversation, kind, now, setting)
    if kind in ("incoming", "outgoing"):
        conversation.last_message_at = now
    conversation.version += 1
    conversation.updated_at = conversation.last_activity_at = now
    await repo.add_with_changes(db, message, conversation)
    if reopened:
        published.conversation_event(
            db, "conversation.status_changed", conversation, previous_status=previous
        )
        await _activity(db, principal, conversation, f"reopened by an incoming message (was {previous})")
        await assignment.after_reopening(db, conversation)
    if kind == "incoming" and await _ai_on(db, conversation):
        await defer(
            db,
            AI_TASK,
            organization_id=str(conversation.organization_id),
            conversation_id=str(conversation.id),
            message_id=str(message.id),
        )
    return message


async def _mark_breaches(db: AsyncSession, conversation: Conversation, now: datetime) -> list[str]:
    """Mark every running clock of the (locked) conversation whose due time has passed: breached at
    its due time, an activity message, an audit event. The caller adds one to the version."""
    names = sla.overdue(conversation, now)
    for name in names:
        due = sla.mark_breached(conversation, name)
        await _system_line(db, conversation, f"SLA {sla.LABELS[name]} breached")
        published.conversation_event(db, "conversation.sla_breached", conversation, target=name)
        await audit.record(
            db,
            conversation.organization_id,
            "conversation.sla_breached",
            actor=Actor(kind="system"),
            target=("conversation", conversation.id),
            details={"target": name, "due_at": due.isoformat(), "number": conversation.number},
        )
    return names


# --- Periodic work (conversations/tasks.py), one organization and one batch at a time ------------------


class _Settings:
    """The SLA settings of the inboxes met in one batch, each read once."""

    def __init__(self, db: AsyncSession, organization_id: uuid.UUID) -> None:
        self._db, self._organization_id = db, organization_id
        self._known: dict[uuid.UUID, Setting] = {}

    async def of(self, conversation: Conversation) -> Setting:
        if conversation.inbox_id not in self._known:
            self._known[conversation.inbox_id] = await timers.setting_of(
                self._db, self._organization_id, conversation.inbox_id
            )
        return self._known[conversation.inbox_id]


def _changed(conversation: Conversation, now: datetime, *, activity: bool) -> None:
    conversation.version += 1
    conversation.updated_at = now
    if activity:
        conversation.last_activity_at = now


async def mark_sla_breaches(db: AsyncSession, organization_id: uuid.UUID, *, limit: int) -> int:
    """Mark the breaches due by now in up to `limit` conversations of the organization (each locked,
    its due times computed afresh first, so a policy changed meanwhile counts); how many were looked
    at. Run twice, marks once."""
    now = datetime.now(UTC)
    settings = _Settings(db, organization_id)
    found = await timers.overdue(db, organization_id, now, limit=limit)
    for conversation in found:
        refreshed = sla.refresh(conversation, await settings.of(conversation))
        marked = await _mark_breaches(db, conversation, now)
        if marked or refreshed:
            _changed(conversation, now, activity=bool(marked))
    await db.flush()
    return len(found)


async def wake_snoozed(db: AsyncSession, organization_id: uuid.UUID, *, limit: int) -> int:
    """Open up to `limit` conversations whose snooze has ended (each locked and checked again), with an
    activity message by the system; how many were looked at."""
    now = datetime.now(UTC)
    settings = _Settings(db, organization_id)
    found = await timers.snoozes_due(db, organization_id, now, limit=limit)
    for conversation in found:
        until = conversation.snoozed_until
        if conversation.status != "snoozed" or until is None or until > now:
            continue  # changed while this job waited for the row
        conversation.status = "open"
        conversation.snoozed_until = None
        sla.status_changed(conversation, "snoozed", now, await settings.of(conversation))
        _changed(conversation, now, activity=True)
        await db.flush()
        published.conversation_event(
            db, "conversation.status_changed", conversation, previous_status="snoozed"
        )
        await _system_line(
            db, conversation, f"system woke the conversation (snoozed until {until.isoformat()})"
        )
        await assignment.after_reopening(db, conversation)  # unassigned: offered to its team
    return len(found)


async def refresh_sla(
    db: AsyncSession,
    organization_id: uuid.UUID,
    inbox_ids: list[uuid.UUID],
    *,
    after: uuid.UUID | None,
    limit: int,
) -> uuid.UUID | None:
    """Recompute the running SLA clocks of a batch of the inboxes' unresolved conversations (their
    policy or hours changed); the last id of the batch, to continue after, or None when done."""
    settings = _Settings(db, organization_id)
    found = await timers.unresolved_in_inboxes(db, organization_id, inbox_ids, after=after, limit=limit)
    now = datetime.now(UTC)
    for conversation in found:
        if sla.refresh(conversation, await settings.of(conversation)):
            _changed(conversation, now, activity=False)
    await db.flush()
    return found[-1].id if len(found) == limit else None


async def list_messages(
    db: AsyncSession,
    principal: Principal,
    conversation_id: uuid.UUID,
    *,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
    public_only: bool = False,
) -> list[repo.MessageRow]:
    """A page of the conversation's messages (rows of `repo.MESSAGE_SHOWN`; `public_only`: what its
    customer sees), newest first; 404 if there is no such conversation."""
    rows = await repo.messages(
        db, principal.organization_id, conversation_id, before=before, limit=limit, public_only=public_only
    )
    if not rows:  # a message found is of a conversation of this organization (composite foreign key)
        await get_conversation(db, principal, conversation_id)
    return rows


async def attachments_of(
    db: AsyncSession, principal: Principal, message_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[MessageAttachment]]:
    """The attachments of these messages by message id, in one query."""
    return await attachments.of_messages(db, principal.organization_id, message_ids)


async def rate_conversation(
    db: AsyncSession, principal: Principal, conversation_id: uuid.UUID, score: int, comment: str | None
) -> ConversationRating:
    """The customer's rating of a resolved conversation (given again, it replaces the first); 409
    `conversation_not_resolved` otherwise. Emits `conversation.rated`."""
    conversation = await _locked(db, principal, conversation_id, None)
    if conversation.status != "resolved":
        raise errors.conversation_not_resolved()
    now = datetime.now(UTC)
    values = {
        "organization_id": principal.organization_id,
        "conversation_id": conversation_id,
        "score": score,
        "comment": comment,
        "created_at": now,
        "updated_at": now,
    }
    rating = await repo.save_rating(db, values)
    published.conversation_event(db, "conversation.rated", conversation, rating=rating_json(rating))
    return rating


def rating_json(rating: ConversationRating) -> dict[str, Any]:
    return {"score": rating.score, "comment": rating.comment, "updated_at": rating.updated_at.isoformat()}


async def rating_of(db: AsyncSession, principal: Principal, conversation_id: uuid.UUID) -> ConversationRating:
    """The conversation's rating; 404 if it has none (or there is no such conversation)."""
    await get_conversation(db, principal, conversation_id)
    found = await repo.rating(db, principal.organization_id, conversation_id)
    if found is None:
        raise errors.rating_not_found()
    return found


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
    notes: list[dict[str, Any]] = [
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
    ]
    await repo.add_messages(db, notes)
    published.messages_created(db, notes)
