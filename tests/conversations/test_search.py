"""Lists and search of conversations through the HTTP API (issue 11, point 8): every filter alone and
together, full-text search over subject, messages (notes too), contact name and email, relevance,
cursors that stay stable while rows are added, isolation, and bad input."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient

from tests.conftest import Mailbox
from tests.contacts.helpers import create_contact, unique_email
from tests.conversations.helpers import created
from tests.organizations.helpers import Person, add_member, new_owner


def _url(person: Person, *parts: str) -> str:
    return "/".join([f"/orgs/{person.organization_id}/conversations", *parts])


async def _ids(client: AsyncClient, person: Person, **params: Any) -> list[str]:
    """The ids of every conversation the list gives for `params`, in its order, walked page by page."""
    ids: list[str] = []
    cursor = None
    while True:
        query = {"limit": 2, **params, **({"cursor": cursor} if cursor else {})}
        page = await client.get(_url(person), params=query, headers=person.headers)
        assert page.status_code == 200, page.text
        ids += [item["id"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return ids


async def _open(client: AsyncClient, person: Person, refs: dict[str, str], **extra: Any) -> dict[str, Any]:
    return await created(client, person, "conversations", {**refs, **extra})


async def _post(
    client: AsyncClient, person: Person, conversation: dict[str, Any], kind: str, body: str
) -> None:
    sent = await client.post(
        _url(person, conversation["id"], "messages"),
        json={"kind": kind, "body": body},
        headers=person.headers,
    )
    assert sent.status_code == 201, sent.text


async def _patch(client: AsyncClient, person: Person, conversation: dict[str, Any], **changes: Any) -> None:
    changed = await client.patch(_url(person, conversation["id"]), json=changes, headers=person.headers)
    assert changed.status_code == 200, changed.text


async def test_each_filter_alone_and_combined(client: AsyncClient, mailbox: Mailbox) -> None:
    owner = await new_owner(client)
    agent = await add_member(client, mailbox, owner, "agent")
    inbox = await created(client, owner, "inboxes", {"name": "API", "kind": "api"})
    other_inbox = await created(client, owner, "inboxes", {"name": "Mail", "kind": "api"})
    team = await created(client, owner, "teams", {"name": "Billing"})
    ada = await create_contact(client, owner, name="Ada", email=unique_email())
    bob = await create_contact(client, owner, name="Bob", email=unique_email())
    refs = {"inbox_id": inbox["id"], "contact_id": ada["id"]}
    a = await _open(client, owner, refs, priority="urgent", tags=["billing", "vip"])
    b = await _open(client, owner, refs, priority="low", tags=["billing"])
    c = await _open(client, owner, {"inbox_id": other_inbox["id"], "contact_id": bob["id"]}, tags=["vip"])
    d = await _open(client, owner, refs)
    await _patch(client, owner, a, assignee_id=agent.user_id, team_id=team["id"])
    await _patch(client, owner, b, assignee_id=agent.user_id, status="pending")
    await _patch(client, owner, c, team_id=team["id"], status="resolved")

    async def listed(**params: Any) -> set[str]:
        return set(await _ids(client, agent, **params))

    ids = {name: row["id"] for name, row in {"a": a, "b": b, "c": c, "d": d}.items()}

    def named(*names: str) -> set[str]:
        return {ids[name] for name in names}

    assert await listed() == named("a", "b", "c", "d")
    assert await listed(status="open") == named("a", "d")
    assert await listed(status="pending") == named("b")
    assert await listed(assignee="me") == named("a", "b")
    assert await listed(assignee=agent.user_id) == named("a", "b")
    assert await listed(assignee="unassigned") == named("c", "d")
    assert await listed(team_id=team["id"]) == named("a", "c")
    assert await listed(inbox_id=other_inbox["id"]) == named("c")
    assert await listed(contact_id=ada["id"]) == named("a", "b", "d")
    assert await listed(priority="urgent") == named("a")
    assert await listed(priority="none") == named("c", "d")
    assert await listed(tag="billing") == named("a", "b")
    assert await listed(tag=["billing", "vip"]) == named("a")  # repeated: every one of them
    assert await listed(tag="nothing") == set()
    # Together.
    assert await listed(status="open", assignee="me") == named("a")
    assert await listed(status="open", assignee="unassigned") == named("d")
    assert await listed(team_id=team["id"], status="resolved") == named("c")
    assert await listed(tag="vip", assignee="unassigned") == named("c")
    assert await listed(contact_id=ada["id"], priority="low", tag="billing", status="pending") == named("b")
    assert await listed(inbox_id=inbox["id"], team_id=team["id"], assignee="me", status="open") == named("a")
    # Newest activity first: the last one changed leads.
    assert (await _ids(client, agent))[0] == c["id"]


async def test_created_and_updated_ranges(client: AsyncClient) -> None:
    owner = await new_owner(client)
    inbox = await created(client, owner, "inboxes", {"name": "API", "kind": "api"})
    contact = await create_contact(client, owner, name="Ada", email=unique_email())
    refs = {"inbox_id": inbox["id"], "contact_id": contact["id"]}
    first = await _open(client, owner, refs)
    second = await _open(client, owner, refs)
    await _patch(client, owner, first, priority="high")  # first is now the last updated
    first = (await client.get(_url(owner, first["id"]), headers=owner.headers)).json()

    assert await _ids(client, owner, created_after=second["created_at"]) == [second["id"]]
    assert await _ids(client, owner, created_before=second["created_at"]) == [first["id"]]
    assert await _ids(client, owner, updated_after=first["updated_at"]) == [first["id"]]
    assert await _ids(client, owner, updated_before=first["updated_at"]) == [second["id"]]
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert await _ids(client, owner, created_after=later) == []
    both = {"created_after": first["created_at"], "created_before": later}
    assert set(await _ids(client, owner, **both)) == {first["id"], second["id"]}


async def test_search_finds_subject_messages_notes_and_contact(client: AsyncClient) -> None:
    owner = await new_owner(client)
    inbox = await created(client, owner, "inboxes", {"name": "API", "kind": "api"})
    ada = await create_contact(client, owner, name="Ada Lovelace", email="ada@analytical.example")
    bob = await create_contact(client, owner, name="Bob", email=unique_email())
    by_subject = await _open(
        client, owner, {"inbox_id": inbox["id"], "contact_id": bob["id"]}, subject="Refund for order"
    )
    by_body = await _open(
        client,
        owner,
        {"inbox_id": inbox["id"], "contact_id": bob["id"]},
        message={"kind": "incoming", "body": "My parcel never arrived, the tracking says Lisbon."},
    )
    by_note = await _open(client, owner, {"inbox_id": inbox["id"], "contact_id": bob["id"]})
    await _post(client, owner, by_note, "note", "Customer is a reseller, escalate quietly.")
    by_contact = await _open(client, owner, {"inbox_id": inbox["id"], "contact_id": ada["id"]})
    await _post(client, owner, by_body, "outgoing", "We shipped it again to Lisbon.")

    async def search(q: str, **params: Any) -> dict[str, list[str]]:
        page = await client.get(_url(owner), params={"q": q, **params}, headers=owner.headers)
        assert page.status_code == 200, page.text
        return {item["id"]: item["matched_in"] for item in page.json()["items"]}

    assert await search("refund") == {by_subject["id"]: ["subject"]}
    assert await search("REFUNDS order") == {}  # 'simple': no stemming, any case
    assert await search("Refund ORDER") == {by_subject["id"]: ["subject"]}
    assert await search("lisbon") == {by_body["id"]: ["messages"]}  # two messages, one conversation
    assert await search("reseller") == {by_note["id"]: ["messages"]}  # notes are searched
    assert await search("lovelace") == {by_contact["id"]: ["contact"]}
    assert await search("ada@analytical.example") == {by_contact["id"]: ["contact"]}
    assert await search("analytical.example") == {by_contact["id"]: ["contact"]}  # the domain alone
    # Activity messages (the system's words) are not searched: every conversation here has some.
    await _patch(client, owner, by_subject, priority="urgent")
    assert await search("changed") == {}
    # The search combines with the filters.
    assert await search("lisbon", status="resolved") == {}
    assert await search("lisbon", contact_id=bob["id"]) == {by_body["id"]: ["messages"]}
    # Without q, no matched_in.
    plain = await client.get(_url(owner), headers=owner.headers)
    assert {item["matched_in"] for item in plain.json()["items"]} == {None}


async def test_search_syntax_phrases_exclusion_and_or(client: AsyncClient) -> None:
    owner = await new_owner(client)
    inbox = await created(client, owner, "inboxes", {"name": "API", "kind": "api"})
    contact = await create_contact(client, owner, name="Ada", email=unique_email())
    refs = {"inbox_id": inbox["id"], "contact_id": contact["id"]}
    late = await _open(
        client, owner, refs, message={"kind": "incoming", "body": "The invoice came late again"}
    )
    wrong = await _open(
        client, owner, refs, message={"kind": "incoming", "body": "Late delivery, wrong invoice"}
    )
    other = await _open(client, owner, refs, message={"kind": "incoming", "body": "Password reset please"})

    async def search(q: str) -> set[str]:
        return set(await _ids(client, owner, q=q))

    assert await search("invoice late") == {late["id"], wrong["id"]}  # all words, any order
    assert await search('"invoice came late"') == {late["id"]}  # a phrase
    assert await search("invoice -wrong") == {late["id"]}  # excluded
    assert await search("password or wrong") == {other["id"], wrong["id"]}
    assert await search("invoice password") == set()


async def test_relevance_orders_best_first_and_pages_once_each(client: AsyncClient) -> None:
    owner = await new_owner(client)
    inbox = await created(client, owner, "inboxes", {"name": "API", "kind": "api"})
    contact = await create_contact(client, owner, name="Ada", email=unique_email())
    refs = {"inbox_id": inbox["id"], "contact_id": contact["id"]}
    weak = await _open(
        client, owner, refs, message={"kind": "incoming", "body": "printer " + "and other words " * 30}
    )
    strong = await _open(client, owner, refs, subject="Printer broken printer")
    middle = await _open(client, owner, refs, message={"kind": "incoming", "body": "printer printer jam"})
    for n in range(3):
        await _open(
            client, owner, refs, message={"kind": "incoming", "body": f"printer {n} " + "filler " * 20}
        )
    best_first = await _ids(client, owner, q="printer", sort="relevance")
    assert len(best_first) == len(set(best_first)) == 6
    assert best_first[0] == strong["id"]
    assert best_first.index(middle["id"]) < best_first.index(weak["id"])
    newest_first = await _ids(client, owner, q="printer")
    assert set(newest_first) == set(best_first)
    assert newest_first[-1] == weak["id"]
    page = await client.get(_url(owner), params={"q": "printer", "sort": "relevance"}, headers=owner.headers)
    ranks_shown = [item["matched_in"] for item in page.json()["items"]]
    assert ranks_shown[0] == ["subject"]


async def test_cursors_stay_stable_while_conversations_arrive(client: AsyncClient) -> None:
    owner = await new_owner(client)
    inbox = await created(client, owner, "inboxes", {"name": "API", "kind": "api"})
    contact = await create_contact(client, owner, name="Ada", email=unique_email())
    refs = {"inbox_id": inbox["id"], "contact_id": contact["id"]}
    for n in range(5):
        await _open(client, owner, refs, subject=f"Modem trouble {'modem ' * n}")
    for params in ({}, {"q": "modem"}, {"q": "modem", "sort": "relevance"}):
        before = await _ids(client, owner, **params)
        assert len(before) >= 5
        first = await client.get(_url(owner), params={"limit": 2, **params}, headers=owner.headers)
        seen = [item["id"] for item in first.json()["items"]]
        cursor = first.json()["next_cursor"]
        # New conversations (matching, and among the best) arrive between pages.
        await asyncio.gather(*(_open(client, owner, refs, subject="Modem modem modem") for _ in range(2)))
        while cursor:
            page = await client.get(
                _url(owner), params={"limit": 2, "cursor": cursor, **params}, headers=owner.headers
            )
            assert page.status_code == 200, page.text
            seen += [item["id"] for item in page.json()["items"]]
            cursor = page.json()["next_cursor"]
        assert len(seen) == len(set(seen)), params  # none twice
        assert [id_ for id_ in seen if id_ in before] == before, params  # none skipped, order kept
        if "sort" not in params:
            assert seen == before, params  # newest first: newcomers land on the first page, not later


async def test_other_organizations_rows_are_never_found(client: AsyncClient) -> None:
    owner, other = await new_owner(client), await new_owner(client)
    for person in (owner, other):
        inbox = await created(client, person, "inboxes", {"name": "API", "kind": "api"})
        contact = await create_contact(client, person, name="Zebedee", email=unique_email())
        await _open(
            client,
            person,
            {"inbox_id": inbox["id"], "contact_id": contact["id"]},
            subject="Quokka",
            tags=["shared"],
            message={"kind": "note", "body": "quokka"},
        )
    theirs = (await client.get(_url(other), headers=other.headers)).json()["items"][0]
    mine = (await client.get(_url(owner), headers=owner.headers)).json()["items"][0]
    for params in ({"q": "quokka"}, {"q": "zebedee", "sort": "relevance"}, {"tag": "shared"}, {}):
        assert await _ids(client, owner, **params) == [mine["id"]], params
    for name in ("inbox_id", "contact_id", "team_id"):
        if theirs.get(name):
            assert await _ids(client, owner, **{name: theirs[name]}) == []
    assert await _ids(client, owner, assignee=other.user_id) == []


async def test_bad_list_requests_are_422_or_400(client: AsyncClient) -> None:
    owner = await new_owner(client)
    inbox = await created(client, owner, "inboxes", {"name": "API", "kind": "api"})
    contact = await create_contact(client, owner, name="Ada", email=unique_email())
    await _open(client, owner, {"inbox_id": inbox["id"], "contact_id": contact["id"]}, subject="Hello")
    await _open(client, owner, {"inbox_id": inbox["id"], "contact_id": contact["id"]}, subject="Hello")
    now = datetime.now(UTC)
    cases: list[tuple[dict[str, Any], int, str | None]] = [
        ({"created_after": now.isoformat(), "created_before": now.isoformat()}, 422, "bad_range"),
        (
            {"updated_after": now.isoformat(), "updated_before": (now - timedelta(1)).isoformat()},
            422,
            "bad_range",
        ),
        ({"sort": "relevance"}, 422, "relevance_needs_q"),
        ({"q": "-hello"}, 422, "search_without_words"),
        ({"q": "!!! ..."}, 422, "search_without_words"),
        ({"q": ""}, 422, None),
        ({"q": "nul\x00byte"}, 422, None),
        ({"tag": "nul\x00"}, 422, None),
        ({"q": "x" * 201}, 422, None),
        ({"sort": "newest"}, 422, None),
        ({"priority": "critical"}, 422, None),
        ({"tag": "two words"}, 422, None),
        ({"team_id": "not-an-id"}, 422, None),
        ({"created_after": "yesterday"}, 422, None),
        ({"created_after": "2026-01-01T00:00:00"}, 422, None),  # no time zone
    ]
    for params, status, code in cases:
        answer = await client.get(_url(owner), params=params, headers=owner.headers)
        assert answer.status_code == status, (params, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        if code is not None:
            assert answer.json()["code"] == code
    # A cursor of one order is refused by the other.
    newest = await client.get(_url(owner), params={"limit": 1, "q": "hello"}, headers=owner.headers)
    best = await client.get(
        _url(owner), params={"limit": 1, "q": "hello", "sort": "relevance"}, headers=owner.headers
    )
    for cursor, sort in (
        (newest.json()["next_cursor"], "relevance"),
        (best.json()["next_cursor"], "last_activity"),
    ):
        swapped = await client.get(
            _url(owner), params={"q": "hello", "sort": sort, "cursor": cursor}, headers=owner.headers
        )
        assert swapped.status_code == 400, swapped.text
        assert swapped.json()["code"] == "invalid_cursor"
