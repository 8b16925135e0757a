"""Visitors of a widget inbox, made and used through the widget API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from httpx import AsyncClient

from tests.conversations.helpers import created, patch
from tests.organizations.helpers import Person


@dataclass(frozen=True)
class Visitor:
    inbox_id: str
    token: str
    id: str
    contact_id: str
    verified: bool

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def url(self, *parts: str) -> str:
        return "/".join([f"/widget/v1/inboxes/{self.inbox_id}", *parts])


async def widget_inbox(client: AsyncClient, owner: Person, **fields: Any) -> dict[str, Any]:
    """A widget inbox of the owner's organization (its `identity_secret` is in the answer, once)."""
    body = {"name": "Website", "kind": "widget", "allowed_origins": ["https://shop.example"], **fields}
    return await created(client, owner, "inboxes", body)


async def start(client: AsyncClient, inbox_id: str, **claim: Any) -> Visitor:
    """A visitor's session in the inbox (anonymous without `claim`), expecting 201."""
    response = await client.post(f"/widget/v1/inboxes/{inbox_id}/session", json=claim)
    assert response.status_code == 201, response.text
    body = response.json()
    return Visitor(
        inbox_id, body["visitor_token"], body["visitor_id"], body["contact"]["id"], body["verified"]
    )


async def open_conversation(client: AsyncClient, visitor: Visitor, body: str = "Hello?") -> dict[str, Any]:
    response = await client.post(
        visitor.url("conversations"), json={"message": {"body": body}}, headers=visitor.headers
    )
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def rated_conversation(client: AsyncClient, owner: Person) -> tuple[Visitor, str]:
    """A visitor's conversation, resolved by the team and rated by the visitor: the visitor and its id
    (rows in every widget table)."""
    inbox = await widget_inbox(client, owner)
    visitor = await start(client, inbox["id"])
    conversation = await open_conversation(client, visitor)
    await patch(client, owner, conversation["id"], status="resolved")
    rated = await client.put(
        visitor.url("conversations", conversation["id"], "rating"), json={"score": 5}, headers=visitor.headers
    )
    assert rated.status_code == 200, rated.text
    return visitor, conversation["id"]
