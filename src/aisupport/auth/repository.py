"""All SQL for sessions, refresh tokens, emailed links and the account activity list."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.auth.models import AccountActivity, AccountToken, AuthSession, RefreshToken


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


async def revoke_session(db: AsyncSession, session_id: uuid.UUID, *, reason: str, now: datetime) -> bool:
    """Revoke a session and every refresh token of its family; False if it was already revoked."""
    return bool(await _revoke_sessions(db, AuthSession.id == session_id, reason=reason, now=now))


async def revoke_sessions_of_user(
    db: AsyncSession, user_id: uuid.UUID, *, reason: str, now: datetime, keep: uuid.UUID | None = None
) -> list[uuid.UUID]:
    """Revoke every live session of a user (but `keep`); returns the ids revoked."""
    condition = AuthSession.user_id == user_id
    if keep is not None:
        condition = condition & (AuthSession.id != keep)
    return await _revoke_sessions(db, condition, reason=reason, now=now)


async def _revoke_sessions(
    db: AsyncSession, condition: Any, *, reason: str, now: datetime
) -> list[uuid.UUID]:
    result = await db.execute(
        update(AuthSession)
        .where(condition, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
        .returning(AuthSession.id)
    )
    revoked = list(result.scalars())
    if revoked:
        await db.execute(
            update(RefreshToken)
            .where(RefreshToken.session_id.in_(revoked), RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    return revoked


async def live_sessions_of_user(
    db: AsyncSession,
    user_id: uuid.UUID,
    *,
    idle_since: datetime,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[AuthSession]:
    """A page of the sessions that can still refresh (not revoked, not expired, used after
    `idle_since`), newest sign-in first (keyset on creation time, then id, both descending)."""
    query = select(AuthSession).where(
        AuthSession.user_id == user_id,
        AuthSession.revoked_at.is_(None),
        AuthSession.expires_at > func.now(),
        AuthSession.last_used_at > idle_since,
    )
    if before is not None:
        query = query.where(tuple_(AuthSession.created_at, AuthSession.id) < before)
    result = await db.execute(
        query.order_by(AuthSession.created_at.desc(), AuthSession.id.desc()).limit(limit)
    )
    return list(result.scalars())


async def session_by_id(db: AsyncSession, session_id: uuid.UUID) -> AuthSession | None:
    return await db.get(AuthSession, session_id)


async def session_of_user(db: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID) -> AuthSession | None:
    result = await db.execute(
        select(AuthSession).where(AuthSession.id == session_id, AuthSession.user_id == user_id)
    )
    return result.scalar_one_or_none()


async def add_account_token(db: AsyncSession, token: AccountToken) -> None:
    db.add(token)
    await db.flush()


async def owner_of_account_token(db: AsyncSession, token_hash: str) -> uuid.UUID | None:
    return await db.scalar(select(AccountToken.user_id).where(AccountToken.token_hash == token_hash))


async def use_account_token(
    db: AsyncSession, token_hash: str, purposes: tuple[str, ...], now: datetime
) -> AccountToken | None:
    """Mark an unused, unexpired token used and return it; None if there is no such token. Atomic, so
    two requests with the same token cannot both succeed."""
    result = await db.execute(
        update(AccountToken)
        .where(
            AccountToken.token_hash == token_hash,
            AccountToken.purpose.in_(purposes),
            AccountToken.used_at.is_(None),
            AccountToken.revoked_at.is_(None),
            AccountToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(AccountToken)
    )
    return result.scalar_one_or_none()


async def revoke_account_tokens(db: AsyncSession, user_id: uuid.UUID, now: datetime) -> int:
    """End every unused emailed link of the user; returns how many there were."""
    result = await db.execute(
        update(AccountToken)
        .where(
            AccountToken.user_id == user_id,
            AccountToken.used_at.is_(None),
            AccountToken.revoked_at.is_(None),
            AccountToken.expires_at > now,
        )
        .values(revoked_at=now)
    )
    return result.rowcount  # type: ignore[attr-defined,no-any-return]


async def add_activity(db: AsyncSession, event: AccountActivity) -> None:
    db.add(event)
    await db.flush()


async def activity_of_user(
    db: AsyncSession, user_id: uuid.UUID, *, before_id: int | None, limit: int
) -> list[AccountActivity]:
    """A page of the user's activity, newest first (keyset on the event id)."""
    query = (
        select(AccountActivity)
        .where(AccountActivity.user_id == user_id)
        .order_by(AccountActivity.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(AccountActivity.id < before_id)
    return list((await db.execute(query)).scalars())


async def purge_expired(db: AsyncSession, *, before: datetime, idle_before: datetime) -> tuple[int, int]:
    """Delete sessions (with their refresh tokens) and account tokens that ended before `before`."""
    sessions = await db.execute(
        delete(AuthSession).where(
            or_(
                AuthSession.revoked_at < before,
                AuthSession.expires_at < before,
                AuthSession.last_used_at < idle_before,
            )
        )
    )
    tokens = await db.execute(
        delete(AccountToken).where(
            or_(
                AccountToken.used_at < before,
                AccountToken.revoked_at < before,
                AccountToken.expires_at < before,
            )
        )
    )
    return sessions.rowcount, tokens.rowcount  # type: ignore[attr-defined]


async def purge_activity(db: AsyncSession, *, before: datetime) -> int:
    """Delete account activity older than `before`."""
    result = await db.execute(delete(AccountActivity).where(AccountActivity.occurred_at < before))
    return result.rowcount  # type: ignore[attr-defined,no-any-return]
