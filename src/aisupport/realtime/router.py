"""GET /orgs/{org_id}/events/stream: the organization's events as Server-Sent Events (docs/realtime.md)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from starlette.responses import StreamingResponse

from aisupport.access.dependencies import principal_again, requires
from aisupport.access.permissions import Permission
from aisupport.access.principal import Principal
from aisupport.core.config import Settings
from aisupport.core.db import request_session
from aisupport.core.errors import AppError, problem_responses
from aisupport.core.metrics import EVENT_STREAM_CLOSES, EVENT_STREAMS
from aisupport.events import repository
from aisupport.events.catalogue import CATALOGUE
from aisupport.realtime import errors
from aisupport.realtime.hub import EventHub, Subscription, frame_of

router = APIRouter(tags=["realtime"])

STREAM_PERMISSION = Permission.CONVERSATIONS_READ
REPLAY_BATCH = 500
HEARTBEAT = b": heartbeat\r\n\r\n"  # a comment line: keeps proxies from closing an idle stream


@router.get(
    "/orgs/{org_id}/events/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The stream (docs/realtime.md)."},
        **problem_responses(errors.BAD_POSITION),
    },
)
async def stream_events(
    org_id: uuid.UUID,
    request: Request,
    principal: Annotated[Principal, Depends(requires(STREAM_PERMISSION))],
    last_event_id: Annotated[
        str | None,
        Header(description="The `id` of the last event received: the stream resumes after it."),
    ] = None,
    after: Annotated[
        int | None,
        Query(ge=0, description="The same as `Last-Event-ID`, for clients that cannot set headers."),
    ] = None,
) -> StreamingResponse:
    """The organization's events from now on (or after `Last-Event-ID`), those the caller may see, each
    with its `sequence` as its SSE `id`; a heartbeat comment every STREAM_HEARTBEAT_SECONDS."""
    position = after
    if last_event_id is not None:
        if not last_event_id.strip().isdigit() or len(last_event_id.strip()) > 18:
            raise errors.bad_position()
        position = int(last_event_id)
    hub: EventHub = request.app.state.event_hub
    subscription = await hub.subscribe(principal.organization_id)
    return StreamingResponse(
        _events(request, principal, hub, subscription, position),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _events(
    request: Request, principal: Principal, hub: EventHub, subscription: Subscription, position: int | None
) -> AsyncIterator[bytes]:
    settings: Settings = request.app.state.settings
    heartbeat = min(settings.STREAM_HEARTBEAT_SECONDS, settings.SESSION_CACHE_TTL_SECONDS)
    organization_id = principal.organization_id
    EVENT_STREAMS.inc()
    try:
        sent = subscription.start  # "from now": the hub hands this stream every event after it
        if position is not None:
            async with request_session(request) as db:
                first, last = await repository.bounds(db, organization_id)
            if position > last or position < (first or last + 1) - 1:
                # Numbers this organization never gave out, or events purged since: start from now.
                reset = json.dumps({"reason": "position_unknown_or_expired", "last_sequence": sent})
                yield f"id: {sent}\r\nevent: reset\r\ndata: {reset}\r\n\r\n".encode()
            else:
                sent = position
            while sent < last:
                async with request_session(request) as db:
                    events = await repository.after(db, organization_id, sent, limit=REPLAY_BATCH)
                for event in events:
                    sent = event.sequence
                    if _may_see(principal, event.type):
                        yield frame_of(event).data
                if len(events) < REPLAY_BATCH:
                    break
        checked = time.monotonic()
        while True:
            if subscription.closed is not None:
                yield _closing(subscription.closed)
                return
            if time.monotonic() - checked >= heartbeat:
                try:
                    principal = await principal_again(request, STREAM_PERMISSION)
                except AppError:
                    yield _closing("access_revoked")
                    return
                checked = time.monotonic()
            try:
                async with asyncio.timeout(heartbeat):  # no task per wait, unlike wait_for
                    frame = await subscription.queue.get()
            except TimeoutError:
                yield HEARTBEAT
                continue
            if frame.sequence <= sent:
                continue  # already sent from the outbox while catching up
            sent = frame.sequence
            if _may_see(principal, frame.type):
                yield frame.data
    finally:
        EVENT_STREAMS.dec()
        hub.unsubscribe(subscription)


def _may_see(principal: Principal, type: str) -> bool:
    return CATALOGUE[type].permission in principal.permissions


def _closing(reason: str) -> bytes:
    """The last event of a stream the server ends: `too_slow` (the client fell STREAM_BUFFER_EVENTS
    behind), `access_revoked` (signed out, removed, key revoked), `server_shutting_down`."""
    EVENT_STREAM_CLOSES.labels(reason).inc()
    return f"event: closed\r\ndata: {json.dumps({'reason': reason})}\r\n\r\n".encode()
