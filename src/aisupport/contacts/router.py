"""/orgs/{org_id}/contacts: the organization's customers."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from aisupport.access.dependencies import ClientInfo, requires
from aisupport.access.permissions import Permission
from aisupport.access.principal import Principal
from aisupport.contacts import errors, service
from aisupport.contacts.repository import ContactFilters
from aisupport.contacts.schemas import ContactCreate, ContactMerge, ContactOut, ContactUpdate
from aisupport.core.db import DbSession
from aisupport.core.errors import problem_responses
from aisupport.core.pagination import Page, Paging
from aisupport.core.schemas import Timestamp

router = APIRouter(tags=["contacts"])

ContactReader = Annotated[Principal, Depends(requires(Permission.CONTACTS_READ))]
ContactWriter = Annotated[Principal, Depends(requires(Permission.CONTACTS_WRITE))]
ContactEraser = Annotated[Principal, Depends(requires(Permission.CONTACTS_ERASE))]


@router.post(
    "/orgs/{org_id}/contacts",
    status_code=status.HTTP_201_CREATED,
    response_model=ContactOut,
    responses=problem_responses(errors.CONTACT_EXISTS),
)
async def create_contact(
    org_id: uuid.UUID, payload: ContactCreate, principal: ContactWriter, db: DbSession
) -> ContactOut:
    """Add a customer. Email (any case) and external_id are unique in the organization."""
    contact = await service.create_contact(db, principal, payload.model_dump())
    return ContactOut.model_validate(contact)


@router.get("/orgs/{org_id}/contacts", response_model=Page[ContactOut])
async def list_contacts(
    org_id: uuid.UUID,
    principal: ContactReader,
    db: DbSession,
    paging: Paging,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="Prefix of the name or the email, any case."),
    ] = None,
    email: Annotated[str | None, Query(min_length=1, max_length=320, description="Exact, any case.")] = None,
    external_id: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
    created_after: Annotated[Timestamp | None, Query(description="Created at or after.")] = None,
    created_before: Annotated[Timestamp | None, Query(description="Created before.")] = None,
) -> Page[ContactOut]:
    """Contacts (erased ones left out), oldest first, narrowed by any of the filters together."""
    filters = ContactFilters(
        prefix=q,
        email=email,
        external_id=external_id,
        created_after=created_after,
        created_before=created_before,
    )
    rows = await service.list_contacts(
        db, principal, filters, after=paging.after_time_and_id(), limit=paging.fetch
    )
    return paging.page(rows, lambda row: (row.created_at, row.id), ContactOut.model_validate)


@router.get("/orgs/{org_id}/contacts/{contact_id}", response_model=ContactOut)
async def get_contact(
    org_id: uuid.UUID, contact_id: uuid.UUID, principal: ContactReader, db: DbSession
) -> ContactOut:
    """One contact (an erased one shows only its id, times and `erased_at`)."""
    return ContactOut.model_validate(await service.get_contact(db, principal, contact_id))


@router.patch(
    "/orgs/{org_id}/contacts/{contact_id}",
    response_model=ContactOut,
    responses=problem_responses(errors.CONTACT_EXISTS, errors.CONTACT_ERASED),
)
async def update_contact(
    org_id: uuid.UUID, contact_id: uuid.UUID, payload: ContactUpdate, principal: ContactWriter, db: DbSession
) -> ContactOut:
    """Change the fields sent; `null` clears one; custom_attributes is replaced whole."""
    changes = payload.model_dump(exclude_unset=True)
    return ContactOut.model_validate(await service.update_contact(db, principal, contact_id, changes))


@router.post(
    "/orgs/{org_id}/contacts/{contact_id}/merge",
    response_model=ContactOut,
    responses=problem_responses(errors.CONTACT_ERASED, errors.MERGE_WITH_ITSELF, errors.ATTRIBUTES_TOO_LARGE),
)
async def merge_contacts(
    org_id: uuid.UUID,
    contact_id: uuid.UUID,
    payload: ContactMerge,
    principal: ContactWriter,
    db: DbSession,
    client: ClientInfo,
) -> ContactOut:
    """Merge another contact into this one, which is kept: its empty fields take the other's values,
    custom attributes are united (this one's win), what refers to the other moves here, and the other
    is deleted. Audited (`contact.merged`)."""
    kept = await service.merge_contacts(db, principal, contact_id, payload.merged_contact_id, client)
    return ContactOut.model_validate(kept)


@router.post(
    "/orgs/{org_id}/contacts/{contact_id}/erase",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(errors.CONTACT_ERASED),
)
async def erase_contact(
    org_id: uuid.UUID, contact_id: uuid.UUID, principal: ContactEraser, db: DbSession, client: ClientInfo
) -> Response:
    """Erase the contact's personal data for good (right to erasure); its id stays, emptied. Admins
    and owners. Audited (`contact.erased`), without what was removed."""
    await service.erase_contact(db, principal, contact_id, client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
