"""`Idempotency-Key` on creating requests (decision 0036).

A request with a key claims it in its own transaction (`INSERT ... ON CONFLICT`), before it writes
anything. A second request with the same key blocks on that claim until the first one's transaction
ends: if the first succeeded, the second reads its stored answer (same request) or gets 409 (another
request); if it failed, nothing was stored and the second one runs. So one key never writes twice.
Keys live 24 hours; an older one is claimed afresh, and an hourly job deletes them (`purge`,
conversations/tasks.py). Failed requests store nothing (a retry runs again).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Header
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.conversations import errors
from aisupport.conversations.models import IdempotencyKey
from aisupport.core.db import scoped

LIFETIME = timedelta(hours=24)

KeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=r"^[\x21-\x7e]{1,255}$",
        description="Any unique string (a UUID, say) of at most 255 printable characters: the same request "
        "sent again with it within 24 hours returns the first answer without writing again; another "
        "request with it answers 409 `idempotency_key_reused`.",
    ),
]


@dataclass(frozen=True)
class Stored:
    status_code: int
    body: dict[str, Any]


def request_hash(route: str, payload: dict[str, Any]) -> str:
    """What identifies a request: its route (with its ids) and its body, canonically serialised."""
    canonical = json.dumps({"route": route, "body": payload}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def claim(db: AsyncSession, organization_id: uuid.UUID, key: str, digest: str) -> Stored | None:
    """Claim `key` for this request: None when it is ours to run; the stored answer of the same request
    made before; 409 if the key came with another request."""
    table = IdempotencyKey.__table__
    statement = (
        pg_insert(IdempotencyKey)
        .values(organization_id=organization_id, key=key, request_hash=digest)
        .on_conflict_do_update(
            index_elements=[IdempotencyKey.organization_id, IdempotencyKey.key],
            set_={"request_hash": digest, "status_code": None, "response": None, "created_at": func.now()},
            where=table.c.created_at < func.now() - LIFETIME,
        )
        .returning(IdempotencyKey.key)
    )
    if (await db.execute(statement)).first() is not None:
        return None
    existing = (
        await db.execute(
            scoped(select(IdempotencyKey), IdempotencyKey, organization_id)
            .where(IdempotencyKey.key == key)
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    if existing.request_hash != digest or existing.status_code is None or existing.response is None:
        raise errors.idempotency_key_reused()
    return Stored(existing.status_code, existing.response)


async def store(
    db: AsyncSession, organization_id: uuid.UUID, key: str, status_code: int, body: dict[str, Any]
) -> None:
    """Keep the answer of the request that claimed `key` (same transaction as its writes)."""
    await db.execute(
        scoped(update(IdempotencyKey), IdempotencyKey, organization_id)
        .where(IdempotencyKey.key == key)
        .values(status_code=status_code, response=body)
    )


async def organizations_with_keys_before(db: AsyncSession, before: datetime) -> list[uuid.UUID]:
    """The organizations holding keys created before `before` (ids only: a SECURITY DEFINER function,
    for the purge job, which has no tenant yet)."""
    rows = await db.execute(
        text("SELECT organizations_with_idempotency_keys_before(:before)"), {"before": before}
    )
    return [row[0] for row in rows]


async def purge(db: AsyncSession, organization_id: uuid.UUID, before: datetime, *, limit: int) -> int:
    """Delete up to `limit` of the organization's keys created before `before`; how many."""
    table = IdempotencyKey.__table__
    expired = (
        scoped(select(table.c.key), IdempotencyKey, organization_id)
        .where(table.c.created_at < before)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    deleted = await db.execute(
        scoped(delete(IdempotencyKey), IdempotencyKey, organization_id)
        .where(IdempotencyKey.key.in_(expired.scalar_subquery()))
        .returning(IdempotencyKey.key)
    )
    return len(deleted.all())
