"""Teams and their members, agent availability and SLA policies through the HTTP API."""

from __future__ import annotations

import asyncio
import uuid

from httpx import AsyncClient

from tests.conftest import Mailbox
from tests.conversations.helpers import TARGETS, configure, created
from tests.organizations.helpers import Person, add_member, new_owner


async def _member_ids(client: AsyncClient, person: Person, team_id: str) -> list[str]:
    listed = await client.get(
        f"/orgs/{person.organization_id}/teams/{team_id}/members", headers=person.headers
    )
    assert listed.status_code == 200, listed.text
    return [item["user_id"] for item in listed.json()["items"]]


async def _audit_actions(client: AsyncClient, owner: Person) -> list[str]:
    log = await client.get(f"/orgs/{owner.organization_id}/audit-log", headers=owner.headers)
    return [event["action"] for event in log.json()["items"]]


async def test_teams_hold_members_a_member_may_be_in_several(client: AsyncClient, mailbox: Mailbox) -> None:
    owner = await new_owner(client)
    agent = await add_member(client, mailbox, owner, "agent")
    org = f"/orgs/{owner.organization_id}"
    first = await created(client, owner, "teams", {"name": "Billing", "description": "Invoices"})
    second = await created(client, owner, "teams", {"name": "Tech"})
    for team in (first, second):
        added = await created(client, owner, f"teams/{team['id']}/members", {"user_id": agent.user_id})
        assert (added["user_id"], added["email"]) == (agent.user_id, agent.email)
        assert await _member_ids(client, agent, team["id"]) == [agent.user_id]
    again = await client.post(
        f"{org}/teams/{first['id']}/members", json={"user_id": agent.user_id}, headers=owner.headers
    )
    assert again.status_code == 409
    assert again.json()["code"] == "already_in_team"

    renamed = await client.patch(
        f"{org}/teams/{first['id']}", json={"description": None}, headers=owner.headers
    )
    assert (renamed.json()["name"], renamed.json()["description"]) == ("Billing", None)
    taken = await client.patch(f"{org}/teams/{first['id']}", json={"name": "Tech"}, headers=owner.headers)
    assert taken.status_code == 409
    duplicate = await client.post(f"{org}/teams", json={"name": "Tech"}, headers=owner.headers)
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "team_name_taken"

    path = f"{org}/teams/{first['id']}/members/{agent.user_id}"
    assert (await client.delete(path, headers=owner.headers)).status_code == 204
    assert (await client.delete(path, headers=owner.headers)).status_code == 404
    assert await _member_ids(client, owner, first["id"]) == []
    assert await _member_ids(client, owner, second["id"]) == [agent.user_id]
    assert (await client.delete(f"{org}/teams/{second['id']}", headers=owner.headers)).status_code == 204
    assert (await client.get(f"{org}/teams/{second['id']}", headers=owner.headers)).status_code == 404
    listed = await client.get(f"{org}/teams", headers=agent.headers)
    assert [team["id"] for team in listed.json()["items"]] == [first["id"]]
    actions = await _audit_actions(client, owner)
    for action in ("team.created", "team.deleted", "team.member_added", "team.member_removed"):
        assert action in actions


async def test_only_members_of_the_organization_join_its_teams(client: AsyncClient) -> None:
    owner = await new_owner(client)
    stranger = await new_owner(client)  # a member of another organization only
    team = await created(client, owner, "teams", {"name": "Support"})
    members = f"/orgs/{owner.organization_id}/teams/{team['id']}/members"
    for user_id in (stranger.user_id, str(uuid.uuid4())):
        refused = await client.post(members, json={"user_id": user_id}, headers=owner.headers)
        assert refused.status_code == 422
        assert refused.json()["code"] == "not_an_organization_member"
    for body in ({"user_id": "nope"}, {}, {"user_id": owner.user_id, "extra": 1}):
        assert (await client.post(members, json=body, headers=owner.headers)).status_code == 422
    assert await _member_ids(client, owner, team["id"]) == []


async def test_a_member_removed_from_the_organization_leaves_their_teams(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    owner = await new_owner(client)
    agent = await add_member(client, mailbox, owner, "agent")
    ids = await configure(client, owner, agent)
    assert await _member_ids(client, owner, ids["team_id"]) == [agent.user_id]
    removed = await client.delete(
        f"/orgs/{owner.organization_id}/members/{agent.user_id}", headers=owner.headers
    )
    assert removed.status_code == 204
    assert await _member_ids(client, owner, ids["team_id"]) == []
    availability = await client.get(f"/orgs/{owner.organization_id}/availability", headers=owner.headers)
    assert [item["user_id"] for item in availability.json()["items"]] == [owner.user_id]


async def test_admins_manage_teams_others_read(client: AsyncClient, mailbox: Mailbox) -> None:
    owner = await new_owner(client)
    team = await created(client, owner, "teams", {"name": "Support"})
    org = f"/orgs/{owner.organization_id}"
    admin = await add_member(client, mailbox, owner, "admin")
    assert (await client.post(f"{org}/teams", json={"name": "A"}, headers=admin.headers)).status_code == 201
    key = await client.post(f"{org}/api-keys", json={"name": "k", "role": "admin"}, headers=owner.headers)
    admin_key = {"X-API-Key": key.json()["secret"]}
    assert (await client.get(f"{org}/teams", headers=admin_key)).status_code == 200
    assert (await client.post(f"{org}/teams", json={"name": "K"}, headers=admin_key)).status_code == 403
    for role in ("agent", "viewer"):
        person = await add_member(client, mailbox, owner, role)
        assert (await client.get(f"{org}/teams/{team['id']}", headers=person.headers)).status_code == 200
        assert (
            await client.get(f"{org}/teams/{team['id']}/members", headers=person.headers)
        ).status_code == 200
        for method, url, body in (
            ("POST", f"{org}/teams", {"name": "X"}),
            ("PATCH", f"{org}/teams/{team['id']}", {"name": "X"}),
            ("DELETE", f"{org}/teams/{team['id']}", None),
            ("POST", f"{org}/teams/{team['id']}/members", {"user_id": person.user_id}),
            ("DELETE", f"{org}/teams/{team['id']}/members/{person.user_id}", None),
        ):
            response = await client.request(method, url, json=body, headers=person.headers)
            assert response.status_code == 403, (role, method, url)


async def test_other_organizations_teams_are_not_found(client: AsyncClient) -> None:
    a = await new_owner(client)
    b = await new_owner(client)
    ids = await configure(client, b)
    org = f"/orgs/{a.organization_id}"
    team = f"{org}/teams/{ids['team_id']}"
    for method, url, body in (
        ("GET", team, None),
        ("PATCH", team, {"name": "x"}),
        ("DELETE", team, None),
        ("GET", f"{team}/members", None),
        ("POST", f"{team}/members", {"user_id": a.user_id}),
        ("DELETE", f"{team}/members/{b.user_id}", None),
        ("GET", f"{org}/sla-policies/{ids['policy_id']}", None),
        ("DELETE", f"{org}/sla-policies/{ids['policy_id']}", None),
    ):
        response = await client.request(method, url, json=body, headers=a.headers)
        assert response.status_code == 404, (method, url, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert await _member_ids(client, b, ids["team_id"]) == [b.user_id]


async def test_racing_team_writes_end_in_404_or_409(client: AsyncClient, mailbox: Mailbox) -> None:
    owner = await new_owner(client)
    agent = await add_member(client, mailbox, owner, "agent")
    org = f"/orgs/{owner.organization_id}"
    for round_ in range(4):
        names = await asyncio.gather(
            *(
                client.post(f"{org}/teams", json={"name": f"T{round_}"}, headers=owner.headers)
                for _ in range(2)
            )
        )
        assert sorted(response.status_code for response in names) == [201, 409]
        team_id = next(response.json()["id"] for response in names if response.status_code == 201)
        members = f"{org}/teams/{team_id}/members"
        adds = await asyncio.gather(
            *(client.post(members, json={"user_id": agent.user_id}, headers=owner.headers) for _ in range(2))
        )
        assert sorted(response.status_code for response in adds) == [201, 409]
        ends = await asyncio.gather(
            client.delete(f"{members}/{agent.user_id}", headers=owner.headers),
            client.delete(f"{org}/teams/{team_id}", headers=owner.headers),
            client.post(members, json={"user_id": owner.user_id}, headers=owner.headers),
        )
        assert {response.status_code for response in ends} <= {201, 204, 404}, [r.text for r in ends]
        assert (await client.get(f"{org}/teams/{team_id}", headers=owner.headers)).status_code == 404


async def test_each_member_sets_their_own_availability_everyone_reads_it(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    owner = await new_owner(client)
    viewer = await add_member(client, mailbox, owner, "viewer")
    org = f"/orgs/{owner.organization_id}"
    listed = await client.get(f"{org}/availability", headers=viewer.headers)
    assert {item["status"] for item in listed.json()["items"]} == {"offline"}
    assert {item["updated_at"] for item in listed.json()["items"]} == {None}
    for status in ("online", "away"):
        answer = await client.put(
            f"{org}/members/me/availability", json={"status": status}, headers=viewer.headers
        )
        assert answer.status_code == 200
        assert (answer.json()["user_id"], answer.json()["status"]) == (viewer.user_id, status)
    statuses = {
        item["user_id"]: item["status"]
        for item in (await client.get(f"{org}/availability", headers=owner.headers)).json()["items"]
    }
    assert statuses == {owner.user_id: "offline", viewer.user_id: "away"}
    for body in ({"status": "busy"}, {}, {"status": None}, {"status": "online", "user_id": owner.user_id}):
        refused = await client.put(f"{org}/members/me/availability", json=body, headers=viewer.headers)
        assert refused.status_code == 422
    key = await client.post(f"{org}/api-keys", json={"name": "k", "role": "admin"}, headers=owner.headers)
    key_headers = {"X-API-Key": key.json()["secret"]}
    assert (await client.get(f"{org}/availability", headers=key_headers)).status_code == 200
    by_key = await client.put(
        f"{org}/members/me/availability", json={"status": "online"}, headers=key_headers
    )
    assert by_key.status_code == 403
    other = await new_owner(client)
    assert (await client.get(f"{org}/availability", headers=other.headers)).status_code == 404
    assert (
        await client.put(f"{org}/members/me/availability", json={"status": "online"}, headers=other.headers)
    ).status_code == 404


async def test_the_availability_list_pages(client: AsyncClient, mailbox: Mailbox) -> None:
    owner = await new_owner(client)
    for _ in range(2):
        await add_member(client, mailbox, owner, "agent")
    org = f"/orgs/{owner.organization_id}"
    first = (await client.get(f"{org}/availability?limit=2", headers=owner.headers)).json()
    rest = await client.get(
        f"{org}/availability?limit=2&cursor={first['next_cursor']}", headers=owner.headers
    )
    seen = [item["user_id"] for item in first["items"] + rest.json()["items"]]
    assert len(seen) == len(set(seen)) == 3
    assert rest.json()["next_cursor"] is None


async def test_sla_policies_are_managed_by_admins(client: AsyncClient, mailbox: Mailbox) -> None:
    owner = await new_owner(client)
    org = f"/orgs/{owner.organization_id}"
    policy = await created(client, owner, "sla-policies", {"name": "Standard", "targets": TARGETS})
    assert policy["targets"] == TARGETS
    path = f"{org}/sla-policies/{policy['id']}"
    targets = {"low": {"resolution": 2880}, "high": {"first_response": 60}}
    changed = await client.patch(path, json={"targets": targets}, headers=owner.headers)
    assert changed.status_code == 200
    assert changed.json()["targets"] == {
        "low": {"first_response": None, "next_response": None, "resolution": 2880},
        "high": {"first_response": 60, "next_response": None, "resolution": None},
    }
    assert changed.json()["name"] == "Standard"
    for body in (
        {"targets": {"critical": {"resolution": 5}}},
        {"targets": {"low": {"resolution": 0}}},
        {"targets": {"low": {"resolution": 10**9}}},
        {"targets": {"low": {"respond": 5}}},
        {"targets": {"low": {"resolution": "soon"}}},
        {"name": ""},
    ):
        assert (await client.patch(path, json=body, headers=owner.headers)).status_code == 422, body
        assert (
            await client.post(f"{org}/sla-policies", json={"name": "X", **body}, headers=owner.headers)
        ).status_code == 422
    assert (await client.get(path, headers=owner.headers)).json() == changed.json()
    viewer = await add_member(client, mailbox, owner, "viewer")
    assert (await client.get(f"{org}/sla-policies", headers=viewer.headers)).status_code == 200
    assert (await client.patch(path, json={"name": "V"}, headers=viewer.headers)).status_code == 403
    assert (await client.delete(path, headers=viewer.headers)).status_code == 403
    assert (await client.delete(path, headers=owner.headers)).status_code == 204
    assert (await client.get(path, headers=owner.headers)).status_code == 404
    listed = await client.get(f"{org}/sla-policies", headers=owner.headers)
    assert listed.json()["items"] == []
