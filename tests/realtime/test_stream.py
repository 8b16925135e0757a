"""Realtime for members (issue 12, point 2): the organization's events over SSE, from now or resumed
after Last-Event-ID with nothing missed or repeated, a reset for positions not kept, heartbeats, access
checked again while open, a bounded buffer; written through one app, received on another."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient

from aisupport.core.config import Settings
from aisupport.events.models import Event
from aisupport.realtime.hub import Frame, Signal, Subscription
from tests.conftest import running_service, serve, service_env
from tests.contacts.helpers import create_contact, unique_email
from tests.conversations.helpers import created, patch
from tests.organizations.helpers import Person, new_owner
from tests.realtime.helpers import Stream, live_server, opened


def _path(person: Person) -> str:
    return f"/orgs/{person.organization_id}/events/stream"


async def _conversation(client: AsyncClient, owner: Person, inbox_id: str) -> dict[str, Any]:
    contact = await create_contact(client, owner, name="Ada", email=unique_email())
    body = {"inbox_id": inbox_id, "contact_id": contact["id"], "message": {"body": "Hello?"}}
    return await created(client, owner, "conversations", body)


async def _types(stream: Stream, count: int) -> list[str]:
    return [received.event for received in await stream.take(count)]


async def test_a_stream_receives_what_another_app_writes_in_order(
    client: AsyncClient, settings: Settings
) -> None:
    owner, other = await new_owner(client), await new_owner(client)
    inbox = await created(client, owner, "inboxes", {"name": "API", "kind": "api"})
    other_inbox = await created(client, other, "inboxes", {"name": "API", "kind": "api"})
    async with live_server(settings) as base, opened(base, _path(owner), owner.headers) as stream:
        conversation = await _conversation(client, owner, inbox["id"])  # through the other app
        await _conversation(client, other, other_inbox["id"])  # another organization: never seen
        await patch(client, owner, conversation["id"], priority="high")
        received = await stream.take(5)
        async with AsyncClient(base_url=base) as http:
            metrics = (await http.get("/metrics")).text
    assert "aisupport_event_streams 1.0" in metrics
    assert 'aisupport_events_written_total{type="conversation.updated"}' in metrics
    assert [event.event for event in received] == [
        "contact.created",
        "conversation.created",
        "message.created",
        "conversation.updated",
        "message.created",
    ]
    ids = [int(event.id or 0) for event in received]
    assert ids == list(range(ids[0], ids[0] + 5))
    assert [event.data["sequence"] for event in received] == ids
    assert {event.data["organization_id"] for event in received} == {owner.organization_id}
    assert received[1].data["data"]["conversation"]["id"] == conversation["id"]
    assert received[3].data["data"]["changes"] == {"priority": "none"}
    uuid.UUID(received[0].data["id"])


async def test_resuming_after_last_event_id_misses_and_repeats_nothing(
    client: AsyncClient, settings: Settings
) -> None:
    owner = await new_owner(client)
    inbox = await created(client, owner, "inboxes", {"name": "API", "kind": "api"})
    async with live_server(settings) as base:
        async with opened(base, _path(owner), owner.headers) as stream:
            first = await _conversation(client, owner, inbox["id"])
            seen = await stream.take(3)
        # Disconnected: three changes happen, then the client comes back with the last id it saw.
        await patch(client, owner, first["id"], status="pending")
        headers = {**owner.headers, "Last-Event-ID": seen[-1].id or ""}
        async with opened(base, _path(owner), headers) as stream:
            missed = await stream.take(3)
            await patch(client, owner, first["id"], status="open")
            live = await stream.take(3)
    ids = [int(event.id or 0) for event in [*seen, *missed, *live]]
    assert ids == list(range(ids[0], ids[0] + 9))  # each once, in order, across the reconnect
    changes = ["conversation.updated", "conversation.status_changed", "message.created"]
    assert [event.event for event in missed] == changes
    assert [event.event for event in live] == changes
    assert missed[1].data["data"]["previous_status"] == "open"
    assert live[1].data["data"]["previous_status"] == "pending"


async def test_a_position_not_kept_gets_a_reset_and_a_bad_one_a_problem(
    client: AsyncClient, settings: Settings
) -> None:
    owner = await new_owner(client)
    async with live_server(settings) as base:
        headers = {**owner.headers, "Last-Event-ID": "999999"}
        async with opened(base, _path(owner), headers) as stream:
            reset = await stream.next()
        assert reset.event == "reset"
        assert reset.data == {"reason": "position_unknown_or_expired", "last_sequence": 0}  # none yet
        async with AsyncClient(base_url=base) as http:
            bad = await http.get(_path(owner), headers={**owner.headers, "Last-Event-ID": "abc"})
            stranger = await http.get(f"/orgs/{uuid.uuid4()}/events/stream", headers=owner.headers)
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["code"] == "invalid_last_event_id"
    assert stranger.status_code == 404


async def test_signing_out_ends_the_stream_and_idle_streams_get_heartbeats(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(STREAM_HEARTBEAT_SECONDS=0.5)
    async with serve(settings) as client, live_server(settings) as base:
        owner = await new_owner(client)
        async with opened(base, _path(owner), owner.headers) as stream:
            await asyncio.sleep(1.3)
            assert (await client.post("/auth/logout-all", headers=owner.headers)).status_code == 204
            closing = await stream.next(within=10)
            with pytest.raises(EOFError):
                await stream.next(within=10)
        assert stream.comments >= 1
    assert closing.event == "closed"
    assert closing.data == {"reason": "access_revoked"}


def test_a_stream_too_far_behind_is_closed_not_grown() -> None:
    subscription = Subscription(uuid.uuid4(), asyncio.Queue(maxsize=2), heartbeat=15)
    for sequence in (1, 2, 3):
        event = Event(organization_id=subscription.organization_id, sequence=sequence, type="contact.created")
        subscription.offer(Frame(sequence, "contact.created", b"...", event))
    assert subscription.closed == "too_slow"
    assert subscription.queue.qsize() == 2  # never more than its bound
    subscription.beat(time.monotonic() + 60)
    assert subscription.queue.qsize() == 2  # a busy stream gets no heartbeat: it is awake


def test_an_idle_stream_is_woken_for_its_heartbeat_once() -> None:
    subscription = Subscription(uuid.uuid4(), asyncio.Queue(maxsize=10), heartbeat=15)
    now = time.monotonic()
    subscription.beat(now)
    subscription.beat(now + 1)  # not due yet again
    assert [subscription.queue.get_nowait() for _ in range(subscription.queue.qsize())] == [Signal.BEAT]
    subscription.close("server_shutting_down")
    assert subscription.queue.get_nowait() is Signal.CLOSED


async def test_two_api_processes_share_one_stream_of_events(
    tmp_path: Path, database_url: str, make_settings: Callable[..., Settings]
) -> None:
    """Written through this process's app, received on a stream of `aisupport serve` in another."""
    secret = service_env()["SECRET_KEY"]  # the one the service process signs tokens with
    async with serve(make_settings(SECRET_KEY=secret)) as client:
        owner = await new_owner(client)
        inbox = await created(client, owner, "inboxes", {"name": "API", "kind": "api"})
        with running_service(tmp_path, DATABASE_URL=database_url) as service:
            async with opened(service.base_url, _path(owner), owner.headers) as stream:
                conversation = await _conversation(client, owner, inbox["id"])
                received = await stream.take(3)
    assert [event.event for event in received] == [
        "contact.created",
        "conversation.created",
        "message.created",
    ]
    assert received[1].data["data"]["conversation"]["id"] == conversation["id"]
