"""Jobs of the conversations domain: deleting the stored files of attachments whose rows are gone, and
purging uploads never attached to a message.

A file is deleted only after the row that referred to it: the row's deletion and the job that deletes
the file commit together (`defer` in the same transaction), so a rollback keeps both, and a commit
always brings the file's deletion, retried until the storage answers (decision 0038).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import structlog
from procrastinate import JobContext
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.conversations import attachment_repository as repo
from aisupport.core.jobs import RETRY, defer, jobs, services_of
from aisupport.core.tenancy import tenant_session
from aisupport.storage import create_storage, validate_key

log = structlog.get_logger("aisupport.conversations")

UNATTACHED_UPLOAD_TTL = timedelta(hours=24)
KEYS_PER_JOB = 500  # files one deletion job deletes
PURGE_BATCH = 1000  # uploads one purge transaction deletes


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
    """Hourly: delete the uploads no message named within UNATTACHED_UPLOAD_TTL, organization by
    organization (each in its own tenant), and queue the deletion of their files."""
    sessions = services_of(context).sessionmaker
    before = datetime.now(UTC) - UNATTACHED_UPLOAD_TTL
    async with sessions() as db:
        organizations = await repo.organizations_with_stale_uploads(db, before)
    purged = 0
    for organization_id in organizations:
        while True:
            async with tenant_session(sessions, organization_id=organization_id) as db:
                keys = await repo.delete_stale_uploads(db, organization_id, before, limit=PURGE_BATCH)
                await delete_files_later(db, organization_id, keys)
            purged += len(keys)
            if len(keys) < PURGE_BATCH:
                break
    log.info("stale_uploads_purged", organizations=len(organizations), uploads=purged)
