"""Contacts made through the HTTP API, for the contact tests."""

from __future__ import annotations

import uuid
from typing import Any

from httpx import AsyncClient

from tests.organizations.helpers import Person


def contacts_url(organization_id: str) -> str:
    return f"/orgs/{organization_id}/contacts"


def unique_email(name: str = "customer") -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}@example.com"


async def create_contact(
    client: AsyncClient, person: Person, headers: dict[str, str] | None = None, **fields: Any
) -> dict[str, Any]:
    created = await client.post(
        contacts_url(person.organization_id), json=fields, headers=headers or person.headers
    )
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


async def api_key(client: AsyncClient, owner: Person, role: str) -> dict[str, str]:
    """The headers of a new API key of `owner`'s organization with `role`."""
    key = await client.post(
        f"/orgs/{owner.organization_id}/api-keys", json={"name": role, "role": role}, headers=owner.headers
    )
    assert key.status_code == 201, key.text
    return {"X-API-Key": key.json()["secret"]}
