"""/orgs/{org_id}/webhooks: endpoints, their deliveries and attempts (docs/webhooks.md). Admins only."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from aisupport.access.dependencies import ClientInfo, requires
from aisupport.access.permissions import Permission
from aisupport.access.principal import Principal
from aisupport.core.db import DbSession
from aisupport.core.errors import problem_responses
from aisupport.core.jobs import defer
from aisupport.core.pagination import Page, Paging
from aisupport.webhooks import errors, service
from aisupport.webhooks.models import WebhookDelivery
from aisupport.webhooks.schemas import (
    AttemptOut,
    DeliveryOut,
    EndpointCreate,
    EndpointOut,
    EndpointUpdate,
    EndpointWithSecret,
)

router = APIRouter(tags=["webhooks"])

Manager = Annotated[Principal, Depends(requires(Permission.WEBHOOKS_MANAGE))]
ENDPOINT = "/orgs/{org_id}/webhooks/{endpoint_id}"


def _with_secret(endpoint: object, secret: str) -> EndpointWithSecret:
    return EndpointWithSecret.model_validate(
        {**EndpointOut.model_validate(endpoint).model_dump(), "secret": secret}
    )


@router.post(
    "/orgs/{org_id}/webhooks",
    status_code=status.HTTP_201_CREATED,
    response_model=EndpointWithSecret,
    responses=problem_responses(errors.TARGET_REFUSED, errors.UNKNOWN_EVENT_TYPE),
)
async def create_webhook_endpoint(
    org_id: uuid.UUID,
    payload: EndpointCreate,
    principal: Manager,
    db: DbSession,
    request: Request,
    client: ClientInfo,
) -> EndpointWithSecret:
    """Add an endpoint: the organization's events (of `event_types`, or all) are POSTed to it, signed;
    its signing secret is in this answer only."""
    endpoint, secret = await service.create_endpoint(
        db, principal, request.app.state.settings, payload.model_dump(), client
    )
    return _with_secret(endpoint, secret)


@router.get("/orgs/{org_id}/webhooks", response_model=Page[EndpointOut])
async def list_webhook_endpoints(
    org_id: uuid.UUID, principal: Manager, db: DbSession, paging: Paging
) -> Page[EndpointOut]:
    """The organization's endpoints, oldest first."""
    rows = await service.list_endpoints(db, principal, after=paging.after_time_and_id(), limit=paging.fetch)
    return paging.page(rows, lambda row: (row.created_at, row.id), EndpointOut.model_validate)


@router.get(ENDPOINT, response_model=EndpointOut)
async def get_webhook_endpoint(
    org_id: uuid.UUID, endpoint_id: uuid.UUID, principal: Manager, db: DbSession
) -> EndpointOut:
    """One endpoint (never its secret)."""
    return EndpointOut.model_validate(await service.get_endpoint(db, principal, endpoint_id))


@router.patch(
    ENDPOINT,
    response_model=EndpointOut,
    responses=problem_responses(errors.TARGET_REFUSED, errors.UNKNOWN_EVENT_TYPE),
)
async def update_webhook_endpoint(
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    payload: EndpointUpdate,
    principal: Manager,
    db: DbSession,
    request: Request,
    client: ClientInfo,
) -> EndpointOut:
    """Change the URL, event types, description; `enabled: true` turns a disabled endpoint back on."""
    changes = payload.model_dump(exclude_unset=True)
    endpoint = await service.update_endpoint(
        db, principal, request.app.state.settings, endpoint_id, changes, client
    )
    return EndpointOut.model_validate(endpoint)


@router.delete(ENDPOINT, status_code=status.HTTP_204_NO_CONTENT)
async def delete_webhook_endpoint(
    org_id: uuid.UUID, endpoint_id: uuid.UUID, principal: Manager, db: DbSession, client: ClientInfo
) -> Response:
    """Remove the endpoint, its deliveries and their attempts."""
    await service.delete_endpoint(db, principal, endpoint_id, client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(ENDPOINT + "/rotate-secret", response_model=EndpointWithSecret)
async def rotate_webhook_secret(
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    principal: Manager,
    db: DbSession,
    request: Request,
    client: ClientInfo,
) -> EndpointWithSecret:
    """A new signing secret (in this answer only); for 24 hours both sign every request."""
    endpoint, secret = await service.rotate_secret(
        db, principal, request.app.state.settings, endpoint_id, client
    )
    return _with_secret(endpoint, secret)


@router.post(ENDPOINT + "/test", status_code=status.HTTP_202_ACCEPTED, response_model=DeliveryOut)
async def test_webhook_endpoint(
    org_id: uuid.UUID, endpoint_id: uuid.UUID, principal: Manager, db: DbSession
) -> DeliveryOut:
    """Send a `webhook.test` event now (once, no retries); its attempt shows in the delivery's attempts."""
    delivery = await service.test_delivery(db, principal, endpoint_id)
    return await _sent_now(db, delivery)


@router.get(ENDPOINT + "/deliveries", response_model=Page[DeliveryOut])
async def list_webhook_deliveries(
    org_id: uuid.UUID, endpoint_id: uuid.UUID, principal: Manager, db: DbSession, paging: Paging
) -> Page[DeliveryOut]:
    """The endpoint's deliveries, newest first."""
    rows = await service.deliveries(
        db, principal, endpoint_id, before=paging.after_time_and_id(), limit=paging.fetch
    )
    return paging.page(rows, lambda row: (row.created_at, row.id), DeliveryOut.model_validate)


@router.get(ENDPOINT + "/deliveries/{delivery_id}/attempts", response_model=list[AttemptOut])
async def list_webhook_attempts(
    org_id: uuid.UUID, endpoint_id: uuid.UUID, delivery_id: uuid.UUID, principal: Manager, db: DbSession
) -> list[AttemptOut]:
    """Every attempt of the delivery, oldest first (at most 8 per series, a replay starts another)."""
    rows = await service.attempts(db, principal, endpoint_id, delivery_id)
    return [AttemptOut.model_validate(row) for row in rows]


@router.post(
    ENDPOINT + "/deliveries/{delivery_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryOut,
)
async def replay_webhook_delivery(
    org_id: uuid.UUID, endpoint_id: uuid.UUID, delivery_id: uuid.UUID, principal: Manager, db: DbSession
) -> DeliveryOut:
    """Send the delivery again now, with its retries (whatever happened to it before)."""
    delivery = await service.replay(db, principal, endpoint_id, delivery_id)
    return await _sent_now(db, delivery)


async def _sent_now(db: DbSession, delivery: WebhookDelivery) -> DeliveryOut:
    await defer(
        db, "webhooks:deliver", organization_id=str(delivery.organization_id), delivery_id=str(delivery.id)
    )
    return DeliveryOut.model_validate(delivery)
