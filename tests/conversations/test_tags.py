"""The organization's tags (decision 0043): agents tag freely and the names join the vocabulary; admins
create, rename, describe and delete tags, and renames and deletions reach every conversation."""

from __future__ import annotations

import asyncio
from typing import Any

from httpx import AsyncClient

from tests.conftest import Mailbox
from tests.contacts.helpers import api_key, create_contact, unique_email
from tests.conversations.helpers import created
from tests.organizations.helpers import Person, add_member, new_owner


async def _conversation(client: AsyncClient, owner: Person, tags: list[str]) -> dict[str, Any]:
    inbox = await created(client, owner, "inboxes", {"name": "API", "kind": "api"})
    contact = await create_contact(client, owner, name="Ada", email=unique_email())
    body = {"inbox_id": inbox["id"], "contact_id": contact["id"], "tags": tags}
    return await created(client, owner, "conversations", body)


async def _tags(client: AsyncClient, person: Person) -> dict[str, dict[str, Any]]:
    answer = await client.get(f"/orgs/{person.organization_id}/tags?limit=100", headers=person.headers)
    assert answer.status_code == 200, answer.text
    return {tag["name"]: tag for tag in answer.json()["items"]}


async def _read(client: AsyncClient, person: Person, conversation: dict[str, Any]) -> dict[str, Any]:
    url = f"/orgs/{person.organization_id}/conversations/{conversation['id']}"
    answer = await client.get(url, headers=person.headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_tags_applied_by_agents_join_the_vocabulary(client: AsyncClient, mailbox: Mailbox) -> None:
    owner = await new_owner(client)
    agent = await add_member(client, mailbox, owner, "agent")
    conversation = await _conversation(client, owner, ["billing"])
    changed = await client.patch(
        f"/orgs/{owner.organization_id}/conversations/{conversation['id']}",
        json={"tags": ["billing", "vip"]},
        headers=agent.headers,
    )
    assert changed.status_code == 200, changed.text
    assert set(await _tags(client, agent)) == {"billing", "vip"}
    # Creating a tag is for admins; agents and viewers read the list.
    refused = await client.post(
        f"/orgs/{owner.organization_id}/tags", json={"name": "x"}, headers=agent.headers
    )
    assert refused.status_code == 403
    assert "x" not in await _tags(client, owner)
    # Other organizations see none of them.
    assert await _tags(client, await new_owner(client)) == {}


async def test_admins_create_and_describe_tags(client: AsyncClient) -> None:
    owner = await new_owner(client)
    url = f"/orgs/{owner.organization_id}/tags"
    tag = await created(client, owner, "tags", {"name": "urgent-refund", "color": "#ff0000"})
    assert (tag["name"], tag["color"], tag["description"]) == ("urgent-refund", "#ff0000", None)
    taken = await client.post(url, json={"name": "urgent-refund"}, headers=owner.headers)
    assert taken.status_code == 409
    assert taken.json()["code"] == "tag_name_taken"
    for bad in ({"name": "two words"}, {"name": ""}, {"name": "x" * 51}, {"name": "x", "color": "red"}):
        answer = await client.post(url, json=bad, headers=owner.headers)
        assert answer.status_code == 422, bad
        assert answer.headers["content-type"] == "application/problem+json"
    described = await client.patch(
        f"{url}/{tag['id']}",
        json={"description": "Refunds over 500 EUR", "color": None},
        headers=owner.headers,
    )
    assert described.status_code == 200, described.text
    assert (described.json()["description"], described.json()["color"]) == ("Refunds over 500 EUR", None)
    assert list(await _tags(client, owner)) == ["urgent-refund"]
    # An admin API key manages tags too (provisioning an integration).
    key = await api_key(client, owner, "admin")
    assert (await client.post(url, json={"name": "from-key"}, headers=key)).status_code == 201


async def test_a_rename_reaches_every_conversation(client: AsyncClient) -> None:
    owner = await new_owner(client)
    first = await _conversation(client, owner, ["billing", "vip"])
    second = await _conversation(client, owner, ["vip"])
    untouched = await _conversation(client, owner, ["other"])
    tag = (await _tags(client, owner))["vip"]
    url = f"/orgs/{owner.organization_id}/tags/{tag['id']}"

    taken = await client.patch(url, json={"name": "billing"}, headers=owner.headers)
    assert taken.status_code == 409
    assert (await _read(client, owner, first))["tags"] == ["billing", "vip"]  # nothing changed

    renamed = await client.patch(url, json={"name": "priority-customer"}, headers=owner.headers)
    assert renamed.status_code == 200, renamed.text
    assert (await _read(client, owner, first))["tags"] == ["billing", "priority-customer"]
    assert (await _read(client, owner, second))["tags"] == ["priority-customer"]
    assert (await _read(client, owner, first))["version"] == first["version"] + 1  # the ETag moves
    assert (await _read(client, owner, untouched))["version"] == untouched["version"]
    assert set(await _tags(client, owner)) == {"billing", "priority-customer", "other"}
    audit = await client.get(f"/orgs/{owner.organization_id}/audit-log", headers=owner.headers)
    renames = [event for event in audit.json()["items"] if event["action"] == "tag.renamed"]
    assert renames[0]["details"] == {"from": "vip", "to": "priority-customer", "conversations": 2}


async def test_a_deleted_tag_leaves_every_conversation(client: AsyncClient) -> None:
    owner = await new_owner(client)
    conversation = await _conversation(client, owner, ["billing", "vip"])
    tag = (await _tags(client, owner))["vip"]
    url = f"/orgs/{owner.organization_id}/tags/{tag['id']}"
    assert (await client.delete(url, headers=owner.headers)).status_code == 204
    assert (await _read(client, owner, conversation))["tags"] == ["billing"]
    assert (await client.get(url, headers=owner.headers)).status_code == 404
    assert (await client.delete(url, headers=owner.headers)).status_code == 404
    # Applied again, the name comes back as a new tag.
    again = await client.patch(
        f"/orgs/{owner.organization_id}/conversations/{conversation['id']}",
        json={"tags": ["vip"]},
        headers=owner.headers,
    )
    assert again.status_code == 200
    assert (await _tags(client, owner))["vip"]["id"] != tag["id"]


async def test_tagging_racing_a_rename_and_a_deletion_stays_consistent(client: AsyncClient) -> None:
    owner = await new_owner(client)
    conversations = [await _conversation(client, owner, ["old"]) for _ in range(3)]
    tag = (await _tags(client, owner))["old"]
    base = f"/orgs/{owner.organization_id}"
    answers = await asyncio.gather(
        client.patch(f"{base}/tags/{tag['id']}", json={"name": "new"}, headers=owner.headers),
        *(
            client.patch(
                f"{base}/conversations/{conversation['id']}",
                json={"tags": ["old", "x"]},
                headers=owner.headers,
            )
            for conversation in conversations
        ),
    )
    assert all(answer.status_code == 200 for answer in answers), [answer.text for answer in answers]
    vocabulary = await _tags(client, owner)
    for conversation in conversations:
        # Whatever the order, every name a conversation carries is one of the organization's tags.
        assert set((await _read(client, owner, conversation))["tags"]) <= set(vocabulary)
    deleted, *tagged = await asyncio.gather(
        client.delete(f"{base}/tags/{vocabulary['x']['id']}", headers=owner.headers),
        *(
            client.patch(
                f"{base}/conversations/{conversation['id']}", json={"tags": ["x"]}, headers=owner.headers
            )
            for conversation in conversations
        ),
    )
    assert deleted.status_code == 204
    assert all(answer.status_code == 200 for answer in tagged)
    vocabulary = await _tags(client, owner)
    for conversation in conversations:
        assert set((await _read(client, owner, conversation))["tags"]) <= set(vocabulary)
