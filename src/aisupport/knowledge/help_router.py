"""/help/v1/{org_slug}: the public, read-only help centre: an organization's `public` and `published`
articles, listed, read by slug and searched; no credential, rate-limited per address, readable from any
web page (CORS `*`, never with credentials). For the widget and help portals (docs/knowledge.md)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict

from aisupport.access.components import AccessComponents
from aisupport.access.dependencies import client_from
from aisupport.access.routes import public
from aisupport.access.tenancy import act_as
from aisupport.core.db import DbSession
from aisupport.core.pagination import Page, Paging
from aisupport.knowledge import errors, repository, service
from aisupport.knowledge.repository import Filters
from aisupport.knowledge.router import search_out
from aisupport.knowledge.schemas import Collection, Locale, SearchOut

router = APIRouter(tags=["help_centre"])
PREFIX = "/help/v1/{org_slug}"


class HelpArticle(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    slug: str
    title: str
    body: str
    locale: str
    collection: str | None
    tags: list[str]
    version: int
    updated_at: datetime


async def _organization(request: Request, db: DbSession, org_slug: str) -> uuid.UUID:
    access: AccessComponents = request.app.state.auth
    address = client_from(request).ip or "unknown"
    await access.rate_limiter.hit(access.settings.rate_limits["help_ip"], "help-ip", address)
    organization_id = await repository.organization_of_slug(request.app.state.engine, org_slug[:80])
    if organization_id is None:
        raise errors.help_centre_not_found()
    await act_as(db, organization_id=organization_id, user_id=None)
    return organization_id


@router.get(PREFIX + "/articles", response_model=Page[HelpArticle])
@public
async def list_help_articles(
    org_slug: str,
    request: Request,
    db: DbSession,
    paging: Paging,
    collection: Annotated[Collection | None, Query()] = None,
) -> Page[HelpArticle]:
    """The organization's public, published articles (of a `collection`), oldest first."""
    organization_id = await _organization(request, db, org_slug)
    rows = await service.help_centre_articles(
        db, organization_id, collection=collection, after=paging.after_time_and_id(), limit=paging.fetch
    )
    return paging.page(rows, lambda row: (row.created_at, row.id), HelpArticle.model_validate)


@router.get(PREFIX + "/articles/{slug}", response_model=HelpArticle)
@public
async def get_help_article(org_slug: str, slug: str, request: Request, db: DbSession) -> HelpArticle:
    """A public, published article by its slug (404 for any other)."""
    organization_id = await _organization(request, db, org_slug)
    return HelpArticle.model_validate(await service.help_centre_article(db, organization_id, slug[:120]))


@router.get(PREFIX + "/search", response_model=SearchOut)
@public
async def search_help(
    org_slug: str,
    request: Request,
    db: DbSession,
    q: Annotated[str, Query(min_length=1, max_length=500)],
    k: Annotated[int, Query(ge=1, le=20)] = 5,
    locale: Annotated[Locale, Query()] = "en",
    collection: Annotated[Collection | None, Query()] = None,
) -> SearchOut:
    """The public, published articles that best answer `q`, one passage each, as the members' search."""
    organization_id = await _organization(request, db, org_slug)
    filters = Filters(statuses=["published"], visibilities=["public"], collection=collection)
    found = await service.search(
        db, request.app.state.settings, organization_id, q, filters, k=k, min_score=0.0, locale=locale
    )
    return search_out(found)
