"""The organization's tags (decision 0043): the vocabulary conversations are tagged from.

Agents tag freely: a name applied to a conversation that the organization has not used yet joins its
tags (`ensure`). Admins create, rename, describe and delete tags; a rename or deletion rewrites every
conversation carrying the tag in the same transaction, so a list filtered on a tag never sees half of
it. Never commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import any_, case, func, literal, select, type_coerce, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import String

from aisupport.access.principal import Principal
from aisupport.audit import service as audit
from aisupport.conversations import errors
from aisupport.conversations import repository as repo
from aisupport.conversations.models import Conversation, Tag
from aisupport.conversations.service import hold_organization, one_of
from aisupport.core.client import Client
from aisupport.core.db import scoped


async def ensure(db: AsyncSession, organization_id: uuid.UUID, names: Sequence[str]) -> None:
    """Add the names the organization has no tag for yet, and hold every one (FOR KEY SHARE) until the
    transaction ends. Called before the conversation is locked: a rename or deletion (which locks the
    tag, then the conversations) either finishes first, and the names are looked up again (a renamed
    or deleted one is added anew), or waits for this transaction, and then finds its conversation.

    Each round takes its locks in name order inside a savepoint, and a round that finds a name gone
    gives back everything it took before the next one, so concurrent taggers never wait in a cycle."""
    wanted = sorted(set(names))
    if not wanted:
        return
    rows = [{"organization_id": organization_id, "name": name} for name in wanted]
    held = (
        scoped(select(Tag.name), Tag, organization_id)
        .where(Tag.name.in_(wanted))
        .order_by(Tag.name)
        .with_for_update(read=True, key_share=True)
    )
    for _ in range(3):  # a second round only after a rename or deletion raced this one
        savepoint = await db.begin_nested()
        added = [{"id": uuid.uuid4(), **row} for row in rows]
        await db.execute(
            insert(Tag).values(added).on_conflict_do_nothing(constraint="uq_tags_organization_id_name")
        )
        if list(await db.scalars(held)) == wanted:
            await savepoint.commit()
            return
        await savepoint.rollback()
    raise errors.tags_changed()


async def _retag(db: AsyncSession, organization_id: uuid.UUID, old: str, new: str | None) -> int:
    """Rename (or, with `new` None, remove) `old` on every conversation carrying it; how many changed."""
    carried = type_coerce([old], ARRAY(String))
    tags: Any = Conversation.tags
    if new is None:
        replaced: Any = func.array_remove(tags, old)
    else:
        replaced = case(
            (literal(new) == any_(tags), func.array_remove(tags, old)),
            else_=func.array_replace(tags, old, new),
        )
    result = await db.execute(
        scoped(update(Conversation), Conversation, organization_id)
        .where(Conversation.tags.contains(carried))
        .values(tags=replaced, version=Conversation.version + 1, updated_at=func.now())
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def create_tag(db: AsyncSession, principal: Principal, fields: dict[str, Any], client: Client) -> Tag:
    await hold_organization(db, principal)
    try:
        async with db.begin_nested():
            tag = await repo.add(
                db, Tag(organization_id=principal.organization_id, created_at=datetime.now(UTC), **fields)
            )
    except IntegrityError:
        raise errors.tag_name_taken() from None
    await audit.record(
        db,
        principal.organization_id,
        "tag.created",
        actor=principal.actor,
        client=client,
        target=("tag", tag.id),
        details={"name": tag.name},
    )
    return tag


async def tags(
    db: AsyncSession, principal: Principal, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[Tag]:
    return await repo.page_of(db, Tag, principal.organization_id, after=after, limit=limit)


async def tag(db: AsyncSession, principal: Principal, tag_id: uuid.UUID) -> Tag:
    return await one_of(db, principal, Tag, tag_id, errors.tag_not_found)


async def update_tag(
    db: AsyncSession, principal: Principal, tag_id: uuid.UUID, changes: dict[str, Any], client: Client
) -> Tag:
    """Change the tag's color or description, or rename it (on every conversation carrying it too)."""
    found = await one_of(db, principal, Tag, tag_id, errors.tag_not_found, lock=True)
    old_name = found.name
    if changes.get("name") is not None:
        found.name = changes["name"]
    for field in ("color", "description"):
        if field in changes:
            setattr(found, field, changes[field])
    try:
        async with db.begin_nested():
            await db.flush()
    except IntegrityError:
        raise errors.tag_name_taken() from None
    if found.name != old_name:
        retagged = await _retag(db, principal.organization_id, old_name, found.name)
        await audit.record(
            db,
            principal.organization_id,
            "tag.renamed",
            actor=principal.actor,
            client=client,
            target=("tag", found.id),
            details={"from": old_name, "to": found.name, "conversations": retagged},
        )
    return found


async def delete_tag(db: AsyncSession, principal: Principal, tag_id: uuid.UUID, client: Client) -> None:
    """Delete the tag, and take it off every conversation carrying it."""
    found = await one_of(db, principal, Tag, tag_id, errors.tag_not_found, lock=True)
    retagged = await _retag(db, principal.organization_id, found.name, None)
    await repo.remove(db, Tag, principal.organization_id, tag_id)
    await audit.record(
        db,
        principal.organization_id,
        "tag.deleted",
        actor=principal.actor,
        client=client,
        target=("tag", tag_id),
        details={"name": found.name, "conversations": retagged},
    )
