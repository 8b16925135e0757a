"""Jobs of webhooks: the dispatcher (new events into deliveries), one attempt of a delivery, and the
mail to the admins of an endpoint the service disabled."""

from __future__ import annotations

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
from aisupport.webhooks.sender import shared_client

TEMPLATES = "aisupport.webhooks"  # webhooks/templates/email/
REASONS = {
    "gone": "it answered 410 Gone",
    "failing": f"its last {service.DISABLE_AFTER} attempts failed",
}


@jobs.task(name="webhooks:dispatch", retry=RETRY, pass_context=True)
async def dispatch(context: JobContext, organization_id: str) -> None:
    """Queued by every commit with events of an organization with an enabled endpoint (events/outbox.py):
    its new events become deliveries, each tried at once. Dispatchers of one organization queue on its
    cursor row, so each event is turned into deliveries once."""
    organization = uuid.UUID(organization_id)
    async with tenant_session(services_of(context).sessionmaker, organization_id=organization) as db:
        for delivery in await service.dispatch(db, organization):
            await defer(db, "webhooks:deliver", organization_id=organization_id, delivery_id=str(delivery.id))


@jobs.task(name="webhooks:deliver", retry=RETRY, pass_context=True)
async def deliver(context: JobContext, organization_id: str, delivery_id: str) -> None:
    """One attempt: read what to send (a short transaction), send it with no transaction open, record
    the outcome and queue the retry or the admins' mail (another). A worker killed while sending leaves
    the delivery pending; its job is retried (at least once: receivers de-duplicate on `webhook-id`)."""
    services = services_of(context)
    organization, delivery = uuid.UUID(organization_id), uuid.UUID(delivery_id)
    async with tenant_session(services.sessionmaker, organization_id=organization) as db:
        prepared = await service.prepare(db, services.settings, organization, delivery)
    if prepared is None:
        return
    attempted_at = datetime.now(UTC)
    outcome = await service.send(shared_client(), services.settings, prepared)
    async with tenant_session(services.sessionmaker, organization_id=organization) as db:
        recorded = await service.record(db, organization, delivery, outcome, attempted_at)
        if recorded.retry_in is not None:
            await defer(
                db,
                "webhooks:deliver",
                after=recorded.retry_in,
                organization_id=organization_id,
                delivery_id=delivery_id,
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
