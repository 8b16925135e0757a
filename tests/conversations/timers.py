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


async def open_conversation(
    client: AsyncClient, person: Person, refs: dict[str, str], **extra: Any
) -> dict[str, Any]:
    body = {"inbox_id": refs["inbox_id"], "contact_id": refs["contact_id"], **extra}
    return await created(client, person, "conversations", body)


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
