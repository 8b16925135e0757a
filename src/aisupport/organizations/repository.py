"""All SQL for organizations and memberships."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.auth.models import User
from aisupport.organizations.models import Membership, Organization, Role


async def add_organization(db: AsyncSession, *, name: str, slug: str) -> Organization:
    organization = Organization(id=uuid.uuid4(), name=name, slug=slug)
    db.add(organization)
    await db.flush()
    return organization


async def add_membership(
    db: AsyncSession, *, organization_id: uuid.UUID, user_id: uuid.UUID, role: Role
) -> Membership:
    membership = Membership(organization_id=organization_id, user_id=user_id, role=role.value)
    db.add(membership)
    await db.flush()
    return membership


async def memberships_of_user(db: AsyncSession, user_id: uuid.UUID) -> list[tuple[Organization, Role]]:
    """The user's organizations with their role, oldest membership first."""
    rows = await db.execute(
        select(Organization, Membership.role)
        .join(Membership, Membership.organization_id == Organization.id)
        .where(Membership.user_id == user_id)
        .order_by(Membership.created_at, Organization.id)
    )
    return [(organization, Role(role)) for organization, role in rows.all()]


async def user_with_memberships(
    db: AsyncSession, user_id: uuid.UUID
) -> tuple[User, list[tuple[Organization, Role]]] | None:
    """The user and their organizations with their role, oldest membership first, in one query."""
    rows = (
        await db.execute(
            select(User, Organization, Membership.role)
            .outerjoin(Membership, Membership.user_id == User.id)
            .outerjoin(Organization, Organization.id == Membership.organization_id)
            .where(User.id == user_id)
            .order_by(Membership.created_at, Organization.id)
        )
    ).all()
    if not rows:
        return None
    memberships = [(organization, Role(role)) for _, organization, role in rows if organization is not None]
    return rows[0][0], memberships


async def membership_of_user(
    db: AsyncSession, user_id: uuid.UUID, organization_id: uuid.UUID
) -> tuple[Organization, Role] | None:
    row = (
        await db.execute(
            select(Organization, Membership.role)
            .join(Membership, Membership.organization_id == Organization.id)
            .where(Membership.user_id == user_id, Membership.organization_id == organization_id)
        )
    ).first()
    return None if row is None else (row[0], Role(row[1]))
