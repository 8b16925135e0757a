"""All SQL of assignment (conversations/assignment.py): the organization's assignment lock, picking the
next member for auto-assignment, and unassigning a member who leaves a team or the organization. Every
query is scoped to the caller's organization; row-level security scopes it again in the database."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.conversations.conversation_repository import AGENT_ROLES
from aisupport.conversations.models import Conversation, MemberAvailability, TeamMember
from aisupport.core.db import scoped
from aisupport.organizations.models import Membership

# pg_advisory_xact_lock(int, int): the first key names what is locked (ASCII "asgn"), the second the
# organization. The two-key space does not overlap the one-key space the migrations' lock uses.
ASSIGNMENT_LOCK_CLASS = 0x6173676E


def assignment_lock_key(organization_id: uuid.UUID) -> int:
    """The organization's 32-bit key: two organizations that share one only wait for each other."""
    return int.from_bytes(organization_id.bytes[:4], "big", signed=True)


async def lock_assignments(db: AsyncSession, organization_id: uuid.UUID) -> None:
    """Take the organization's assignment lock until the transaction ends (decision 0040)."""
    await db.execute(
        select(func.pg_advisory_xact_lock(ASSIGNMENT_LOCK_CLASS, assignment_lock_key(organization_id)))
    )


async def next_assignee(
    db: AsyncSession, organization_id: uuid.UUID, team_id: uuid.UUID, inbox_id: uuid.UUID, limit: int | None
) -> uuid.UUID | None:
    """The team's online member with the agent role or above, below `limit` open conversations of the
    inbox, who has waited longest since auto-assignment last gave them one (never first, then by user
    id); None if there is none."""
    query = (
        scoped(select(TeamMember.user_id), TeamMember, organization_id)
        .join(
            MemberAvailability,
            (MemberAvailability.organization_id == TeamMember.organization_id)
            & (MemberAvailability.user_id == TeamMember.user_id),
        )
        .join(
            Membership,
            (Membership.organization_id == TeamMember.organization_id)
            & (Membership.user_id == TeamMember.user_id),
        )
        .where(
            TeamMember.team_id == team_id,
            MemberAvailability.status == "online",
            Membership.role.in_(AGENT_ROLES),
        )
    )
    if limit is not None:
        open_conversations = (
            select(func.count())
            .select_from(Conversation)
            .where(
                Conversation.organization_id == organization_id,
                Conversation.assignee_id == TeamMember.user_id,
                Conversation.inbox_id == inbox_id,
                Conversation.status != "resolved",  # the partial index's condition
            )
            .scalar_subquery()
        )
        query = query.where(open_conversations < limit)
    query = query.order_by(MemberAvailability.last_assigned_at.asc().nulls_first(), TeamMember.user_id)
    picked: uuid.UUID | None = await db.scalar(query.limit(1))
    return picked


async def mark_assigned(
    db: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID, now: datetime
) -> None:
    """Remember that auto-assignment gave `user_id` a conversation now (they go to the back)."""
    await db.execute(
        scoped(update(MemberAvailability), MemberAvailability, organization_id)
        .where(MemberAvailability.user_id == user_id)
        .values(last_assigned_at=now)
    )


async def lock_membership(db: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Lock the membership (FOR UPDATE): an assignment to this member that holds it (FOR KEY SHARE)
    commits first, and a later one waits until the membership is gone."""
    await db.execute(
        scoped(select(Membership.user_id), Membership, organization_id)
        .where(Membership.user_id == user_id)
        .with_for_update()
    )


async def unassign(
    db: AsyncSession,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    now: datetime,
    *,
    team_id: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """Unassign the member's conversations: every one, or (`team_id`) the open ones of that team.
    Returns their ids."""
    statement = scoped(update(Conversation), Conversation, organization_id).where(
        Conversation.assignee_id == user_id
    )
    if team_id is not None:
        statement = statement.where(Conversation.team_id == team_id, Conversation.status != "resolved")
    result = await db.execute(
        statement.values(
            assignee_id=None, version=Conversation.version + 1, updated_at=now, last_activity_at=now
        )
        .returning(Conversation.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(result.scalars())
