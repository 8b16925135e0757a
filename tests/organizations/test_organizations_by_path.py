"""Every organization of a person works by its id in the path, with the membership and role in that
organization checked on each request; no switching needed (issue 9, point 11)."""

from __future__ import annotations

from httpx import AsyncClient

from tests.conftest import Mailbox, new_email, run_jobs
from tests.organizations.helpers import add_member, join, new_organization, new_owner


async def test_a_new_organization_is_usable_at_once_without_switching(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    owner = await new_owner(client)
    second = await new_organization(client, owner)
    assert second != owner.organization_id

    # Invite into it, let someone join, and list its members: all with the first organization's token.
    joined = await add_member(client, mailbox, owner, "agent", organization_id=second)
    assert joined.organization_id == second
    members = await client.get(f"/orgs/{second}/members", headers=owner.headers)
    assert members.status_code == 200
    assert {(m["email"], m["role"]) for m in members.json()["items"]} == {
        (owner.email, "owner"), (joined.email, "agent"),
    }  # fmt: skip
    # The write landed in the organization of the path, not in the token's.
    pending_email = new_email()
    invited = await client.post(
        f"/orgs/{second}/invitations", json={"email": pending_email, "role": "viewer"}, headers=owner.headers
    )
    assert invited.status_code == 201
    in_second = await client.get(f"/orgs/{second}/invitations", headers=owner.headers)
    in_first = await client.get(f"/orgs/{owner.organization_id}/invitations", headers=owner.headers)
    assert [i["email"] for i in in_second.json()["items"]] == [pending_email]
    assert in_first.json()["items"] == []
    log = await client.get(f"/orgs/{second}/audit-log", headers=owner.headers)
    assert "invitation.created" in {event["action"] for event in log.json()["items"]}

    # The token's own organization is still its default (for /auth/me), unchanged by all this.
    me = await client.get("/auth/me", headers=owner.headers)
    assert me.json()["organization"]["id"] == owner.organization_id
    await run_jobs(client)


async def test_the_role_is_the_one_held_in_the_organization_of_the_path(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    owner_a = await new_owner(client)  # owner of A
    owner_b = await new_owner(client)
    await join(client, mailbox, owner_b, owner_a, "viewer", owner_b.organization_id)
    b = f"/orgs/{owner_b.organization_id}"

    # Owner in A, viewer in B: B's role applies in B.
    assert (await client.get(f"{b}/members", headers=owner_a.headers)).status_code == 200
    denied = await client.post(
        f"{b}/invitations", json={"email": new_email(), "role": "viewer"}, headers=owner_a.headers
    )
    assert denied.status_code == 403
    assert denied.json()["code"] == "forbidden"
    assert (await client.patch(b, json={"name": "mine now"}, headers=owner_a.headers)).status_code == 403

    # Promoted in B: the new role applies on the next request, whatever the token (minted in A) says.
    promoted = await client.patch(
        f"{b}/members/{owner_a.user_id}", json={"role": "admin"}, headers=owner_b.headers
    )
    assert promoted.status_code == 200
    allowed = await client.post(
        f"{b}/invitations", json={"email": new_email(), "role": "agent"}, headers=owner_a.headers
    )
    assert allowed.status_code == 201
    # An admin of B still cannot give B's owner role, though they own A.
    above = await client.post(
        f"{b}/invitations", json={"email": new_email(), "role": "owner"}, headers=owner_a.headers
    )
    assert above.status_code == 403
    assert above.json()["code"] == "role_above_yours"

    # Leaving B by its path leaves B only.
    assert (await client.post(f"{b}/leave", headers=owner_a.headers)).status_code == 204
    gone = await client.get(b, headers=owner_a.headers)
    assert gone.status_code == 404
    assert gone.json()["code"] == "organization_not_found"
    assert (await client.get(f"/orgs/{owner_a.organization_id}", headers=owner_a.headers)).status_code == 200
    await run_jobs(client)


async def test_non_members_and_other_organizations_keys_get_404(client: AsyncClient) -> None:
    person = await new_owner(client)
    stranger = await new_owner(client)
    theirs = f"/orgs/{stranger.organization_id}"
    for method, path in (("GET", theirs), ("GET", f"{theirs}/members"), ("POST", f"{theirs}/leave")):
        response = await client.request(method, path, headers=person.headers)
        assert response.status_code == 404, (method, path)
        assert response.json()["code"] == "organization_not_found"
    malformed = await client.get("/orgs/not-an-id/members", headers=person.headers)
    assert malformed.status_code == 404

    # An API key stays bound to its own organization, even one its creator belongs to as well.
    second = await new_organization(client, person)
    key = await client.post(
        f"/orgs/{person.organization_id}/api-keys", json={"name": "ci"}, headers=person.headers
    )
    as_key = {"X-API-Key": key.json()["secret"]}
    assert (await client.get(f"/orgs/{person.organization_id}", headers=as_key)).status_code == 200
    for path in (f"/orgs/{second}", theirs):
        refused = await client.get(path, headers=as_key)
        assert refused.status_code == 404
        assert refused.json()["code"] == "organization_not_found"
