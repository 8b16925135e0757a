"""All SQL for organizations, memberships, invitations and API keys.

Every query on a tenant-owned table is scoped here to the caller's organization (core.db.scoped and
rows_of), and row-level security scopes it again in the database (core/tenancy.py).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.access.permissions import Role
from aisupport.accounts.models import User
from aisupport.core.db import row_of, rows_of, scoped
from aisupport.core.pagination import keyset
from aisupport.organizations.models import ApiKey, Invitation, Membership, Organization


async def add_organization(
    db: AsyncSession, *, name: str, slug: str, organization_id: uuid.UUID | None = None
) -> Organization:
    organization = Organization(id=organization_id or uuid.uuid4(), name=name, slug=slug)
    db.add(organization)
    await db.flush()
    return organization


async def organization(db: AsyncSession, organization_id: uuid.UUID) -> Organization | None:
    return await db.get(Organization, organization_id)


# How much of an organization a transaction locks (lock_organization), weakest first.
OrgLock = Literal["keep", "members"]


async def lock_organization(db: AsyncSession, organization_id: uuid.UUID, lock: OrgLock) -> bool:
    """Lock the organization's row for the rest of the transaction; False if it no longer exists.

    The organization row is the tenant's lock, taken before any row inside it, so that two writes in
    one organization queue up (and then see each other's result) instead of deadlocking or updating a
    row the other deleted:
    - "keep": the organization is not deleted meanwhile; other writers go on (FOR KEY SHARE);
    - "members": membership changes take turns (FOR NO KEY UPDATE);
    renaming or deleting the organization locks it whole (organization_for_update, FOR UPDATE).
    """
    query = scoped(select(Organization.id), Organization, organization_id)
    if lock == "keep":
        query = query.with_for_update(read=True, key_share=True)  # FOR KEY SHARE
    else:
        query = query.with_for_update(key_share=True)  # FOR NO KEY UPDATE
    return await db.scalar(query) is not None


async def organization_for_update(db: AsyncSession, organization_id: uuid.UUID) -> Organization | None:
    """The organization, locked whole until the transaction ends (see lock_organization)."""
    return await db.scalar(
        rows_of(Organization, organization_id).with_for_update().execution_options(populate_existing=True)
    )


async def delete_organization(db: AsyncSession, organization_id: uuid.UUID) -> None:
    """Delete an organization; its memberships, invitations, keys and audit log go with it (cascade)."""
    await db.execute(scoped(delete(Organization), Organization, organization_id))


async def organizations_of_user(
    db: AsyncSession,
    user_id: uuid.UUID,
    *,
    after: tuple[datetime, uuid.UUID] | None = None,
    limit: int | None = None,
) -> list[tuple[Organization, Role, datetime]]:
    """The user's organizations with their role and joining time, oldest membership first."""
    query = keyset(
        select(Organization, Membership.role, Membership.created_at)
        .join(Membership, Membership.organization_id == Organization.id)
        .where(Membership.user_id == user_id),
        (Membership.created_at, Organization.id),
        after,
        limit,
    )
    return [
        (organization, Role(role), joined) for organization, role, joined in (await db.execute(query)).all()
    ]


async def role_of(db: AsyncSession, user_id: uuid.UUID, organization_id: uuid.UUID) -> Role | None:
    """The user's current role in the organization, or None if they are not a member."""
    role = await db.scalar(
        scoped(select(Membership.role), Membership, organization_id).where(Membership.user_id == user_id)
    )
    return None if role is None else Role(role)


async def members(
    db: AsyncSession, organization_id: uuid.UUID, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[tuple[Membership, User]]:
    """A page of members, oldest first (keyset on joined time, then user id)."""
    query = keyset(
        scoped(
            select(Membership, User).join(User, User.id == Membership.user_id), Membership, organization_id
        ),
        (Membership.created_at, Membership.user_id),
        after,
        limit,
    )
    return [(membership, user) for membership, user in (await db.execute(query)).all()]


async def membership(db: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID) -> Membership | None:
    """The membership as the database has it now (not as an earlier read in this session left it)."""
    return await db.scalar(
        rows_of(Membership, organization_id)
        .where(Membership.user_id == user_id)
        .execution_options(populate_existing=True)
    )


async def member_with_email(db: AsyncSession, organization_id: uuid.UUID, email_normalized: str) -> bool:
    member_ids = select(Membership.user_id).join(User, User.id == Membership.user_id)
    found = await db.scalar(
        scoped(member_ids, Membership, organization_id).where(User.email_normalized == email_normalized)
    )
    return found is not None


async def lock_owners(db: AsyncSession, organization_id: uuid.UUID) -> list[uuid.UUID]:
    """The owners, with their rows locked: two demotions at once cannot both leave no owner."""
    result = await db.execute(
        scoped(select(Membership.user_id), Membership, organization_id)
        .where(Membership.role == Role.OWNER.value)
        .with_for_update()
    )
    return list(result.scalars())


async def remove_membership(db: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """Delete a membership; False if there was none to delete."""
    result = await db.execute(
        scoped(delete(Membership), Membership, organization_id)
        .where(Membership.user_id == user_id)
        .returning(Membership.user_id)
    )
    return result.first() is not None


async def add_invitation(db: AsyncSession, invitation: Invitation) -> Invitation:
    db.add(invitation)
    await db.flush()
    return invitation


async def invitation(
    db: AsyncSession, organization_id: uuid.UUID, invitation_id: uuid.UUID, *, lock: bool = False
) -> Invitation | None:
    """The invitation; with `lock`, locked until the transaction ends (as accepting it locks it)."""
    return await db.scalar(row_of(Invitation, organization_id, Invitation.id == invitation_id, lock=lock))


async def pending_invitations(
    db: AsyncSession,
    organization_id: uuid.UUID,
    *,
    now: datetime,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Invitation]:
    query = keyset(
        rows_of(Invitation, organization_id).where(
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > now,
        ),
        (Invitation.created_at, Invitation.id),
        after,
        limit,
    )
    return list((await db.execute(query)).scalars())


async def organization_of_invitation(db: AsyncSession, token_hash: str) -> uuid.UUID | None:
    """The organization an invitation link belongs to, found before any tenant is set (SECURITY DEFINER)."""
    return await db.scalar(select(func.organization_of_invitation(token_hash)))


async def invitation_by_token_hash(
    db: AsyncSession, organization_id: uuid.UUID, token_hash: str
) -> Invitation | None:
    return await db.scalar(
        rows_of(Invitation, organization_id)
        .where(Invitation.token_hash == token_hash)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def add_api_key(db: AsyncSession, key: ApiKey) -> ApiKey:
    db.add(key)
    await db.flush()
    return key


async def api_keys(
    db: AsyncSession, organization_id: uuid.UUID, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[ApiKey]:
    query = keyset(
        rows_of(ApiKey, organization_id),
        (ApiKey.created_at, ApiKey.id),
        after,
        limit,
    )
    return list((await db.execute(query)).scalars())


async def api_key(db: AsyncSession, organization_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey | None:
    """The key, locked until the transaction ends (two revocations of it take turns)."""
    return await db.scalar(row_of(ApiKey, organization_id, ApiKey.id == key_id, lock=True))


async def add_membership(
    db: AsyncSession, *, organization_id: uuid.UUID, user_id: uuid.UUID, role: Role
) -> Membership:
    membership = Membership(organization_id=organization_id, user_id=user_id, role=role.value)
    db.add(membership)
    await db.flush()
    return membership


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
    with_role = select(Organization, Membership.role).join(
        Membership, Membership.organization_id == Organization.id
    )
    row = (
        await db.execute(scoped(with_role, Membership, organization_id).where(Membership.user_id == user_id))
    ).first()
    return None if row is None else (row[0], Role(row[1]))
