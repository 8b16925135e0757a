"""The outbox's retention: events older than EVENT_RETENTION_HOURS are purged hourly."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import structlog
from procrastinate import JobContext
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.core.jobs import jobs, services_of
from aisupport.core.tenancy import in_each_organization
from aisupport.events import repository

log = structlog.get_logger("aisupport.events")

BATCH = 1000
MAX_BATCHES = 100


@jobs.periodic(cron="17 * * * *", periodic_id="events-purge")
@jobs.task(name="events:purge", queueing_lock="events:purge", pass_context=True)
async def purge_events(context: JobContext, timestamp: int) -> None:
    """Hourly: delete the events older than the retention (streams then answer a `reset`)."""
    services = services_of(context)
    before = datetime.now(UTC) - timedelta(hours=services.settings.EVENT_RETENTION_HOURS)
    async with services.sessionmaker() as db:
        organizations = await repository.organizations_with_events_before(db, before)

    async def batch(db: AsyncSession, organization_id: uuid.UUID) -> int:
        return await repository.purge(db, organization_id, before, limit=BATCH)

    purged = await in_each_organization(
        services.sessionmaker, organizations, batch, batch_size=BATCH, max_batches=MAX_BATCHES
    )
    if purged:
        log.info("events_purged", organizations=len(organizations), events=purged)
