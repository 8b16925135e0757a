"""Two real requests racing on contacts end in one success and a clean 404 or 409, never a 500.

Each race is two requests sent at once through two clients of the same app, over several rounds: the
database, not the test, decides who goes first.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable

import pytest
from httpx import ASGITransport, AsyncClient, Response

from tests.conftest import TEST_CLIENT_IP
from tests.contacts.helpers import contacts_url, create_contact, unique_email
from tests.organizations.helpers import new_owner

ROUNDS = 5


@pytest.fixture
async def other(client: AsyncClient) -> AsyncIterator[AsyncClient]:
    """A second client of the same app (its own connection, as a second integration would have)."""
    transport = ASGITransport(app=client.app, client=(TEST_CLIENT_IP, 50002))  # type: ignore[attr-defined]
    async with AsyncClient(transport=transport, base_url="http://testserver") as second:
        yield second


async def race(first: Awaitable[Response], second: Awaitable[Response]) -> list[int]:
    one, two = await asyncio.gather(first, second)
    return sorted((one.status_code, two.status_code))


async def test_creating_one_address_twice_at_once_is_one_201_and_one_409(
    client: AsyncClient, other: AsyncClient
) -> None:
    owner = await new_owner(client)
    url = contacts_url(owner.organization_id)
    for _ in range(ROUNDS):
        email = unique_email()
        one = client.post(url, json={"email": email}, headers=owner.headers)
        two = other.post(url, json={"email": email.upper(), "name": "twin"}, headers=owner.headers)
        assert await race(one, two) == [201, 409]
        listed = await client.get(url, params={"email": email}, headers=owner.headers)
        assert len(listed.json()["items"]) == 1
    for _ in range(ROUNDS):
        external_id = unique_email("ext")
        one = client.post(url, json={"external_id": external_id}, headers=owner.headers)
        two = other.post(url, json={"external_id": external_id}, headers=owner.headers)
        assert await race(one, two) == [201, 409]


async def test_giving_two_contacts_one_address_at_once_is_one_200_and_one_409(
    client: AsyncClient, other: AsyncClient
) -> None:
    owner = await new_owner(client)
    url = contacts_url(owner.organization_id)
    for _ in range(ROUNDS):
        first = await create_contact(client, owner)
        second = await create_contact(client, owner)
        email = unique_email()
        one = client.patch(f"{url}/{first['id']}", json={"email": email}, headers=owner.headers)
        two = other.patch(f"{url}/{second['id']}", json={"email": email}, headers=owner.headers)
        assert await race(one, two) == [200, 409]


async def test_merging_a_pair_both_ways_at_once_keeps_one(client: AsyncClient, other: AsyncClient) -> None:
    owner = await new_owner(client)
    url = contacts_url(owner.organization_id)
    for _ in range(ROUNDS):
        a = await create_contact(client, owner, email=unique_email())
        b = await create_contact(client, owner, email=unique_email())
        one = client.post(
            f"{url}/{a['id']}/merge", json={"merged_contact_id": b["id"]}, headers=owner.headers
        )
        two = other.post(f"{url}/{b['id']}/merge", json={"merged_contact_id": a["id"]}, headers=owner.headers)
        assert await race(one, two) == [200, 404]
        found = [
            (await client.get(f"{url}/{contact['id']}", headers=owner.headers)).status_code
            for contact in (a, b)
        ]
        assert sorted(found) == [200, 404]


async def test_erasing_and_merging_one_contact_at_once_is_one_success(
    client: AsyncClient, other: AsyncClient
) -> None:
    owner = await new_owner(client)
    url = contacts_url(owner.organization_id)
    for _ in range(ROUNDS):
        kept = await create_contact(client, owner)
        target = await create_contact(client, owner, email=unique_email())
        erase = client.post(f"{url}/{target['id']}/erase", headers=owner.headers)
        merge = other.post(
            f"{url}/{kept['id']}/merge", json={"merged_contact_id": target["id"]}, headers=owner.headers
        )
        statuses = await race(erase, merge)
        # Erased first: the merge finds it erased (409). Merged first: it is gone (404).
        assert statuses in ([204, 409], [200, 404]), statuses
    for _ in range(ROUNDS):
        target = await create_contact(client, owner)
        one = client.post(f"{url}/{target['id']}/erase", headers=owner.headers)
        two = other.post(f"{url}/{target['id']}/erase", headers=owner.headers)
        assert await race(one, two) == [204, 409]
