"""An organization's AI driven through the API: an inbox with the AI on, a customer writing in."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient

from tests.conftest import run_jobs
from tests.conversations.helpers import created, messages
from tests.organizations.helpers import Person

ARTICLE = {
    "title": "Reset your password",
    "body": "To reset your password, open Settings, then Security, and choose Reset password. "
    "A link valid for one hour is sent to your email address.",
    "status": "published",
    "visibility": "public",
}


async def ai_inbox(client: AsyncClient, owner: Person, mode: str = "auto", **fields: Any) -> str:
    inbox = await created(client, owner, "inboxes", {"name": f"AI {mode}", "ai_mode": mode, **fields})
    return str(inbox["id"])


async def customer_says(client: AsyncClient, owner: Person, inbox_id: str, text: str) -> str:
    """A new conversation in the inbox, opened by a customer's message, and the AI's turn run: its id."""
    contact = await created(client, owner, "contacts", {"name": "Customer"})
    conversation = await created(
        client,
        owner,
        "conversations",
        {"inbox_id": inbox_id, "contact_id": contact["id"], "message": {"body": text}},
    )
    await run_jobs(client)
    await run_jobs(client)  # what the AI's turn queued (an auto-assignment)
    return str(conversation["id"])


async def says_again(client: AsyncClient, owner: Person, conversation_id: str, text: str) -> None:
    await created(
        client, owner, f"conversations/{conversation_id}/messages", {"kind": "incoming", "body": text}
    )
    await run_jobs(client)
    await run_jobs(client)


async def ai_state(client: AsyncClient, owner: Person, conversation_id: str) -> dict[str, Any]:
    answer = await client.get(
        f"/orgs/{owner.organization_id}/conversations/{conversation_id}/ai", headers=owner.headers
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def ai_messages(client: AsyncClient, owner: Person, conversation_id: str) -> list[dict[str, Any]]:
    return [
        m
        for m in await messages(client, owner, conversation_id)
        if m["author_type"] == "ai" and m["kind"] == "outgoing"
    ]


async def settings_put(client: AsyncClient, owner: Person, **fields: Any) -> dict[str, Any]:
    answer = await client.put(
        f"/orgs/{owner.organization_id}/ai/settings", json=fields, headers=owner.headers
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body
