"""Invitations and API keys carry at most their issuer's current authority (issue 9, point 3;
decision 0025): an invitation is accepted only while its inviter may still invite, with a role no
higher than theirs now; an API key works only while its creator may still manage keys."""

from __future__ import annotations

from httpx import AsyncClient

from tests.conftest import PASSWORD, Mailbox, new_email, run_jobs
from tests.organizations.helpers import Person, add_member, invite, login, new_owner, verify


async def _set_role(client: AsyncClient, owner: Person, member: Person, role: str) -> None:
    changed = await client.patch(
        f"/orgs/{owner.organization_id}/members/{member.user_id}", json={"role": role}, headers=owner.headers
    )
    assert changed.status_code == 200, changed.text


async def _accept_by_signing_up(client: AsyncClient, token: str) -> dict[str, object]:
    response = await client.post(
        "/invitations/accept", json={"token": token, "password": PASSWORD, "transport": "body"}
    )
    return {"status": response.status_code, **response.json()}


async def test_invitations_of_a_demoted_or_removed_admin_admit_nobody(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    owner = await new_owner(client)
    admin = await add_member(client, mailbox, owner, "admin")
    new_person = new_email()
    to_new_person = await invite(client, mailbox, admin, new_person, "admin")
    existing = await new_owner(client)
    await verify(client, mailbox, existing)
    to_existing = await invite(client, mailbox, admin, existing.email, "agent")

    await _set_role(client, owner, admin, "viewer")  # may no longer invite
    refused = await _accept_by_signing_up(client, to_new_person)
    assert (refused["status"], refused["code"]) == (400, "invalid_link")
    assert "may no longer invite" in str(refused["detail"])
    signed_in = await client.post(
        "/invitations/accept", json={"token": to_existing}, headers=existing.headers
    )
    assert (signed_in.status_code, signed_in.json()["code"]) == (400, "invalid_link")
    members = await client.get(f"/orgs/{owner.organization_id}/members", headers=owner.headers)
    assert existing.email not in {m["email"] for m in members.json()["items"]}
    # The refused sign-up created no account.
    no_account = await client.post("/auth/login", json={"email": new_person, "password": PASSWORD})
    assert no_account.status_code == 401

    # Promoted back, the same links work again (standing is read when the link is used).
    await _set_role(client, owner, admin, "admin")
    joined = await _accept_by_signing_up(client, to_new_person)
    assert (joined["status"], joined["role"]) == (201, "admin")

    # Removed: their pending invitations admit nobody.
    later = await invite(client, mailbox, admin, new_email(), "agent")
    removed = await client.delete(
        f"/orgs/{owner.organization_id}/members/{admin.user_id}", headers=owner.headers
    )
    assert removed.status_code == 204
    gone = await _accept_by_signing_up(client, later)
    assert (gone["status"], gone["code"]) == (400, "invalid_link")


async def test_an_invitation_admits_no_higher_than_its_inviter_is_now(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    first_owner = await new_owner(client)
    co_owner = await add_member(client, mailbox, first_owner, "admin")
    await _set_role(client, first_owner, co_owner, "owner")
    co_owner_now = await login(client, co_owner)  # a token minted as owner
    email = new_email()
    token = await invite(client, mailbox, co_owner_now, email, "owner")
    await _set_role(client, first_owner, co_owner_now, "admin")  # still invites, but no owners

    joined = await _accept_by_signing_up(client, token)
    assert (joined["status"], joined["role"]) == (201, "admin")
    members = await client.get(f"/orgs/{first_owner.organization_id}/members", headers=first_owner.headers)
    assert {m["email"]: m["role"] for m in members.json()["items"]}[email] == "admin"
    log = await client.get(
        f"/orgs/{first_owner.organization_id}/audit-log",
        params={"action": "invitation.accepted"},
        headers=first_owner.headers,
    )
    assert log.json()["items"][0]["details"] == {"role": "admin", "invited_as": "owner"}


async def test_api_keys_work_only_while_their_creator_may_manage_keys(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    owner = await new_owner(client)
    admin = await add_member(client, mailbox, owner, "admin")
    org = f"/orgs/{owner.organization_id}"
    created = await client.post(
        f"{org}/api-keys", json={"name": "ci", "role": "admin"}, headers=admin.headers
    )
    assert created.status_code == 201
    as_key = {"X-API-Key": created.json()["secret"]}
    assert (await client.get(f"{org}/audit-log", headers=as_key)).status_code == 200

    for weaker in ("agent", "viewer"):
        await _set_role(client, owner, admin, weaker)
        refused = await client.get(org, headers=as_key)
        assert (refused.status_code, refused.json()["code"]) == (401, "invalid_api_key")
    await _set_role(client, owner, admin, "admin")
    assert (await client.get(f"{org}/audit-log", headers=as_key)).status_code == 200

    # An owner demoted to admin still may manage keys: their keys keep working, with their role.
    owners_key = await client.post(
        f"{org}/api-keys", json={"name": "owner's", "role": "admin"}, headers=owner.headers
    )
    await _set_role(client, owner, admin, "owner")
    admin = await login(client, admin)  # a token minted as owner
    await _set_role(client, admin, owner, "admin")
    owners_key_headers = {"X-API-Key": owners_key.json()["secret"]}
    assert (await client.get(f"{org}/audit-log", headers=owners_key_headers)).status_code == 200

    # The creator removed (or gone with their account): the key stops working at once.
    assert (await client.delete(f"{org}/members/{owner.user_id}", headers=admin.headers)).status_code == 204
    dead = await client.get(org, headers=owners_key_headers)
    assert (dead.status_code, dead.json()["code"]) == (401, "invalid_api_key")
    assert (await client.get(org, headers=as_key)).status_code == 200  # the other creator's key lives
    await run_jobs(client)


async def test_a_member_who_leaves_takes_their_keys_and_invitations_with_them(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    owner = await new_owner(client)
    admin = await add_member(client, mailbox, owner, "admin")
    org = f"/orgs/{owner.organization_id}"
    key = await client.post(f"{org}/api-keys", json={"name": "ci", "role": "viewer"}, headers=admin.headers)
    token = await invite(client, mailbox, admin, new_email(), "viewer")
    assert (await client.post(f"{org}/leave", headers=admin.headers)).status_code == 204
    assert (await client.get(org, headers={"X-API-Key": key.json()["secret"]})).status_code == 401
    refused = await _accept_by_signing_up(client, token)
    assert (refused["status"], refused["code"]) == (400, "invalid_link")
    # A fresh invitation from someone who may invite works.
    fresh = await add_member(client, mailbox, owner, "viewer")
    assert fresh.organization_id == owner.organization_id
