"""Business rules of contacts: creating, reading, updating, listing, merging and erasing them.

Never commits. Every function acts in the principal's organization; the request's transaction is
already scoped to it (row-level security). Writes lock the contacts they change (in id order), so
concurrent merges, erasures and updates of one contact queue up and the later ones answer 404 (merged
away) or 409 (erased), never a stale write. Email (any case) and external_id are unique per
organization by index; a write that collides answers 409 `contact_exists`.

Packages above this one own rows about a contact (conversations, their messages): they register a
hook (`on_merge`, `on_erase`) that runs in the same transaction, before the merged contact is deleted
or the erased one emptied (decision 0033).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.access.principal import Principal
from aisupport.audit import service as audit
from aisupport.contacts import errors
from aisupport.contacts import repository as repo
from aisupport.contacts.models import Contact
from aisupport.contacts.repository import ContactFilters
from aisupport.contacts.schemas import ATTRIBUTE_BOUNDS, ContactOut
from aisupport.core.client import Client
from aisupport.events.outbox import emit

# The personal fields: what a merge fills in and an erasure empties.
PERSONAL_FIELDS = ("name", "email", "phone", "external_id")
CHANGEABLE_FIELDS = (*PERSONAL_FIELDS, "custom_attributes", "last_seen_at")

MergeHook = Callable[[AsyncSession, uuid.UUID, uuid.UUID, uuid.UUID], Awaitable[None]]
"""(db, organization_id, kept_id, merged_id): move what refers to the merged contact to the kept one."""
EraseHook = Callable[[AsyncSession, uuid.UUID, uuid.UUID], Awaitable[None]]
"""(db, organization_id, contact_id): remove the personal data held about the contact elsewhere."""

UNIQUE_VIOLATION = "23505"


@dataclass
class ContactHooks:
    """What other packages run inside a merge or an erasure, in its transaction: `merge` hooks before
    the merged contact is deleted, `erase` hooks before the contact is emptied. A hook that raises
    fails the whole request and changes nothing."""

    merge: list[MergeHook] = field(default_factory=list)
    erase: list[EraseHook] = field(default_factory=list)


HOOKS = ContactHooks()


def on_merge(hook: MergeHook) -> MergeHook:
    """Register `hook` (usable as a decorator) to run in every merge (see ContactHooks)."""
    HOOKS.merge.append(hook)
    return hook


def on_erase(hook: EraseHook) -> EraseHook:
    """Register `hook` (usable as a decorator) to run in every erasure (see ContactHooks)."""
    HOOKS.erase.append(hook)
    return hook


async def create_contact(db: AsyncSession, principal: Principal, fields: dict[str, Any]) -> Contact:
    """Create a contact; 409 `contact_exists` if its email or external_id is taken."""
    now = datetime.now(UTC)
    contact = Contact(organization_id=principal.organization_id, updated_at=now, **fields)
    await _flush_unique(db, contact, add=True)
    _publish(db, "contact.created", contact)
    return contact


async def get_contact(db: AsyncSession, principal: Principal, contact_id: uuid.UUID) -> Contact:
    contact = await repo.contact(db, principal.organization_id, contact_id)
    if contact is None:
        raise errors.contact_not_found()
    return contact


async def list_contacts(
    db: AsyncSession,
    principal: Principal,
    filters: ContactFilters,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Contact]:
    return await repo.contacts(db, principal.organization_id, filters, after=after, limit=limit)


async def update_contact(
    db: AsyncSession, principal: Principal, contact_id: uuid.UUID, changes: dict[str, Any]
) -> Contact:
    """Change the fields given (None clears one); an erased contact cannot be changed."""
    contact = await _lock_one(db, principal, contact_id)
    before = {name: getattr(contact, name) for name in CHANGEABLE_FIELDS if name in changes}
    for name in CHANGEABLE_FIELDS:
        if name in changes:
            setattr(contact, name, changes[name])
    contact.updated_at = datetime.now(UTC)
    await _flush_unique(db, contact)
    changed = {name: to_jsonable_python(value) for name, value in before.items() if value != changes[name]}
    if changed:
        _publish(db, "contact.updated", contact, changes=changed)
    return contact


async def merge_contacts(
    db: AsyncSession, principal: Principal, kept_id: uuid.UUID, merged_id: uuid.UUID, client: Client
) -> Contact:
    """Merge `merged_id` into `kept_id`: what refers to it moves (hooks), the kept contact's empty
    personal fields take the merged one's values, custom attributes are united (the kept one's win on
    the same key), `last_seen_at` is the later of the two; then the merged contact is deleted."""
    if kept_id == merged_id:
        raise errors.merge_with_itself()
    organization_id = principal.organization_id
    locked = await repo.lock(db, organization_id, [kept_id, merged_id])
    kept, merged = locked.get(kept_id), locked.get(merged_id)
    if kept is None or merged is None:  # never there, or merged away by a request that went first
        raise errors.contact_not_found()
    if kept.erased_at is not None or merged.erased_at is not None:
        raise errors.contact_erased()
    attributes = {**merged.custom_attributes, **kept.custom_attributes}
    try:
        ATTRIBUTE_BOUNDS.check(attributes)
    except ValueError as exc:
        raise errors.attributes_too_large(str(exc)) from None
    filled = {name: getattr(merged, name) for name in PERSONAL_FIELDS if getattr(kept, name) is None}
    seen = [moment for moment in (kept.last_seen_at, merged.last_seen_at) if moment is not None]
    for hook in HOOKS.merge:
        await hook(db, organization_id, kept_id, merged_id)
    # The merged row goes first: its email and external_id may move to the kept one.
    await repo.remove(db, merged)
    for name, value in filled.items():
        setattr(kept, name, value)
    kept.custom_attributes = attributes
    kept.last_seen_at = max(seen, default=None)
    kept.updated_at = datetime.now(UTC)
    await db.flush()
    await audit.record(
        db,
        organization_id,
        "contact.merged",
        actor=principal.actor,
        client=client,
        target=("contact", kept_id),
        details={"merged_contact_id": str(merged_id), "filled": sorted(filled)},
    )
    _publish(db, "contact.merged", kept, merged_contact_id=str(merged_id))
    return kept


async def erase_contact(
    db: AsyncSession, principal: Principal, contact_id: uuid.UUID, client: Client
) -> None:
    """Erase a contact's personal data: its row stays (what refers to it still does), emptied, with
    `erased_at` set; hooks remove what other packages hold about it. Audited without what was removed."""
    contact = await _lock_one(db, principal, contact_id)
    for hook in HOOKS.erase:
        await hook(db, principal.organization_id, contact_id)
    for name in PERSONAL_FIELDS:
        setattr(contact, name, None)
    contact.custom_attributes = {}
    contact.last_seen_at = None
    contact.erased_at = contact.updated_at = datetime.now(UTC)
    await db.flush()
    await audit.record(
        db,
        principal.organization_id,
        "contact.erased",
        actor=principal.actor,
        client=client,
        target=("contact", contact_id),
    )
    emit(db, principal.organization_id, "contact.deleted", {"contact_id": str(contact_id)})


def _publish(db: AsyncSession, type: str, contact: Contact, **extra: Any) -> None:
    shown = ContactOut.model_validate(contact).model_dump(mode="json")
    emit(db, contact.organization_id, type, {"contact": shown, **extra})


async def _lock_one(db: AsyncSession, principal: Principal, contact_id: uuid.UUID) -> Contact:
    """The contact, locked; 404 if it is not there (or was merged away), 409 if it was erased."""
    contact = (await repo.lock(db, principal.organization_id, [contact_id])).get(contact_id)
    if contact is None:
        raise errors.contact_not_found()
    if contact.erased_at is not None:
        raise errors.contact_erased()
    return contact


async def _flush_unique(db: AsyncSession, contact: Contact, *, add: bool = False) -> None:
    """Write `contact`; a taken email or external_id is a 409 (the database's unique indexes decide, so
    two concurrent writes of one address end in one success and one 409)."""
    try:
        async with db.begin_nested():
            if add:
                await repo.add(db, contact)
            else:
                await db.flush()
    except IntegrityError as error:
        if getattr(error.orig, "sqlstate", None) != UNIQUE_VIOLATION:
            raise
        constraint = getattr(getattr(error.orig, "diag", None), "constraint_name", None) or ""
        raise errors.contact_exists("external_id" if "external_id" in constraint else "email") from None
