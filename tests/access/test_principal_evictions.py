"""The principal cache across processes: what one process changes, another stops honouring at once.

Process A is an app in the test process, process B a real `aisupport serve`; both share the database,
Redis and the eviction channel. Snapshots live 300 s here, so B refusing a stale credential within a
couple of seconds can only come from A's broadcast (or, for the last test, from B flushing its cache
when its channel reconnects).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
from httpx import AsyncClient

from aisupport.core.config import RATE_LIMIT_SETTINGS, Settings
from tests.conftest import PASSWORD, Mailbox, ServiceProcess, bearer, run_jobs, running_service, serve
from tests.organizations.helpers import Person, add_member, new_owner

TTL = "300"
EVICTION_DEADLINE_SECONDS = 3.0


@dataclass
class Pair:
    a: AsyncClient
    b: httpx.AsyncClient
    service: ServiceProcess
    settings: Settings


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex}"


@pytest.fixture
def service_b(
    tmp_path: Path, database_url: str, require_redis: str, make_settings: Callable[..., Settings], prefix: str
) -> Iterator[tuple[ServiceProcess, Settings]]:
    settings = make_settings(SESSION_CACHE_TTL_SECONDS=float(TTL), RATE_LIMIT_KEY_PREFIX=prefix)
    with running_service(
        tmp_path,
        DATABASE_URL=database_url,
        REDIS_URL=require_redis,
        RATE_LIMIT_KEY_PREFIX=prefix,
        SECRET_KEY=settings.SECRET_KEY,
        SESSION_CACHE_TTL_SECONDS=TTL,
        **dict.fromkeys(RATE_LIMIT_SETTINGS, "100000/minute"),
    ) as service:
        yield service, settings


@pytest.fixture
async def pair(service_b: tuple[ServiceProcess, Settings]) -> AsyncIterator[Pair]:
    service, settings = service_b
    async with serve(settings) as a, httpx.AsyncClient(base_url=service.base_url, timeout=10) as b:
        await _wait_subscribed(a)
        yield Pair(a, b, service, settings)


async def _wait_subscribed(client: AsyncClient) -> None:
    principals = client.app.state.auth.principals  # type: ignore[attr-defined]
    await asyncio.wait_for(principals.listening.wait(), timeout=5)


async def _eventually(check: Callable[[], Awaitable[bool]]) -> float:
    """Seconds until `check` holds; fails after the deadline."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while loop.time() - started < EVICTION_DEADLINE_SECONDS:
        if await check():
            return loop.time() - started
        await asyncio.sleep(0.05)
    raise AssertionError("the other process still honours the old principal")


def _status_is(
    b: httpx.AsyncClient, path: str, headers: dict[str, str], status: int
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await b.get(path, headers=headers)).status_code == status

    return check


async def _cached_on_b(pair: Pair, person: Person, path: str = "/auth/me") -> None:
    response = await pair.b.get(path, headers=person.headers)
    assert response.status_code == 200, response.text


async def test_logout_in_one_process_ends_the_token_in_the_other(pair: Pair) -> None:
    owner = await new_owner(pair.a)
    await _cached_on_b(pair, owner)
    assert (await pair.a.post("/auth/logout", headers=owner.headers)).status_code == 204
    await _eventually(_status_is(pair.b, "/auth/me", owner.headers, 401))


async def test_revoking_a_session_in_one_process_ends_it_in_the_other(pair: Pair) -> None:
    owner = await new_owner(pair.a)
    second = await pair.a.post(
        "/auth/login", json={"email": owner.email, "password": PASSWORD, "transport": "body"}
    )
    second_headers = bearer(second.json()["access_token"])
    await _cached_on_b(pair, owner)
    sessions = (await pair.a.get("/auth/sessions", headers=second_headers)).json()["items"]
    first = next(item["id"] for item in sessions if not item["current"])
    assert (await pair.a.delete(f"/auth/sessions/{first}", headers=second_headers)).status_code == 204
    await _eventually(_status_is(pair.b, "/auth/me", owner.headers, 401))
    assert (await pair.b.get("/auth/me", headers=second_headers)).status_code == 200


async def test_a_password_reset_in_one_process_ends_every_session_in_the_other(
    pair: Pair, mailbox: Mailbox
) -> None:
    owner = await new_owner(pair.a)
    await _cached_on_b(pair, owner)
    assert (await pair.a.post("/auth/password/forgot", json={"email": owner.email})).status_code == 202
    await run_jobs(pair.a)
    token = mailbox.token_sent_to(owner.email, "pr_")
    reset = await pair.a.post(
        "/auth/password/reset", json={"token": token, "new_password": "another long passphrase"}
    )
    assert reset.status_code == 204, reset.text
    await _eventually(_status_is(pair.b, "/auth/me", owner.headers, 401))


async def test_a_role_change_in_one_process_applies_in_the_other(pair: Pair, mailbox: Mailbox) -> None:
    owner = await new_owner(pair.a)
    admin = await add_member(pair.a, mailbox, owner, "admin")
    invitations = f"/orgs/{owner.organization_id}/invitations"
    await _cached_on_b(pair, admin, invitations)  # an admin may list invitations
    demoted = await pair.a.patch(
        f"/orgs/{owner.organization_id}/members/{admin.user_id}",
        json={"role": "viewer"},
        headers=owner.headers,
    )
    assert demoted.status_code == 200, demoted.text
    await _eventually(_status_is(pair.b, invitations, admin.headers, 403))


async def test_a_removal_in_one_process_applies_in_the_other(pair: Pair, mailbox: Mailbox) -> None:
    owner = await new_owner(pair.a)
    agent = await add_member(pair.a, mailbox, owner, "agent")
    members = f"/orgs/{owner.organization_id}/members"
    await _cached_on_b(pair, agent, members)
    removed = await pair.a.delete(f"{members}/{agent.user_id}", headers=owner.headers)
    assert removed.status_code == 204, removed.text
    await _eventually(_status_is(pair.b, members, agent.headers, 401))


async def test_a_reconnected_channel_flushes_what_was_missed(
    pair: Pair, database_url: str, require_redis: str
) -> None:
    owner = await new_owner(pair.a)
    await _cached_on_b(pair, owner)
    # Revoked behind the service's back: no broadcast, so B keeps its snapshot (the TTL is 300 s) ...
    with psycopg.connect(_libpq(database_url), autocommit=True) as conn:
        conn.execute(
            "UPDATE auth_sessions SET revoked_at = now() WHERE user_id = %s", (uuid.UUID(owner.user_id),)
        )
    assert (await pair.b.get("/auth/me", headers=owner.headers)).status_code == 200
    # ... until its channel drops and reconnects, when it flushes what it may have missed.
    killed = redis.Redis.from_url(require_redis).execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    assert int(killed) >= 1
    await _eventually(_status_is(pair.b, "/auth/me", owner.headers, 401))


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")
