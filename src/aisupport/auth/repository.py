"""All SQL for users, sessions and refresh tokens."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.auth.models import AuthSession, RefreshToken, User


async def user_by_email(db: AsyncSession, email_normalized: str) -> User | None:
    result = await db.execute(select(User).where(User.email_normalized == email_normalized))
    return result.scalar_one_or_none()


async def user_by_id(db: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await db.get(User, user_id)


async def add_user(db: AsyncSession, user: User) -> User:
    db.add(user)
    await db.flush()
    return user


async def add_session(db: AsyncSession, session: AuthSession) -> AuthSession:
    db.add(session)
    await db.flush()
    return session


async def add_refresh_token(db: AsyncSession, token: RefreshToken) -> RefreshToken:
    db.add(token)
    await db.flush()
    return token


async def lock_refresh_token(db: AsyncSession, token_hash: str) -> tuple[RefreshToken, AuthSession] | None:
    """The token and its session, with the session row locked: a family rotates one request at a time."""
    row = (
        await db.execute(
            select(RefreshToken, AuthSession)
            .join(AuthSession, AuthSession.id == RefreshToken.session_id)
            .where(RefreshToken.token_hash == token_hash)
            .with_for_update(of=AuthSession)
        )
    ).first()
    if row is None:
        return None
    token, session = row
    # PostgreSQL re-reads the locked session row after waiting, but not the joined token row:
    # reload it to see a rotation that committed while this request waited for the lock.
    await db.refresh(token)
    return token, session


async def child_of(db: AsyncSession, token_id: uuid.UUID) -> RefreshToken | None:
    result = await db.execute(select(RefreshToken).where(RefreshToken.parent_id == token_id))
    return result.scalar_one_or_none()


async def session_by_token_hash(db: AsyncSession, token_hash: str) -> AuthSession | None:
    result = await db.execute(
        select(AuthSession)
        .join(RefreshToken, RefreshToken.session_id == AuthSession.id)
        .where(RefreshToken.token_hash == token_hash)
    )
    return result.scalar_one_or_none()


async def session_is_live(db: AsyncSession, session_id: uuid.UUID, now: datetime) -> bool:
    result = await db.execute(
        select(AuthSession.id).where(
            AuthSession.id == session_id, AuthSession.revoked_at.is_(None), AuthSession.expires_at > now
        )
    )
    return result.first() is not None


async def revoke_session(db: AsyncSession, session_id: uuid.UUID, *, reason: str, now: datetime) -> bool:
    """Revoke a session and every refresh token of its family; False if it was already revoked."""
    result = await db.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
        .returning(AuthSession.id)
    )
    revoked = result.first() is not None
    await db.execute(
        update(RefreshToken)
        .where(RefreshToken.session_id == session_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return revoked
