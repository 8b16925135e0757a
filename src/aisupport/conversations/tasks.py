"""Jobs of the conversations domain: SLA breaches marked as they happen, snoozes woken at their time,
Idempotency-Keys purged after 24 hours (every minute, hourly), and SLA clocks recomputed after an
inbox's policy or hours change (decision 0039); attachment files deleted after their rows, and uploads
never attached purged after 24 hours (decision 0038); a reopened, unassigned conversation offered to
its team (decision 0040).

Row-level security hides every organization from a session without a tenant, so each periodic job
first asks a SECURITY DEFINER function which organizations have work due (organization ids only, from
a partial index on the due times), then acts in each inside `tenant_session`, one batch per
transaction. Every row is locked and checked again before it changes, so a request changing the same
conversation meanwhile is never overwritten, and a job run twice does the work once.

A file is deleted only after the row that referred to it: the row's deletion and the job that deletes
the file commit together (`defer` in the same transaction), so a rollback keeps both, and a commit
always brings the file's deletion, retried until the storage answers.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial

import structlog
from procrastinate import JobContext
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aisupport.conversations import assignment, idempotency
from aisupport.conversations import attachment_repository as attachments
from aisupport.conversations import conversation_service as service
from aisupport.conversations import sla_repository as timers
from aisupport.core.jobs import RETRY, defer, jobs, services_of
from aisupport.core.tenancy import in_each_organization, tenant_session
from aisupport.storage import create_storage, validate_key

log = structlog.get_logger("aisupport.conversations")

BATCH = 200  # conversations per transaction
MAX_BATCHES = 50  # per organization and run; what is left waits for the next minute
UNATTACHED_UPLOAD_TTL = timedelta(hours=24)
KEYS_PER_JOB = 500  # files one deletion job deletes
_in_each_organization = partial(in_each_organization, batch_size=BATCH, max_batches=MAX_BATCHES)


async def _organizations(
    sessionmaker: async_sessionmaker[AsyncSession],
    find: Callable[[AsyncSession, datetime], Awaitable[list[uuid.UUID]]],
    moment: datetime,
) -> list[uuid.UUID]:
    async with sessionmaker() as db:
        return await find(db, moment)


@jobs.periodic(cron="* * * * *", periodic_id="conversations-sla-breaches")
@jobs.task(
    name="conversations:mark_sla_breaches", queueing_lock="conversations:mark_sla_breaches", pass_context=True
)
async def mark_sla_breaches(context: JobContext, timestamp: int) -> None:
    """Every minute: mark the SLA clocks that ran out (activity message, audit event)."""
    sessionmaker = services_of(context).sessionmaker
    organizations = await _organizations(sessionmaker, timers.organizations_with_sla_due, datetime.now(UTC))

    async def batch(db: AsyncSession, organization_id: uuid.UUID) -> int:
        return await service.mark_sla_breaches(db, organization_id, limit=BATCH)

    looked_at = await _in_each_organization(sessionmaker, organizations, batch)
    if looked_at:
        log.info("sla_breaches_checked", organizations=len(organizations), conversations=looked_at)


@jobs.periodic(cron="* * * * *", periodic_id="conversations-wake-snoozed")
@jobs.task(name="conversations:wake_snoozed", queueing_lock="conversations:wake_snoozed", pass_context=True)
async def wake_snoozed(context: JobContext, timestamp: int) -> None:
    """Every minute: open the snoozed conversations whose time has come."""
    sessionmaker = services_of(context).sessionmaker
    organizations = await _organizations(
        sessionmaker, timers.organizations_with_snoozes_due, datetime.now(UTC)
    )

    async def batch(db: AsyncSession, organization_id: uuid.UUID) -> int:
        return await service.wake_snoozed(db, organization_id, limit=BATCH)

    woken = await _in_each_organization(sessionmaker, organizations, batch)
    if woken:
        log.info("snoozed_conversations_woken", organizations=len(organizations), conversations=woken)


@jobs.periodic(cron="41 * * * *", periodic_id="conversations-purge-idempotency-keys")
@jobs.task(
    name="conversations:purge_idempotency_keys",
    queueing_lock="conversations:purge_idempotency_keys",
    pass_context=True,
)
async def purge_idempotency_keys(context: JobContext, timestamp: int) -> None:
    """Hourly: delete the Idempotency-Keys older than 24 hours (they no longer replay)."""
    sessionmaker = services_of(context).sessionmaker
    before = datetime.now(UTC) - idempotency.LIFETIME
    organizations = await _organizations(sessionmaker, idempotency.organizations_with_keys_before, before)

    async def batch(db: AsyncSession, organization_id: uuid.UUID) -> int:
        return await idempotency.purge(db, organization_id, before, limit=BATCH)

    purged = await _in_each_organization(sessionmaker, organizations, batch)
    if purged:
        log.info("idempotency_keys_purged", organizations=len(organizations), keys=purged)


@jobs.task(name="conversations:refresh_sla", retry=RETRY, pass_context=True)
async def refresh_sla(context: JobContext, organization_id: str, inbox_ids: list[str]) -> None:
    """Recompute the running SLA clocks of the inboxes' open conversations (deferred by a change of an
    inbox's policy or hours, or of a policy's targets)."""
    sessionmaker = services_of(context).sessionmaker
    organization = uuid.UUID(organization_id)
    inboxes = [uuid.UUID(inbox_id) for inbox_id in inbox_ids]
    after: uuid.UUID | None = None
    while True:
        async with tenant_session(sessionmaker, organization_id=organization) as db:
            after = await service.refresh_sla(db, organization, inboxes, after=after, limit=BATCH)
        if after is None:
            return


# --- Attachment files -----------------------------------------------------------------------------------


async def delete_files_later(db: AsyncSession, organization_id: uuid.UUID, keys: Sequence[str]) -> None:
    """Queue the deletion of these stored files in the caller's transaction (their rows are gone in
    it): nothing is deleted if it rolls back."""
    for start in range(0, len(keys), KEYS_PER_JOB):
        batch = list(keys[start : start + KEYS_PER_JOB])
        await defer(db, "conversations:delete_files", organization_id=str(organization_id), keys=batch)


@jobs.task(name="conversations:delete_files", retry=RETRY, pass_context=True)
async def delete_files(context: JobContext, organization_id: str, keys: list[str]) -> None:
    """Delete stored files whose rows were deleted (deleting a missing file is not an error, so a retry
    redoes what is left)."""
    prefix = f"{uuid.UUID(organization_id)}/"
    storage = create_storage(services_of(context).settings)
    try:
        for key in keys:
            if not validate_key(key).startswith(prefix):
                raise ValueError("a key outside the organization's files")
            await storage.delete(key)
    finally:
        await storage.aclose()
    log.info("attachment_files_deleted", organization_id=organization_id, files=len(keys))


@jobs.periodic(cron="23 * * * *", periodic_id="purge-stale-uploads")
@jobs.task(
    name="conversations:purge_stale_uploads",
    queueing_lock="conversations:purge_stale_uploads",
    pass_context=True,
)
async def purge_stale_uploads(context: JobContext, timestamp: int) -> None:
    """Hourly: delete the uploads no message named within UNATTACHED_UPLOAD_TTL, and queue the deletion
    of their files in the same transaction."""
    sessionmaker = services_of(context).sessionmaker
    before = datetime.now(UTC) - UNATTACHED_UPLOAD_TTL
    organizations = await _organizations(sessionmaker, attachments.organizations_with_stale_uploads, before)

    async def batch(db: AsyncSession, organization_id: uuid.UUID) -> int:
        keys = await attachments.delete_stale_uploads(db, organization_id, before, limit=BATCH)
        await delete_files_later(db, organization_id, keys)
        return len(keys)

    purged = await _in_each_organization(sessionmaker, organizations, batch)
    log.info("stale_uploads_purged", organizations=len(organizations), uploads=purged)


# --- Assignment -----------------------------------------------------------------------------------------


@jobs.task(name=assignment.AUTO_ASSIGN_TASK, retry=RETRY, pass_context=True)
async def auto_assign(context: JobContext, organization_id: str, conversation_id: str) -> None:
    """Auto-assign the reopened conversation if it is still unassigned and open (else nothing)."""
    organization = uuid.UUID(organization_id)
    async with tenant_session(services_of(context).sessionmaker, organization_id=organization) as db:
        await assignment.auto_assign_reopened(db, organization, uuid.UUID(conversation_id))
