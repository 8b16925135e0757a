"""Rules about people's accounts that every package shares."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.access.errors import invalid_access_token
from aisupport.accounts import repository
from aisupport.accounts.errors import email_not_verified
from aisupport.accounts.models import User


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def verified_user(db: AsyncSession, user_id: uuid.UUID) -> User:
    """The signed-in user, if their address is verified (joining an organization by email needs it)."""
    user = await repository.user_by_id(db, user_id)
    if user is None or not user.is_active:
        raise invalid_access_token()
    if not user.email_verified:
        raise email_not_verified()
    return user
