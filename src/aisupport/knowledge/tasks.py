"""Jobs of the knowledge base: ingesting a source's version."""

from __future__ import annotations

import uuid

import structlog
from procrastinate import JobContext

from aisupport.core.jobs import RETRY, jobs, services_of
from aisupport.core.tenancy import tenant_session
from aisupport.knowledge import service

log = structlog.get_logger("aisupport.knowledge")


@jobs.task(name="knowledge:ingest", retry=RETRY, pass_context=True)
async def ingest(context: JobContext, organization_id: str, source_id: str, version: int) -> None:
    """Cut a source's version into passages and index them; a source that cannot be read is marked
    `failed` with the reason, and nothing else is harmed."""
    sessions = services_of(context).sessionmaker
    organization, source = uuid.UUID(organization_id), uuid.UUID(source_id)
    try:
        async with tenant_session(sessions, organization_id=organization) as db:
            await service.ingest(db, organization, source, version)
    except Exception as error:
        log.warning("knowledge_ingest_failed", source_id=source_id, error=type(error).__name__)
        async with tenant_session(sessions, organization_id=organization) as db:
            await service.ingest_failed(
                db, organization, source, f"could not be ingested: {type(error).__name__}"
            )
