"""/orgs/{org_id}/knowledge: articles, their phrasings, and search (docs/knowledge.md)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

from aisupport.access.dependencies import ClientInfo, requires
from aisupport.access.permissions import Permission
from aisupport.access.principal import Principal
from aisupport.conversations.attachment_router import UPLOAD_BODY, AppStorage, request_body
from aisupport.conversations.router import AppSettings
from aisupport.core.config import Settings
from aisupport.core.db import DbSession
from aisupport.core.errors import problem_responses
from aisupport.core.pagination import Page, Paging
from aisupport.knowledge import errors, semantic, service, web_sources
from aisupport.knowledge.repository import Filters
from aisupport.knowledge.schemas import (
    ArticleCreate,
    ArticleUpdate,
    CitationIn,
    CitationOut,
    EmbedderIn,
    EmbedderOut,
    EmbeddersOut,
    PassageOut,
    PhrasingOut,
    PhrasingsIn,
    SearchIn,
    SearchOut,
    SourceOut,
    WebSourceCreate,
)
from aisupport.storage import errors as storage_errors

router = APIRouter(tags=["knowledge"])

Reader = Annotated[Principal, Depends(requires(Permission.KNOWLEDGE_READ))]
Writer = Annotated[Principal, Depends(requires(Permission.KNOWLEDGE_WRITE))]
Configurer = Annotated[Principal, Depends(requires(Permission.KNOWLEDGE_CONFIGURE))]
SOURCE = "/orgs/{org_id}/knowledge/sources/{source_id}"


@router.post(
    "/orgs/{org_id}/knowledge/articles",
    status_code=status.HTTP_201_CREATED,
    response_model=SourceOut,
    responses=problem_responses(errors.SLUG_TAKEN),
)
async def create_article(
    org_id: uuid.UUID, payload: ArticleCreate, principal: Writer, db: DbSession
) -> SourceOut:
    """Write an article (Markdown); it is queued for ingestion (`ingest_status`) and found by search once
    `ready`."""
    return SourceOut.model_validate(await service.create_article(db, principal, payload.model_dump()))


DOCUMENTS_PATH = "/orgs/{org_id}/knowledge/documents"


@router.post(
    DOCUMENTS_PATH,
    status_code=status.HTTP_201_CREATED,
    response_model=SourceOut,
    openapi_extra={"requestBody": UPLOAD_BODY},
    responses=problem_responses(
        storage_errors.MULTIPART_REQUIRED,
        storage_errors.MALFORMED_MULTIPART,
        errors.DOCUMENT_TOO_LARGE,
        errors.BAD_DOCUMENT_UPLOAD,
        storage_errors.STORAGE_UNAVAILABLE,
    ),
)
async def upload_document(
    org_id: uuid.UUID, principal: Writer, db: DbSession, storage: AppStorage, request: Request
) -> SourceOut:
    """Upload a document (`multipart/form-data`, one part named `file`: PDF, DOCX, HTML, Markdown or
    plain text, at most KNOWLEDGE_DOCUMENT_MAX_BYTES), streamed to storage and queued for ingestion; its
    title is its file name (change it with PATCH). A file that cannot be read fails with a reason
    (`ingest_status` `failed`, `ingest_error`)."""
    settings: Settings = request.app.state.settings
    source = await service.upload_document(
        db,
        principal,
        storage,
        content_type=request.headers.get("content-type"),
        body=request_body(request),
        max_bytes=settings.KNOWLEDGE_DOCUMENT_MAX_BYTES,
    )
    return SourceOut.model_validate(source)


@router.post(
    "/orgs/{org_id}/knowledge/web",
    status_code=status.HTTP_201_CREATED,
    response_model=SourceOut,
    responses=problem_responses(errors.URL_REFUSED),
)
async def add_web_source(
    org_id: uuid.UUID, payload: WebSourceCreate, principal: Writer, db: DbSession, settings: AppSettings
) -> SourceOut:
    """A web page by its URL (or, with `sitemap`, each page of a sitemap on its site, up to
    `max_pages`): fetched by a job (https, on the public internet, at most 5 redirects, each checked;
    at most KNOWLEDGE_DOCUMENT_MAX_BYTES), its title and text the page's; fetched again every
    `sync_hours` and on demand (`POST .../sources/{source_id}/sync`)."""
    return SourceOut.model_validate(await web_sources.add(db, settings, principal, payload.model_dump()))


@router.post(
    SOURCE + "/sync",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SourceOut,
    responses=problem_responses(errors.NOT_A_WEB_SOURCE),
)
async def sync_web_source(
    org_id: uuid.UUID, source_id: uuid.UUID, principal: Writer, db: DbSession
) -> SourceOut:
    """Fetch a web page or a sitemap again now (a changed page is a new version, swapped whole)."""
    return SourceOut.model_validate(await web_sources.request_sync(db, principal, source_id))


@router.get("/orgs/{org_id}/knowledge/sources", response_model=Page[SourceOut])
async def list_sources(
    org_id: uuid.UUID, principal: Reader, db: DbSession, paging: Paging
) -> Page[SourceOut]:
    """The knowledge base's sources, oldest first."""
    rows = await service.list_sources(db, principal, after=paging.after_time_and_id(), limit=paging.fetch)
    return paging.page(rows, lambda row: (row.created_at, row.id), SourceOut.model_validate)


@router.get(SOURCE, response_model=SourceOut)
async def get_source(org_id: uuid.UUID, source_id: uuid.UUID, principal: Reader, db: DbSession) -> SourceOut:
    return SourceOut.model_validate(await service.get_source(db, principal, source_id))


@router.patch(
    SOURCE,
    response_model=SourceOut,
    responses=problem_responses(errors.SLUG_TAKEN, errors.BODY_OF_A_DOCUMENT, errors.WEB_CONTENT),
)
async def update_article(
    org_id: uuid.UUID, source_id: uuid.UUID, payload: ArticleUpdate, principal: Writer, db: DbSession
) -> SourceOut:
    """Change an article; a new title or body is a new version, ingested again (the old passages serve
    until the new ones replace them all at once)."""
    changes = payload.model_dump(exclude_unset=True)
    return SourceOut.model_validate(await service.update_article(db, principal, source_id, changes))


@router.delete(SOURCE, status_code=status.HTTP_204_NO_CONTENT)
async def delete_source(
    org_id: uuid.UUID, source_id: uuid.UUID, principal: Writer, db: DbSession, client: ClientInfo
) -> None:
    """Delete a source, its passages and phrasings (searches stop finding it at once); audited."""
    await service.delete_source(db, principal, source_id, client)


@router.post(SOURCE + "/phrasings", status_code=status.HTTP_201_CREATED, response_model=list[PhrasingOut])
async def add_phrasings(
    org_id: uuid.UUID, source_id: uuid.UUID, payload: PhrasingsIn, principal: Writer, db: DbSession
) -> list[PhrasingOut]:
    """Questions customers asked that this source answers: searchable at once as its phrasings."""
    added = await service.add_phrasings(db, principal, source_id, payload.questions)
    return [PhrasingOut.model_validate(phrasing) for phrasing in added]


@router.post(SOURCE + "/citations", status_code=status.HTTP_201_CREATED, response_model=CitationOut)
async def cite_source(
    org_id: uuid.UUID, source_id: uuid.UUID, payload: CitationIn, principal: Writer, db: DbSession
) -> CitationOut:
    """Say that this source answered a conversation (it was sent or cited there). Once the conversation
    has stayed resolved for a day without reopening, its customer's question becomes a phrasing of the
    source ("questions this article answered"); citing again changes nothing."""
    return CitationOut.model_validate(await service.cite(db, principal, source_id, payload.conversation_id))


@router.get(SOURCE + "/phrasings", response_model=list[PhrasingOut])
async def list_phrasings(
    org_id: uuid.UUID, source_id: uuid.UUID, principal: Reader, db: DbSession
) -> list[PhrasingOut]:
    """The questions this source answered ("questions this article answered")."""
    return [
        PhrasingOut.model_validate(found) for found in await service.list_phrasings(db, principal, source_id)
    ]


@router.post("/orgs/{org_id}/knowledge/search", response_model=SearchOut)
async def search_knowledge(
    org_id: uuid.UUID, payload: SearchIn, principal: Reader, db: DbSession, settings: AppSettings
) -> SearchOut:
    """The `k` sources that best answer `query`, one passage each (its best), ranked by BM25 (fused with
    the nearest in meaning when the organization has an embedding model), each with a score in [0, 1];
    `min_score` leaves out the weak ones (docs/knowledge.md)."""
    filters = Filters(
        statuses=[payload.status] if payload.status else None,
        visibilities=[payload.visibility] if payload.visibility else None,
        collection=payload.collection,
        locale=payload.locale if payload.only_locale else None,
        source_id=payload.source_id,
        tags=payload.tags,
    )
    found = await service.search(
        db,
        settings,
        principal.organization_id,
        payload.query,
        filters,
        k=payload.k,
        min_score=payload.min_score,
        locale=payload.locale,
    )
    return search_out(found)


def search_out(found: service.Found) -> SearchOut:
    """Search results as the API shows them."""
    method = "bm25+embeddings" if found.method == "bm25+embeddings" else "bm25"
    return SearchOut(method=method, results=passages(found.results))


def passages(found: list[service.Result]) -> list[PassageOut]:
    return [
        PassageOut(
            source_id=result.source.id,
            source_title=result.source.title,
            source_slug=result.source.slug,
            chunk_id=result.passage.id,
            heading_path=result.passage.heading_path,
            text=result.passage.text,
            char_start=result.passage.char_start,
            char_end=result.passage.char_end,
            page=result.passage.page,
            version=result.passage.version,
            matched="phrasing" if result.matched == "phrasing" else "passage",
            score=result.score,
        )
        for result in found
    ]


EMBEDDER = "/orgs/{org_id}/knowledge/embedder"


def _embedders(found: semantic.Embedders) -> EmbeddersOut:
    def out(embedder: object) -> EmbedderOut | None:
        return None if embedder is None else EmbedderOut.model_validate(embedder)

    return EmbeddersOut(serving=out(found.serving), building=out(found.building), failed=out(found.failed))


@router.get(EMBEDDER, response_model=EmbeddersOut)
async def get_embedder(org_id: uuid.UUID, principal: Reader, db: DbSession) -> EmbeddersOut:
    """The organization's embedding model: the one serving searches, one being built, the last that
    failed (never its key)."""
    return _embedders(await semantic.embedders(db, principal.organization_id))


@router.put(
    EMBEDDER,
    response_model=EmbeddersOut,
    responses=problem_responses(errors.PROVIDER_REFUSED, errors.EMBEDDER_CHANGED),
)
async def set_embedder(
    org_id: uuid.UUID,
    payload: EmbedderIn,
    principal: Configurer,
    db: DbSession,
    settings: AppSettings,
    client: ClientInfo,
) -> EmbeddersOut:
    """Use an embedding model (an OpenAI-compatible embeddings API) for search: its vectors of every
    passage and phrasing are computed in the background (`building`), while the previous model, if
    any, keeps serving; the same model with a new key only changes the key (docs/knowledge.md)."""
    await semantic.configure(db, settings, principal, payload.model_dump(), client)
    return _embedders(await semantic.embedders(db, principal.organization_id))


@router.delete(
    EMBEDDER, status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(errors.NO_EMBEDDER)
)
async def remove_embedder(
    org_id: uuid.UUID, principal: Configurer, db: DbSession, client: ClientInfo
) -> None:
    """Stop using an embedding model: searches rank by words alone; its vectors are deleted."""
    await semantic.remove(db, principal, client)
