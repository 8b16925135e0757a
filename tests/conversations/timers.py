"""Set-up for the SLA and periodic-job tests: an inbox with a policy, conversations through the HTTP API,
and the database as its owner sees it (past row-level security) to place a conversation's clock in the
past: test data, not patched code."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import psycopg
from httpx import AsyncClient
from sqlalchemy.engine import make_url

from tests.contacts.helpers import create_contact, unique_email
from tests.conversations.helpers import created
from tests.organizations.helpers import Person

PARIS_OFFICE = {
    "time_zone": "Europe/Paris",
    "weekly": {
        day: [{"start": "09:00", "end": "17:00"}]
        for day in ("monday", "tuesday", "wednesday", "thursday", "friday")
    },
    "holidays": [],
}


async def inbox_with_policy(
    client: AsyncClient,
    owner: Person,
    targets: dict[str, dict[str, int]],
    business_hours: dict[str, Any] | None = None,
) -> dict[str, str]:
    """An SLA policy with `targets`, an api inbox using it (and `business_hours`), a contact."""
    policy = await created(client, owner, "sla-policies", {"name": "Policy", "targets": targets})
    inbox = await created(
        client,
        owner,
        "inboxes",
        {"name": "API", "kind": "api", "sla_policy_id": policy["id"], "business_hours": business_hours},
    )
    contact = await create_contact(client, owner, name="Ada", email=unique_email())
    return {"inbox_id": inbox["id"], "contact_id": contact["id"], "policy_id": policy["id"]}


def url(person: Person, *parts: str) -> str:
    return "/".join([f"/orgs/{person.organization_id}/conversations", *parts])


async def open_conversation(
    client: AsyncClient, person: Person, refs: dict[str, str], **extra: Any
) -> dict[str, Any]:
    body = {"inbox_id": refs["inbox_id"], "contact_id": refs["contact_id"], **extra}
    return await created(client, person, "conversations", body)


async def read(client: AsyncClient, person: Person, conversation_id: str) -> dict[str, Any]:
    response = await client.get(url(person, conversation_id), headers=person.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def post(client: AsyncClient, person: Person, conversation_id: str, kind: str) -> dict[str, Any]:
    return await created(
        client, person, f"conversations/{conversation_id}/messages", {"kind": kind, "body": "hi"}
    )


async def patch(client: AsyncClient, person: Person, conversation_id: str, **changes: Any) -> dict[str, Any]:
    response = await client.patch(url(person, conversation_id), json=changes, headers=person.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def messages(client: AsyncClient, person: Person, conversation_id: str) -> list[dict[str, Any]]:
    response = await client.get(
        url(person, conversation_id, "messages"), params={"limit": 100}, headers=person.headers
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items[::-1]


def when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


@asynccontextmanager
async def as_owner(database_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A connection as the database's owner (not bound by row-level security), in autocommit."""
    owner_url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    async with await psycopg.AsyncConnection.connect(owner_url, autocommit=True) as conn:
        yield conn


async def set_columns(database_url: str, conversation_id: str, **values: Any) -> None:
    """Write the conversation's columns as the owner (to put its clocks in the past)."""
    assignments = ", ".join(f"{name} = %({name})s" for name in values)
    async with as_owner(database_url) as conn:
        await conn.execute(
            f"UPDATE conversations SET {assignments} WHERE id = %(id)s",  # noqa: S608 (test column names)
            {**values, "id": conversation_id},
        )
