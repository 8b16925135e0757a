"""Jobs of the knowledge base: ingesting a source's version."""

from __future__ import annotations

import uuid

import structlog
from procrastinate import JobContext

from aisupport.core.jobs import RETRY, jobs, services_of
from aisupport.core.tenancy import tenant_session
from aisupport.knowledge import extract, service
from aisupport.storage import StorageError, create_storage

log = structlog.get_logger("aisupport.knowledge")


@jobs.task(name="knowledge:ingest", retry=RETRY, pass_context=True)
async def ingest(context: JobContext, organization_id: str, source_id: str, version: int) -> None:
    """Cut a source's version into passages and index them; a source that cannot be read is marked
    `failed` with the reason, and nothing else is harmed."""
    services = services_of(context)
    organization, source = uuid.UUID(organization_id), uuid.UUID(source_id)
    storage = create_storage(services.settings)
    try:
        async with tenant_session(services.sessionmaker, organization_id=organization) as db:
            await service.ingest(db, organization, source, version, storage)
    except extract.Unreadable as unreadable:
        log.info("knowledge_document_unreadable", source_id=source_id, reason=str(unreadable))
        async with tenant_session(services.sessionmaker, organization_id=organization) as db:
            await service.ingest_failed(db, organization, source, str(unreadable))
    except (StorageError, OSError):
        raise  # the storage out of reach: the job is tried again
    except Exception as error:
        log.warning("knowledge_ingest_failed", source_id=source_id, error=type(error).__name__)
        async with tenant_session(services.sessionmaker, organization_id=organization) as db:
            await service.ingest_failed(
                db, organization, source, f"could not be ingested: {type(error).__name__}"
            )
    finally:
        await storage.aclose()
