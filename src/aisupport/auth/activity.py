"""The user's own account activity: security events of one account (sign-ins, failed sign-ins,
password and address changes, sign-outs), written in the caller's transaction so that an event is
recorded exactly when its change commits. Never holds a secret: kinds, times, addresses, session ids."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.auth import repository
from aisupport.auth.models import AccountActivity, ActivityKind
from aisupport.core.client import Client


async def record(
    db: AsyncSession,
    user_id: uuid.UUID,
    kind: ActivityKind,
    *,
    client: Client | None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one event to the user's activity list."""
    await repository.add_activity(
        db,
        AccountActivity(
            user_id=user_id,
            kind=kind.value,
            ip=client.ip if client else None,
            user_agent=client.user_agent if client else None,
            details=details or {},
        ),
    )


async def of_user(
    db: AsyncSession, user_id: uuid.UUID, *, before_id: int | None, limit: int
) -> list[AccountActivity]:
    """A page of the user's activity, newest first."""
    return await repository.activity_of_user(db, user_id, before_id=before_id, limit=limit)
