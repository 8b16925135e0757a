"""Contacts through the HTTP API: create, read, update, list with filters and pages, permissions,
isolation, bad input (issue 11, point 1)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from httpx import AsyncClient

from tests.conftest import Mailbox
from tests.contacts.helpers import api_key, contacts_url, create_contact, unique_email
from tests.organizations.helpers import Person, add_member, new_owner


async def _all(client: AsyncClient, person: Person, **params: Any) -> list[dict[str, Any]]:
    """Every page of the list with `params`, walked with small pages."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await client.get(contacts_url(person.organization_id), params=query, headers=person.headers)
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return items


async def test_a_contact_is_created_read_and_updated(client: AsyncClient) -> None:
    owner = await new_owner(client)
    email = unique_email("Ada")
    created = await create_contact(
        client,
        owner,
        name="Ada Lovelace",
        email=email,
        phone="+44 20 7946 0958",
        external_id="crm-1",
        custom_attributes={"plan": "pro", "seats": 5, "tags": ["vip"]},
        last_seen_at="2026-11-01T10:00:00Z",
    )
    assert created["name"] == "Ada Lovelace"
    assert created["custom_attributes"] == {"plan": "pro", "seats": 5, "tags": ["vip"]}
    assert created["erased_at"] is None
    url = f"{contacts_url(owner.organization_id)}/{created['id']}"
    assert (await client.get(url, headers=owner.headers)).json() == created

    updated = await client.patch(
        url, json={"phone": None, "custom_attributes": {"plan": "team"}}, headers=owner.headers
    )
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert body["phone"] is None
    assert body["custom_attributes"] == {"plan": "team"}
    assert body["name"] == "Ada Lovelace"  # fields not sent stay
    assert body["updated_at"] > created["updated_at"]
    assert (await client.get(url, headers=owner.headers)).json() == body


async def test_a_contact_may_be_anonymous(client: AsyncClient) -> None:
    owner = await new_owner(client)
    created = await create_contact(client, owner)
    assert created["email"] is None
    assert created["custom_attributes"] == {}


async def test_email_is_unique_in_any_case_and_external_id_too(client: AsyncClient) -> None:
    owner = await new_owner(client)
    email = unique_email()
    first = await create_contact(client, owner, email=email, external_id="x-1")
    url = contacts_url(owner.organization_id)
    same_email = await client.post(url, json={"email": email.upper()}, headers=owner.headers)
    assert same_email.status_code == 409
    assert same_email.json()["code"] == "contact_exists"
    assert "email" in same_email.json()["detail"]
    same_id = await client.post(url, json={"external_id": "x-1"}, headers=owner.headers)
    assert same_id.status_code == 409
    assert "external_id" in same_id.json()["detail"]
    # An update onto a taken address is refused and changes nothing.
    second = await create_contact(client, owner, name="Second")
    taken = await client.patch(
        f"{url}/{second['id']}", json={"name": "Renamed", "email": email.title()}, headers=owner.headers
    )
    assert taken.status_code == 409
    assert (await client.get(f"{url}/{second['id']}", headers=owner.headers)).json()["name"] == "Second"
    # Another organization may hold the same address and external id.
    other = await new_owner(client)
    await create_contact(client, other, email=email, external_id="x-1")
    assert len(await _all(client, owner, email=first["email"])) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-address"},
        {"name": ""},
        {"name": "x" * 201},
        {"phone": "call me"},
        {"external_id": ""},
        {"external_id": "x" * 256},
        {"custom_attributes": ["not", "an", "object"]},
        {"custom_attributes": {"a": {"b": {"c": {"d": {"e": 1}}}}}},  # deeper than 4 levels
        {"custom_attributes": {f"k{i}": i for i in range(201)}},
        {"custom_attributes": {"big": "x" * 17000}},
        {"custom_attributes": {"nul": "a\x00b"}},
        {"last_seen_at": "2026-01-01"},
        {"unknown": 1},
        {"name": "a\x00b"},
    ],
)
async def test_bad_input_is_a_problem_and_changes_nothing(client: AsyncClient, body: dict[str, Any]) -> None:
    owner = await new_owner(client)
    contact = await create_contact(client, owner, name="Kept")
    url = contacts_url(owner.organization_id)
    created = await client.post(url, json=body, headers=owner.headers)
    assert created.status_code == 422, created.text
    assert created.headers["content-type"] == "application/problem+json"
    patched = await client.patch(f"{url}/{contact['id']}", json=body, headers=owner.headers)
    assert patched.status_code == 422, patched.text
    assert await _all(client, owner) == [contact]


async def test_custom_attributes_cannot_be_nulled_and_bad_filters_are_refused(client: AsyncClient) -> None:
    owner = await new_owner(client)
    contact = await create_contact(client, owner)
    url = contacts_url(owner.organization_id)
    nulled = await client.patch(
        f"{url}/{contact['id']}", json={"custom_attributes": None}, headers=owner.headers
    )
    assert nulled.status_code == 422
    for params in ({"q": ""}, {"created_after": "yesterday"}, {"limit": 0}, {"cursor": "bm90LWlzc3VlZA"}):
        refused = await client.get(url, params=params, headers=owner.headers)
        assert refused.status_code in (400, 422), params
        assert refused.headers["content-type"] == "application/problem+json"
    missing = await client.get(f"{url}/{uuid.uuid4()}", headers=owner.headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "contact_not_found"
    assert (await client.get(f"{url}/not-a-uuid", headers=owner.headers)).status_code == 422


async def test_filters_narrow_the_list(client: AsyncClient) -> None:
    owner = await new_owner(client)
    ada = await create_contact(client, owner, name="Ada Lovelace", email=unique_email("ada"))
    alan = await create_contact(client, owner, name="Alan Turing", email=unique_email("turing"))
    grace = await create_contact(client, owner, name="Grace Hopper", email=unique_email("amazing"))
    odd = await create_contact(client, owner, name="100%_sure", external_id="crm-42")

    def ids(items: list[dict[str, Any]]) -> list[str]:
        return [item["id"] for item in items]

    assert ids(await _all(client, owner)) == ids([ada, alan, grace, odd])
    assert ids(await _all(client, owner, q="a")) == ids([ada, alan, grace])  # name or email prefix
    assert ids(await _all(client, owner, q="AL")) == ids([alan])
    assert ids(await _all(client, owner, q="turing")) == ids([alan])  # the email's prefix
    assert ids(await _all(client, owner, q="lovelace")) == []  # a prefix, not a substring
    assert ids(await _all(client, owner, q="100%_")) == ids([odd])  # % and _ are literal
    assert ids(await _all(client, owner, q="1%")) == []
    assert ids(await _all(client, owner, email=grace["email"].upper())) == ids([grace])
    assert ids(await _all(client, owner, external_id="crm-42")) == ids([odd])
    assert ids(await _all(client, owner, external_id="CRM-42")) == []
    middle = {"created_after": alan["created_at"], "created_before": odd["created_at"]}
    assert ids(await _all(client, owner, **middle)) == ids([alan, grace])
    assert ids(await _all(client, owner, q="a", created_after=grace["created_at"])) == ids([grace])
    emile = await create_contact(client, owner, name="Émile Zola")
    assert ids(await _all(client, owner, q="éMI")) == ids([emile])  # any case, beyond ASCII too


async def test_pages_are_stable_while_contacts_are_added(client: AsyncClient) -> None:
    owner = await new_owner(client)
    first = [await create_contact(client, owner, name=f"c{i}") for i in range(5)]
    url = contacts_url(owner.organization_id)
    page = (await client.get(url, params={"limit": 2}, headers=owner.headers)).json()
    seen = page["items"]
    added = [await create_contact(client, owner, name=f"new{i}") for i in range(3)]
    cursor = page["next_cursor"]
    while cursor:
        page = (await client.get(url, params={"limit": 2, "cursor": cursor}, headers=owner.headers)).json()
        seen += page["items"]
        cursor = page["next_cursor"]
    assert [item["id"] for item in seen] == [item["id"] for item in first + added]
    # A cursor of another organization's list is refused.
    other = await new_owner(client)
    page = (await client.get(url, params={"limit": 1}, headers=owner.headers)).json()
    foreign = await client.get(
        contacts_url(other.organization_id), params={"cursor": page["next_cursor"]}, headers=other.headers
    )
    assert foreign.status_code == 400


async def test_roles_and_api_keys(client: AsyncClient, mailbox: Mailbox) -> None:
    owner = await new_owner(client)
    viewer = await add_member(client, mailbox, owner, "viewer")
    agent = await add_member(client, mailbox, owner, "agent")
    admin = await add_member(client, mailbox, owner, "admin")
    url = contacts_url(owner.organization_id)
    contact = await create_contact(client, owner, name="Someone")
    item = f"{url}/{contact['id']}"

    assert (await client.get(item, headers=viewer.headers)).status_code == 200
    assert (await client.get(url, headers=viewer.headers)).status_code == 200
    refused = await client.post(url, json={"name": "x"}, headers=viewer.headers)
    assert refused.status_code == 403
    assert (await client.patch(item, json={"name": "x"}, headers=viewer.headers)).status_code == 403

    by_agent = await create_contact(client, owner, headers=agent.headers, name="By agent")
    assert (await client.patch(item, json={"name": "Agent"}, headers=agent.headers)).status_code == 200
    merged = await client.post(
        f"{item}/merge", json={"merged_contact_id": by_agent["id"]}, headers=agent.headers
    )
    assert merged.status_code == 200
    assert (await client.post(f"{item}/erase", headers=agent.headers)).status_code == 403

    agent_key = await api_key(client, owner, "agent")
    viewer_key = await api_key(client, owner, "viewer")
    admin_key = await api_key(client, owner, "admin")
    await create_contact(client, owner, headers=agent_key, name="By key")
    assert (await client.post(url, json={}, headers=viewer_key)).status_code == 403
    assert (await client.get(url, headers=viewer_key)).status_code == 200
    assert (await client.post(f"{item}/erase", headers=agent_key)).status_code == 403
    erasable = await create_contact(client, owner, name="Erase me")
    assert (await client.post(f"{url}/{erasable['id']}/erase", headers=admin_key)).status_code == 204
    assert (await client.post(f"{item}/erase", headers=admin.headers)).status_code == 204


async def test_another_organizations_contacts_are_404(client: AsyncClient) -> None:
    owner = await new_owner(client)
    other = await new_owner(client)
    theirs = await create_contact(client, other, name="Theirs", email=unique_email())
    mine = await create_contact(client, owner, name="Mine")
    url = contacts_url(owner.organization_id)
    for method, path, body in [
        ("GET", f"{url}/{theirs['id']}", None),
        ("PATCH", f"{url}/{theirs['id']}", {"name": "stolen"}),
        ("POST", f"{url}/{theirs['id']}/merge", {"merged_contact_id": mine["id"]}),
        ("POST", f"{url}/{mine['id']}/merge", {"merged_contact_id": theirs["id"]}),
        ("POST", f"{url}/{theirs['id']}/erase", None),
        ("GET", f"{contacts_url(other.organization_id)}/{theirs['id']}", None),  # not a member there
    ]:
        response = await client.request(method, path, json=body, headers=owner.headers)
        assert response.status_code == 404, (method, path, response.text)
    assert (await client.get(f"{url}/{mine['id']}", headers=owner.headers)).json() == mine
    theirs_now = await client.get(
        f"{contacts_url(other.organization_id)}/{theirs['id']}", headers=other.headers
    )
    assert theirs_now.json() == theirs
    assert await _all(client, owner, email=theirs["email"]) == []
