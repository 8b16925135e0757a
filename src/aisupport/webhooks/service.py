"""Business rules of webhooks (decision 0048). Never commits.

Endpoints are admin-only. Each has a signing secret (`whsec_` + base64 of 32 random bytes, the Standard
Webhooks format), sealed in its row, shown once (creation, rotation); a rotation keeps the previous
secret signing too for ROTATION_OVERLAP. Deliveries: the dispatcher turns each new event of the
organization into one delivery per enabled endpoint subscribed to its type; each is tried at once, then
retried on the RETRY_SCHEDULE (about a day, with jitter). A 410 disables the endpoint at once;
DISABLE_AFTER consecutive failed attempts disable it too, and the admins are mailed."""

from __future__ import annotations

import base64
import json
import random
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import uuid_utils.compat as uuid7
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook

from aisupport.access.principal import Principal
from aisupport.audit import service as audit
from aisupport.core import sealing
from aisupport.core.client import Client
from aisupport.core.config import Settings
from aisupport.core.metrics import WEBHOOK_ATTEMPTS
from aisupport.core.outbound import TargetRefused, check_url
from aisupport.events import repository as events
from aisupport.events.catalogue import CATALOGUE
from aisupport.events.models import Event
from aisupport.events.outbox import follow_for_webhooks
from aisupport.webhooks import errors
from aisupport.webhooks import repository as repo
from aisupport.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from aisupport.webhooks.sender import Outcome, post

PURPOSE = "webhook-signing-secret"
ROTATION_OVERLAP = timedelta(hours=24)
# Seconds after a failed attempt before the next one (attempt 2, 3, ...): about 27 hours in all.
RETRY_SCHEDULE = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
JITTER = 0.2  # each wait is drawn within ±20 %, so failed endpoints' retries do not arrive together
DISABLE_AFTER = 30  # consecutive failed attempts (with a day of retries, several events' worth)
DISPATCH_BATCH = 5000
TEST_EVENT = "webhook.test"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _bound_to(endpoint: WebhookEndpoint) -> bytes:
    return endpoint.organization_id.bytes + endpoint.id.bytes


def _seal(settings: Settings, endpoint: WebhookEndpoint, secret: str) -> bytes:
    return sealing.seal(settings, secret, purpose=PURPOSE, bound_to=_bound_to(endpoint))


def _secrets(settings: Settings, endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets that sign now: the current one, and the previous one during a rotation."""
    found = [sealing.unseal(settings, endpoint.secret_sealed, purpose=PURPOSE, bound_to=_bound_to(endpoint))]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_sealed is not None and expires is not None and expires > now:
        found.append(
            sealing.unseal(
                settings, endpoint.previous_secret_sealed, purpose=PURPOSE, bound_to=_bound_to(endpoint)
            )
        )
    return found


def _check_target(settings: Settings, url: str) -> None:
    try:
        check_url(httpx.URL(url), allow_private=settings.WEBHOOK_ALLOW_PRIVATE_TARGETS)
    except (TargetRefused, httpx.InvalidURL) as refused:
        raise errors.target_refused(str(refused)) from None


def _check_types(types: list[str]) -> list[str]:
    for name in types:
        if name not in CATALOGUE:
            raise errors.unknown_event_type(name)
    return sorted(set(types))


async def _refresh_following(db: AsyncSession, organization_id: uuid.UUID) -> None:
    """Dispatch the organization's events while it has an enabled endpoint; when that starts, from
    its events to come (no delivery of what happened while none was enabled)."""
    enabled = await repo.endpoints(db, organization_id, enabled_only=True)
    starts_after = await follow_for_webhooks(db, organization_id, on=bool(enabled))
    if starts_after is not None:
        await repo.place_cursor(db, organization_id, starts_after)


async def _found(db: AsyncSession, principal: Principal, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = await repo.endpoint(db, principal.organization_id, endpoint_id, lock=True)
    if endpoint is None:
        raise errors.endpoint_not_found()
    return endpoint


async def create_endpoint(
    db: AsyncSession, principal: Principal, settings: Settings, fields: dict[str, Any], client: Client
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (shown once)."""
    _check_target(settings, fields["url"])
    now = datetime.now(UTC)
    endpoint = WebhookEndpoint(
        id=uuid.uuid4(),
        organization_id=principal.organization_id,
        url=fields["url"],
        description=fields.get("description"),
        event_types=_check_types(fields.get("event_types") or []),
        enabled=fields.get("enabled", True),
        consecutive_failures=0,
        created_at=now,
        updated_at=now,
    )
    secret = new_secret()
    endpoint.secret_sealed = _seal(settings, endpoint, secret)
    await repo.add(db, endpoint)
    await _refresh_following(db, principal.organization_id)
    await _audit(db, principal, "webhook_endpoint.created", endpoint, client, url=endpoint.url)
    return endpoint, secret


async def list_endpoints(
    db: AsyncSession, principal: Principal, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[WebhookEndpoint]:
    return await repo.endpoints(db, principal.organization_id, after=after, limit=limit)


async def get_endpoint(db: AsyncSession, principal: Principal, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = await repo.endpoint(db, principal.organization_id, endpoint_id)
    if endpoint is None:
        raise errors.endpoint_not_found()
    return endpoint


async def update_endpoint(
    db: AsyncSession,
    principal: Principal,
    settings: Settings,
    endpoint_id: uuid.UUID,
    changes: dict[str, Any],
    client: Client,
) -> WebhookEndpoint:
    """Change the fields given; enabling an endpoint again clears its failures."""
    endpoint = await _found(db, principal, endpoint_id)
    if "url" in changes:
        _check_target(settings, changes["url"])
    if "event_types" in changes:
        changes["event_types"] = _check_types(changes["event_types"])
    if changes.get("enabled") and not endpoint.enabled:
        endpoint.consecutive_failures = 0
        endpoint.disabled_reason = None
    for name, value in changes.items():
        setattr(endpoint, name, value)
    endpoint.updated_at = datetime.now(UTC)
    await db.flush()
    await _refresh_following(db, principal.organization_id)
    await _audit(db, principal, "webhook_endpoint.updated", endpoint, client, changed=sorted(changes))
    return endpoint


async def delete_endpoint(
    db: AsyncSession, principal: Principal, endpoint_id: uuid.UUID, client: Client
) -> None:
    endpoint = await _found(db, principal, endpoint_id)
    await repo.remove(db, endpoint)
    await _refresh_following(db, principal.organization_id)
    await _audit(db, principal, "webhook_endpoint.deleted", endpoint, client, url=endpoint.url)


async def rotate_secret(
    db: AsyncSession, principal: Principal, settings: Settings, endpoint_id: uuid.UUID, client: Client
) -> tuple[WebhookEndpoint, str]:
    """A new signing secret (shown once); the previous one signs too for ROTATION_OVERLAP."""
    endpoint = await _found(db, principal, endpoint_id)
    secret = new_secret()
    now = datetime.now(UTC)
    endpoint.previous_secret_sealed = endpoint.secret_sealed
    endpoint.previous_secret_expires_at = now + ROTATION_OVERLAP
    endpoint.secret_sealed = _seal(settings, endpoint, secret)
    endpoint.updated_at = now
    await db.flush()
    await _audit(db, principal, "webhook_endpoint.secret_rotated", endpoint, client)
    return endpoint, secret


async def _audit(
    db: AsyncSession,
    principal: Principal,
    action: str,
    endpoint: WebhookEndpoint,
    client: Client,
    **details: Any,
) -> None:
    await audit.record(
        db,
        principal.organization_id,
        action,
        actor=principal.actor,
        client=client,
        target=("webhook_endpoint", endpoint.id),
        details=details or None,
    )


# --- Deliveries ---------------------------------------------------------------------------------------


def signed_headers(signers: list[Webhook], message_id: str, now: datetime, body: str) -> dict[str, str]:
    """The Standard Webhooks headers: one `v1,` signature per secret that signs now."""
    signatures = " ".join(signer.sign(message_id, now, body) for signer in signers)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signatures,
    }


async def dispatch(db: AsyncSession, organization_id: uuid.UUID) -> list[uuid.UUID]:
    """Turn the organization's events after the dispatcher's place into deliveries (one per enabled
    endpoint subscribed to the type that existed when the event occurred), and move the place; the new
    deliveries' ids, to be tried. The rows are made in the database (INSERT ... SELECT), DISPATCH_BATCH
    events at a time: a burst of thousands costs no object per row here."""
    after = await repo.locked_cursor(db, organization_id)
    created: list[uuid.UUID] = []
    while (upto := await repo.last_of_next_events(db, organization_id, after, DISPATCH_BATCH)) is not None:
        created += await repo.add_deliveries(db, organization_id, after, upto)
        after = upto
    await repo.move_cursor(db, organization_id, after)
    return created


@dataclass(frozen=True)
class Prepared:
    """What one attempt sends, read in a short transaction (nothing is held while it is sent)."""

    url: str
    body: bytes
    headers: dict[str, str]


async def prepare(
    db: AsyncSession, settings: Settings, organization_id: uuid.UUID, delivery_ids: list[uuid.UUID]
) -> list[tuple[uuid.UUID, Prepared]]:
    """The requests of the deliveries' next attempts, in three queries whatever their number. A
    delivery not pending is left out; one whose endpoint is gone or disabled, or whose event is past
    the retention, is marked failed and left out."""
    deliveries = await repo.deliveries_by_id(db, organization_id, delivery_ids)
    endpoints = await repo.endpoints_by_id(
        db, organization_id, {delivery.endpoint_id for delivery in deliveries}
    )
    sequences = [delivery.event_sequence for delivery in deliveries if delivery.event_type != TEST_EVENT]
    found = {event.sequence: event for event in await repo.events_by_sequence(db, organization_id, sequences)}
    now = datetime.now(UTC)
    signers: dict[uuid.UUID, list[Webhook]] = {}
    prepared = []
    for delivery in deliveries:
        endpoint = endpoints.get(delivery.endpoint_id)
        event = found.get(delivery.event_sequence)
        if delivery.status != "pending":
            continue
        if endpoint is None or not endpoint.enabled or (event is None and delivery.event_type != TEST_EVENT):
            _finish(delivery, "failed")
            continue
        envelope = events.envelope(event or _test_event(delivery, endpoint, now))
        body = json.dumps(envelope, separators=(",", ":"))
        if endpoint.id not in signers:
            signers[endpoint.id] = [Webhook(secret) for secret in _secrets(settings, endpoint, now)]
        headers = signed_headers(signers[endpoint.id], str(delivery.event_id), now, body)
        prepared.append((delivery.id, Prepared(endpoint.url, body.encode(), headers)))
    return prepared


def _test_event(delivery: WebhookDelivery, endpoint: WebhookEndpoint, now: datetime) -> Event:
    """The `webhook.test` event of a test delivery (never written to the outbox: its sequence is 0)."""
    return Event(
        id=delivery.event_id,
        organization_id=delivery.organization_id,
        sequence=0,
        type=TEST_EVENT,
        occurred_at=now,
        payload={"endpoint_id": str(endpoint.id)},
    )


def _finish(delivery: WebhookDelivery, status: str) -> None:
    delivery.status = status
    delivery.next_attempt_at = None
    delivery.updated_at = datetime.now(UTC)


async def send(settings: Settings, prepared: Prepared) -> Outcome:
    return await post(
        prepared.url,
        prepared.body,
        prepared.headers,
        allow_private=settings.WEBHOOK_ALLOW_PRIVATE_TARGETS,
    )


@dataclass(frozen=True)
class Recorded:
    retry_in: timedelta | None  # when to try again; None: done
    disabled: WebhookEndpoint | None  # the endpoint this attempt disabled (its admins are mailed)


@dataclass(frozen=True)
class Attempted:
    delivery_id: uuid.UUID
    attempted_at: datetime
    outcome: Outcome


async def record(db: AsyncSession, organization_id: uuid.UUID, attempts: list[Attempted]) -> list[Recorded]:
    """Keep the attempts and decide what follows each: done, a retry, its endpoint disabled. Successes,
    nearly all of them, are written in three statements whatever their number; each failure is weighed
    against its endpoint (locked: its consecutive failures count once per attempt)."""
    succeeded = [attempt.delivery_id for attempt in attempts if attempt.outcome.succeeded]
    done = await repo.mark_succeeded(db, organization_id, succeeded)
    WEBHOOK_ATTEMPTS.labels("succeeded").inc(len(done))
    await repo.reset_failures(db, organization_id, set(done.values()))
    failed = [attempt.delivery_id for attempt in attempts if not attempt.outcome.succeeded]
    deliveries = {
        delivery.id: delivery for delivery in await repo.deliveries_by_id(db, organization_id, failed)
    }
    endpoints = await repo.endpoints_by_id(
        db, organization_id, {delivery.endpoint_id for delivery in deliveries.values()}, lock=True
    )
    kept = [
        attempt for attempt in attempts if attempt.delivery_id in done or attempt.delivery_id in deliveries
    ]
    await repo.add_attempts(db, organization_id, [_attempt_row(attempt) for attempt in kept])
    recorded = []
    for attempt in attempts:
        delivery = deliveries.get(attempt.delivery_id)
        if delivery is None:  # succeeded, or gone (its endpoint deleted meanwhile)
            recorded.append(Recorded(None, None))
            continue
        endpoint = endpoints.get(delivery.endpoint_id)
        recorded.append(await _after_attempt(db, delivery, endpoint, attempt.outcome))
    await db.flush()
    return recorded


def _attempt_row(attempt: Attempted) -> dict[str, Any]:
    outcome = attempt.outcome
    return {
        "id": uuid.uuid4(),
        "delivery_id": attempt.delivery_id,
        "attempted_at": attempt.attempted_at,
        "status_code": outcome.status_code,
        "latency_ms": outcome.latency_ms,
        "error": outcome.error,
        "response_excerpt": outcome.excerpt,
    }


async def _after_attempt(
    db: AsyncSession, delivery: WebhookDelivery, endpoint: WebhookEndpoint | None, outcome: Outcome
) -> Recorded:
    delivery.attempts += 1
    disabled = None
    if endpoint is not None:
        endpoint.consecutive_failures += 1
        reason = (
            "gone"
            if outcome.status_code == 410
            else "failing"
            if endpoint.consecutive_failures >= DISABLE_AFTER
            else None
        )
        if reason is not None and endpoint.enabled:
            endpoint.enabled = False
            endpoint.disabled_reason = reason
            endpoint.updated_at = datetime.now(UTC)
            disabled = endpoint
            await db.flush()
            await _refresh_following(db, endpoint.organization_id)
            await audit.record(
                db,
                endpoint.organization_id,
                "webhook_endpoint.disabled",
                actor=audit.Actor(kind="system"),
                target=("webhook_endpoint", endpoint.id),
                details={"reason": reason},
            )
    if (
        delivery.event_type == TEST_EVENT
        or delivery.attempts > len(RETRY_SCHEDULE)
        or disabled
        or (endpoint is not None and not endpoint.enabled)
    ):
        WEBHOOK_ATTEMPTS.labels("failed").inc()
        _finish(delivery, "failed")
        return Recorded(None, disabled)
    WEBHOOK_ATTEMPTS.labels("retrying").inc()
    wait = RETRY_SCHEDULE[delivery.attempts - 1] * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311
    delivery.next_attempt_at = datetime.now(UTC) + timedelta(seconds=wait)
    delivery.updated_at = datetime.now(UTC)
    return Recorded(timedelta(seconds=wait), None)


async def _delivery_of(
    db: AsyncSession,
    principal: Principal,
    endpoint_id: uuid.UUID,
    delivery_id: uuid.UUID,
    *,
    lock: bool = False,
) -> WebhookDelivery:
    delivery = await repo.delivery(db, principal.organization_id, delivery_id, lock=lock)
    if delivery is None or delivery.endpoint_id != endpoint_id:
        raise errors.delivery_not_found()
    return delivery


async def replay(
    db: AsyncSession, principal: Principal, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDelivery:
    """Try a delivery again now (whatever its status), as a new series of attempts."""
    delivery = await _delivery_of(db, principal, endpoint_id, delivery_id, lock=True)
    delivery.status = "pending"
    delivery.attempts = 0
    delivery.next_attempt_at = datetime.now(UTC)
    delivery.updated_at = datetime.now(UTC)
    await db.flush()
    return delivery


async def test_delivery(db: AsyncSession, principal: Principal, endpoint_id: uuid.UUID) -> WebhookDelivery:
    """A `webhook.test` delivery to the endpoint, to be sent now (once, no retries)."""
    endpoint = await get_endpoint(db, principal, endpoint_id)
    delivery = WebhookDelivery(
        id=uuid.uuid4(),
        organization_id=principal.organization_id,
        endpoint_id=endpoint.id,
        event_sequence=0,
        event_id=uuid7.uuid7(),
        event_type=TEST_EVENT,
        status="pending",
        attempts=0,
    )
    await repo.add(db, delivery)
    return delivery


async def deliveries(
    db: AsyncSession,
    principal: Principal,
    endpoint_id: uuid.UUID,
    *,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[WebhookDelivery]:
    await get_endpoint(db, principal, endpoint_id)
    return await repo.deliveries(db, principal.organization_id, endpoint_id, before=before, limit=limit)


async def attempts(
    db: AsyncSession, principal: Principal, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> list[WebhookAttempt]:
    await _delivery_of(db, principal, endpoint_id, delivery_id)
    return await repo.attempts(db, principal.organization_id, delivery_id)
