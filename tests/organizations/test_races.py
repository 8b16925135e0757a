"""Two real requests racing on one row end in a clean answer (2xx, 404 or 409; 403 where the first one
took the second's authority away), never a 500 (issue 9, point 5).

Each race is two requests sent at once through two clients of the same app, over several rounds: the
database, not the test, decides who goes first.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from httpx import ASGITransport, AsyncClient, Response
from psycopg import errors as pg_errors
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm.exc import StaleDataError

from aisupport.core.config import Settings
from tests.conftest import PASSWORD, TEST_CLIENT_IP, Mailbox, new_email, run_jobs, serve
from tests.organizations.helpers import (
    Person,
    add_member,
    ensure_verified,
    invite,
    login,
    new_organization,
    new_owner,
)

ROUNDS = 6
CLEAN = {200, 201, 204, 404, 409}


@pytest.fixture
async def other(client: AsyncClient) -> AsyncIterator[AsyncClient]:
    """A second client of the same app (its own connection, as a second browser would have)."""
    transport = ASGITransport(app=client.app, client=(TEST_CLIENT_IP, 50001))  # type: ignore[attr-defined]
    async with AsyncClient(transport=transport, base_url="http://testserver") as second:
        yield second


async def race(first: Awaitable[Response], second: Awaitable[Response]) -> tuple[int, int]:
    one, two = await asyncio.gather(first, second)
    return one.status_code, two.status_code


def assert_clean(statuses: tuple[int, int], allowed: set[int] = CLEAN) -> None:
    assert set(statuses) <= allowed, statuses


async def _owner_with_co_owner(client: AsyncClient, mailbox: Mailbox) -> tuple[Person, Person]:
    owner = await new_owner(client)
    co_owner = await add_member(client, mailbox, owner, "admin")
    promoted = await client.patch(
        f"/orgs/{owner.organization_id}/members/{co_owner.user_id}",
        json={"role": "owner"},
        headers=owner.headers,
    )
    assert promoted.status_code == 200
    return owner, await login(client, co_owner)


async def _members(client: AsyncClient, owner: Person) -> dict[str, str]:
    listed = await client.get(f"/orgs/{owner.organization_id}/members", headers=owner.headers)
    return {member["user_id"]: member["role"] for member in listed.json()["items"]}


async def test_a_co_owner_leaving_while_being_demoted(
    client: AsyncClient, other: AsyncClient, mailbox: Mailbox
) -> None:
    for _ in range(ROUNDS):
        owner, co_owner = await _owner_with_co_owner(client, mailbox)
        org = f"/orgs/{owner.organization_id}"
        statuses = await race(
            client.patch(f"{org}/members/{co_owner.user_id}", json={"role": "admin"}, headers=owner.headers),
            other.post(f"{org}/leave", headers=co_owner.headers),
        )
        assert_clean(statuses)
        members = await _members(client, owner)
        assert members[owner.user_id] == "owner"
        assert co_owner.user_id not in members or members[co_owner.user_id] == "admin"


async def test_two_owners_demoting_each_other(
    client: AsyncClient, other: AsyncClient, mailbox: Mailbox
) -> None:
    for _ in range(ROUNDS):
        owner, co_owner = await _owner_with_co_owner(client, mailbox)
        org = f"/orgs/{owner.organization_id}"
        statuses = await race(
            client.patch(f"{org}/members/{co_owner.user_id}", json={"role": "admin"}, headers=owner.headers),
            other.patch(f"{org}/members/{owner.user_id}", json={"role": "admin"}, headers=co_owner.headers),
        )
        # The loser was demoted by the winner: its change is now above its role (403), never a 500.
        assert_clean(statuses, CLEAN | {403})
        assert list((await _members(client, owner)).values()).count("owner") == 1


async def test_removing_a_member_while_changing_their_role_or_removing_them_again(
    client: AsyncClient, other: AsyncClient, mailbox: Mailbox
) -> None:
    owner = await new_owner(client)
    org = f"/orgs/{owner.organization_id}"
    for round_number in range(ROUNDS):
        member = await add_member(client, mailbox, owner, "agent")
        path = f"{org}/members/{member.user_id}"
        if round_number % 2:
            statuses = await race(
                client.delete(path, headers=owner.headers), other.delete(path, headers=owner.headers)
            )
            assert sorted(statuses) == [204, 404]
        else:
            statuses = await race(
                client.delete(path, headers=owner.headers),
                other.patch(path, json={"role": "viewer"}, headers=owner.headers),
            )
            assert_clean(statuses)
        assert member.user_id not in await _members(client, owner)


async def test_revoking_an_invitation_while_it_is_accepted_or_revoked(
    client: AsyncClient, other: AsyncClient, mailbox: Mailbox
) -> None:
    owner = await new_owner(client)
    org = f"/orgs/{owner.organization_id}"
    for round_number in range(ROUNDS):
        email = new_email()
        token = await invite(client, mailbox, owner, email, "agent")
        [pending] = [
            i
            for i in (await client.get(f"{org}/invitations", headers=owner.headers)).json()["items"]
            if i["email"] == email
        ]
        revoke = client.delete(f"{org}/invitations/{pending['id']}", headers=owner.headers)
        if round_number % 2:
            statuses = await race(
                revoke, other.delete(f"{org}/invitations/{pending['id']}", headers=owner.headers)
            )
            assert sorted(statuses) == [204, 404]
            continue
        accept = other.post(
            "/invitations/accept", json={"token": token, "password": PASSWORD, "transport": "body"}
        )
        revoked, accepted = await race(revoke, accept)
        # Exactly one wins: revoked (the link then is dead) or accepted (then nothing left to revoke).
        assert (revoked, accepted) in {(204, 400), (404, 201)}, (revoked, accepted)
        joined = email in {
            m["email"] for m in (await client.get(f"{org}/members", headers=owner.headers)).json()["items"]
        }
        assert joined == (accepted == 201)


async def test_revoking_a_key_twice_at_once_records_one_revocation(
    client: AsyncClient, other: AsyncClient
) -> None:
    owner = await new_owner(client)
    org = f"/orgs/{owner.organization_id}"
    for _ in range(ROUNDS):
        key = await client.post(f"{org}/api-keys", json={"name": "ci"}, headers=owner.headers)
        path = f"{org}/api-keys/{key.json()['id']}"
        statuses = await race(
            client.delete(path, headers=owner.headers), other.delete(path, headers=owner.headers)
        )
        assert statuses == (204, 204)  # revoking is idempotent
        log = await client.get(
            f"{org}/audit-log", params={"action": "api_key.revoked"}, headers=owner.headers
        )
        assert [event["target_id"] for event in log.json()["items"]].count(key.json()["id"]) == 1


async def test_updating_or_deleting_an_organization_while_it_is_deleted(
    client: AsyncClient, other: AsyncClient
) -> None:
    owner = await new_owner(client)
    for round_number in range(ROUNDS):
        organization_id = await new_organization(client, owner, f"Doomed {round_number}")
        org = f"/orgs/{organization_id}"
        slug = (await client.get(org, headers=owner.headers)).json()["slug"]
        delete = client.request("DELETE", org, json={"confirm": slug}, headers=owner.headers)
        if round_number % 2:
            statuses = await race(
                delete, other.request("DELETE", org, json={"confirm": slug}, headers=owner.headers)
            )
            assert sorted(statuses) == [204, 404]
        else:
            statuses = await race(delete, other.patch(org, json={"name": "renamed"}, headers=owner.headers))
            assert statuses[0] == 204
            assert_clean(statuses)
        assert (await client.get(org, headers=owner.headers)).status_code == 404


async def test_using_a_key_while_its_organization_is_deleted(client: AsyncClient, other: AsyncClient) -> None:
    for _ in range(ROUNDS):
        owner = await new_owner(client)
        org = f"/orgs/{owner.organization_id}"
        key = await client.post(f"{org}/api-keys", json={"name": "ci"}, headers=owner.headers)
        slug = (await client.get(org, headers=owner.headers)).json()["slug"]
        statuses = await race(
            client.request("DELETE", org, json={"confirm": slug}, headers=owner.headers),
            other.get(f"{org}/members", headers={"X-API-Key": key.json()["secret"]}),
        )
        # The key's request went first (200) or found its key gone with the organization (401).
        assert statuses[0] == 204
        assert statuses[1] in {200, 401}, statuses


async def test_accepting_two_invitations_for_one_person_at_once(
    client: AsyncClient, other: AsyncClient, mailbox: Mailbox
) -> None:
    owner = await new_owner(client)
    await ensure_verified(client, mailbox, owner)
    for round_number in range(ROUNDS):
        if round_number % 2:
            # Signed in: two invitations to one organization; one makes a member, the other is a 409.
            person = await new_owner(client)
            tokens = [
                await invite(client, mailbox, owner, person.email, role) for role in ("agent", "viewer")
            ]
            await ensure_verified(client, mailbox, person)
            statuses = await race(
                client.post("/invitations/accept", json={"token": tokens[0]}, headers=person.headers),
                other.post("/invitations/accept", json={"token": tokens[1]}, headers=person.headers),
            )
            assert sorted(statuses) == [200, 409]
        else:
            # New address, two organizations: one account is created, the other sign-up is a 409.
            email = new_email()
            second = await new_organization(client, owner, f"Twin {round_number}")
            tokens = [
                await invite(client, mailbox, owner, email, "agent"),
                await invite(client, mailbox, owner, email, "agent", second),
            ]
            body = {"password": PASSWORD, "transport": "body"}
            statuses = await race(
                client.post("/invitations/accept", json={"token": tokens[0], **body}),
                other.post("/invitations/accept", json={"token": tokens[1], **body}),
            )
            assert sorted(statuses) == [201, 409]
    await run_jobs(client)


async def test_the_net_answers_a_race_lost_elsewhere_as_409_not_500(
    make_settings: Callable[..., Settings],
) -> None:
    """Races no service handles yet (a stale row, a deadlock) are a 409 `conflict`, not a 500 or a 503."""

    async def stale() -> None:
        raise StaleDataError("UPDATE statement on table 'x' expected to update 1 row(s); 0 were matched.")

    async def deadlock() -> None:
        raise OperationalError("UPDATE x", {}, pg_errors.DeadlockDetected("deadlock detected"))

    async def down() -> None:
        raise OperationalError("SELECT 1", {}, pg_errors.AdminShutdown("terminating connection"))

    async with serve(make_settings()) as client:
        app = client.app  # type: ignore[attr-defined]
        for path, endpoint in (("/test-stale", stale), ("/test-deadlock", deadlock), ("/test-down", down)):
            app.add_api_route(path, endpoint)
        for path in ("/test-stale", "/test-deadlock"):
            response = await client.get(path)
            assert (response.status_code, response.json()["code"]) == (409, "conflict")
            assert response.headers["content-type"] == "application/problem+json"
        assert (await client.get("/test-down")).status_code == 503  # an outage stays an outage
