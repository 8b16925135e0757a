"""Conversations and their messages through the HTTP API (issue 11, points 4 and 5): numbering under
concurrency, ETag and If-Match, state changes and their activity messages, notes, assignment rules,
isolation, bad input, and what a contact's merge or erasure does to conversations."""

from __future__ import annotations

import asyncio
from typing import Any

from httpx import AsyncClient

from tests.conftest import Mailbox
from tests.contacts.helpers import api_key, create_contact, unique_email
from tests.conversations.helpers import created
from tests.conversations.timers import inbox_with_policy, open_conversation
from tests.organizations.helpers import Person, add_member, new_owner


async def _setup(client: AsyncClient, owner: Person) -> dict[str, str]:
    inbox = await created(client, owner, "inboxes", {"name": "API", "kind": "api"})
    contact = await create_contact(client, owner, name="Ada", email=unique_email())
    return {"inbox_id": inbox["id"], "contact_id": contact["id"]}


def _url(person: Person, *parts: str) -> str:
    return "/".join([f"/orgs/{person.organization_id}/conversations", *parts])


async def _open(client: AsyncClient, person: Person, refs: dict[str, str], **extra: Any) -> dict[str, Any]:
    return await created(client, person, "conversations", {**refs, **extra})


async def _messages(client: AsyncClient, person: Person, conversation_id: str) -> list[dict[str, Any]]:
    """Every message, oldest first (walked back with small pages)."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await client.get(
            _url(person, conversation_id, "messages"), params=params, headers=person.headers
        )
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return items[::-1]


async def test_numbers_are_sequential_per_organization_under_concurrency(client: AsyncClient) -> None:
    owner, other = await new_owner(client), await new_owner(client)
    refs, other_refs = await _setup(client, owner), await _setup(client, other)
    answers = await asyncio.gather(
        *(client.post(_url(owner), json=refs, headers=owner.headers) for _ in range(20)),
        *(client.post(_url(other), json=other_refs, headers=other.headers) for _ in range(3)),
    )
    assert all(answer.status_code == 201 for answer in answers), [a.text for a in answers]
    assert sorted(answer.json()["number"] for answer in answers[:20]) == list(range(1, 21))
    assert sorted(answer.json()["number"] for answer in answers[20:]) == [1, 2, 3]


async def test_etag_and_if_match(client: AsyncClient) -> None:
    owner = await new_owner(client)
    conversation = await _open(client, owner, await _setup(client, owner), subject="Help")
    url = _url(owner, conversation["id"])
    read = await client.get(url, headers=owner.headers)
    assert read.headers["ETag"] == '"1"'
    stale = await client.patch(url, json={"priority": "high"}, headers={**owner.headers, "If-Match": '"7"'})
    assert stale.status_code == 412
    assert stale.json()["code"] == "precondition_failed"
    assert (await client.get(url, headers=owner.headers)).json() == read.json()  # nothing changed

    first, second = await asyncio.gather(
        client.patch(url, json={"priority": "high"}, headers={**owner.headers, "If-Match": '"1"'}),
        client.patch(url, json={"priority": "low"}, headers={**owner.headers, "If-Match": '"1"'}),
    )
    assert sorted([first.status_code, second.status_code]) == [200, 412]
    winner = first if first.status_code == 200 else second
    assert winner.headers["ETag"] == '"2"'
    # Without If-Match the change is made whatever the version.
    free = await client.patch(url, json={"subject": "Other"}, headers=owner.headers)
    assert free.status_code == 200
    assert free.json()["version"] == 3


async def test_state_changes_write_activity_naming_who(client: AsyncClient, mailbox: Mailbox) -> None:
    owner = await new_owner(client)
    agent = await add_member(client, mailbox, owner, "agent")
    conversation = await _open(client, owner, await _setup(client, owner))
    url = _url(owner, conversation["id"])
    changed = await client.patch(
        url,
        json={"status": "pending", "priority": "urgent", "assignee_id": agent.user_id, "tags": ["billing"]},
        headers=agent.headers,
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["status"], body["priority"], body["assignee_id"], body["tags"]) == (
        "pending",
        "urgent",
        agent.user_id,
        ["billing"],
    )
    activity = [m for m in await _messages(client, owner, conversation["id"]) if m["kind"] == "activity"]
    assert len(activity) == 4
    assert all(m["author_id"] == agent.user_id and agent.user_id in m["body"] for m in activity)
    assert all(m["private"] for m in activity)
    mine = await client.get(_url(owner), params={"assignee": "me"}, headers=agent.headers)
    assert [c["id"] for c in mine.json()["items"]] == [conversation["id"]]
    nobody = await client.get(_url(owner), params={"assignee": "unassigned"}, headers=agent.headers)
    assert nobody.json()["items"] == []
    # A member who leaves leaves their conversations unassigned (and in the organization).
    removed = await client.delete(
        f"/orgs/{owner.organization_id}/members/{agent.user_id}", headers=owner.headers
    )
    assert removed.status_code == 204, removed.text
    left = (await client.get(url, headers=owner.headers)).json()
    assert left["assignee_id"] is None
    assert left["status"] == "pending"


async def test_outgoing_sets_first_response_once_and_incoming_reopens(client: AsyncClient) -> None:
    owner = await new_owner(client)
    conversation = await _open(
        client, owner, await _setup(client, owner), message={"kind": "incoming", "body": "Hello?"}
    )
    assert conversation["last_message_at"] is not None
    assert conversation["first_response_at"] is None
    messages_url = _url(owner, conversation["id"], "messages")
    for text in ("Hi!", "Anything else?"):
        sent = await client.post(messages_url, json={"kind": "outgoing", "body": text}, headers=owner.headers)
        assert sent.status_code == 201, sent.text
        if text == "Hi!":
            first = (await client.get(_url(owner, conversation["id"]), headers=owner.headers)).json()
    after = (await client.get(_url(owner, conversation["id"]), headers=owner.headers)).json()
    assert after["first_response_at"] == first["first_response_at"] is not None

    for state in ("resolved", "snoozed"):
        body: dict[str, Any] = {"status": state}
        if state == "snoozed":
            body["snoozed_until"] = "2099-01-01T00:00:00Z"
        assert (
            await client.patch(_url(owner, conversation["id"]), json=body, headers=owner.headers)
        ).is_success
        incoming = await client.post(
            messages_url, json={"kind": "incoming", "body": "Again"}, headers=owner.headers
        )
        assert incoming.status_code == 201
        now = (await client.get(_url(owner, conversation["id"]), headers=owner.headers)).json()
        assert now["status"] == "open"
        assert now["snoozed_until"] is None
        assert now["resolved_at"] is None
    assert now["reopened_count"] == 2
    reopened = [m for m in await _messages(client, owner, conversation["id"]) if "reopened" in m["body"]]
    assert len(reopened) == 2
    assert all(m["kind"] == "activity" for m in reopened)


async def test_notes_are_private_and_bodies_bounded(client: AsyncClient) -> None:
    owner = await new_owner(client)
    conversation = await _open(client, owner, await _setup(client, owner))
    messages_url = _url(owner, conversation["id"], "messages")
    note = await client.post(messages_url, json={"kind": "note", "body": "internal"}, headers=owner.headers)
    reply = await client.post(
        messages_url, json={"kind": "outgoing", "body": "public"}, headers=owner.headers
    )
    assert note.json()["private"] is True
    assert reply.json()["private"] is False
    for bad in (
        {"kind": "activity", "body": "forged"},
        {"kind": "outgoing", "body": "x" * 65537},
        {"kind": "outgoing", "body": ""},
    ):
        refused = await client.post(messages_url, json=bad, headers=owner.headers)
        assert refused.status_code == 422
        assert refused.headers["content-type"].startswith("application/problem+json")
    assert len(await _messages(client, owner, conversation["id"])) == 2


async def test_assignee_must_be_an_agent_or_above(client: AsyncClient, mailbox: Mailbox) -> None:
    owner = await new_owner(client)
    viewer = await add_member(client, mailbox, owner, "viewer")
    stranger = await new_owner(client)
    conversation = await _open(client, owner, await _setup(client, owner))
    url = _url(owner, conversation["id"])
    for user_id in (viewer.user_id, stranger.user_id):
        refused = await client.patch(url, json={"assignee_id": user_id}, headers=owner.headers)
        assert refused.status_code == 422
        assert refused.json()["code"] == "assignee_not_an_agent"
    assert (await client.get(url, headers=owner.headers)).json() == conversation
    # Viewers read, but do not work conversations.
    assert (await client.get(url, headers=viewer.headers)).status_code == 200
    assert (await client.patch(url, json={"priority": "low"}, headers=viewer.headers)).status_code == 403
    agent_key = await api_key(client, owner, "agent")
    assert (await client.patch(url, json={"priority": "low"}, headers=agent_key)).status_code == 200


async def test_other_organizations_ids_are_not_found(client: AsyncClient) -> None:
    owner, other = await new_owner(client), await new_owner(client)
    refs, other_refs = await _setup(client, owner), await _setup(client, other)
    conversation = await _open(client, owner, refs)
    assert (await client.get(_url(other, conversation["id"]), headers=other.headers)).status_code == 404
    patched = await client.patch(
        _url(other, conversation["id"]), json={"priority": "low"}, headers=other.headers
    )
    assert patched.status_code == 404
    for mixed in (
        {**refs, "inbox_id": other_refs["inbox_id"]},
        {**refs, "contact_id": other_refs["contact_id"]},
    ):
        refused = await client.post(_url(owner), json=mixed, headers=owner.headers)
        assert refused.status_code == 422
        assert refused.json()["code"] == "unknown_reference"
    listed = await client.get(_url(owner), headers=owner.headers)
    assert [c["id"] for c in listed.json()["items"]] == [conversation["id"]]


async def test_bad_input_changes_nothing(client: AsyncClient) -> None:
    owner = await new_owner(client)
    conversation = await _open(client, owner, await _setup(client, owner))
    url = _url(owner, conversation["id"])
    for bad in (
        {"status": "closed"},
        {"status": None},
        {"priority": "meh"},
        {"tags": ["a b"]},
        {"tags": [f"t{i}" for i in range(21)]},
        {"status": "snoozed"},
        {"status": "snoozed", "snoozed_until": "2001-01-01T00:00:00Z"},
        {"custom_attributes": {"a": {"b": {"c": {"d": {"e": 1}}}}}},
        {"team_id": "00000000-0000-0000-0000-000000000000"},
    ):
        refused = await client.patch(url, json=bad, headers=owner.headers)
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json")
    assert (await client.get(url, headers=owner.headers)).json() == conversation
    assert (
        await client.patch(url, json={"priority": "low"}, headers={**owner.headers, "If-Match": "x"})
    ).status_code == 422


async def test_contact_merge_moves_and_erase_empties(client: AsyncClient) -> None:
    owner = await new_owner(client)
    refs = await _setup(client, owner)
    kept = await create_contact(client, owner, name="Kept", email=unique_email())
    conversation = await _open(client, owner, refs, message={"kind": "incoming", "body": "my secret"})
    merged = await client.post(
        f"/orgs/{owner.organization_id}/contacts/{kept['id']}/merge",
        json={"merged_contact_id": refs["contact_id"]},
        headers=owner.headers,
    )
    assert merged.status_code == 200, merged.text
    moved = (await client.get(_url(owner, conversation["id"]), headers=owner.headers)).json()
    assert moved["contact_id"] == kept["id"]

    erased = await client.post(
        f"/orgs/{owner.organization_id}/contacts/{kept['id']}/erase", headers=owner.headers
    )
    assert erased.status_code == 204, erased.text
    messages = await _messages(client, owner, conversation["id"])
    assert all("my secret" not in m["body"] for m in messages)
    assert messages[0]["body"] == ""
    assert messages[-1]["kind"] == "activity"
    assert "erased" in messages[-1]["body"]
    refused = await client.post(_url(owner), json={**refs, "contact_id": kept["id"]}, headers=owner.headers)
    assert refused.status_code == 409


async def test_idempotency_key_replays_refuses_another_body_and_writes_once(client: AsyncClient) -> None:
    owner = await new_owner(client)
    refs = await _setup(client, owner)
    keyed = {**owner.headers, "Idempotency-Key": "create-1"}
    first = await client.post(_url(owner), json=refs, headers=keyed)
    again = await client.post(_url(owner), json=refs, headers=keyed)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = await client.post(_url(owner), json={**refs, "subject": "Other"}, headers=keyed)
    assert other.status_code == 409
    assert other.json()["code"] == "idempotency_key_reused"

    messages_url = _url(owner, first.json()["id"], "messages")
    body = {"kind": "outgoing", "body": "Once"}
    answers = await asyncio.gather(
        *(
            client.post(messages_url, json=body, headers={**owner.headers, "Idempotency-Key": "msg-1"})
            for _ in range(5)
        )
    )
    assert {answer.status_code for answer in answers} == {201}
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert [m["body"] for m in await _messages(client, owner, first.json()["id"])] == ["Once"]

    racing = await asyncio.gather(
        *(
            client.post(_url(owner), json=refs, headers={**owner.headers, "Idempotency-Key": "c-2"})
            for _ in range(5)
        )
    )
    assert {answer.status_code for answer in racing} == {201}
    assert len({answer.json()["id"] for answer in racing}) == 1
    listed = await client.get(_url(owner), headers=owner.headers)
    assert len(listed.json()["items"]) == 2
    # A key belongs to its organization: another one may use the same.
    stranger = await new_owner(client)
    theirs = await client.post(
        _url(stranger),
        json=await _setup(client, stranger),
        headers={**stranger.headers, "Idempotency-Key": "c-2"},
    )
    assert theirs.status_code == 201


async def test_list_items_and_messages_read_as_the_single_answers_do(client: AsyncClient) -> None:
    """Lists write their items straight from rows (pagination.page_json): each must equal the
    conversation's own answer, SLA clocks, tags and attributes included, and each message its POST."""
    owner = await new_owner(client)
    refs = await inbox_with_policy(
        client, owner, {"high": {"first_response": 60, "next_response": 30, "resolution": 480}}
    )
    opened = await open_conversation(
        client,
        owner,
        refs,
        priority="high",
        subject="Parcel",
        tags=["billing", "vip"],
        custom_attributes={"plan": "pro", "seats": 12, "nested": {"ok": True, "ratio": 0.5}},
        message={"kind": "incoming", "body": "Où est mon colis ? 📦"},
    )
    note = await created(
        client, owner, f"conversations/{opened['id']}/messages", {"kind": "note", "body": 'VIP: "be quick"'}
    )
    single = (await client.get(_url(owner, opened["id"]), headers=owner.headers)).json()
    assert single["sla"]["first_response"]["due_at"] is not None
    listed = await client.get(_url(owner), headers=owner.headers)
    assert listed.headers["content-type"] == "application/json"
    [item] = listed.json()["items"]
    assert item == {**single, "matched_in": None}
    searched = (await client.get(_url(owner), params={"q": "parcel"}, headers=owner.headers)).json()
    assert searched["items"] == [{**single, "matched_in": ["subject"]}]
    page = (await client.get(_url(owner, opened["id"], "messages"), headers=owner.headers)).json()
    assert page["items"][0] == note
    assert [message["body"] for message in page["items"]] == ['VIP: "be quick"', "Où est mon colis ? 📦"]
