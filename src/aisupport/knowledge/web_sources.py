"""Web pages and sitemaps as knowledge sources (decision 0053). Never commits.

A page (`web`) is fetched by the ingestion job; its title and text are the page's, and a change of
either is a new version, indexed like an article's (the same content again changes nothing). A sitemap
(`sitemap`) is fetched the same way: each of its pages on its own site, up to `max_pages`, becomes a
`web` source of its own (`parent_id`), fetched by a job of its own; a page gone from the sitemap is
deleted. Both are fetched again every `sync_hours` (the `knowledge:sync` job) and on demand."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.access.principal import Principal
from aisupport.core.config import Settings
from aisupport.core.outbound import TargetRefused, check_url
from aisupport.knowledge import chunking, errors, extract, web
from aisupport.knowledge import repository as repo
from aisupport.knowledge.models import KnowledgeSource
from aisupport.knowledge.service import content_hash, flush_unique, free_slug, index, queue_ingest, slug_of

WEB_KINDS = ("web", "sitemap")
MAX_SITEMAPS = 20  # of a sitemap index, read for its pages
INHERITED = ("status", "visibility", "locale", "collection", "tags")


def checked_url(settings: Settings, url: str) -> str:
    try:
        check_url(httpx.URL(url), allow_private=settings.WEB_FETCH_ALLOW_PRIVATE_TARGETS)
    except (TargetRefused, httpx.InvalidURL) as refused:
        raise errors.url_refused(str(refused)) from None
    return url


async def add(
    db: AsyncSession, settings: Settings, principal: Principal, fields: dict[str, Any]
) -> KnowledgeSource:
    """A page or a sitemap by its URL, queued to be fetched (its title is its URL until then)."""
    url = checked_url(settings, fields.pop("url"))
    kind = "sitemap" if fields.pop("sitemap") else "web"
    max_pages = fields.pop("max_pages")
    if kind == "web":
        max_pages = None
    source = await _new_source(db, principal.organization_id, url, kind, fields, max_pages=max_pages)
    await queue_ingest(db, source)
    return source


async def _new_source(
    db: AsyncSession,
    organization_id: uuid.UUID,
    url: str,
    kind: str,
    fields: dict[str, Any],
    *,
    max_pages: int | None = None,
    parent_id: uuid.UUID | None = None,
) -> KnowledgeSource:
    now = datetime.now(UTC)
    source = KnowledgeSource(
        id=uuid.uuid4(),
        organization_id=organization_id,
        kind=kind,
        title=url[:300],
        slug=await free_slug(db, organization_id, slug_of(_readable(url))),
        body="",
        version=1,
        content_hash="",  # nothing fetched yet: the first fetch is a change
        ingest_status="queued",
        url=url,
        parent_id=parent_id,
        max_pages=max_pages,
        created_at=now,
        updated_at=now,
        **fields,
    )
    await flush_unique(db, lambda: repo.add_source(db, source))
    return source


def _readable(url: str) -> str:
    """A URL as words for a slug: its host and path."""
    parsed = httpx.URL(url)
    return f"{parsed.host} {parsed.path}"


async def request_sync(db: AsyncSession, principal: Principal, source_id: uuid.UUID) -> KnowledgeSource:
    """Fetch a page or a sitemap again now."""
    source = await repo.source(db, principal.organization_id, source_id, lock=True)
    if source is None:
        raise errors.source_not_found()
    if source.kind not in WEB_KINDS:
        raise errors.not_a_web_source()
    source.ingest_status = "queued"
    await db.flush()
    await queue_ingest(db, source)
    return source


async def sync(
    db: AsyncSession, settings: Settings, organization_id: uuid.UUID, source_id: uuid.UUID, version: int
) -> None:
    """The ingestion job's work for a page or a sitemap: fetch it, then index what changed (a page) or
    make its pages' sources (a sitemap). `extract.Unreadable` says why it could not be fetched."""
    source = await repo.source(db, organization_id, source_id)
    if source is None or source.version != version or source.url is None:
        return
    page = await web.fetch(
        source.url,
        sitemap=source.kind == "sitemap",
        allow_private=settings.WEB_FETCH_ALLOW_PRIVATE_TARGETS,
        max_bytes=settings.KNOWLEDGE_DOCUMENT_MAX_BYTES,
    )
    source = await repo.source(db, organization_id, source_id, lock=True)
    if source is None or source.version != version:
        return
    if source.kind == "sitemap":
        await _sitemap_pages(db, settings, source, page)
    else:
        await _page(db, source, page)
    _synced(source)
    await db.flush()


async def _page(db: AsyncSession, source: KnowledgeSource, page: web.Fetched) -> None:
    text = chunking.normalised(page.extracted.text)
    title = (page.extracted.title or source.url or source.title)[:300]
    fetched_hash = content_hash(title, text)
    if fetched_hash == source.content_hash:
        await repo.set_ingest(db, source, "ready", None, None)
        return
    if source.content_hash:  # a change of what was indexed: a new version, swapped whole
        source.version += 1
    source.title, source.body, source.content_hash = title, text, fetched_hash
    source.updated_at = datetime.now(UTC)
    await index(db, source, page.extracted.pages)


async def _sitemap_pages(
    db: AsyncSession, settings: Settings, source: KnowledgeSource, page: web.Fetched
) -> None:
    assert source.url is not None
    assert source.max_pages is not None
    wanted = await _addresses(settings, source, page)
    children = {child.url: child for child in await repo.children(db, source.organization_id, source.id)}
    for url, child in children.items():
        if url not in wanted:
            await repo.remove_source(db, child)
    fields = {name: getattr(source, name) for name in INHERITED}
    for url in wanted:
        known = children.get(url)
        if known is None:
            known = await _new_source(db, source.organization_id, url, "web", fields, parent_id=source.id)
        else:
            known.ingest_status = "queued"
        await queue_ingest(db, known)
    source.body = "\n".join(wanted)
    await repo.set_ingest(db, source, "ready", None, 0)


async def _addresses(settings: Settings, source: KnowledgeSource, page: web.Fetched) -> list[str]:
    """The sitemap's pages on its own site, at most `max_pages`, following a sitemap index's entries."""
    assert source.url is not None
    assert source.max_pages is not None
    pages: list[str] = []
    queue, read = [page], 0
    while queue and len(pages) < source.max_pages:
        current = queue.pop(0)
        for line in current.extracted.text.splitlines():
            kind, _, address = line.partition(" ")
            if not web.same_site(address, source.url) or address in pages:
                continue
            if kind == "page" and len(pages) < source.max_pages:
                pages.append(address)
            elif kind == "sitemap" and read < MAX_SITEMAPS:
                read += 1
                try:
                    queue.append(
                        await web.fetch(
                            address,
                            sitemap=True,
                            allow_private=settings.WEB_FETCH_ALLOW_PRIVATE_TARGETS,
                            max_bytes=settings.KNOWLEDGE_DOCUMENT_MAX_BYTES,
                        )
                    )
                except extract.Unreadable:
                    continue  # one broken part of an index does not lose the others
    return pages


def _synced(source: KnowledgeSource) -> None:
    now = datetime.now(UTC)
    source.synced_at = now
    source.next_sync_at = now + timedelta(hours=source.sync_hours) if source.sync_hours else None


async def failed(db: AsyncSession, organization_id: uuid.UUID, source_id: uuid.UUID, reason: str) -> None:
    """A fetch that failed: the reason is shown, the passages of the last good fetch keep serving, and
    the next scheduled sync tries again."""
    source = await repo.source(db, organization_id, source_id, lock=True)
    if source is not None:
        _synced(source)
        await repo.set_ingest(db, source, "failed", reason[:500], None)


SYNC_BATCH = 100


async def queue_due(db: AsyncSession, organization_id: uuid.UUID, now: datetime) -> int:
    """Queue the fetch of the organization's pages and sitemaps due for one (each taken once: its next
    time is moved on before its job runs)."""
    due = await repo.due_for_sync(db, organization_id, now, limit=SYNC_BATCH)
    for source in due:
        source.next_sync_at = now + timedelta(hours=source.sync_hours or 24)
        source.ingest_status = "queued"
        await queue_ingest(db, source)
    await db.flush()
    return len(due)
