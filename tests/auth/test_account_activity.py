"""The user's own account activity (`GET /auth/activity`): security events of the account, newest
first, with time, kind, IP and user agent, written in the transaction of the change, never a secret."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient
from sqlalchemy import text

from aisupport.core.jobs import defer
from tests.conftest import PASSWORD, Mailbox, bearer, new_email, run_jobs
from tests.organizations.helpers import Person, login, new_owner

NEW_PASSWORD = "an entirely different passphrase"
BROWSER = {"User-Agent": "Mozilla/5.0 (activity test)"}


async def _activity(client: AsyncClient, person: Person, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/auth/activity", headers=person.headers, params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_the_account_activity_lists_security_events_newest_first_and_no_secrets(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    owner = await new_owner(client)
    original = owner.email
    await run_jobs(client)
    verify_link = mailbox.token_sent_to(owner.email, "ev_")
    assert (await client.post("/auth/verify-email/confirm", json={"token": verify_link})).status_code == 200
    wrong = await client.post(
        "/auth/login", json={"email": owner.email, "password": "not the password"}, headers=BROWSER
    )
    assert wrong.status_code == 401
    other = await login(client, owner)
    sessions = (await client.get("/auth/sessions", headers=owner.headers)).json()
    listed = sessions["items"] if isinstance(sessions, dict) else sessions  # a page, or the older array
    other_session = next(session["id"] for session in listed if not session["current"])
    assert (await client.delete(f"/auth/sessions/{other_session}", headers=owner.headers)).status_code == 204
    changed = await client.post(
        "/auth/password/change",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers={**owner.headers, **BROWSER},
    )
    assert changed.status_code == 204
    new_address = new_email()
    asked = await client.post(
        "/auth/email/change", json={"new_email": new_address, "password": NEW_PASSWORD}, headers=owner.headers
    )
    assert asked.status_code == 202
    await run_jobs(client)
    change_link = mailbox.token_sent_to(new_address, "ce_")
    assert (await client.post("/auth/verify-email/confirm", json={"token": change_link})).status_code == 200
    await client.post("/auth/password/forgot", json={"email": new_address})
    await run_jobs(client)
    reset_link = mailbox.token_sent_to(new_address, "pr_")
    reset = await client.post("/auth/password/reset", json={"token": reset_link, "new_password": PASSWORD})
    assert reset.status_code == 204
    owner = await login(client, Person(new_address, "", "", owner.user_id, owner.organization_id))
    assert (await client.post("/auth/logout-all", headers=owner.headers)).status_code == 204
    owner = await login(client, owner)

    response = await client.get("/auth/activity", headers=owner.headers)
    assert response.status_code == 200
    body = response.json()
    kinds = [item["kind"] for item in body["items"]]
    assert kinds == [
        "signed_in",
        "signed_out_everywhere",
        "signed_in",
        "password_reset",
        "email_changed",
        "email_change_requested",
        "password_changed",
        "session_revoked",
        "signed_in",
        "sign_in_failed",
        "email_verified",
        "signed_in",
        "signed_up",
    ]
    assert body["next_cursor"] is None
    by_kind = {item["kind"]: item for item in reversed(body["items"])}
    assert by_kind["sign_in_failed"]["user_agent"] == BROWSER["User-Agent"]
    assert by_kind["password_changed"]["user_agent"] == BROWSER["User-Agent"]
    assert {item["ip"] for item in body["items"]} == {"203.0.113.10"}
    assert by_kind["email_changed"]["details"] == {"old_email": original, "new_email": new_address}
    assert by_kind["session_revoked"]["details"] == {"session_id": other_session}
    assert by_kind["password_changed"]["details"] == {"sessions_revoked": 0}
    ids = [item["id"] for item in body["items"]]
    assert ids == sorted(ids, reverse=True)
    for secret in (verify_link, change_link, reset_link, PASSWORD, NEW_PASSWORD, owner.access_token):
        assert secret not in response.text
    assert (await client.get("/auth/me", headers=other.headers)).status_code == 401


async def test_the_activity_list_pages_with_cursors_and_is_private(client: AsyncClient) -> None:
    owner = await new_owner(client)
    for _ in range(4):
        await login(client, owner)
    first = await client.get("/auth/activity", headers=owner.headers, params={"limit": 2})
    assert first.status_code == 200
    page_one = first.json()
    assert len(page_one["items"]) == 2
    assert page_one["next_cursor"]
    seen = [item["id"] for item in page_one["items"]]
    cursor = page_one["next_cursor"]
    while cursor:
        following = (
            await client.get("/auth/activity", headers=owner.headers, params={"limit": 2, "cursor": cursor})
        ).json()
        seen += [item["id"] for item in following["items"]]
        cursor = following["next_cursor"]
    assert seen == sorted(seen, reverse=True)
    assert len(seen) == len(set(seen)) == 6  # signed up, signed in at sign-up, four sign-ins

    stranger = await new_owner(client)
    assert {item["id"] for item in await _activity(client, stranger)}.isdisjoint(seen)
    assert (await client.get("/auth/activity")).status_code == 401
    key = await client.post(
        f"/orgs/{owner.organization_id}/api-keys", json={"name": "k"}, headers=owner.headers
    )
    refused = await client.get("/auth/activity", headers=bearer(key.json()["secret"]))
    assert refused.status_code == 403
    for params in ({"limit": 0}, {"limit": 101}):
        assert (await client.get("/auth/activity", headers=owner.headers, params=params)).status_code == 422
    bad = await client.get("/auth/activity", headers=owner.headers, params={"cursor": "not-a-cursor"})
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_cursor"


async def test_a_refused_change_records_nothing(client: AsyncClient, mailbox: Mailbox) -> None:
    owner = await new_owner(client)
    before = await _activity(client, owner)
    refused = [
        await client.post(
            "/auth/password/change",
            json={"current_password": "not my password", "new_password": NEW_PASSWORD},
            headers=owner.headers,
        ),
        await client.post(
            "/auth/password/change",
            json={"current_password": PASSWORD, "new_password": "password"},
            headers=owner.headers,
        ),
        await client.post(
            "/auth/email/change", json={"new_email": owner.email, "password": PASSWORD}, headers=owner.headers
        ),
    ]
    assert [answer.status_code for answer in refused] == [403, 422, 409]
    await client.post("/auth/password/forgot", json={"email": owner.email})
    await run_jobs(client)
    weak = await client.post(
        "/auth/password/reset",
        json={"token": mailbox.token_sent_to(owner.email, "pr_"), "new_password": "password"},
    )
    assert weak.status_code == 422
    assert await _activity(client, owner) == before


async def test_an_address_change_is_in_the_audit_log_of_each_organization(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    owner = await new_owner(client)
    second = await client.post("/orgs", json={"name": "Second"}, headers=owner.headers)
    assert second.status_code == 201, second.text
    new_address = new_email()
    await client.post(
        "/auth/email/change", json={"new_email": new_address, "password": PASSWORD}, headers=owner.headers
    )
    await run_jobs(client)
    token = mailbox.token_sent_to(new_address, "ce_")
    assert (await client.post("/auth/verify-email/confirm", json={"token": token})).status_code == 200
    log = await client.get(
        f"/orgs/{owner.organization_id}/audit-log",
        headers=owner.headers,
        params={"action": "auth.email_changed"},
    )
    assert log.status_code == 200, log.text
    [event] = log.json()["items"]
    assert event["actor_user_id"] == owner.user_id
    assert event["details"] == {"old_email": owner.email, "new_email": new_address}
    switched = await client.post(
        "/auth/switch-org", json={"organization_id": second.json()["id"]}, headers=owner.headers
    )
    headers = bearer(switched.json()["access_token"])
    other_log = await client.get(
        f"/orgs/{second.json()['id']}/audit-log", headers=headers, params={"action": "auth.email_changed"}
    )
    assert len(other_log.json()["items"]) == 1


async def test_activity_older_than_a_year_is_purged(client: AsyncClient) -> None:
    owner = await new_owner(client)
    await login(client, owner)
    async with client.app.state.sessionmaker() as db:  # type: ignore[attr-defined]
        await db.execute(
            text(
                "UPDATE account_activity SET occurred_at = now() - interval '366 days'"
                " WHERE user_id = :u AND kind = 'signed_up'"
            ),
            {"u": owner.user_id},
        )
        await defer(db, "auth:purge_expired", timestamp=0)
        await db.commit()
    await run_jobs(client)
    assert [item["kind"] for item in await _activity(client, owner)] == ["signed_in", "signed_in"]
