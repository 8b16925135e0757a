"""Jobs of webhooks: the dispatcher (new events into deliveries), one attempt of a delivery, and the
mail to the admins of an endpoint the service disabled."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from procrastinate import JobContext
from sqlalchemy import select

from aisupport.accounts.models import User
from aisupport.core.jobs import RETRY, defer, jobs, services_of
from aisupport.core.tenancy import tenant_session
from aisupport.mail.delivery import already_sent, send_once
from aisupport.mail.mailer import Templates
from aisupport.organizations import repository as organizations
from aisupport.organizations.models import Membership
from aisupport.webhooks import repository as repo
from aisupport.webhooks import service

TEMPLATES = "aisupport.webhooks"  # webhooks/templates/email/
REASONS = {
    "gone": "it answered 410 Gone",
    "failing": f"its last {service.DISABLE_AFTER} attempts failed",
}


SEND_CONCURRENCY = 50  # requests of one job in flight at once (and at most 10 per origin: webhooks/sender.py)
BATCH = 200  # first attempts per job: a burst of events spreads over the worker's jobs


@jobs.task(name="webhooks:dispatch", retry=RETRY, pass_context=True)
async def dispatch(context: JobContext, organization_id: str) -> None:
    """Queued by every commit with events of an organization with an enabled endpoint (events/outbox.py):
    its new events become deliveries, whose first attempts one job makes together (queued in the same
    transaction, so none is lost). Dispatchers of one organization queue on its cursor row, so each
    event becomes deliveries once."""
    organization = uuid.UUID(organization_id)
    async with tenant_session(services_of(context).sessionmaker, organization_id=organization) as db:
        ids = [str(delivery_id) for delivery_id in await service.dispatch(db, organization)]
        for start in range(0, len(ids), BATCH):
            batch = ids[start : start + BATCH]
            await defer(db, "webhooks:deliver_batch", organization_id=organization_id, delivery_ids=batch)


@jobs.task(name="webhooks:deliver_batch", retry=RETRY, pass_context=True)
async def deliver_batch(context: JobContext, organization_id: str, delivery_ids: list[str]) -> None:
    """The first attempts of a dispatcher's deliveries, SEND_CONCURRENCY at a time."""
    await _attempt(context, organization_id, delivery_ids)


@jobs.task(name="webhooks:deliver", retry=RETRY, pass_context=True)
async def deliver(context: JobContext, organization_id: str, delivery_id: str) -> None:
    """One more attempt of a delivery: a retry, a replay, a test."""
    await _attempt(context, organization_id, [delivery_id])


async def _attempt(context: JobContext, organization_id: str, delivery_ids: list[str]) -> None:
    """Read what to send (one short transaction), send it with no transaction open, record the outcomes
    and queue the retries or the admins' mail (another). A worker killed while sending leaves the
    deliveries pending and its job is run again (at least once: receivers de-duplicate on `webhook-id`)."""
    services = services_of(context)
    organization = uuid.UUID(organization_id)
    async with tenant_session(services.sessionmaker, organization_id=organization) as db:
        prepared = await service.prepare(
            db, services.settings, organization, [uuid.UUID(i) for i in delivery_ids]
        )
    gate = asyncio.Semaphore(SEND_CONCURRENCY)

    async def send(delivery_id: uuid.UUID, ready: service.Prepared) -> service.Attempted:
        async with gate:
            attempted_at = datetime.now(UTC)
            outcome = await service.send(services.settings, ready)
            return service.Attempted(delivery_id, attempted_at, outcome)

    attempts = await asyncio.gather(*(send(delivery_id, ready) for delivery_id, ready in prepared))
    async with tenant_session(services.sessionmaker, organization_id=organization) as db:
        for attempt, recorded in zip(attempts, await service.record(db, organization, attempts), strict=True):
            if recorded.retry_in is not None:
                await defer(
                    db,
                    "webhooks:deliver",
                    after=recorded.retry_in,
                    organization_id=organization_id,
                    delivery_id=str(attempt.delivery_id),
                )
            if recorded.disabled is not None:
                await defer(
                    db,
                    "webhooks:mail_disabled",
                    organization_id=organization_id,
                    endpoint_id=str(recorded.disabled.id),
                )


@jobs.task(name="webhooks:mail_disabled", retry=RETRY, pass_context=True)
async def mail_disabled(context: JobContext, organization_id: str, endpoint_id: str) -> None:
    """Tell the organization's owners and admins that the service disabled an endpoint."""
    services = services_of(context)
    organization_key = uuid.UUID(organization_id)
    async with tenant_session(services.sessionmaker, organization_id=organization_key) as db:
        endpoint = await repo.endpoint(db, organization_key, uuid.UUID(endpoint_id))
        organization = await organizations.organization(db, organization_key)
        if endpoint is None or organization is None or endpoint.enabled or await already_sent(db, context):
            return
        admins = await db.scalars(
            select(User.email)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.organization_id == organization_key, Membership.role.in_(("owner", "admin")))
            .order_by(User.email)
        )
        templates = Templates(services.settings, TEMPLATES)
        why = REASONS.get(endpoint.disabled_reason or "", "it kept failing")
        for email in admins:
            message = templates.message(
                "endpoint_disabled", to=email, organization=organization.name, url=endpoint.url, why=why
            )
            await send_once(db, context, message, secret=email)
