"""All SQL of authentication: the few lookups that turn a credential into a principal.

They read tables that the packages above own (sessions, memberships, API keys), so they are written as
SQL here rather than through those packages' models: access sits below every domain and imports none.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.access.permissions import Role

SESSION_IS_LIVE = text(
    "SELECT 1 FROM auth_sessions WHERE id = :session_id AND revoked_at IS NULL AND expires_at > :now"
)
ROLE_OF = text("SELECT role FROM memberships WHERE organization_id = :organization_id AND user_id = :user_id")
ORGANIZATION_OF_API_KEY = text("SELECT organization_of_api_key(:key_hash)")
API_KEY_BY_HASH = text(
    """
    SELECT k.id, k.role, k.expires_at, k.revoked_at, k.last_used_at, m.role AS creator_role
      FROM api_keys k
      LEFT JOIN memberships m ON m.organization_id = k.organization_id AND m.user_id = k.created_by
     WHERE k.organization_id = :organization_id AND k.key_hash = :key_hash
    """
)
TOUCH_API_KEY = text(
    "UPDATE api_keys SET last_used_at = :now WHERE organization_id = :organization_id AND id = :key_id"
)


@dataclass(frozen=True)
class ApiKeyFound:
    id: uuid.UUID
    role: Role
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    creator_role: Role | None  # None: the creator is no longer a member


async def session_is_live(db: AsyncSession, session_id: uuid.UUID, now: datetime) -> bool:
    return (await db.execute(SESSION_IS_LIVE, {"session_id": session_id, "now": now})).first() is not None


async def role_of(db: AsyncSession, user_id: uuid.UUID, organization_id: uuid.UUID) -> Role | None:
    """The user's current role in the organization, or None if they are not a member."""
    role = await db.scalar(ROLE_OF, {"organization_id": organization_id, "user_id": user_id})
    return None if role is None else Role(role)


async def organization_of_api_key(db: AsyncSession, key_hash: str) -> uuid.UUID | None:
    """The organization of an API key, found before any tenant is set (SECURITY DEFINER)."""
    found: uuid.UUID | None = await db.scalar(ORGANIZATION_OF_API_KEY, {"key_hash": key_hash})
    return found


async def api_key_by_hash(db: AsyncSession, organization_id: uuid.UUID, key_hash: str) -> ApiKeyFound | None:
    """The key with its creator's current role in the organization."""
    row = (
        await db.execute(API_KEY_BY_HASH, {"organization_id": organization_id, "key_hash": key_hash})
    ).first()
    if row is None:
        return None
    return ApiKeyFound(
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
    await db.execute(TOUCH_API_KEY, {"organization_id": organization_id, "key_id": key_id, "now": now})
