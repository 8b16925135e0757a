"""All SQL for contacts, scoped to the caller's organization (core.db.scoped and rows_of); row-level
security scopes it again in the database."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, or_
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.contacts.models import Contact
from aisupport.core.db import row_of, rows_of
from aisupport.core.pagination import keyset


@dataclass(frozen=True)
class ContactFilters:
    """What a list of contacts is narrowed to; every one optional, all combined."""

    prefix: str | None = None  # of the name or the email, any case
    email: str | None = None  # exact, any case
    external_id: str | None = None
    created_after: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive


def _like_prefix(text: str) -> str:
    """`text` as a LIKE pattern matching what starts with it (its own % and _ taken literally)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


async def add(db: AsyncSession, contact: Contact) -> Contact:
    db.add(contact)
    await db.flush()
    return contact


async def contact(db: AsyncSession, organization_id: uuid.UUID, contact_id: uuid.UUID) -> Contact | None:
    return await db.scalar(rows_of(Contact, organization_id).where(Contact.id == contact_id))


async def lock(
    db: AsyncSession, organization_id: uuid.UUID, contact_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Contact]:
    """The contacts, locked until the transaction ends, taken in id order (two merges of the same pair,
    either way round, queue up instead of deadlocking); those gone are missing from the answer."""
    rows = await db.scalars(
        row_of(Contact, organization_id, Contact.id.in_(contact_ids), lock=True).order_by(Contact.id)
    )
    return {row.id: row for row in rows}


def contacts_query(
    organization_id: uuid.UUID,
    filters: ContactFilters,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Select[Contact]:
    """The page of contacts `contacts` reads (apart, so that a test can show its plan uses the indexes)."""
    query = rows_of(Contact, organization_id).where(Contact.erased_at.is_(None))
    if filters.prefix is not None:
        # Lowered by PostgreSQL, as the indexed side is (Python's lower() differs on a few letters);
        # lower() is immutable, so the planner folds it and the index still applies.
        pattern = func.lower(_like_prefix(filters.prefix))
        # Each side can use its own index (organization_id, lower(x) text_pattern_ops): a BitmapOr.
        query = query.where(
            or_(
                func.lower(Contact.name).like(pattern, escape="\\"),
                func.lower(Contact.email).like(pattern, escape="\\"),
            )
        )
    if filters.email is not None:
        query = query.where(func.lower(Contact.email) == func.lower(filters.email))
    if filters.external_id is not None:
        query = query.where(Contact.external_id == filters.external_id)
    if filters.created_after is not None:
        query = query.where(Contact.created_at >= filters.created_after)
    if filters.created_before is not None:
        query = query.where(Contact.created_at < filters.created_before)
    return keyset(query, (Contact.created_at, Contact.id), after, limit)


async def contacts(
    db: AsyncSession,
    organization_id: uuid.UUID,
    filters: ContactFilters,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Contact]:
    """A page of the contacts not erased, oldest first (keyset on created time, then id)."""
    query = contacts_query(organization_id, filters, after=after, limit=limit)
    return list((await db.execute(query)).scalars())


async def remove(db: AsyncSession, contact: Contact) -> None:
    """Delete a contact read (and locked) in this transaction."""
    await db.delete(contact)
    await db.flush()
