"""/orgs/{org_id}/tags: the organization's tag vocabulary."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from aisupport.access.dependencies import ClientInfo, requires
from aisupport.access.permissions import Permission
from aisupport.access.principal import Principal
from aisupport.conversations import errors, tag_service
from aisupport.conversations.conversation_schemas import TagCreate, TagOut, TagUpdate
from aisupport.core.db import DbSession
from aisupport.core.errors import problem_responses
from aisupport.core.pagination import Page, Paging

router = APIRouter(tags=["tags"])

Reader = Annotated[Principal, Depends(requires(Permission.CONVERSATIONS_READ))]
TagManager = Annotated[Principal, Depends(requires(Permission.TAGS_MANAGE))]


@router.get("/orgs/{org_id}/tags", response_model=Page[TagOut])
async def list_tags(org_id: uuid.UUID, principal: Reader, db: DbSession, paging: Paging) -> Page[TagOut]:
    """The organization's tags, oldest first: those created by admins and those agents applied."""
    rows = await tag_service.tags(db, principal, after=paging.after_time_and_id(), limit=paging.fetch)
    return paging.page(rows, lambda row: (row.created_at, row.id), TagOut.model_validate)


@router.post(
    "/orgs/{org_id}/tags",
    status_code=status.HTTP_201_CREATED,
    response_model=TagOut,
    responses=problem_responses(errors.TAG_NAME_TAKEN),
)
async def create_tag(
    org_id: uuid.UUID, payload: TagCreate, principal: TagManager, db: DbSession, client: ClientInfo
) -> TagOut:
    """Create a tag; its name (case matters) is unique in the organization."""
    return TagOut.model_validate(await tag_service.create_tag(db, principal, payload.model_dump(), client))


@router.get("/orgs/{org_id}/tags/{tag_id}", response_model=TagOut)
async def get_tag(org_id: uuid.UUID, tag_id: uuid.UUID, principal: Reader, db: DbSession) -> TagOut:
    """One tag."""
    return TagOut.model_validate(await tag_service.tag(db, principal, tag_id))


@router.patch(
    "/orgs/{org_id}/tags/{tag_id}", response_model=TagOut, responses=problem_responses(errors.TAG_NAME_TAKEN)
)
async def update_tag(
    org_id: uuid.UUID,
    tag_id: uuid.UUID,
    payload: TagUpdate,
    principal: TagManager,
    db: DbSession,
    client: ClientInfo,
) -> TagOut:
    """Rename the tag (every conversation carrying it is renamed with it), or change its color or
    description (null clears them)."""
    changes = payload.model_dump(exclude_unset=True)
    return TagOut.model_validate(await tag_service.update_tag(db, principal, tag_id, changes, client))


@router.delete("/orgs/{org_id}/tags/{tag_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_tag(
    org_id: uuid.UUID, tag_id: uuid.UUID, principal: TagManager, db: DbSession, client: ClientInfo
) -> Response:
    """Delete the tag: every conversation carrying it loses it."""
    await tag_service.delete_tag(db, principal, tag_id, client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
