"""Inboxes, teams and SLA policies for the conversations tests, and conversations themselves, made and
read through the HTTP API."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient

from tests.organizations.helpers import Person

WEEKDAYS = {"monday": [{"start": "09:00", "end": "12:00"}, {"start": "13:00", "end": "17:30"}]}
BUSINESS_HOURS = {"time_zone": "Europe/Paris", "weekly": WEEKDAYS, "holidays": ["2026-12-25"]}
TARGETS = {"urgent": {"first_response": 15, "next_response": 30, "resolution": 240}}


async def created(client: AsyncClient, person: Person, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST `body` to /orgs/{the person's organization}/`path`, expecting 201; the answer."""
    response = await client.post(f"/orgs/{person.organization_id}/{path}", json=body, headers=person.headers)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def configure(client: AsyncClient, owner: Person, member: Person | None = None) -> dict[str, str]:
    """One of each: an SLA policy, a team (with `member`, or the owner, in it), the member's
    availability and a widget inbox using both. Returns their ids by path parameter name."""
    member = member or owner
    policy = await created(client, owner, "sla-policies", {"name": "Standard", "targets": TARGETS})
    team = await created(client, owner, "teams", {"name": "Support"})
    await created(client, owner, f"teams/{team['id']}/members", {"user_id": member.user_id})
    available = await client.put(
        f"/orgs/{owner.organization_id}/members/me/availability",
        json={"status": "online"},
        headers=member.headers,
    )
    assert available.status_code == 200, available.text
    inbox = await created(
        client,
        owner,
        "inboxes",
        {
            "name": "Website",
            "kind": "widget",
            "team_id": team["id"],
            "sla_policy_id": policy["id"],
            "allowed_origins": ["https://example.com"],
            "business_hours": BUSINESS_HOURS,
        },
    )
    return {"policy_id": policy["id"], "team_id": team["id"], "inbox_id": inbox["id"]}


def url(person: Person, *parts: str) -> str:
    return "/".join([f"/orgs/{person.organization_id}/conversations", *parts])


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
