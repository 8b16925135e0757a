"""Organizations, members and roles, invitations, switching: through the HTTP API."""

from __future__ import annotations

from collections.abc import Callable

from httpx import AsyncClient

from aisupport.core.config import Settings
from tests.conftest import PASSWORD, Mailbox, bearer, new_email, run_jobs, serve
from tests.organizations.helpers import add_member, login, new_owner, verify


async def test_create_list_get_update_and_delete_an_organization(client: AsyncClient) -> None:
    owner = await new_owner(client)
    created = await client.post(
        "/orgs", json={"name": "Second Co", "slug": "second-co-" + owner.user_id[:8]}, headers=owner.headers
    )
    assert created.status_code == 201
    assert created.json()["role"] == "owner"
    second = created.json()["id"]

    first_page = await client.get("/orgs", params={"limit": 1}, headers=owner.headers)
    assert first_page.status_code == 200
    assert len(first_page.json()["items"]) == 1
    assert first_page.json()["items"][0]["id"] == owner.organization_id
    rest = await client.get(
        "/orgs", params={"limit": 1, "cursor": first_page.json()["next_cursor"]}, headers=owner.headers
    )
    assert [org["id"] for org in rest.json()["items"]] == [second]
    assert rest.json()["next_cursor"] is None
    bad_cursor = await client.get("/orgs", params={"cursor": "not-a-cursor"}, headers=owner.headers)
    assert bad_cursor.status_code == 400
    assert bad_cursor.json()["code"] == "invalid_cursor"
    assert (await client.get("/orgs", params={"limit": 101}, headers=owner.headers)).status_code == 422

    # Every organization of the caller works by its id, without switching to it first.
    assert (await client.get(f"/orgs/{second}", headers=owner.headers)).json()["id"] == second
    org_path = f"/orgs/{owner.organization_id}"
    assert (await client.get(org_path, headers=owner.headers)).json()["id"] == owner.organization_id
    renamed = await client.patch(
        org_path, json={"name": "Renamed", "settings": {"locale": "fr"}}, headers=owner.headers
    )
    assert renamed.status_code == 200
    assert (renamed.json()["name"], renamed.json()["settings"]) == ("Renamed", {"locale": "fr"})
    taken = await client.patch(org_path, json={"slug": created.json()["slug"]}, headers=owner.headers)
    assert taken.status_code == 409
    assert taken.json()["code"] == "slug_taken"
    assert (
        await client.patch(org_path, json={"slug": "Not A Slug"}, headers=owner.headers)
    ).status_code == 422

    wrong = await client.request("DELETE", org_path, json={"confirm": "nope"}, headers=owner.headers)
    assert wrong.status_code == 422
    assert wrong.json()["code"] == "confirmation_mismatch"
    slug = renamed.json()["slug"]
    assert (
        await client.request("DELETE", org_path, json={"confirm": slug}, headers=owner.headers)
    ).status_code == 204
    assert (await client.get(org_path, headers=owner.headers)).status_code == 401  # no membership any more
    switched_login = await client.post(
        "/auth/login", json={"email": owner.email, "password": PASSWORD, "transport": "body"}
    )
    assert switched_login.json()["organization"]["id"] == second


async def test_invitations_respect_roles_and_join_signed_in_or_new_people(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    owner = await new_owner(client)
    admin = await add_member(client, mailbox, owner, "admin")
    assert admin.organization_id == owner.organization_id
    invitations = f"/orgs/{owner.organization_id}/invitations"
    above = await client.post(
        invitations, json={"email": new_email(), "role": "owner"}, headers=admin.headers
    )
    assert above.status_code == 403
    assert above.json()["code"] == "role_above_yours"
    again = await client.post(
        invitations, json={"email": admin.email, "role": "agent"}, headers=owner.headers
    )
    assert again.status_code == 409

    # Someone with an account accepts while signed in, once their address is verified.
    existing = await new_owner(client)
    invited = await client.post(
        invitations, json={"email": existing.email.upper(), "role": "viewer"}, headers=admin.headers
    )
    assert invited.status_code == 201
    listed = await client.get(invitations, headers=admin.headers)
    assert [item["id"] for item in listed.json()["items"]] == [invited.json()["id"]]
    await run_jobs(client)
    [message] = [m for m in mailbox.to(existing.email.upper()) if "invited you" in m["Subject"]]
    assert "as viewer" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    token = mailbox.token_sent_to(existing.email.upper())
    assert token.startswith("inv_")
    unverified = await client.post("/invitations/accept", json={"token": token}, headers=existing.headers)
    assert unverified.status_code == 403
    assert unverified.json()["code"] == "email_not_verified"
    await verify(client, mailbox, existing)
    accepted = await client.post("/invitations/accept", json={"token": token}, headers=existing.headers)
    assert accepted.status_code == 200
    assert accepted.json()["role"] == "viewer"
    reused = await client.post("/invitations/accept", json={"token": token}, headers=existing.headers)
    assert reused.status_code == 400
    assert reused.json()["code"] == "invalid_link"

    # A new address with a password: an account is created, verified and signed in.
    stranger_email = new_email()
    await client.post(invitations, json={"email": stranger_email, "role": "agent"}, headers=owner.headers)
    await run_jobs(client)
    new_token = mailbox.token_sent_to(stranger_email)
    no_password = await client.post("/invitations/accept", json={"token": new_token})
    assert no_password.status_code == 422
    weak = await client.post("/invitations/accept", json={"token": new_token, "password": "short"})
    assert weak.status_code == 422
    joined = await client.post(
        "/invitations/accept", json={"token": new_token, "password": PASSWORD, "transport": "body"}
    )
    assert joined.status_code == 201
    assert joined.json()["role"] == "agent"
    me = await client.get("/auth/me", headers=bearer(joined.json()["access_token"]))
    assert me.json()["user"]["email_verified"] is True

    # Revoked invitations stop working.
    revoked_email = new_email()
    pending = await client.post(
        invitations, json={"email": revoked_email, "role": "agent"}, headers=owner.headers
    )
    await run_jobs(client)
    revoked_token = mailbox.token_sent_to(revoked_email)
    assert (
        await client.delete(f"{invitations}/{pending.json()['id']}", headers=owner.headers)
    ).status_code == 204
    dead = await client.post("/invitations/accept", json={"token": revoked_token, "password": PASSWORD})
    assert dead.status_code == 400


async def test_role_changes_and_removals_take_effect_on_the_next_request(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    owner = await new_owner(client)
    admin = await add_member(client, mailbox, owner, "admin")
    agent = await add_member(client, mailbox, owner, "agent")
    members = f"/orgs/{owner.organization_id}/members"
    invitations = f"/orgs/{owner.organization_id}/invitations"
    assert (await client.get(invitations, headers=admin.headers)).status_code == 200
    assert (await client.get(invitations, headers=agent.headers)).status_code == 403

    listed = await client.get(members, headers=agent.headers)
    assert {(m["email"], m["role"]) for m in listed.json()["items"]} == {
        (owner.email, "owner"), (admin.email, "admin"), (agent.email, "agent"),
    }  # fmt: skip
    assert (
        await client.patch(f"{members}/{owner.user_id}", json={"role": "viewer"}, headers=admin.headers)
    ).status_code == 403
    assert (
        await client.patch(f"{members}/{agent.user_id}", json={"role": "owner"}, headers=admin.headers)
    ).status_code == 403
    assert (
        await client.patch(f"{members}/{agent.user_id}", json={"role": "viewer"}, headers=agent.headers)
    ).status_code == 403

    demoted = await client.patch(f"{members}/{admin.user_id}", json={"role": "viewer"}, headers=owner.headers)
    assert demoted.status_code == 200
    assert demoted.json()["role"] == "viewer"
    # The admin's token still says admin; the membership now says viewer, and the weaker one wins.
    assert (await client.get(invitations, headers=admin.headers)).status_code == 403
    me = await client.get("/auth/me", headers=admin.headers)
    assert me.json()["role"] == "viewer"

    assert (await client.delete(f"{members}/{agent.user_id}", headers=owner.headers)).status_code == 204
    assert (await client.get(f"/orgs/{owner.organization_id}", headers=agent.headers)).status_code == 401
    assert (
        await client.post("/auth/refresh", json={"refresh_token": agent.refresh_token})
    ).status_code == 401
    assert (await client.delete(f"{members}/{agent.user_id}", headers=owner.headers)).status_code == 404


async def test_an_organization_always_keeps_an_owner(client: AsyncClient, mailbox: Mailbox) -> None:
    owner = await new_owner(client)
    members = f"/orgs/{owner.organization_id}/members"
    leave = f"/orgs/{owner.organization_id}/leave"
    alone = await client.post(leave, headers=owner.headers)
    assert alone.status_code == 409
    assert alone.json()["code"] == "last_owner"
    assert (
        await client.patch(f"{members}/{owner.user_id}", json={"role": "admin"}, headers=owner.headers)
    ).status_code == 409
    second = await add_member(client, mailbox, owner, "admin")
    assert (
        await client.patch(f"{members}/{second.user_id}", json={"role": "owner"}, headers=owner.headers)
    ).status_code == 200
    assert (await client.post(leave, headers=owner.headers)).status_code == 204
    assert (await client.get(members, headers=owner.headers)).status_code == 401
    remaining = await client.get(members, headers=second.headers)
    assert [m["role"] for m in remaining.json()["items"]] == ["owner"]


async def test_switching_organization_keeps_the_session_and_changes_org_and_role(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    owner = await new_owner(client)
    other_owner = await new_owner(client)
    member = await add_member(client, mailbox, other_owner, "viewer")
    await verify(client, mailbox, owner)
    invite = await client.post(
        f"/orgs/{other_owner.organization_id}/invitations",
        json={"email": owner.email, "role": "agent"},
        headers=other_owner.headers,
    )
    assert invite.status_code == 201
    await run_jobs(client)
    joined = await client.post(
        "/invitations/accept", json={"token": mailbox.token_sent_to(owner.email)}, headers=owner.headers
    )
    assert joined.status_code == 200

    switched = await client.post(
        "/auth/switch-org", json={"organization_id": other_owner.organization_id}, headers=owner.headers
    )
    assert switched.status_code == 200
    body = switched.json()
    assert (body["organization"]["id"], body["role"]) == (other_owner.organization_id, "agent")
    assert "refresh_token" not in body
    me = await client.get("/auth/me", headers=bearer(body["access_token"]))
    assert (me.json()["organization"]["id"], me.json()["role"]) == (other_owner.organization_id, "agent")
    refreshed = await client.post("/auth/refresh", json={"refresh_token": owner.refresh_token})
    assert refreshed.json()["organization"]["id"] == other_owner.organization_id
    stranger = await client.post(
        "/auth/switch-org", json={"organization_id": member.organization_id}, headers=member.headers
    )
    assert stranger.status_code == 200  # their own organization
    not_mine = await client.post(
        "/auth/switch-org", json={"organization_id": owner.organization_id}, headers=member.headers
    )
    assert not_mine.status_code == 404
    by_login = await login(client, owner, organization_id=other_owner.organization_id)
    assert by_login.organization_id == other_owner.organization_id


async def test_only_owners_delete_and_viewers_change_nothing(client: AsyncClient, mailbox: Mailbox) -> None:
    owner = await new_owner(client)
    admin = await add_member(client, mailbox, owner, "admin")
    viewer = await add_member(client, mailbox, owner, "viewer")
    org = f"/orgs/{owner.organization_id}"
    slug = (await client.get(org, headers=viewer.headers)).json()["slug"]
    denied = await client.request("DELETE", org, json={"confirm": slug}, headers=admin.headers)
    assert denied.status_code == 403
    assert denied.json()["code"] == "forbidden"
    assert (await client.patch(org, json={"name": "x"}, headers=viewer.headers)).status_code == 403
    assert (await client.get(f"{org}/audit-log", headers=viewer.headers)).status_code == 403
    assert (
        await client.post(f"{org}/api-keys", json={"name": "k"}, headers=viewer.headers)
    ).status_code == 403


async def test_the_last_owner_cannot_leave_on_a_token_from_before_their_promotion(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    owner = await new_owner(client)
    successor = await add_member(client, mailbox, owner, "admin")  # token says admin
    members = f"/orgs/{owner.organization_id}/members"
    promoted = await client.patch(
        f"{members}/{successor.user_id}", json={"role": "owner"}, headers=owner.headers
    )
    assert promoted.status_code == 200
    assert (
        await client.post(f"/orgs/{owner.organization_id}/leave", headers=owner.headers)
    ).status_code == 204
    stale = await client.post(f"/orgs/{owner.organization_id}/leave", headers=successor.headers)
    assert stale.status_code == 409
    assert stale.json()["code"] == "last_owner"


async def test_cursors_not_given_out_are_400_whatever_they_hold(client: AsyncClient) -> None:
    import base64

    owner = await new_owner(client)
    forged = ["[Infinity]", '["2020-01-01T00:00:00+00:00", 5]', '{"a": 1}', '["x", "y", "z"]', "[null, null]"]
    for raw in forged:
        cursor = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
        for path in ("/orgs", f"/orgs/{owner.organization_id}/audit-log"):
            response = await client.get(path, params={"cursor": cursor}, headers=owner.headers)
            assert response.status_code == 400, (path, raw)
            assert response.json()["code"] == "invalid_cursor"


async def test_only_verified_people_invite_and_at_a_bounded_rate(
    make_settings: Callable[..., Settings], mailbox: Mailbox
) -> None:
    async with serve(make_settings(RATE_LIMIT_INVITATIONS_PER_ORG="2/hour")) as client:
        owner = await new_owner(client)
        invitations = f"/orgs/{owner.organization_id}/invitations"
        unverified = await client.post(
            invitations, json={"email": new_email(), "role": "agent"}, headers=owner.headers
        )
        assert unverified.status_code == 403
        assert unverified.json()["code"] == "email_not_verified"
        await verify(client, mailbox, owner)
        answers = [
            (
                await client.post(
                    invitations, json={"email": new_email(), "role": "agent"}, headers=owner.headers
                )
            )
            for _ in range(3)
        ]
        assert [answer.status_code for answer in answers] == [201, 201, 429]


async def test_signup_by_invitation_with_cookies_sets_all_three(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    owner = await new_owner(client)
    await verify(client, mailbox, owner)
    email = new_email()
    invited = await client.post(
        f"/orgs/{owner.organization_id}/invitations",
        json={"email": email, "role": "agent"},
        headers=owner.headers,
    )
    assert invited.status_code == 201
    await run_jobs(client)
    client.cookies.clear()
    joined = await client.post(
        "/invitations/accept", json={"token": mailbox.token_sent_to(email), "password": PASSWORD}
    )
    assert joined.status_code == 201
    assert {"access_token", "refresh_token", "csrf_token"} <= set(joined.cookies)
    assert "refresh_token" not in joined.json()
    assert joined.json()["user"]["full_name"] is None  # nullable fields are present, as documented
