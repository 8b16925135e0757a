"""Assignment rules beyond a member's own PATCH (issue 11, point 6; decision 0040).

- Auto-assignment: a conversation created in an inbox with `auto_assignment` on goes to the next member
  of its team (the inbox's team) who is `online`, has the agent role or above and holds fewer open
  conversations of the inbox than the inbox's `auto_assignment_limit` (none: no cap): the one who has
  waited longest since auto-assignment last gave them one. Nobody eligible: it stays unassigned. A
  conversation reopened while unassigned is offered the same way, by a job right after the reopening
  commits (`auto_assign_reopened`).
- A member taken out of a team leaves their open conversations of that team unassigned; a member who
  leaves the organization (removed or by themselves), all their conversations there. Each conversation
  gets an activity message.

Concurrency. Everything that picks an assignee or takes one away here holds the organization's
assignment lock (a transaction-level advisory lock) from before it reads until it commits: two
auto-assignments never see the same counts, and a member being removed is never picked. Every holder
takes it before locking any conversation, team member or membership row it changes (a creation holds
only its counter row and idempotency key by then), so no transaction holding such a row waits for the
lock while the lock's holder waits for that row: no deadlock (decision 0040 gives the order). A manual
assignment takes no lock: it ignores the cap, and holds the membership it names (FOR KEY SHARE), which
a removal locks before unassigning.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.access.principal import Principal
from aisupport.conversations import assignment_repository as repo
from aisupport.conversations import conversation_repository, published
from aisupport.conversations.models import Conversation, Inbox
from aisupport.core.db import row_of
from aisupport.core.jobs import defer
from aisupport.organizations import service as organizations

AUTO_ASSIGN_TASK = "conversations:auto_assign"


def _activity(
    conversation_id: uuid.UUID,
    organization_id: uuid.UUID,
    body: str,
    now: datetime,
    author: tuple[str, uuid.UUID | None] = ("system", None),
) -> dict[str, object]:
    return {
        "id": uuid.uuid4(),
        "organization_id": organization_id,
        "conversation_id": conversation_id,
        "kind": "activity",
        "private": True,
        "body": body,
        "author_type": author[0],
        "author_id": author[1],
        "created_at": now,
    }


def _author(principal: Principal) -> tuple[str, uuid.UUID | None]:
    if principal.kind == "member":
        return "member", principal.user_id
    if principal.kind == "api_key":
        return "api_key", principal.api_key_id
    return str(principal.kind), None


def _who(author: tuple[str, uuid.UUID | None]) -> str:
    return f"{author[0]} {author[1]}" if author[1] is not None else author[0]


# --- Auto-assignment --------------------------------------------------------------------------------------


async def pick_for_new(db: AsyncSession, inbox: Inbox, team_id: uuid.UUID | None) -> uuid.UUID | None:
    """The member a new conversation of `inbox` (with team `team_id`) goes to, or None; takes the
    organization's assignment lock. The caller writes the assignment (`record_auto_assignment`)."""
    if not inbox.auto_assignment or team_id is None:
        return None
    await repo.lock_assignments(db, inbox.organization_id)
    return await repo.next_assignee(db, inbox.organization_id, team_id, inbox.id, inbox.auto_assignment_limit)


async def record_auto_assignment(db: AsyncSession, conversation: Conversation) -> None:
    """The activity message of an auto-assignment, and the round-robin's memory of it."""
    assert conversation.assignee_id is not None
    now = datetime.now(UTC)
    await repo.mark_assigned(db, conversation.organization_id, conversation.assignee_id, now)
    body = f"assigned to {conversation.assignee_id} by auto-assignment"
    lines = [_activity(conversation.id, conversation.organization_id, body, now)]
    await conversation_repository.add_messages(db, lines)
    published.messages_created(db, lines)


async def after_reopening(db: AsyncSession, conversation: Conversation) -> None:
    """A conversation just reopened (in this transaction): if it is unassigned in an auto-assignment
    inbox, queue a job that offers it once this commits. A job, not now: this transaction holds the
    conversation's row, and taking the assignment lock after a conversation row could deadlock."""
    if conversation.assignee_id is not None:
        return
    inbox = await db.scalar(row_of(Inbox, conversation.organization_id, Inbox.id == conversation.inbox_id))
    if inbox is None or not inbox.auto_assignment:
        return
    await defer(
        db,
        AUTO_ASSIGN_TASK,
        organization_id=str(conversation.organization_id),
        conversation_id=str(conversation.id),
    )


async def auto_assign_reopened(
    db: AsyncSession, organization_id: uuid.UUID, conversation_id: uuid.UUID
) -> bool:
    """Offer a reopened conversation to its inbox's team, if it is still unassigned and not resolved and
    its inbox still assigns automatically; whether it was assigned. The lock, then the row."""
    await repo.lock_assignments(db, organization_id)
    conversation = await conversation_repository.conversation(db, organization_id, conversation_id, lock=True)
    if conversation is None or conversation.assignee_id is not None or conversation.status == "resolved":
        return False
    inbox = await db.scalar(row_of(Inbox, organization_id, Inbox.id == conversation.inbox_id))
    if inbox is None or not inbox.auto_assignment:
        return False
    team_id = conversation.team_id or inbox.team_id
    if team_id is None:
        return False
    assignee = await repo.next_assignee(db, organization_id, team_id, inbox.id, inbox.auto_assignment_limit)
    if assignee is None:
        return False
    now = datetime.now(UTC)
    conversation.assignee_id = assignee
    conversation.team_id = team_id
    conversation.version += 1
    conversation.updated_at = conversation.last_activity_at = now
    await db.flush()
    published.conversation_event(db, "conversation.assigned", conversation, previous_assignee_id=None)
    await record_auto_assignment(db, conversation)
    return True


# --- Members leaving a team or the organization --------------------------------------------------------


async def release_team_member(
    db: AsyncSession, principal: Principal, team_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    """Unassign the member's open conversations of the team (they were just taken out of it), each
    with an activity message naming who took them out. The caller holds the assignment lock."""
    organization_id = principal.organization_id
    now = datetime.now(UTC)
    released = await repo.unassign(db, organization_id, user_id, now, team_id=team_id)
    author = _author(principal)
    body = f"{_who(author)} unassigned {user_id}: taken out of team {team_id}"
    await _announce_released(db, organization_id, user_id, released, body, now, author)


async def _announce_released(
    db: AsyncSession,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    released: list[uuid.UUID],
    body: str,
    now: datetime,
    author: tuple[str, uuid.UUID | None],
) -> None:
    """The activity message and events of conversations just unassigned from a member."""
    lines = [_activity(conversation_id, organization_id, body, now, author) for conversation_id in released]
    await conversation_repository.add_messages(db, lines)
    for conversation in await conversation_repository.conversations_by_id(db, organization_id, released):
        published.conversation_event(
            db, "conversation.assigned", conversation, previous_assignee_id=str(user_id)
        )
    published.messages_created(db, lines)


async def lock_assignments(db: AsyncSession, organization_id: uuid.UUID) -> None:
    """Take the organization's assignment lock (before any conversation or team member row)."""
    await repo.lock_assignments(db, organization_id)


@organizations.before_member_stands_down
async def _release_member_standing_down(
    db: AsyncSession, principal: Principal, user_id: uuid.UUID, why: str
) -> None:
    """Unassign every conversation of a member about to leave the organization (removed, or leaving) or
    made a viewer (who may no longer work them), each with an activity message, before the membership
    goes or changes (its foreign key would null them silently)."""
    organization_id = principal.organization_id
    await repo.lock_assignments(db, organization_id)
    # Assignments to them that already hold the membership commit first; later ones wait, then fail.
    await repo.lock_membership(db, organization_id, user_id)
    now = datetime.now(UTC)
    released = await repo.unassign(db, organization_id, user_id, now)
    author = _author(principal)
    body = f"{_who(author)} unassigned {user_id}: {why}"
    await _announce_released(db, organization_id, user_id, released, body, now, author)
