"""The conversations' periodic jobs, run by a real worker (tests/conftest.run_jobs): SLA breaches marked
once across organizations (activity message, audit event, version), safely against a concurrent
writer; snoozes woken at their time; Idempotency-Keys purged after 24 hours; the SLA list filters.
Clocks are put in the past by writing the rows as the database's owner (test data, not patched code)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient
from procrastinate.exceptions import AlreadyEnqueued

from aisupport.conversations.models import (
    UNMARKED_FIRST_RESPONSE,
    UNMARKED_NEXT_RESPONSE,
    UNMARKED_RESOLUTION,
)
from aisupport.core.jobs import defer
from tests.conftest import run_jobs
from tests.conversations.helpers import messages, patch, post, read, url
from tests.conversations.timers import as_owner, inbox_with_policy, open_conversation, set_columns, when
from tests.organizations.helpers import Person, new_owner

TARGETS = {
    "none": {"first_response": 1, "next_response": 1, "resolution": 1},
    "high": {"first_response": 30, "resolution": 1440},
}


async def _run(client: AsyncClient, task: str) -> None:
    """Queue one run of a periodic task, as its schedule would, and let a real worker run it."""
    async with client.app.state.sessionmaker() as db:  # type: ignore[attr-defined]
        try:
            await defer(db, task, timestamp=0)
            await db.commit()
        except AlreadyEnqueued:
            await db.rollback()  # the schedule queued a run already (a minute began): that one runs
    await run_jobs(client)


async def _overdue(database_url: str, conversation: dict[str, Any]) -> datetime:
    """Start the conversation's first-response and resolution clocks ten minutes ago (1-minute targets:
    due nine minutes ago); the due time."""
    started = datetime.now(UTC) - timedelta(minutes=10)
    due = started + timedelta(minutes=1)
    await set_columns(
        database_url,
        conversation["id"],
        sla_first_response_started_at=started,
        sla_first_response_due_at=due,
        sla_resolution_started_at=started,
        sla_resolution_due_at=due,
    )
    return due


async def _breach_events(client: AsyncClient, owner: Person) -> list[dict[str, Any]]:
    log = await client.get(
        f"/orgs/{owner.organization_id}/audit-log",
        params={"action": "conversation.sla_breached"},
        headers=owner.headers,
    )
    assert log.status_code == 200, log.text
    events: list[dict[str, Any]] = log.json()["items"]
    return events


def _breach_messages(items: list[dict[str, Any]]) -> list[str]:
    return [m["body"] for m in items if m["kind"] == "activity" and m["body"].startswith("SLA ")]


async def _listed(client: AsyncClient, owner: Person, **params: Any) -> set[str]:
    response = await client.get(url(owner), params=params, headers=owner.headers)
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["items"]}


async def test_the_breach_job_marks_each_breach_once_in_every_organization(
    client: AsyncClient, database_url: str
) -> None:
    owner, other = await new_owner(client), await new_owner(client)
    refs, other_refs = (
        await inbox_with_policy(client, owner, TARGETS),
        await inbox_with_policy(client, other, TARGETS),
    )
    late = await open_conversation(client, owner, refs)
    soon = await open_conversation(client, owner, refs, priority="high")  # first response due in 30 min
    elsewhere = await open_conversation(client, other, other_refs)
    due = await _overdue(database_url, late)
    await _overdue(database_url, elsewhere)

    # Past its due time, the clock reads breached at once; the filters see it.
    before = await read(client, owner, late["id"])
    assert before["sla"]["first_response"]["breached"] is True
    assert when(before["sla"]["first_response"]["breached_at"]) == due
    assert await _listed(client, owner, sla="breached") == {late["id"]}
    assert await _listed(client, owner, sla="due_soon") == {soon["id"]}
    assert await _listed(client, owner, sla="due_soon", due_within=10) == set()
    bad = await client.get(url(owner), params={"sla": "due_soon", "due_within": 0}, headers=owner.headers)
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")

    await _run(client, "conversations:mark_sla_breaches")
    marked = await read(client, owner, late["id"])
    assert marked["version"] == before["version"] + 1
    for target in ("first_response", "resolution"):
        clock = marked["sla"][target]
        assert (clock["breached"], when(clock["breached_at"]), clock["met_at"]) == (True, due, None)
    assert marked["sla"]["next_response"]["breached"] is False
    activity = await messages(client, owner, late["id"])
    assert sorted(_breach_messages(activity)) == ["SLA first response breached", "SLA resolution breached"]
    assert all(m["author_type"] == "system" for m in activity if m["body"].startswith("SLA "))
    events = await _breach_events(client, owner)
    assert sorted(event["details"]["target"] for event in events) == ["first_response", "resolution"]
    assert {event["target_id"] for event in events} == {late["id"]}
    assert (await read(client, owner, soon["id"]))["version"] == soon["version"]  # not due: untouched
    assert (await read(client, other, elsewhere["id"]))["sla"]["first_response"]["breached_at"] is not None
    assert len(await _breach_events(client, other)) == 2

    # Run again: nothing new.
    await _run(client, "conversations:mark_sla_breaches")
    again = await read(client, owner, late["id"])
    assert again["version"] == marked["version"]
    assert len(_breach_messages(await messages(client, owner, late["id"]))) == 2
    assert len(await _breach_events(client, owner)) == 2

    # A late reply meets the first response late; the breach stays, the conversation is no longer
    # "breached" for first response, but still for resolution until resolved.
    await post(client, owner, late["id"], "outgoing")
    replied = await read(client, owner, late["id"])
    assert replied["sla"]["first_response"]["breached"] is True
    assert replied["sla"]["first_response"]["met_at"] is not None
    assert await _listed(client, owner, sla="breached") == {late["id"]}
    await patch(client, owner, late["id"], status="resolved")
    assert await _listed(client, owner, sla="breached") == set()


async def test_a_reply_after_the_due_time_marks_the_breach_at_once(
    client: AsyncClient, database_url: str
) -> None:
    owner = await new_owner(client)
    refs = await inbox_with_policy(client, owner, TARGETS)
    conversation = await open_conversation(client, owner, refs)
    due = await _overdue(database_url, conversation)
    await post(client, owner, conversation["id"], "outgoing")  # before any job ran
    first = (await read(client, owner, conversation["id"]))["sla"]["first_response"]
    assert (first["breached"], when(first["breached_at"])) == (True, due)
    assert first["met_at"] is not None
    # Every clock past its due time was marked with it (resolution too), once.
    expected = ["SLA first response breached", "SLA resolution breached"]
    assert sorted(_breach_messages(await messages(client, owner, conversation["id"]))) == expected
    await _run(client, "conversations:mark_sla_breaches")
    assert sorted(_breach_messages(await messages(client, owner, conversation["id"]))) == expected
    assert len(await _breach_events(client, owner)) == 2


async def test_the_breach_job_waits_for_a_concurrent_writer_and_checks_again(
    client: AsyncClient, database_url: str
) -> None:
    owner = await new_owner(client)
    refs = await inbox_with_policy(client, owner, TARGETS)
    conversation = await open_conversation(client, owner, refs)
    await _overdue(database_url, conversation)
    async with as_owner(database_url) as writer, as_owner(database_url) as watcher:
        # A writer resolves the conversation in a transaction still open when the job runs.
        await writer.execute("BEGIN")
        await writer.execute(
            "UPDATE conversations SET status = 'resolved', resolved_at = now(), version = version + 1"
            " WHERE id = %s",
            (conversation["id"],),
        )
        job = asyncio.create_task(_run(client, "conversations:mark_sla_breaches"))
        for _ in range(600):  # until the job waits for the row lock (bounded: never hangs)
            waiting = await (
                await watcher.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
            ).fetchone()
            if waiting and waiting[0]:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the job never waited for the locked conversation")
        await writer.execute("COMMIT")
        await job
    resolved = await read(client, owner, conversation["id"])
    assert resolved["status"] == "resolved"
    assert resolved["sla"]["first_response"]["breached"] is False
    assert resolved["version"] == conversation["version"] + 1  # the writer's change only
    assert _breach_messages(await messages(client, owner, conversation["id"])) == []
    assert await _breach_events(client, owner) == []


async def test_snoozed_conversations_wake_at_their_time(client: AsyncClient, database_url: str) -> None:
    owner = await new_owner(client)
    refs = await inbox_with_policy(client, owner, {"none": {"resolution": 600}})
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    due, not_yet = await open_conversation(client, owner, refs), await open_conversation(client, owner, refs)
    for conversation in (due, not_yet):
        await patch(client, owner, conversation["id"], status="snoozed", snoozed_until=later)
    await set_columns(database_url, due["id"], snoozed_until=datetime.now(UTC) - timedelta(minutes=1))
    before = await read(client, owner, due["id"])
    assert before["sla"]["resolution"]["due_at"] is None  # paused while snoozed

    await _run(client, "conversations:wake_snoozed")
    woken = await read(client, owner, due["id"])
    assert (woken["status"], woken["snoozed_until"]) == ("open", None)
    assert woken["version"] == before["version"] + 1
    assert woken["sla"]["resolution"]["due_at"] is not None  # the clock runs again
    [activity] = [m for m in await messages(client, owner, due["id"]) if "woke" in m["body"]]
    assert (activity["kind"], activity["author_type"], activity["author_id"]) == ("activity", "system", None)
    still = await read(client, owner, not_yet["id"])
    assert (still["status"], when(still["snoozed_until"])) == ("snoozed", datetime.fromisoformat(later))

    await _run(client, "conversations:wake_snoozed")
    assert (await read(client, owner, due["id"]))["version"] == woken["version"]


async def test_idempotency_keys_older_than_a_day_are_purged(client: AsyncClient, database_url: str) -> None:
    owners = [await new_owner(client), await new_owner(client)]
    keys: dict[str, list[str]] = {}
    for owner in owners:
        refs = await inbox_with_policy(client, owner, TARGETS)
        body = {"inbox_id": refs["inbox_id"], "contact_id": refs["contact_id"]}
        keys[owner.organization_id] = [f"key-{uuid.uuid4()}", f"key-{uuid.uuid4()}"]
        for key in keys[owner.organization_id]:
            answer = await client.post(
                url(owner), json=body, headers={**owner.headers, "Idempotency-Key": key}
            )
            assert answer.status_code == 201, answer.text
    async with as_owner(database_url) as conn:
        for organization_id, (old, _) in keys.items():
            await conn.execute(
                "UPDATE idempotency_keys SET created_at = now() - interval '25 hours'"
                " WHERE organization_id = %s AND key = %s",
                (organization_id, old),
            )
    await _run(client, "conversations:purge_idempotency_keys")
    async with as_owner(database_url) as conn:
        left = await (
            await conn.execute(
                "SELECT organization_id::text, key FROM idempotency_keys WHERE organization_id = ANY(%s)",
                ([uuid.UUID(owner.organization_id) for owner in owners],),
            )
        ).fetchall()
    assert sorted(left) == sorted((organization_id, fresh) for organization_id, (_, fresh) in keys.items())


async def test_the_due_work_is_found_through_the_partial_indexes(database_url: str) -> None:
    """The jobs' discovery conditions (and the per-organization ones, the same text) can use their
    partial indexes: with sequential scans priced out, each plan names its index."""
    wheres = {
        "ix_conversations_sla_first_response_due": (
            "conversations",
            f"sla_first_response_due_at <= now() AND {UNMARKED_FIRST_RESPONSE}",
        ),
        "ix_conversations_sla_next_response_due": (
            "conversations",
            f"sla_next_response_due_at <= now() AND {UNMARKED_NEXT_RESPONSE}",
        ),
        "ix_conversations_sla_resolution_due": (
            "conversations",
            f"sla_resolution_due_at <= now() AND {UNMARKED_RESOLUTION}",
        ),
        "ix_conversations_snoozed_until": ("conversations", "status = 'snoozed' AND snoozed_until <= now()"),
        "ix_idempotency_keys_created_at_organization_id": (
            "idempotency_keys",
            "created_at < now() - interval '1 day'",
        ),
    }
    async with as_owner(database_url) as conn:
        await conn.execute("SET enable_seqscan = off")
        for index, (table, where) in wheres.items():
            query = f"EXPLAIN SELECT organization_id FROM {table} WHERE {where}"  # noqa: S608 (constants)
            plan = await (await conn.execute(query)).fetchall()
            assert index in " ".join(row[0] for row in plan), (index, plan)
