"""Assignment (issue 11, point 6; decision 0040) through the HTTP API: round-robin auto-assignment among
the inbox team's online agents, the per-inbox cap, concurrent arrivals, reopened conversations, and
members taken out of a team or the organization."""

from __future__ import annotations

import asyncio
from typing import Any

from httpx import AsyncClient

from tests.conftest import Mailbox, run_jobs
from tests.contacts.helpers import create_contact, unique_email
from tests.conversations.helpers import created, messages, patch, read, url
from tests.organizations.helpers import Person, add_member, new_owner


async def _agents(client: AsyncClient, mailbox: Mailbox, owner: Person, count: int) -> list[Person]:
    return [await add_member(client, mailbox, owner, "agent") for _ in range(count)]


async def _available(client: AsyncClient, person: Person, status: str) -> None:
    answer = await client.put(
        f"/orgs/{person.organization_id}/members/me/availability",
        json={"status": status},
        headers=person.headers,
    )
    assert answer.status_code == 200, answer.text


async def _desk(
    client: AsyncClient, owner: Person, members: list[Person], *, limit: int | None = None, auto: bool = True
) -> dict[str, str]:
    """A team of `members`, an api inbox it works (auto-assignment `auto`, cap `limit`), a contact."""
    team = await created(client, owner, "teams", {"name": f"Team {unique_email()}"})
    for member in members:
        await created(client, owner, f"teams/{team['id']}/members", {"user_id": member.user_id})
    inbox = await created(
        client,
        owner,
        "inboxes",
        {
            "name": "API",
            "kind": "api",
            "team_id": team["id"],
            "auto_assignment": auto,
            "auto_assignment_limit": limit,
        },
    )
    assert inbox["auto_assignment_limit"] == limit
    contact = await create_contact(client, owner, name="Ada", email=unique_email())
    return {"team_id": team["id"], "inbox_id": inbox["id"], "contact_id": contact["id"]}


async def _create(client: AsyncClient, owner: Person, desk: dict[str, str], **extra: Any) -> dict[str, Any]:
    body = {"inbox_id": desk["inbox_id"], "contact_id": desk["contact_id"], **extra}
    return await created(client, owner, "conversations", body)


async def activity_of(client: AsyncClient, owner: Person, conversation_id: str) -> list[dict[str, Any]]:
    """The conversation's activity messages, oldest first."""
    return [
        message for message in await messages(client, owner, conversation_id) if message["kind"] == "activity"
    ]


async def test_round_robin_among_online_agents_of_the_team(client: AsyncClient, mailbox: Mailbox) -> None:
    owner = await new_owner(client)
    online = await _agents(client, mailbox, owner, 3)
    away, offline = await _agents(client, mailbox, owner, 2)
    viewer = await add_member(client, mailbox, owner, "viewer")
    outsider = (await _agents(client, mailbox, owner, 1))[0]  # online, but not in the team
    for person in [*online, viewer, outsider]:
        await _available(client, person, "online")
    await _available(client, away, "away")  # `offline` never set: no row at all
    desk = await _desk(client, owner, [*online, away, offline, viewer])

    conversations = [await _create(client, owner, desk, message={"body": "Hello"}) for _ in range(7)]

    # Nobody assigned yet: by user id; then each goes to the back of the line.
    order = sorted(person.user_id for person in online)
    assert [c["assignee_id"] for c in conversations] == [*order, *order, order[0]]
    assert all(c["team_id"] == desk["team_id"] for c in conversations)
    activity = await activity_of(client, owner, conversations[0]["id"])
    assert [(m["author_type"], m["author_id"], m["body"]) for m in activity] == [
        ("system", None, f"assigned to {order[0]} by auto-assignment")
    ]
    # A member going away is skipped from then on; coming back, they have waited longest.
    first = next(person for person in online if person.user_id == order[1])
    await _available(client, first, "away")
    assert (await _create(client, owner, desk))["assignee_id"] == order[2]
    await _available(client, first, "online")
    assert (await _create(client, owner, desk))["assignee_id"] == order[1]


async def test_cap_no_eligible_member_and_manual_assignment(client: AsyncClient, mailbox: Mailbox) -> None:
    owner = await new_owner(client)
    (agent,) = await _agents(client, mailbox, owner, 1)
    await _available(client, agent, "online")
    desk = await _desk(client, owner, [agent], limit=2)

    first, second, third = [await _create(client, owner, desk) for _ in range(3)]
    assert [first["assignee_id"], second["assignee_id"]] == [agent.user_id] * 2
    assert third["assignee_id"] is None  # at the cap: stays unassigned, nothing said
    assert third["team_id"] == desk["team_id"]
    assert await activity_of(client, owner, third["id"]) == []
    # Pending and snoozed count as open; resolved frees a place.
    await patch(client, owner, first["id"], status="pending")
    assert (await _create(client, owner, desk))["assignee_id"] is None
    await patch(client, owner, first["id"], status="resolved")
    assert (await _create(client, owner, desk))["assignee_id"] == agent.user_id
    # The cap binds auto-assignment only: a member may assign past it.
    manual = await patch(client, owner, third["id"], assignee_id=agent.user_id)
    assert manual["assignee_id"] == agent.user_id
    # Nobody online, auto-assignment off, or no team: unassigned.
    await _available(client, agent, "offline")
    assert (await _create(client, owner, await _desk(client, owner, [agent])))["assignee_id"] is None
    await _available(client, agent, "online")
    assert (await _create(client, owner, await _desk(client, owner, [agent], auto=False)))[
        "assignee_id"
    ] is None
    no_team = await created(client, owner, "inboxes", {"name": "Loose", "auto_assignment": True})
    loose = await _create(client, owner, {**desk, "inbox_id": no_team["id"]})
    assert (loose["assignee_id"], loose["team_id"]) == (None, None)


async def test_inbox_cap_is_bounded_and_clearable(client: AsyncClient) -> None:
    owner = await new_owner(client)
    inbox = await created(client, owner, "inboxes", {"name": "API", "auto_assignment_limit": 5})
    url = f"/orgs/{owner.organization_id}/inboxes/{inbox['id']}"
    for bad in (0, 1001, -1, "3", 2.5):
        refused = await client.patch(url, json={"auto_assignment_limit": bad}, headers=owner.headers)
        assert refused.status_code == 422, (bad, refused.text)
    assert (await client.get(url, headers=owner.headers)).json()["auto_assignment_limit"] == 5
    cleared = await client.patch(url, json={"auto_assignment_limit": None}, headers=owner.headers)
    assert cleared.json()["auto_assignment_limit"] is None


async def test_concurrent_arrivals_respect_the_cap(client: AsyncClient, mailbox: Mailbox) -> None:
    owner = await new_owner(client)
    agents = await _agents(client, mailbox, owner, 2)
    for agent in agents:
        await _available(client, agent, "online")
    desk = await _desk(client, owner, agents, limit=3)
    body = {"inbox_id": desk["inbox_id"], "contact_id": desk["contact_id"]}
    answers = await asyncio.gather(
        *(client.post(url(owner), json=body, headers=owner.headers) for _ in range(12))
    )
    assert [answer.status_code for answer in answers] == [201] * 12, [a.text for a in answers]
    assignees = [answer.json()["assignee_id"] for answer in answers]
    assert sorted(assignees.count(agent.user_id) for agent in agents) == [3, 3]
    assert assignees.count(None) == 6


async def test_reopened_unassigned_conversation_is_offered_again(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    owner = await new_owner(client)
    (agent,) = await _agents(client, mailbox, owner, 1)
    desk = await _desk(client, owner, [agent], limit=1)
    by_message, by_patch, assigned = [await _create(client, owner, desk) for _ in range(3)]
    assert by_message["assignee_id"] is None  # nobody online
    for conversation in (by_message, by_patch):
        await patch(client, owner, conversation["id"], status="resolved")
    await patch(client, owner, assigned["id"], status="resolved", assignee_id=owner.user_id)
    await _available(client, agent, "online")

    posted = await client.post(
        url(owner, by_message["id"], "messages"),
        json={"kind": "incoming", "body": "Again"},
        headers=owner.headers,
    )
    assert posted.status_code == 201, posted.text
    await patch(client, owner, by_patch["id"], status="open")
    await patch(client, owner, assigned["id"], status="open")  # has an assignee: left alone
    await run_jobs(client)

    reopened = [await read(client, owner, c["id"]) for c in (by_message, by_patch, assigned)]
    # The cap (1) lets one of the two in; the other stays unassigned.
    assert sorted([reopened[0]["assignee_id"] or "", reopened[1]["assignee_id"] or ""]) == ["", agent.user_id]
    assert reopened[2]["assignee_id"] == owner.user_id
    winner = reopened[0] if reopened[0]["assignee_id"] else reopened[1]
    assert (await activity_of(client, owner, winner["id"]))[-1]["body"] == (
        f"assigned to {agent.user_id} by auto-assignment"
    )


async def test_members_leaving_a_team_or_the_organization_are_unassigned(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    owner = await new_owner(client)
    moved, removed, leaving = await _agents(client, mailbox, owner, 3)
    for agent in (moved, removed, leaving):
        await _available(client, agent, "online")
    desk = await _desk(client, owner, [moved, removed, leaving])
    mine: dict[str, list[str]] = {}
    for _ in range(6):
        conversation = await _create(client, owner, desk)
        mine.setdefault(conversation["assignee_id"], []).append(conversation["id"])
    assert sorted(len(ids) for ids in mine.values()) == [2, 2, 2]
    open_id, resolved_id = mine[moved.user_id]
    await patch(client, owner, resolved_id, status="resolved")
    other = await created(client, owner, "teams", {"name": "Other"})
    elsewhere = await patch(
        client,
        owner,
        (await _create(client, owner, desk))["id"],
        team_id=other["id"],
        assignee_id=moved.user_id,
    )

    out_of_team = await client.delete(
        f"/orgs/{owner.organization_id}/teams/{desk['team_id']}/members/{moved.user_id}",
        headers=owner.headers,
    )
    assert out_of_team.status_code == 204, out_of_team.text
    released = await read(client, owner, open_id)
    assert released["assignee_id"] is None
    last = (await activity_of(client, owner, open_id))[-1]
    assert (last["author_type"], last["author_id"]) == ("member", owner.user_id)
    assert (
        last["body"]
        == f"member {owner.user_id} unassigned {moved.user_id}: taken out of team {desk['team_id']}"
    )
    # Resolved, or of another team: still theirs.
    assert (await read(client, owner, resolved_id))["assignee_id"] == moved.user_id
    assert (await read(client, owner, elsewhere["id"]))["assignee_id"] == moved.user_id
    assert (await _create(client, owner, desk))["assignee_id"] != moved.user_id  # no longer picked

    removal = await client.delete(
        f"/orgs/{owner.organization_id}/members/{removed.user_id}", headers=owner.headers
    )
    assert removal.status_code == 204, removal.text
    await patch(client, owner, mine[leaving.user_id][1], status="resolved")  # resolved ones too
    departure = await client.post(f"/orgs/{owner.organization_id}/leave", headers=leaving.headers)
    assert departure.status_code == 204, departure.text

    for person, how, by in (
        (removed, "removed from the organization", owner),
        (leaving, "left the organization", leaving),
    ):
        for conversation_id in mine[person.user_id]:
            conversation = await read(client, owner, conversation_id)
            assert conversation["assignee_id"] is None
            last = (await activity_of(client, owner, conversation_id))[-1]
            assert (last["author_type"], last["author_id"]) == ("member", by.user_id)
            assert last["body"] == f"member {by.user_id} unassigned {person.user_id}: {how}"


async def test_removals_racing_arrivals_never_fail_nor_leave_an_assignment(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    owner = await new_owner(client)
    agents = await _agents(client, mailbox, owner, 3)
    for agent in agents:
        await _available(client, agent, "online")
    desk = await _desk(client, owner, agents)
    early = [await _create(client, owner, desk) for _ in range(3)]
    handed = next(c for c in early if c["assignee_id"] != agents[0].user_id)
    body = {"inbox_id": desk["inbox_id"], "contact_id": desk["contact_id"]}
    org = f"/orgs/{owner.organization_id}"
    manual, *answers = await asyncio.gather(
        # A manual assignment to the member being removed: either it went first (and is unassigned
        # with the rest), or it waited and was refused.
        client.patch(
            url(owner, handed["id"]), json={"assignee_id": agents[0].user_id}, headers=owner.headers
        ),
        *(client.post(url(owner), json=body, headers=owner.headers) for _ in range(5)),
        client.delete(f"{org}/members/{agents[0].user_id}", headers=owner.headers),
        client.delete(f"{org}/teams/{desk['team_id']}/members/{agents[1].user_id}", headers=owner.headers),
        *(client.post(url(owner), json=body, headers=owner.headers) for _ in range(5)),
    )
    assert sorted({answer.status_code for answer in answers}) == [201, 204], [a.text for a in answers]
    assert manual.status_code in (200, 422), manual.text
    if manual.status_code == 422:
        assert manual.json()["code"] == "assignee_not_an_agent"
    else:
        last = (await activity_of(client, owner, handed["id"]))[-1]
        assert last["body"].endswith(f"unassigned {agents[0].user_id}: removed from the organization")
    listed = await client.get(url(owner), params={"limit": 100}, headers=owner.headers)
    items = listed.json()["items"]
    assert len(items) == 13
    # Every arrival found someone (the third agent is always there); those of the two who went are
    # unassigned again, each saying so: nothing was nulled silently.
    assert {c["assignee_id"] for c in items} - {None} == {agents[2].user_id}
    for conversation in items:
        activity = await activity_of(client, owner, conversation["id"])
        assert activity[0]["body"].endswith("by auto-assignment")
        if conversation["assignee_id"] is None:
            assert " unassigned " in activity[-1]["body"], activity


async def test_a_member_made_a_viewer_is_unassigned(client: AsyncClient, mailbox: Mailbox) -> None:
    owner = await new_owner(client)
    (agent,) = await _agents(client, mailbox, owner, 1)
    await _available(client, agent, "online")
    desk = await _desk(client, owner, [agent])
    conversation = await _create(client, owner, desk)
    assert conversation["assignee_id"] == agent.user_id
    member_url = f"/orgs/{owner.organization_id}/members/{agent.user_id}"
    promoted = await client.patch(member_url, json={"role": "admin"}, headers=owner.headers)
    assert promoted.status_code == 200, promoted.text
    assert (await read(client, owner, conversation["id"]))["assignee_id"] == agent.user_id  # still works
    demoted = await client.patch(member_url, json={"role": "viewer"}, headers=owner.headers)
    assert demoted.status_code == 200, demoted.text
    assert (await read(client, owner, conversation["id"]))["assignee_id"] is None
    last = (await activity_of(client, owner, conversation["id"]))[-1]
    assert last["body"] == f"member {owner.user_id} unassigned {agent.user_id}: made a viewer"
    # A viewer is never picked again, nor assigned by hand.
    assert (await _create(client, owner, desk))["assignee_id"] is None
    refused = await client.patch(
        url(owner, conversation["id"]), json={"assignee_id": agent.user_id}, headers=owner.headers
    )
    assert refused.status_code == 422
    assert refused.json()["code"] == "assignee_not_an_agent"
