"""A conversation's SLA clocks through the HTTP API (issue 11, point 7; decision 0039): due times in
the inbox's business hours, the first-response, next-response and resolution rules, pauses while
pending or snoozed, recomputation on a priority or policy change, resolving and reopening."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient

from aisupport.conversations.sla_clock import BusinessHours, due_at
from tests.conftest import run_jobs
from tests.conversations.helpers import patch, post, read, url
from tests.conversations.timers import PARIS_OFFICE, inbox_with_policy, open_conversation, set_columns, when
from tests.organizations.helpers import new_owner

TARGETS = {
    "none": {"first_response": 60, "next_response": 30, "resolution": 480},
    "urgent": {"first_response": 15, "next_response": 10, "resolution": 120},
    "low": {"resolution": 600},
}
# Friday 8 January 2094, 18:30 in Paris (CET, UTC+1): the office closed at 17:00. In the future, so no
# clock runs out during the test (a clock past its due time when the priority changes stays breached).
FRIDAY_EVENING = datetime(2094, 1, 8, 17, 30, tzinfo=UTC)


def _monday(hour: int, minute: int = 0) -> datetime:
    """Monday 11 January 2094 at hour:minute in Paris, in UTC."""
    return datetime(2094, 1, 11, hour - 1, minute, tzinfo=UTC)


def _due(conversation: dict[str, Any], target: str) -> datetime | None:
    clock = conversation["sla"][target]
    assert clock is not None, target
    return when(clock["due_at"])


async def test_due_times_count_business_hours_from_a_friday_evening_and_follow_the_priority(
    client: AsyncClient, database_url: str
) -> None:
    owner = await new_owner(client)
    refs = await inbox_with_policy(client, owner, TARGETS, PARIS_OFFICE)
    conversation = await open_conversation(client, owner, refs)
    # Created now: due an hour (first response) and a day (resolution) of office time from now.
    created = datetime.fromisoformat(conversation["created_at"])
    hours = BusinessHours.from_stored(PARIS_OFFICE)
    assert _due(conversation, "first_response") == due_at(created, 60, hours)
    assert _due(conversation, "resolution") == due_at(created, 480, hours)
    assert conversation["sla"]["next_response"] == {
        "due_at": None,
        "breached": False,
        "breached_at": None,
        "met_at": None,
    }

    # The same conversation as if created on a Friday evening: nothing counts until Monday 09:00.
    await set_columns(
        database_url,
        conversation["id"],
        created_at=FRIDAY_EVENING,
        sla_first_response_started_at=FRIDAY_EVENING,
        sla_resolution_started_at=FRIDAY_EVENING,
    )
    urgent = await patch(client, owner, conversation["id"], priority="urgent")
    assert _due(urgent, "first_response") == _monday(9, 15)
    assert _due(urgent, "resolution") == _monday(11)
    normal = await patch(client, owner, conversation["id"], priority="none")
    assert _due(normal, "first_response") == _monday(10)
    assert _due(normal, "resolution") == _monday(17)  # exactly at closing time: the whole day
    assert normal["version"] == urgent["version"] + 1
    # A priority the policy sets no first response for: that target reads null.
    low = await patch(client, owner, conversation["id"], priority="low")
    assert low["sla"]["first_response"] is None
    assert low["sla"]["next_response"] is None
    assert _due(low, "resolution") == datetime(2094, 1, 12, 10, tzinfo=UTC)  # Tuesday 11:00 Paris


async def test_an_inbox_without_a_policy_has_no_clocks(client: AsyncClient) -> None:
    owner = await new_owner(client)
    refs = await inbox_with_policy(client, owner, TARGETS)
    unmeasured = await client.post(
        f"/orgs/{owner.organization_id}/inboxes", json={"name": "Plain", "kind": "api"}, headers=owner.headers
    )
    conversation = await open_conversation(client, owner, {**refs, "inbox_id": unmeasured.json()["id"]})
    assert conversation["sla"] == {"first_response": None, "next_response": None, "resolution": None}


async def test_first_response_then_next_response_waits(client: AsyncClient) -> None:
    owner = await new_owner(client)
    refs = await inbox_with_policy(client, owner, TARGETS)  # always open: due = start + minutes
    conversation = await open_conversation(
        client, owner, refs, message={"kind": "incoming", "body": "Hello?"}
    )
    cid = conversation["id"]
    await post(client, owner, cid, "incoming")  # before any reply: first response covers it
    waiting = await read(client, owner, cid)
    assert waiting["sla"]["next_response"]["due_at"] is None
    assert waiting["sla"]["first_response"]["met_at"] is None

    await post(client, owner, cid, "note")  # a note is not a reply
    assert (await read(client, owner, cid))["sla"]["first_response"]["met_at"] is None
    await post(client, owner, cid, "outgoing")
    answered = await read(client, owner, cid)
    first = answered["sla"]["first_response"]
    assert first["met_at"] == answered["first_response_at"] is not None
    assert first["breached"] is False

    # The customer writes again: a reply is due within 30 minutes of that message.
    before = datetime.now(UTC)
    await post(client, owner, cid, "incoming")
    after = datetime.now(UTC)
    wait = (await read(client, owner, cid))["sla"]["next_response"]
    due = when(wait["due_at"])
    assert due is not None
    assert before + timedelta(minutes=30) <= due <= after + timedelta(minutes=30)
    assert wait["met_at"] is None
    # Another customer message while the reply is awaited does not move it.
    await post(client, owner, cid, "incoming")
    assert (await read(client, owner, cid))["sla"]["next_response"]["due_at"] == wait["due_at"]
    await post(client, owner, cid, "outgoing")
    met = (await read(client, owner, cid))["sla"]["next_response"]
    assert met["due_at"] == wait["due_at"]
    assert met["met_at"] is not None
    assert met["breached"] is False
    # The next customer message starts a new wait.
    await post(client, owner, cid, "incoming")
    again = (await read(client, owner, cid))["sla"]["next_response"]
    assert again["met_at"] is None
    assert when(again["due_at"]) > due  # type: ignore[operator]


async def test_time_pending_or_snoozed_does_not_count_toward_resolution(
    client: AsyncClient, database_url: str
) -> None:
    owner = await new_owner(client)
    refs = await inbox_with_policy(client, owner, TARGETS)
    conversation = await open_conversation(client, owner, refs)
    cid = conversation["id"]
    due = _due(conversation, "resolution")
    assert due is not None

    pending = await patch(client, owner, cid, status="pending")
    assert pending["sla"]["resolution"]["due_at"] is None  # the clock is stopped
    assert pending["sla"]["first_response"]["due_at"] == conversation["sla"]["first_response"]["due_at"]
    # As if it had started an hour earlier and been pending for the last 40 minutes of it.
    started = datetime.fromisoformat(conversation["created_at"]) - timedelta(hours=1)
    paused_at = datetime.now(UTC) - timedelta(minutes=40)
    await set_columns(
        database_url,
        cid,
        sla_resolution_started_at=started,
        sla_pauses=f'[["{paused_at.isoformat()}", null]]',
    )
    resumed = await patch(client, owner, cid, status="open")
    later = _due(resumed, "resolution")
    assert later is not None
    shift = later - (started + timedelta(minutes=480))  # moved later by the time paused
    assert timedelta(minutes=40) <= shift <= timedelta(minutes=41)

    # Snoozed counts as paused too; pending -> snoozed keeps the one pause.
    until = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    snoozed = await patch(client, owner, cid, status="snoozed", snoozed_until=until)
    assert snoozed["sla"]["resolution"]["due_at"] is None
    pending_again = await patch(client, owner, cid, status="pending")
    assert pending_again["sla"]["resolution"]["due_at"] is None
    reopened = await patch(client, owner, cid, status="open")
    again = _due(reopened, "resolution")
    assert again is not None
    assert timedelta(0) <= again - later <= timedelta(minutes=1)


async def test_resolving_stops_the_clocks_and_reopening_restarts_them(client: AsyncClient) -> None:
    owner = await new_owner(client)
    refs = await inbox_with_policy(client, owner, TARGETS)
    conversation = await open_conversation(client, owner, refs)
    cid = conversation["id"]
    resolved = await patch(client, owner, cid, status="resolved")
    sla = resolved["sla"]
    assert sla["resolution"]["met_at"] == resolved["resolved_at"] is not None
    assert sla["resolution"]["breached"] is False
    assert sla["first_response"]["due_at"] is None  # no reply is due any more
    # A customer message reopens it: resolution and first response start again from then.
    before = datetime.now(UTC)
    await post(client, owner, cid, "incoming")
    reopened = await read(client, owner, cid)
    assert reopened["status"] == "open"
    assert reopened["sla"]["resolution"]["met_at"] is None
    restarted = _due(reopened, "resolution")
    assert restarted is not None
    assert restarted >= before + timedelta(minutes=480)
    first = _due(reopened, "first_response")
    assert first is not None
    assert first >= before + timedelta(minutes=60)
    assert reopened["sla"]["next_response"]["due_at"] is None  # first response covers it

    # After a reply, resolving drops an unanswered wait; reopening by a member starts no wait.
    await post(client, owner, cid, "outgoing")
    await post(client, owner, cid, "incoming")
    assert (await read(client, owner, cid))["sla"]["next_response"]["due_at"] is not None
    await patch(client, owner, cid, status="resolved")
    member_reopened = await patch(client, owner, cid, status="open")
    assert member_reopened["sla"]["next_response"]["due_at"] is None
    assert member_reopened["sla"]["first_response"]["met_at"] is not None


async def test_a_policy_or_inbox_change_recomputes_running_clocks(client: AsyncClient) -> None:
    owner = await new_owner(client)
    refs = await inbox_with_policy(client, owner, TARGETS)
    conversation = await open_conversation(client, owner, refs)
    cid = conversation["id"]
    created = datetime.fromisoformat(conversation["created_at"])
    faster = {"none": {"first_response": 5, "resolution": 50}}
    changed = await client.patch(
        f"/orgs/{owner.organization_id}/sla-policies/{refs['policy_id']}",
        json={"targets": faster},
        headers=owner.headers,
    )
    assert changed.status_code == 200, changed.text
    await run_jobs(client)
    recomputed = await read(client, owner, cid)
    assert _due(recomputed, "first_response") == created + timedelta(minutes=5)
    assert _due(recomputed, "resolution") == created + timedelta(minutes=50)
    assert recomputed["sla"]["next_response"] is None
    assert recomputed["version"] == conversation["version"] + 1

    # Office hours on the inbox: the due times move into them.
    inbox = await client.patch(
        f"/orgs/{owner.organization_id}/inboxes/{refs['inbox_id']}",
        json={"business_hours": PARIS_OFFICE},
        headers=owner.headers,
    )
    assert inbox.status_code == 200, inbox.text
    await run_jobs(client)
    office = await read(client, owner, cid)
    hours = BusinessHours.from_stored(PARIS_OFFICE)
    assert _due(office, "resolution") == due_at(created, 50, hours)

    # The policy deleted: the inbox has none, its conversations no targets.
    deleted = await client.delete(
        f"/orgs/{owner.organization_id}/sla-policies/{refs['policy_id']}", headers=owner.headers
    )
    assert deleted.status_code == 204
    await run_jobs(client)
    assert (await read(client, owner, cid))["sla"] == {
        "first_response": None,
        "next_response": None,
        "resolution": None,
    }
    listed = await client.get(url(owner), headers=owner.headers)
    assert listed.json()["items"][0]["sla"]["resolution"] is None
