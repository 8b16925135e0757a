"""Free organizations bring no fresh invitation allowance: invitations are limited per inviter and per
address across organizations, and organization creation per person and per address (issue 9, point 4)."""

from __future__ import annotations

from collections.abc import Callable

from httpx import AsyncClient

from aisupport.core.config import Settings
from tests.conftest import Mailbox, new_email, serve
from tests.organizations.helpers import Person, ensure_verified, new_organization, new_owner


async def _invite(client: AsyncClient, person: Person, organization_id: str) -> int:
    response = await client.post(
        f"/orgs/{organization_id}/invitations",
        json={"email": new_email(), "role": "agent"},
        headers=person.headers,
    )
    if response.status_code == 429:
        assert response.json()["code"] == "rate_limited"
        assert int(response.headers["Retry-After"]) >= 1
    return response.status_code


async def test_invitations_per_inviter_count_across_all_their_organizations(
    make_settings: Callable[..., Settings], mailbox: Mailbox
) -> None:
    async with serve(make_settings(RATE_LIMIT_INVITATIONS_PER_USER="3/hour")) as client:
        spammer = await new_owner(client)
        await ensure_verified(client, mailbox, spammer)
        organizations = [spammer.organization_id] + [
            await new_organization(client, spammer, f"Relay {n}") for n in range(3)
        ]
        answers = [await _invite(client, spammer, org) for org in organizations]
        assert answers == [201, 201, 201, 429]
        # Someone else, from the same address, is not held back by this inviter's count.
        colleague = await new_owner(client)
        await ensure_verified(client, mailbox, colleague)
        assert await _invite(client, colleague, colleague.organization_id) == 201


async def test_invitations_per_address_count_across_inviters(
    make_settings: Callable[..., Settings], mailbox: Mailbox
) -> None:
    async with serve(make_settings(RATE_LIMIT_INVITATIONS_PER_IP="3/hour")) as client:
        inviters = [await new_owner(client) for _ in range(2)]
        for inviter in inviters:
            await ensure_verified(client, mailbox, inviter)
        answers = [
            await _invite(client, inviters[0], inviters[0].organization_id),
            await _invite(client, inviters[1], inviters[1].organization_id),
            await _invite(client, inviters[0], inviters[0].organization_id),
            await _invite(client, inviters[1], inviters[1].organization_id),
        ]
        assert answers == [201, 201, 201, 429]
    # Another address is counted apart.
    async with serve(
        make_settings(RATE_LIMIT_INVITATIONS_PER_IP="3/hour"), client_ip="198.51.100.7"
    ) as elsewhere:
        inviter = await new_owner(elsewhere)
        await ensure_verified(elsewhere, mailbox, inviter)
        assert await _invite(elsewhere, inviter, inviter.organization_id) == 201


async def test_organization_creation_is_limited_per_person_and_per_address(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        RATE_LIMIT_ORG_CREATION_PER_USER="2/hour", RATE_LIMIT_ORG_CREATION_PER_IP="3/hour"
    )
    async with serve(settings) as client:
        first = await new_owner(client)  # signing up makes an organization, not counted here
        created = [
            (await client.post("/orgs", json={"name": f"Org {n}"}, headers=first.headers)).status_code
            for n in range(3)
        ]
        assert created == [201, 201, 429]
        second = await new_owner(client)
        by_second = [
            (await client.post("/orgs", json={"name": f"Org {n}"}, headers=second.headers)).status_code
            for n in range(2)
        ]
        assert by_second == [201, 429]  # the address's third organization, then its fourth
        refused = await client.post("/orgs", json={"name": "again"}, headers=second.headers)
        assert refused.json()["code"] == "rate_limited"
        mine = await client.get("/orgs", headers=first.headers)
        assert len(mine.json()["items"]) == 3  # the refused one was not created
