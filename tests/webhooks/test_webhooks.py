"""Webhooks (issue 12, point 3): endpoints (admins only), deliveries signed per Standard Webhooks and
verified with its reference library, retries until the receiver recovers, every attempt recorded,
replay, test ping, 410 disables at once, SSRF-safe targets, secret rotation with an overlap."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from aisupport.core.config import Settings
from tests.conftest import Mailbox, run_jobs, serve, service_env
from tests.contacts.helpers import create_contact, unique_email
from tests.organizations.helpers import Person, add_member, new_owner
from tests.realtime.helpers import serving


@dataclass
class Receiver:
    """A real HTTP server on loopback that records what it receives and answers `statuses` in turn
    (then 200)."""

    url: str
    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    stall: tuple[asyncio.Event, asyncio.Event] | None = None  # (arrived, release): hold the next request

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver("")

    async def hook(request: Request) -> PlainTextResponse:
        state.received.append((dict(request.headers), await request.body()))
        if state.stall is not None:
            arrived, release = state.stall
            state.stall = None
            arrived.set()
            await release.wait()
        status = state.statuses.pop(0) if state.statuses else 200
        return PlainTextResponse("ok" if status < 300 else "nope " * 500, status_code=status)

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    async with serving(app, lifespan="off") as base_url:
        state.url = f"{base_url}/hook"
        yield state


@pytest.fixture
async def hooked(make_settings: Callable[..., Settings]) -> AsyncIterator[AsyncClient]:
    async with serve(make_settings(WEBHOOK_ALLOW_PRIVATE_TARGETS=True)) as client:
        yield client


async def deliver_all(client: AsyncClient) -> None:
    """Run jobs until none is ready: a dispatch queues deliveries, a delivery a retry or a mail."""
    engine = client.app.state.engine  # type: ignore[attr-defined]
    for _ in range(10):
        await run_jobs(client)
        async with engine.connect() as conn:
            ready = await conn.scalar(
                text(
                    "SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'"
                    " AND (scheduled_at IS NULL OR scheduled_at <= now())"
                )
            )
        if not ready:
            return
    raise AssertionError("jobs kept coming")


def _url(person: Person, *parts: str) -> str:
    return "/".join([f"/orgs/{person.organization_id}/webhooks", *parts])


async def _endpoint(client: AsyncClient, owner: Person, url: str, **fields: Any) -> dict[str, Any]:
    answer = await client.post(_url(owner), json={"url": url, **fields}, headers=owner.headers)
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _verified(secret: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(body, headers)
    return payload


async def test_events_are_delivered_signed_and_verifiable(hooked: AsyncClient) -> None:
    owner = await new_owner(hooked)
    async with receiver() as hook:
        endpoint = await _endpoint(hooked, owner, hook.url, event_types=["contact.created"])
        assert endpoint["secret"].startswith("whsec_")
        contact = await create_contact(hooked, owner, name="Ada", email=unique_email())
        await deliver_all(hooked)
    [(headers, body)] = hook.received
    payload = _verified(endpoint["secret"], headers, body)
    assert payload["type"] == "contact.created"
    assert payload["data"]["contact"]["id"] == contact["id"]
    assert headers["webhook-id"] == payload["id"]
    with pytest.raises(WebhookVerificationError):
        _verified("whsec_" + "A" * 43 + "=", headers, body)  # another secret
    listed = await hooked.get(_url(owner, endpoint["id"], "deliveries"), headers=owner.headers)
    [delivery] = listed.json()["items"]
    assert delivery["status"] == "succeeded"
    assert delivery["event_id"] == payload["id"]
    attempts = await hooked.get(
        _url(owner, endpoint["id"], "deliveries", delivery["id"], "attempts"), headers=owner.headers
    )
    [attempt] = attempts.json()
    assert attempt["status_code"] == 200
    assert attempt["response_excerpt"] == "ok"
    shown = await hooked.get(_url(owner, endpoint["id"]), headers=owner.headers)
    assert "secret" not in shown.json()


async def test_a_receiver_that_fails_then_recovers_gets_each_event_once_after_deduplication(
    hooked: AsyncClient,
) -> None:
    owner = await new_owner(hooked)
    async with receiver() as hook:
        hook.statuses = [500, 503]  # the first two requests fail
        endpoint = await _endpoint(hooked, owner, hook.url)
        for _ in range(2):
            await create_contact(hooked, owner, name="Ada", email=unique_email())
        await deliver_all(hooked)  # both fail: retries are due in about 5 s
        assert len(hook.received) == 2
        await asyncio.sleep(6.5)
        await deliver_all(hooked)
    ids = [payload["id"] for payload in hook.bodies()]
    assert len(ids) == 4
    assert len(set(ids)) == 2  # after de-duplication by id: each event once
    listed = (await hooked.get(_url(owner, endpoint["id"], "deliveries"), headers=owner.headers)).json()
    assert {delivery["status"] for delivery in listed["items"]} == {"succeeded"}
    assert sorted(delivery["attempts"] for delivery in listed["items"]) == [2, 2]
    first = listed["items"][-1]
    attempts = await hooked.get(
        _url(owner, endpoint["id"], "deliveries", first["id"], "attempts"), headers=owner.headers
    )
    failed, succeeded = attempts.json()
    assert failed["status_code"] in (500, 503)
    assert len(failed["response_excerpt"]) == 1024  # the first bytes of the answer only
    assert succeeded["status_code"] == 200


async def test_410_disables_the_endpoint_at_once_and_mails_the_admins(
    hooked: AsyncClient, mailbox: Mailbox
) -> None:
    owner = await new_owner(hooked)
    async with receiver() as hook:
        hook.statuses = [410]
        endpoint = await _endpoint(hooked, owner, hook.url)
        await create_contact(hooked, owner, name="Ada", email=unique_email())
        await deliver_all(hooked)
        await create_contact(hooked, owner, name="Bob", email=unique_email())  # not sent: disabled
        await deliver_all(hooked)
    assert len(hook.received) == 1
    shown = (await hooked.get(_url(owner, endpoint["id"]), headers=owner.headers)).json()
    assert shown["enabled"] is False
    assert shown["disabled_reason"] == "gone"
    assert any("was disabled" in message["Subject"] for message in mailbox.to(owner.email))


async def test_test_ping_replay_and_rotation(hooked: AsyncClient) -> None:
    owner = await new_owner(hooked)
    async with receiver() as hook:
        endpoint = await _endpoint(hooked, owner, hook.url)
        ping = await hooked.post(_url(owner, endpoint["id"], "test"), headers=owner.headers)
        assert ping.status_code == 202, ping.text
        await deliver_all(hooked)
        rotated = await hooked.post(_url(owner, endpoint["id"], "rotate-secret"), headers=owner.headers)
        assert rotated.status_code == 200
        new_secret = rotated.json()["secret"]
        assert new_secret != endpoint["secret"]
        replay = await hooked.post(
            _url(owner, endpoint["id"], "deliveries", ping.json()["id"], "replay"), headers=owner.headers
        )
        assert replay.status_code == 202, replay.text
        await deliver_all(hooked)
    (first_headers, first_body), (second_headers, second_body) = hook.received
    assert _verified(endpoint["secret"], first_headers, first_body)["type"] == "webhook.test"
    # During the overlap both secrets sign: receivers on either one verify.
    assert len(second_headers["webhook-signature"].split(" ")) == 2
    assert _verified(new_secret, second_headers, second_body)["id"] == first_headers["webhook-id"]
    assert _verified(endpoint["secret"], second_headers, second_body)["data"]["endpoint_id"] == endpoint["id"]


async def test_targets_inside_the_network_are_refused(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings()) as client:  # WEBHOOK_ALLOW_PRIVATE_TARGETS off, as in production
        owner = await new_owner(client)
        for url in (
            "http://127.0.0.1:8080/hook",
            "https://127.0.0.1/hook",
            "https://10.0.0.5/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/hook",
            "https://[::ffff:127.0.0.1]/hook",
            "https://localhost/hook",
            "ftp://example.com/hook",
        ):
            refused = await client.post(_url(owner), json={"url": url}, headers=owner.headers)
            assert refused.status_code == 422, (url, refused.text)
            assert refused.json()["code"] in ("webhook_target_refused", "validation_error"), url
        listed = await client.get(_url(owner), headers=owner.headers)
        assert listed.json()["items"] == []
        unknown = await client.post(
            _url(owner), json={"url": "https://example.com/h", "event_types": ["nope"]}, headers=owner.headers
        )
        assert unknown.status_code == 422


async def test_webhooks_are_for_admins(hooked: AsyncClient, mailbox: Mailbox) -> None:
    owner = await new_owner(hooked)
    agent = await add_member(hooked, mailbox, owner, "agent")
    refused = await hooked.post(_url(agent), json={"url": "https://example.com/h"}, headers=agent.headers)
    assert refused.status_code == 403
    assert (await hooked.get(_url(agent), headers=agent.headers)).status_code == 403


async def test_a_worker_killed_mid_delivery_still_delivers(
    make_settings: Callable[..., Settings], database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(WEBHOOK_ALLOW_PRIVATE_TARGETS=True)
    async with serve(settings) as client, receiver() as hook:
        owner = await new_owner(client)
        endpoint = await _endpoint(client, owner, hook.url)
        arrived, release = asyncio.Event(), asyncio.Event()
        hook.stall = (arrived, release)  # the first request is held: its worker is killed meanwhile
        await create_contact(client, owner, name="Ada", email=unique_email())
        env = service_env(
            ENV="test",
            DATABASE_URL=database_url,
            SECRET_KEY=settings.SECRET_KEY,
            WEBHOOK_ALLOW_PRIVATE_TARGETS="true",
            WORKER_HEARTBEAT_SECONDS="0.5",
            LOG_LEVEL="WARNING",
        )
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "aisupport.cli", "worker", env=env, cwd=tmp_path, stdout=subprocess.DEVNULL
        )
        try:
            await asyncio.wait_for(arrived.wait(), 60)  # the worker is sending the delivery
        finally:
            worker.send_signal(signal.SIGKILL)
            await worker.wait()
        release.set()
        # Once its heartbeat is older than WORKER_STALLED_AFTER_SECONDS (2 s here), the job runs again.
        killed = time.monotonic()
        while len(hook.received) < 2 and time.monotonic() - killed < 30:
            await asyncio.sleep(0.25)
            await deliver_all(client)
        listed = await client.get(_url(owner, endpoint["id"], "deliveries"), headers=owner.headers)
    [delivery] = listed.json()["items"]
    assert delivery["status"] == "succeeded"
    ids = [headers["webhook-id"] for headers, _ in hook.received]
    assert len(ids) == 2  # the killed attempt's request arrived too: at least once,
    assert set(ids) == {delivery["event_id"]}  # and once after de-duplication by id
