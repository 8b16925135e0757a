"""All SQL of the conversations domain, by resource: SLA policies, teams and their members,
availability, inboxes. Every query is scoped to the caller's organization (core.db.scoped, rows_of);
row-level security scopes it again in the database."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.accounts.models import User
from aisupport.conversations.models import Inbox, MemberAvailability, SlaPolicy, Tag, Team, TeamMember
from aisupport.core.db import row_of, rows_of, scoped
from aisupport.core.pagination import keyset
from aisupport.organizations.models import Membership

Row = TypeVar("Row", Inbox, SlaPolicy, Tag, Team)


async def add(db: AsyncSession, row: Row) -> Row:
    db.add(row)
    await db.flush()
    return row


async def page_of(
    db: AsyncSession,
    model: type[Row],
    organization_id: uuid.UUID,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Row]:
    """A page of inboxes, teams, tags or SLA policies, oldest first."""
    query = keyset(rows_of(model, organization_id), (model.created_at, model.id), after, limit)
    return list((await db.execute(query)).scalars())


async def one(
    db: AsyncSession, model: type[Row], organization_id: uuid.UUID, row_id: uuid.UUID, *, lock: bool = False
) -> Row | None:
    """One inbox, team, tag or SLA policy; with `lock`, locked until the transaction ends and read as the
    database has it now (a writer that waited sees what the one before it left)."""
    return await db.scalar(row_of(model, organization_id, model.id == row_id, lock=lock))


async def exists(db: AsyncSession, model: type[Row], organization_id: uuid.UUID, row_id: uuid.UUID) -> bool:
    """Whether the row exists, held (FOR KEY SHARE) so it is not deleted before the transaction ends."""
    query = scoped(select(model.id), model, organization_id).where(model.id == row_id)
    return await db.scalar(query.with_for_update(read=True, key_share=True)) is not None


async def remove(db: AsyncSession, model: type[Row], organization_id: uuid.UUID, row_id: uuid.UUID) -> None:
    await db.execute(scoped(delete(model), model, organization_id).where(model.id == row_id))


async def detach_inboxes(
    db: AsyncSession,
    organization_id: uuid.UUID,
    *,
    team_id: uuid.UUID | None = None,
    sla_policy_id: uuid.UUID | None = None,
) -> None:
    """Clear the team or SLA policy of the inboxes that refer to it (before it is deleted)."""
    statement = scoped(update(Inbox), Inbox, organization_id)
    if team_id is not None:
        await db.execute(statement.where(Inbox.team_id == team_id).values(team_id=None))
    if sla_policy_id is not None:
        await db.execute(statement.where(Inbox.sla_policy_id == sla_policy_id).values(sla_policy_id=None))


# --- Team members -----------------------------------------------------------------------------------------


async def hold_membership(db: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """Whether `user_id` is a member, held (FOR KEY SHARE) until the transaction ends."""
    query = scoped(select(Membership.user_id), Membership, organization_id).where(
        Membership.user_id == user_id
    )
    return await db.scalar(query.with_for_update(read=True, key_share=True)) is not None


async def add_team_member(
    db: AsyncSession, organization_id: uuid.UUID, team_id: uuid.UUID, user_id: uuid.UUID
) -> bool:
    """Put the member in the team; False if they already were."""
    result = await db.execute(
        insert(TeamMember)
        .values(organization_id=organization_id, team_id=team_id, user_id=user_id)
        .on_conflict_do_nothing()
        .returning(TeamMember.user_id)
    )
    return result.first() is not None


async def remove_team_member(
    db: AsyncSession, organization_id: uuid.UUID, team_id: uuid.UUID, user_id: uuid.UUID
) -> bool:
    """Take the member out of the team; False if they were not in it."""
    result = await db.execute(
        scoped(delete(TeamMember), TeamMember, organization_id)
        .where(TeamMember.team_id == team_id, TeamMember.user_id == user_id)
        .returning(TeamMember.user_id)
    )
    return result.first() is not None


async def team_members(
    db: AsyncSession,
    organization_id: uuid.UUID,
    team_id: uuid.UUID,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[tuple[TeamMember, User]]:
    """A page of a team's members with their accounts, in the order they were added."""
    query = keyset(
        scoped(
            select(TeamMember, User).join(User, User.id == TeamMember.user_id), TeamMember, organization_id
        ).where(TeamMember.team_id == team_id),
        (TeamMember.created_at, TeamMember.user_id),
        after,
        limit,
    )
    return [(member, user) for member, user in (await db.execute(query)).all()]


# --- Availability ---------------------------------------------------------------------------------------


async def set_availability(
    db: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID, status: str, now: datetime
) -> MemberAvailability:
    statement = (
        insert(MemberAvailability)
        .values(organization_id=organization_id, user_id=user_id, status=status, updated_at=now)
        .on_conflict_do_update(
            index_elements=[MemberAvailability.organization_id, MemberAvailability.user_id],
            set_={"status": status, "updated_at": now},
        )
        .returning(MemberAvailability)
        .execution_options(populate_existing=True)
    )
    return (await db.execute(statement)).scalar_one()


async def availability(
    db: AsyncSession, organization_id: uuid.UUID, *, after: uuid.UUID | None, limit: int
) -> list[tuple[uuid.UUID, str | None, datetime | None]]:
    """Every member's availability (None where never set), by user id."""
    query = scoped(
        select(Membership.user_id, MemberAvailability.status, MemberAvailability.updated_at).outerjoin(
            MemberAvailability,
            (MemberAvailability.organization_id == Membership.organization_id)
            & (MemberAvailability.user_id == Membership.user_id),
        ),
        Membership,
        organization_id,
    )
    query = keyset(query, (Membership.user_id,), None if after is None else (after,), limit)
    return [(user_id, status, updated_at) for user_id, status, updated_at in (await db.execute(query)).all()]
