"""One event stream over SSE, whoever reads it: from now, or resumed after a position from the outbox
with nothing missed or repeated, a reset for a position not kept, heartbeats, the reader's access
checked again at each heartbeat, and a closing event when the server ends it (docs/realtime.md).

What a reader sees of each event is its `View`: a member's stream sends the shared frame if their role
may see its type; a visitor's renders their own, smaller form, for their conversations only."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import Request

from aisupport.core.db import request_session
from aisupport.core.metrics import EVENT_STREAM_CLOSES, EVENT_STREAMS
from aisupport.events import repository
from aisupport.realtime import errors
from aisupport.realtime.hub import EventHub, Frame, Signal, Subscription, frame_of

REPLAY_BATCH = 500
HEARTBEAT = b": heartbeat\r\n\r\n"  # a comment line: keeps proxies from closing an idle stream

View = Callable[[Frame], bytes | Awaitable[bytes | None] | None]
"""What the reader is sent of an event (None: nothing); a member's is a plain function (it runs for
every stream on every event), a visitor's may need the database."""
Recheck = Callable[[], Awaitable[bool]]
"""Whether the reader may still read (False: the stream ends with `access_revoked`)."""


def position_of(last_event_id: str | None, after: int | None) -> int | None:
    """Where to resume: `Last-Event-ID` (a sequence), else `?after=`, else None (from now); 400 for an
    id that is not one of ours."""
    if last_event_id is None:
        return after
    if not last_event_id.strip().isdigit() or len(last_event_id.strip()) > 18:
        raise errors.bad_position()
    return int(last_event_id)


async def event_stream(
    request: Request,
    organization_id: uuid.UUID,
    position: int | None,
    view: View,
    recheck: Recheck,
    heartbeat: float,
) -> AsyncIterator[bytes]:
    """The stream's bytes; subscribed before this returns, so nothing committed after is missed."""
    hub: EventHub = request.app.state.event_hub
    subscription = await hub.subscribe(organization_id, heartbeat)
    return _events(request, hub, subscription, position, view, recheck, heartbeat)


async def _events(
    request: Request,
    hub: EventHub,
    subscription: Subscription,
    position: int | None,
    view: View,
    recheck: Recheck,
    heartbeat: float,
) -> AsyncIterator[bytes]:
    organization_id = subscription.organization_id
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
                    shown = view(frame_of(event))
                    if (
                        data := shown if shown is None or isinstance(shown, bytes) else await shown
                    ) is not None:
                        yield data
                if len(events) < REPLAY_BATCH:
                    break
        checked = time.monotonic()
        while True:
            item = await subscription.queue.get()
            if subscription.closed is not None:
                yield _closing(subscription.closed)
                return
            if item is Signal.BEAT or time.monotonic() - checked >= heartbeat:
                if not await recheck():
                    yield _closing("access_revoked")
                    return
                checked = time.monotonic()
            if item is Signal.BEAT:
                yield HEARTBEAT
            elif isinstance(item, Frame) and item.sequence > sent:  # else sent while catching up
                sent = item.sequence
                shown = view(item)
                if (data := shown if shown is None or isinstance(shown, bytes) else await shown) is not None:
                    yield data
    finally:
        EVENT_STREAMS.dec()
        hub.unsubscribe(subscription)


def _closing(reason: str) -> bytes:
    """The last event of a stream the server ends: `too_slow` (the client fell STREAM_BUFFER_EVENTS
    behind), `access_revoked` (signed out, removed, key revoked), `server_shutting_down`."""
    EVENT_STREAM_CLOSES.labels(reason).inc()
    return f"event: closed\r\ndata: {json.dumps({'reason': reason})}\r\n\r\n".encode()
