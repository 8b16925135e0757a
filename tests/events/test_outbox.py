"""The outbox (issue 12, point 1): events written in the transaction of their change, numbered per
organization in commit order, announced with NOTIFY on commit only; the catalogue documented."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import pytest
from httpx import AsyncClient

from aisupport.core.config import PROJECT_ROOT
from aisupport.core.tenancy import tenant_session
from aisupport.events.catalogue import render_catalogue
from aisupport.events.outbox import CHANNEL, emit
from tests.contacts.helpers import create_contact, unique_email
from tests.conversations.helpers import created, patch, url
from tests.conversations.timers import as_owner
from tests.organizations.helpers import Person, new_owner


async def events_of(database_url: str, organization_id: str) -> list[dict[str, Any]]:
    """The organization's events in order, read as the owner."""
    async with as_owner(database_url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cursor:
        await cursor.execute(
            "SELECT sequence, id, type, conversation_id, private, payload FROM events"
            " WHERE organization_id = %s ORDER BY sequence",
            (organization_id,),
        )
        return await cursor.fetchall()


async def _conversation(client: AsyncClient, owner: Person) -> dict[str, Any]:
    inbox = await created(client, owner, "inboxes", {"name": "API", "kind": "api"})
    contact = await create_contact(client, owner, name="Ada", email=unique_email())
    body = {"inbox_id": inbox["id"], "contact_id": contact["id"], "message": {"body": "Hello?"}}
    return await created(client, owner, "conversations", body)


async def _emit_then_fail(sessionmaker: Any, organization_id: uuid.UUID) -> None:
    async with tenant_session(sessionmaker, organization_id=organization_id) as db:
        emit(db, organization_id, "contact.deleted", {"contact_id": str(uuid.uuid4())})
        raise RuntimeError("the change fails after its event")


def test_the_catalogue_is_documented() -> None:
    assert render_catalogue() in (PROJECT_ROOT / "docs" / "events.md").read_text()


async def test_changes_emit_their_events_in_order(client: AsyncClient, database_url: str) -> None:
    owner = await new_owner(client)
    conversation = await _conversation(client, owner)
    changed = await patch(client, owner, conversation["id"], status="pending", assignee_id=owner.user_id)
    note = await created(
        client, owner, f"conversations/{conversation['id']}/messages", {"kind": "note", "body": "VIP"}
    )
    events = await events_of(database_url, owner.organization_id)
    assert [event["type"] for event in events] == [
        "contact.created",
        "conversation.created",
        "message.created",  # the first message
        "conversation.updated",
        "conversation.assigned",
        "conversation.status_changed",
        "message.created",  # activity: status
        "message.created",  # activity: assignee
        "message.created",  # the note
    ]
    assert [event["sequence"] for event in events] == list(range(1, 10))
    assert len({event["id"] for event in events}) == 9
    assert [event["id"] for event in events] == sorted(event["id"] for event in events)  # UUIDv7: by time
    updated, assigned, status_changed = (event["payload"] for event in events[3:6])
    assert updated == {"conversation": changed, "changes": {"status": "open", "assignee_id": None}}
    assert assigned == {"conversation": changed, "previous_assignee_id": None}
    assert status_changed == {"conversation": changed, "previous_status": "open"}
    assert events[8]["payload"]["message"] == note
    assert events[8]["private"] is True
    assert events[2]["private"] is False
    assert {str(event["conversation_id"]) for event in events[1:]} == {conversation["id"]}


async def test_a_change_that_rolls_back_emits_nothing(client: AsyncClient, database_url: str) -> None:
    owner = await new_owner(client)
    sessionmaker = client._transport.app.state.sessionmaker  # type: ignore[attr-defined]
    organization_id = uuid.UUID(owner.organization_id)
    with pytest.raises(RuntimeError, match="fails after its event"):
        await _emit_then_fail(sessionmaker, organization_id)
    # A refused request too: the PATCH's 412 comes after nothing was written.
    conversation = await _conversation(client, owner)
    before = await events_of(database_url, owner.organization_id)
    stale = await client.patch(
        url(owner, conversation["id"]),
        json={"status": "resolved"},
        headers={**owner.headers, "If-Match": '"99"'},
    )
    assert stale.status_code == 412
    assert await events_of(database_url, owner.organization_id) == before
    async with tenant_session(sessionmaker, organization_id=organization_id) as db:
        emit(db, organization_id, "contact.deleted", {"contact_id": "x"})
    after = await events_of(database_url, owner.organization_id)
    assert [event["sequence"] for event in after] == list(range(1, len(after) + 1))  # no gap left behind
    assert after[-1]["type"] == "contact.deleted"


async def test_concurrent_changes_are_numbered_in_commit_order_and_announced(
    client: AsyncClient, database_url: str
) -> None:
    owner = await new_owner(client)
    conversations = [await _conversation(client, owner) for _ in range(4)]
    async with as_owner(database_url) as listener:
        await listener.execute(f"LISTEN {CHANNEL}")
        answers = await asyncio.gather(
            *(
                client.post(
                    url(owner, conversations[n % 4]["id"], "messages"),
                    json={"kind": "outgoing", "body": f"reply {n}"},
                    headers=owner.headers,
                )
                for n in range(20)
            )
        )
        assert all(answer.status_code == 201 for answer in answers), [a.text for a in answers]
        heard: list[str] = []
        async for notice in listener.notifies(timeout=5):
            if notice.payload.startswith(owner.organization_id + ":"):  # other tests' organizations too
                heard.append(notice.payload)
            if notice.payload == f"{owner.organization_id}:32":
                break
    events = await events_of(database_url, owner.organization_id)
    assert [event["sequence"] for event in events] == list(range(1, 33))  # 4 x 3 set-up, 20 replies
    assert {event["payload"]["message"]["id"] for event in events[12:]} == {a.json()["id"] for a in answers}
    # Every commit announced the organization and its last number, in commit order.
    assert heard[-1] == f"{owner.organization_id}:32"
    numbers = [int(notice.split(":")[1]) for notice in heard]
    assert numbers == sorted(numbers)
