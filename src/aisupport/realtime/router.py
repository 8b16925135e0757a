"""GET /orgs/{org_id}/events/stream: the organization's events as Server-Sent Events (docs/realtime.md)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from starlette.responses import StreamingResponse

from aisupport.access.dependencies import principal_again, requires
from aisupport.access.permissions import Permission
from aisupport.access.principal import Principal
from aisupport.core.config import Settings
from aisupport.core.errors import AppError, problem_responses
from aisupport.events.catalogue import CATALOGUE
from aisupport.realtime import errors
from aisupport.realtime.hub import Frame
from aisupport.realtime.streaming import event_stream, position_of

router = APIRouter(tags=["realtime"])

STREAM_PERMISSION = Permission.CONVERSATIONS_READ
SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
LastEventId = Annotated[
    str | None, Header(description="The `id` of the last event received: the stream resumes after it.")
]
After = Annotated[
    int | None, Query(ge=0, description="The same as `Last-Event-ID`, for clients that cannot set headers.")
]


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
    last_event_id: LastEventId = None,
    after: After = None,
) -> StreamingResponse:
    """The organization's events from now on (or after `Last-Event-ID`), those the caller may see, each
    with its `sequence` as its SSE `id`; a heartbeat comment every STREAM_HEARTBEAT_SECONDS."""
    position = position_of(last_event_id, after)
    settings: Settings = request.app.state.settings
    reader = principal

    def view(frame: Frame) -> bytes | None:
        return frame.data if CATALOGUE[frame.type].permission in reader.permissions else None

    async def recheck() -> bool:
        nonlocal reader
        try:
            reader = await principal_again(request, STREAM_PERMISSION)
        except AppError:
            return False
        return True

    heartbeat = min(settings.STREAM_HEARTBEAT_SECONDS, settings.SESSION_CACHE_TTL_SECONDS)
    stream = await event_stream(request, principal.organization_id, position, view, recheck, heartbeat)
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)
