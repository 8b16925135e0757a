"""All SQL for users."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.accounts.models import User


async def user_by_email(db: AsyncSession, email_normalized: str) -> User | None:
    result = await db.execute(select(User).where(User.email_normalized == email_normalized))
    return result.scalar_one_or_none()


async def user_by_id(db: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await db.get(User, user_id)


async def lock_user(db: AsyncSession, user_id: uuid.UUID) -> User | None:
    """The user, row locked and freshly read: changes that depend on the account's current state (its
    address, password, security stamp) are made one at a time."""
    result = await db.execute(
        select(User).where(User.id == user_id).with_for_update().execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def add_user(db: AsyncSession, user: User) -> User:
    db.add(user)
    await db.flush()
    return user
