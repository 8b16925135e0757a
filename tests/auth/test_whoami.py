"""`GET /auth/whoami`: every principal, API keys included, can ask who it is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from httpx import AsyncClient

from aisupport.access.permissions import Permission
from tests.conftest import bearer, signup


async def test_a_person_learns_their_organization_role_and_permissions(client: AsyncClient) -> None:
    assert (await client.get("/auth/whoami")).status_code == 401  # no credential at all
    signed_up = (await signup(client, full_name="Ada")).json()
    answer = await client.get("/auth/whoami", headers=bearer(signed_up["access_token"]))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "kind": "user",
        "organization": signed_up["organization"],
        "role": "owner",
        "permissions": sorted(Permission),
        "user": {"id": signed_up["user"]["id"], "email": signed_up["user"]["email"], "full_name": "Ada"},
        "api_key": None,
    }
    await signup(client, transport="cookie")  # a browser: the access cookie, no CSRF needed to read
    by_cookie = await client.get("/auth/whoami")
    assert by_cookie.status_code == 200
    assert by_cookie.json()["kind"] == "user"


async def test_an_api_key_learns_its_organization_role_and_itself_never_its_secret(
    client: AsyncClient,
) -> None:
    owner = (await signup(client)).json()
    org_id = owner["organization"]["id"]
    expires_at = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    created = await client.post(
        f"/orgs/{org_id}/api-keys",
        json={"name": "billing sync", "role": "admin", "expires_at": expires_at.isoformat()},
        headers=bearer(owner["access_token"]),
    )
    assert created.status_code == 201, created.text
    key = created.json()
    viewer_key = (
        await client.post(
            f"/orgs/{org_id}/api-keys",
            json={"name": "dashboard", "role": "viewer"},
            headers=bearer(owner["access_token"]),
        )
    ).json()

    for headers in ({"X-API-Key": key["secret"]}, bearer(key["secret"])):
        answer = await client.get("/auth/whoami", headers=headers)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["kind"] == "api_key"
        assert body["organization"] == owner["organization"]
        assert body["role"] == "admin"
        assert body["permissions"] == [
            "ai:configure",
            "ai:read",
            "ai:use",
            "audit:read",
            "contacts:erase",
            "contacts:read",
            "contacts:write",
            "conversations:read",
            "conversations:work",
            "inboxes:manage",
            "inboxes:read",
            "knowledge:configure",
            "knowledge:read",
            "knowledge:write",
            "members:read",
            "org:read",
            "tags:manage",
            "webhooks:manage",
        ]
        assert body["user"] is None
        assert set(body["api_key"]) == {"id", "name", "prefix", "created_at", "expires_at"}
        assert body["api_key"]["id"] == key["id"]
        assert body["api_key"]["name"] == "billing sync"
        assert body["api_key"]["prefix"] == key["prefix"]
        assert datetime.fromisoformat(body["api_key"]["expires_at"]) == expires_at
        assert key["secret"] not in answer.text

    viewer = await client.get("/auth/whoami", headers={"X-API-Key": viewer_key["secret"]})
    assert viewer.json()["role"] == "viewer"
    assert viewer.json()["api_key"]["expires_at"] is None
    assert viewer.json()["permissions"] == [
        "ai:read",
        "contacts:read",
        "conversations:read",
        "inboxes:read",
        "knowledge:read",
        "members:read",
        "org:read",
    ]

    # /auth/me stays the person's profile; keys use /auth/whoami.
    assert (await client.get("/auth/me", headers={"X-API-Key": key["secret"]})).status_code == 403

    revoked = await client.delete(
        f"/orgs/{org_id}/api-keys/{key['id']}", headers=bearer(owner["access_token"])
    )
    assert revoked.status_code == 204
    refused = await client.get("/auth/whoami", headers={"X-API-Key": key["secret"]})
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_api_key"
