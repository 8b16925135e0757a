"""Jobs of the knowledge base: ingesting a source's version, learning from conversations, embedding."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import structlog
from procrastinate import JobContext
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aisupport.core.config import Settings
from aisupport.core.jobs import RETRY, jobs, services_of
from aisupport.core.tenancy import in_each_organization, tenant_session
from aisupport.knowledge import extract, repository, semantic, service, web_sources
from aisupport.knowledge.embeddings import ProviderError
from aisupport.storage import StorageError, create_storage

log = structlog.get_logger("aisupport.knowledge")

LEARN_BATCH = 200
LEARN_MAX_BATCHES = 50


@jobs.periodic(cron="29 * * * *", periodic_id="knowledge-learn")
@jobs.task(name="knowledge:learn", queueing_lock="knowledge:learn", pass_context=True)
async def learn(context: JobContext, timestamp: int) -> None:
    """Hourly: the customers' questions of conversations that stayed resolved after a source was cited
    become phrasings of it (service.learn_from_conversations)."""
    services = services_of(context)
    now = datetime.now(UTC)
    async with services.sessionmaker() as db:
        organizations = await repository.organizations_with_citations_to_learn(db)

    async def batch(db: AsyncSession, organization_id: uuid.UUID) -> int:
        return await service.learn_from_conversations(db, organization_id, now, limit=LEARN_BATCH)

    settled = await in_each_organization(
        services.sessionmaker, organizations, batch, batch_size=LEARN_BATCH, max_batches=LEARN_MAX_BATCHES
    )
    if settled:
        log.info("knowledge_citations_settled", organizations=len(organizations), citations=settled)


@jobs.task(name="knowledge:ingest", retry=RETRY, pass_context=True)
async def ingest(context: JobContext, organization_id: str, source_id: str, version: int) -> None:
    """Cut a source's version into passages and index them (a web page or a sitemap: fetch it first);
    a source that cannot be read is marked `failed` with the reason, and nothing else is harmed."""
    services = services_of(context)
    organization, source = uuid.UUID(organization_id), uuid.UUID(source_id)
    storage = create_storage(services.settings)
    try:
        async with tenant_session(services.sessionmaker, organization_id=organization) as db:
            found = await repository.source(db, organization, source)
            if found is not None and found.kind in web_sources.WEB_KINDS:
                await web_sources.sync(db, services.settings, organization, source, version)
            else:
                await service.ingest(db, organization, source, version, storage)
    except extract.Unreadable as unreadable:
        log.info("knowledge_source_unreadable", source_id=source_id, reason=str(unreadable))
        async with tenant_session(services.sessionmaker, organization_id=organization) as db:
            await _failed(db, organization, source, str(unreadable))
    except (StorageError, OSError):
        raise  # the storage out of reach: the job is tried again
    except Exception as error:
        log.warning("knowledge_ingest_failed", source_id=source_id, error=type(error).__name__)
        async with tenant_session(services.sessionmaker, organization_id=organization) as db:
            await _failed(db, organization, source, f"could not be ingested: {type(error).__name__}")
    finally:
        await storage.aclose()


async def _failed(db: AsyncSession, organization_id: uuid.UUID, source_id: uuid.UUID, reason: str) -> None:
    found = await repository.source(db, organization_id, source_id)
    if found is not None and found.kind in web_sources.WEB_KINDS:
        await web_sources.failed(db, organization_id, source_id, reason)
    else:
        await service.ingest_failed(db, organization_id, source_id, reason)


SYNC_MAX_BATCHES = 20


@jobs.periodic(cron="*/10 * * * *", periodic_id="knowledge-sync")
@jobs.task(name="knowledge:sync", queueing_lock="knowledge:sync", pass_context=True)
async def sync(context: JobContext, timestamp: int) -> None:
    """Every 10 minutes: queue the fetch of the web pages and sitemaps due for one (`sync_hours`)."""
    services = services_of(context)
    now = datetime.now(UTC)
    async with services.sessionmaker() as db:
        organizations = await repository.organizations_to_sync(db, now)

    async def batch(db: AsyncSession, organization_id: uuid.UUID) -> int:
        return await web_sources.queue_due(db, organization_id, now)

    queued = await in_each_organization(
        services.sessionmaker,
        organizations,
        batch,
        batch_size=web_sources.SYNC_BATCH,
        max_batches=SYNC_MAX_BATCHES,
    )
    if queued:
        log.info("knowledge_syncs_queued", organizations=len(organizations), sources=queued)


@jobs.task(name="knowledge:embed", retry=RETRY, pass_context=True)
async def embed(context: JobContext, organization_id: str) -> None:
    """Embed the organization's chunks that its embedding models have no vector of yet, in batches (no
    database connection held during a provider's answer); a model whose vectors are complete serves.
    After BATCHES_PER_JOB batches the job queues its successor, so that other organizations get a turn."""
    services = services_of(context)
    organization = uuid.UUID(organization_id)
    if await embed_batches(services.sessionmaker, services.settings, organization, semantic.BATCHES_PER_JOB):
        async with tenant_session(services.sessionmaker, organization_id=organization) as db:
            await semantic.queue_embedding(db, organization)


async def embed_batches(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    organization_id: uuid.UUID,
    max_batches: int | None,
) -> bool:
    """Embed batches of the organization's contents (each in transactions of its own, none held while
    the provider answers) until none is left, a provider fails, or `max_batches` ran (then True: some
    may be left)."""
    done = 0
    while max_batches is None or done < max_batches:
        async with tenant_session(sessionmaker, organization_id=organization_id) as db:
            batch = await semantic.next_batch(db, settings, organization_id)
        if batch is None:
            return False
        outcome: list[list[float]] | ProviderError
        try:
            outcome = await semantic.compute(batch, settings)
        except ProviderError as error:
            outcome = error
        async with tenant_session(sessionmaker, organization_id=organization_id) as db:
            await semantic.keep(db, organization_id, batch, outcome)
        if isinstance(outcome, ProviderError):
            return False
        done += 1
    return True
