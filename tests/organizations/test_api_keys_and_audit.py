"""API keys as non-human members, and the audit log."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from httpx import AsyncClient

from aisupport.core.config import Settings
from tests.conftest import PASSWORD, Mailbox, bearer, serve
from tests.organizations.helpers import Person, add_member, new_owner


async def _key(client: AsyncClient, owner: Person, **fields: object) -> dict[str, str]:
    response = await client.post(
        f"/orgs/{owner.organization_id}/api-keys", json={"name": "ci", **fields}, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    return body


async def test_an_api_key_acts_as_a_limited_member_until_revoked(client: AsyncClient) -> None:
    owner = await new_owner(client)
    key = await _key(client, owner, role="admin")
    assert key["secret"].startswith("sk_")
    assert key["secret"].startswith(key["prefix"])
    org = f"/orgs/{owner.organization_id}"

    for headers in ({"Authorization": f"Bearer {key['secret']}"}, {"X-API-Key": key["secret"]}):
        assert (await client.get(org, headers=headers)).status_code == 200
    as_key = {"X-API-Key": key["secret"]}
    assert (await client.get(f"{org}/members", headers=as_key)).status_code == 200
    assert (await client.get(f"{org}/audit-log", headers=as_key)).status_code == 200
    # Never people, keys, the organization itself, or a human's account.
    for method, path, body in (
        ("PATCH", org, {"name": "taken over"}),
        ("POST", f"{org}/api-keys", {"name": "another"}),
        ("POST", f"{org}/invitations", {"email": "x@example.com", "role": "viewer"}),
        ("PATCH", f"{org}/members/{owner.user_id}", {"role": "viewer"}),
        ("GET", "/auth/me", None),
    ):
        denied = await client.request(method, path, json=body, headers=as_key)
        assert denied.status_code == 403, (method, path)

    listed = await client.get(f"{org}/api-keys", headers=owner.headers)
    [item] = listed.json()["items"]
    assert item["prefix"] == key["prefix"]
    assert item["last_used_at"] is not None
    assert "secret" not in item
    assert key["secret"] not in listed.text

    assert (await client.delete(f"{org}/api-keys/{key['id']}", headers=owner.headers)).status_code == 204
    refused = await client.get(org, headers=as_key)
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_api_key"
    unknown = await client.get(org, headers={"X-API-Key": "sk_" + "x" * 43})
    assert unknown.json() == {**refused.json()}
    events = await client.get(
        f"{org}/audit-log", params={"action": "api_key.revoked_used"}, headers=owner.headers
    )
    assert [event["target_id"] for event in events.json()["items"]] == [key["id"]]


async def test_api_key_roles_expiry_and_rate_limit(
    make_settings: Callable[..., Settings], mailbox: Mailbox
) -> None:
    async with serve(make_settings(RATE_LIMIT_API_KEY="3/minute")) as client:
        owner = await new_owner(client)
        admin = await add_member(client, mailbox, owner, "admin")
        above = await client.post(
            f"/orgs/{owner.organization_id}/api-keys",
            json={"name": "k", "role": "owner"},
            headers=owner.headers,
        )
        assert above.status_code == 422  # keys are never owners
        past = datetime.now(UTC) - timedelta(minutes=1)
        expired_at = await client.post(
            f"/orgs/{owner.organization_id}/api-keys",
            json={"name": "k", "expires_at": past.isoformat()},
            headers=admin.headers,
        )
        assert expired_at.status_code == 422
        key = await _key(client, admin, role="viewer")
        headers = {"X-API-Key": key["secret"]}
        answers = [
            (await client.get(f"/orgs/{owner.organization_id}", headers=headers)).status_code
            for _ in range(4)
        ]
        assert answers == [200, 200, 200, 429]


async def test_the_audit_log_records_security_events_newest_first(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    owner = await new_owner(client)
    agent = await add_member(client, mailbox, owner, "agent")
    await client.post("/auth/login", json={"email": agent.email, "password": "not the password"})
    members = f"/orgs/{owner.organization_id}/members"
    await client.patch(f"{members}/{agent.user_id}", json={"role": "viewer"}, headers=owner.headers)
    await _key(client, owner)
    log = f"/orgs/{owner.organization_id}/audit-log"

    events = (await client.get(log, headers=owner.headers)).json()["items"]
    actions = [event["action"] for event in events]
    assert actions[:4] == ["api_key.created", "member.role_changed", "auth.sign_in_failed", "auth.signed_in"]
    assert {"organization.created", "invitation.created", "invitation.accepted"} <= set(actions)
    assert [event["id"] for event in events] == sorted((event["id"] for event in events), reverse=True)
    role_change = events[1]
    assert role_change["actor_user_id"] == owner.user_id
    assert role_change["details"] == {"from": "agent", "to": "viewer"}
    assert role_change["ip"] == "203.0.113.10"

    first = await client.get(log, params={"limit": 2}, headers=owner.headers)
    second = await client.get(
        log, params={"limit": 2, "cursor": first.json()["next_cursor"]}, headers=owner.headers
    )
    assert [e["id"] for e in first.json()["items"] + second.json()["items"]] == [e["id"] for e in events[:4]]
    filtered = await client.get(log, params={"actor_user_id": agent.user_id}, headers=owner.headers)
    assert {event["action"] for event in filtered.json()["items"]} == {
        "invitation.accepted",
        "auth.signed_in",
    }
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await client.get(log, params={"since": future}, headers=owner.headers)).json()["items"] == []
    denied = await client.get(log, headers=agent.headers)  # a viewer now
    assert denied.status_code == 403


async def test_refresh_token_reuse_is_recorded_in_the_audit_log(client: AsyncClient) -> None:
    owner = await new_owner(client)
    log = f"/orgs/{owner.organization_id}/audit-log"
    rotated = await client.post("/auth/refresh", json={"refresh_token": owner.refresh_token})
    newest = await client.post("/auth/refresh", json={"refresh_token": rotated.json()["refresh_token"]})
    replay = await client.post("/auth/refresh", json={"refresh_token": owner.refresh_token})
    assert replay.status_code == 401  # not the immediate predecessor any more: the family is revoked
    fresh = await client.post(
        "/auth/login", json={"email": owner.email, "password": PASSWORD, "transport": "body"}
    )
    events = await client.get(
        log,
        params={"action": "auth.refresh_token_reuse_detected"},
        headers=bearer(fresh.json()["access_token"]),
    )
    assert newest.status_code == 200
    assert len(events.json()["items"]) == 1
    assert events.json()["items"][0]["actor_user_id"] == owner.user_id
