"""All SQL of authentication: the lookups that turn a credential into a principal.

They read tables that the packages above own (sessions, memberships, API keys) through two SQL
functions (migration 3c9e2a7d51b4) that set the tenant and read under row-level security in one
statement: run on a pooled connection in autocommit, each lookup is one round trip, with no session
or transaction of the request's. Access sits below every domain and imports none of their models.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, column, select, table, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from aisupport.access.permissions import Role

SESSION_PRINCIPAL = text("SELECT live, role FROM session_principal(:session_id, :user_id, :organization_id)")
API_KEY_PRINCIPAL = text(
    "SELECT organization_id, id, role, expires_at, revoked_at, last_used_at, creator_role"
    " FROM api_key_principal(:key_hash)"
)
api_keys = table("api_keys", column("id"), column("organization_id"), column("last_used_at"))
visitors = table(
    "widget_visitors",
    column("id"),
    column("organization_id"),
    column("inbox_id"),
    column("contact_id"),
    column("verified"),
)
inboxes = table(
    "inboxes", column("id"), column("organization_id"), column("kind"), column("identity_secret_rotated_at")
)
contacts = table("contacts", column("id"), column("organization_id"), column("erased_at"))


@dataclass(frozen=True)
class SessionStanding:
    live: bool
    role: Role | None  # None: not a member of the organization


@dataclass(frozen=True)
class ApiKeyStanding:
    organization_id: uuid.UUID
    id: uuid.UUID
    role: Role
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    creator_role: Role | None  # None: the creator is no longer a member


@dataclass(frozen=True)
class VisitorStanding:
    contact_id: uuid.UUID
    verified: bool
    inbox_kind: str
    identity_secret_rotated_at: datetime | None
    contact_erased_at: datetime | None


async def session_standing(
    engine: AsyncEngine, session_id: uuid.UUID, user_id: uuid.UUID, organization_id: uuid.UUID
) -> SessionStanding:
    """Whether the session is live, and the user's current role in the organization."""
    arguments = {"session_id": session_id, "user_id": user_id, "organization_id": organization_id}
    async with engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        row = (await connection.execute(SESSION_PRINCIPAL, arguments)).first()
    if row is None:
        return SessionStanding(live=False, role=None)
    return SessionStanding(live=bool(row.live), role=None if row.role is None else Role(row.role))


async def api_key_standing(engine: AsyncEngine, key_hash: str) -> ApiKeyStanding | None:
    """The key behind a secret's hash, with its creator's current role in the key's organization."""
    async with engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        row = (await connection.execute(API_KEY_PRINCIPAL, {"key_hash": key_hash})).first()
    if row is None:
        return None
    return ApiKeyStanding(
        organization_id=row.organization_id,
        id=row.id,
        role=Role(row.role),
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        creator_role=None if row.creator_role is None else Role(row.creator_role),
    )


async def touch_api_key(
    db: AsyncSession, organization_id: uuid.UUID, key_id: uuid.UUID, now: datetime
) -> None:
    """Note that a key was used; a key deleted meanwhile (with its organization) is simply not touched."""
    await db.execute(
        update(api_keys)
        .where(api_keys.c.organization_id == organization_id, api_keys.c.id == key_id)
        .values(last_used_at=now)
    )


async def visitor_standing(
    db: AsyncSession, organization_id: uuid.UUID, visitor_id: uuid.UUID, inbox_id: uuid.UUID
) -> VisitorStanding | None:
    """A widget visitor's contact and whether verified, with what decides whether their token still
    holds: the inbox's kind and last secret rotation, the contact's erasure. None if the visitor is
    gone. Read in the request's session (the visitor's organization is its tenant)."""
    query = (
        select(
            visitors.c.contact_id,
            visitors.c.verified,
            inboxes.c.kind,
            inboxes.c.identity_secret_rotated_at,
            contacts.c.erased_at,
        )
        .select_from(
            visitors.join(
                inboxes,
                and_(
                    inboxes.c.organization_id == visitors.c.organization_id,
                    inboxes.c.id == visitors.c.inbox_id,
                ),
            ).join(
                contacts,
                and_(
                    contacts.c.organization_id == visitors.c.organization_id,
                    contacts.c.id == visitors.c.contact_id,
                ),
            )
        )
        .where(
            visitors.c.organization_id == organization_id,
            visitors.c.id == visitor_id,
            visitors.c.inbox_id == inbox_id,
        )
    )
    row = (await db.execute(query)).first()
    if row is None:
        return None
    return VisitorStanding(
        row.contact_id, row.verified, row.kind, row.identity_secret_rotated_at, row.erased_at
    )
