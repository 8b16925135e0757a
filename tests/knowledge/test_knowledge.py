"""The knowledge base (issue 13): articles in, passages out with exact addresses, BM25 ranking with a
score in [0, 1], phrasings learned, versions swapped whole, deletions audited, bad input refused."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from httpx import AsyncClient
from sqlalchemy import text

from aisupport.core.config import Settings
from aisupport.core.tenancy import tenant_session
from aisupport.knowledge import service
from tests.conftest import run_jobs, serve
from tests.contacts.helpers import create_contact
from tests.conversations.helpers import created, patch, post
from tests.knowledge.helpers import article, cited, phrased, search
from tests.organizations.helpers import new_owner

GUIDE = """# Billing

Invoices are sent on the first day of each month.

## Refunds

A refund goes back to the card that paid, within 5 to 10 working days.

- Open **Orders**
- Choose the order, then *Request a refund*

## Taxes

VAT is added for customers in the European Union.
"""


async def test_an_article_is_cut_into_passages_each_an_exact_slice_of_its_text(client: AsyncClient) -> None:
    owner = await new_owner(client)
    source = await article(client, owner, title="Billing guide", body=GUIDE)
    assert source["ingest_status"] == "ready"
    assert source["chunk_count"] == 3
    assert source["slug"] == "billing-guide"
    results = await search(client, owner, "how long does a refund take to reach my card")
    assert results, "the refunds passage is found"
    best = results[0]
    assert best["source_id"] == source["id"]
    assert best["heading_path"] == ["Billing", "Refunds"]
    assert GUIDE[best["char_start"] : best["char_end"]] == best["text"]
    assert best["text"].startswith("A refund goes back")
    assert 0 < best["score"] <= 1
    assert best["matched"] == "passage"


async def test_ranking_puts_the_answering_article_first_and_min_score_cuts_the_rest(
    client: AsyncClient,
) -> None:
    owner = await new_owner(client)
    password = await article(
        client, owner, title="Reset your password", body="Use *Forgot password* on the sign-in page."
    )
    await article(client, owner, title="Delete your account", body="Settings, then Account, then Delete.")
    await article(client, owner, title="Change your email address", body="Settings, then Profile.")
    results = await search(client, owner, "I forgot my password")
    assert results[0]["source_id"] == password["id"]
    assert results[0]["score"] > max((result["score"] for result in results[1:]), default=0)
    strict = await search(client, owner, "I forgot my password", min_score=results[0]["score"])
    assert [result["source_id"] for result in strict] == [password["id"]]
    assert await search(client, owner, "zebra migration patterns") == []  # nothing shares a word


async def test_filters_and_drafts(client: AsyncClient) -> None:
    owner = await new_owner(client)
    public = await article(
        client,
        owner,
        title="Shipping times",
        body="Orders ship in two days.",
        visibility="public",
        collection="orders",
        tags=["shipping"],
    )
    internal = await article(
        client,
        owner,
        title="Shipping exceptions",
        body="Orders to islands ship in a week.",
        visibility="internal",
    )
    draft = await article(client, owner, title="Shipping to Mars", body="Orders ship never.", status="draft")
    ids = {result["source_id"] for result in await search(client, owner, "orders ship", k=10)}
    assert ids == {public["id"], internal["id"]}  # published only, by default
    assert draft["id"] in {
        r["source_id"] for r in await search(client, owner, "orders ship", status=None, k=10)
    }
    only_public = await search(client, owner, "orders ship", visibility="public")
    assert [result["source_id"] for result in only_public] == [public["id"]]
    assert [r["source_id"] for r in await search(client, owner, "orders ship", collection="orders")] == [
        public["id"]
    ]
    assert [r["source_id"] for r in await search(client, owner, "orders ship", tags=["shipping"])] == [
        public["id"]
    ]


async def test_phrasings_make_an_article_findable_by_its_customers_words(client: AsyncClient) -> None:
    owner = await new_owner(client)
    target = await article(client, owner, title="Strikethrough with GitHub Markdown", body="Use ~~tildes~~.")
    await article(client, owner, title="Crossing the border", body="Bring a passport.")
    assert not [
        r
        for r in await search(client, owner, "cross out words in my comment")
        if r["source_id"] == target["id"]
    ]
    await phrased(client, owner, target["id"], "How can I cross out words in a comment?")
    results = await search(client, owner, "cross out words in my comment")
    assert results[0]["source_id"] == target["id"]
    assert results[0]["matched"] == "phrasing"
    listed = await client.get(
        f"/orgs/{owner.organization_id}/knowledge/sources/{target['id']}/phrasings", headers=owner.headers
    )
    assert [item["text"] for item in listed.json()] == ["How can I cross out words in a comment?"]


async def test_an_update_is_a_new_version_swapped_whole_and_unchanged_content_is_not_reindexed(
    client: AsyncClient,
) -> None:
    owner = await new_owner(client)
    source = await article(client, owner, title="Opening hours", body="We open at nine.")
    path = f"/orgs/{owner.organization_id}/knowledge/sources/{source['id']}"
    same = await client.patch(
        path, json={"body": "We open at nine.", "tags": ["hours"]}, headers=owner.headers
    )
    assert (same.json()["version"], same.json()["ingest_status"]) == (1, "ready")
    changed = await client.patch(path, json={"body": "We open at ten."}, headers=owner.headers)
    assert (changed.json()["version"], changed.json()["ingest_status"]) == (2, "queued")
    # Until the new version is ingested, the old passages serve; then only the new ones.
    assert (await search(client, owner, "nine"))[0]["version"] == 1
    await run_jobs(client)
    assert all(result["version"] == 2 for result in await search(client, owner, "nine"))
    assert [(r["version"], r["text"]) for r in await search(client, owner, "ten")] == [(2, "We open at ten.")]


async def test_deleting_a_source_removes_it_from_search_and_is_audited(client: AsyncClient) -> None:
    owner = await new_owner(client)
    source = await article(client, owner, title="Gift cards", body="Gift cards never expire.")
    deleted = await client.delete(
        f"/orgs/{owner.organization_id}/knowledge/sources/{source['id']}", headers=owner.headers
    )
    assert deleted.status_code == 204
    assert await search(client, owner, "gift cards") == []
    log = await client.get(f"/orgs/{owner.organization_id}/audit-log", headers=owner.headers)
    assert "knowledge_source.deleted" in [event["action"] for event in log.json()["items"]]
    again = await client.get(
        f"/orgs/{owner.organization_id}/knowledge/sources/{source['id']}", headers=owner.headers
    )
    assert again.status_code == 404


async def test_bad_input_is_a_clear_problem_and_slugs_are_unique(client: AsyncClient) -> None:
    owner = await new_owner(client)
    url = f"/orgs/{owner.organization_id}/knowledge/articles"
    for bad in (
        {"title": "", "body": "x"},
        {"title": "x", "body": "x", "status": "live"},
        {"title": "x", "body": "x", "slug": "Not A Slug"},
        {"title": "x", "body": "x", "locale": "english"},
        {"title": "x"},
    ):
        response = await client.post(url, json=bad, headers=owner.headers)
        assert response.status_code == 422, (bad, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    first = await client.post(url, json={"title": "Same", "body": "a"}, headers=owner.headers)
    second = await client.post(url, json={"title": "Same", "body": "b"}, headers=owner.headers)
    assert (first.json()["slug"], second.json()["slug"]) == ("same", "same-2")
    taken = await client.post(
        url, json={"title": "Other", "body": "c", "slug": "same"}, headers=owner.headers
    )
    assert taken.status_code == 409
    assert taken.json()["code"] == "slug_taken"
    source_path = f"/orgs/{owner.organization_id}/knowledge/sources/{second.json()['id']}"
    null_title = await client.patch(source_path, json={"title": None}, headers=owner.headers)
    assert null_title.status_code == 422
    empty = await client.post(
        f"/orgs/{owner.organization_id}/knowledge/search", json={"query": ""}, headers=owner.headers
    )
    assert empty.status_code == 422


async def test_concurrent_updates_of_one_article_end_in_one_version_each(client: AsyncClient) -> None:
    owner = await new_owner(client)
    source = await article(client, owner, title="Returns", body="Thirty days.")
    path = f"/orgs/{owner.organization_id}/knowledge/sources/{source['id']}"
    answers = await asyncio.gather(
        *(
            client.patch(path, json={"body": f"Thirty days, rule {n}."}, headers=owner.headers)
            for n in range(5)
        )
    )
    assert sorted(answer.status_code for answer in answers) == [200] * 5
    assert sorted(answer.json()["version"] for answer in answers) == [2, 3, 4, 5, 6]
    await run_jobs(client)
    final = await client.get(path, headers=owner.headers)
    assert (final.json()["version"], final.json()["ingest_status"]) == (6, "ready")
    results = await search(client, owner, "thirty days rule")
    assert [result["version"] for result in results] == [6]


async def test_viewers_read_and_search_but_do_not_write(client: AsyncClient) -> None:
    owner = await new_owner(client)
    source = await article(client, owner, title="Warranty", body="Two years.")
    key = await client.post(
        f"/orgs/{owner.organization_id}/api-keys",
        json={"name": "reader", "role": "viewer"},
        headers=owner.headers,
    )
    reader = {"X-API-Key": key.json()["secret"]}
    found = await client.post(
        f"/orgs/{owner.organization_id}/knowledge/search", json={"query": "warranty"}, headers=reader
    )
    assert found.json()["results"][0]["source_id"] == source["id"]
    refused = await client.post(
        f"/orgs/{owner.organization_id}/knowledge/articles", json={"title": "x", "body": "y"}, headers=reader
    )
    assert refused.status_code == 403


async def test_the_help_centre_shows_public_published_articles_only(client: AsyncClient) -> None:
    owner = await new_owner(client)
    shown = await article(
        client,
        owner,
        title="Track your parcel",
        body="Use the link in your email.",
        visibility="public",
        collection="orders",
    )
    await article(
        client, owner, title="Track internal escalations", body="Ask the lead.", visibility="internal"
    )
    await article(client, owner, title="Track returns", body="Soon.", visibility="public", status="draft")
    organization = await client.get(f"/orgs/{owner.organization_id}", headers=owner.headers)
    base = f"/help/v1/{organization.json()['slug']}"
    listed = await client.get(f"{base}/articles")
    assert listed.status_code == 200, listed.text
    assert [item["slug"] for item in listed.json()["items"]] == [shown["slug"]]
    assert [
        item["slug"] for item in (await client.get(f"{base}/articles?collection=orders")).json()["items"]
    ] == [shown["slug"]]
    read = await client.get(f"{base}/articles/{shown['slug']}")
    assert read.json()["body"] == "Use the link in your email."
    for hidden in ("track-internal-escalations", "track-returns", "no-such-article"):
        assert (await client.get(f"{base}/articles/{hidden}")).status_code == 404
    found = await client.get(f"{base}/search", params={"q": "track"})
    assert [result["source_id"] for result in found.json()["results"]] == [shown["id"]]
    assert (await client.get("/help/v1/no-such-organization/articles")).status_code == 404
    cors = await client.get(f"{base}/articles", headers={"Origin": "https://help.example"})
    assert cors.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in cors.headers


async def test_the_help_centre_is_rate_limited_per_address(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings(RATE_LIMIT_HELP_PER_IP="2/minute")) as client:
        owner = await new_owner(client)
        organization = await client.get(f"/orgs/{owner.organization_id}", headers=owner.headers)
        base = f"/help/v1/{organization.json()['slug']}/articles"
        assert [(await client.get(base)).status_code for _ in range(3)] == [200, 200, 429]


async def test_a_cited_article_learns_its_customers_question_once_the_answer_held(
    client: AsyncClient,
) -> None:
    owner = await new_owner(client)
    target = await article(client, owner, title="Strikethrough with GitHub Markdown", body="Use ~~tildes~~.")
    inbox = await created(client, owner, "inboxes", {"name": "API", "kind": "api"})
    held, reopened, open_one = [
        await created(
            client,
            owner,
            "conversations",
            {"inbox_id": inbox["id"], "contact_id": contact["id"], "message": {"body": question}},
        )
        for contact, question in [
            (await create_contact(client, owner, name=name), question)
            for name, question in (
                ("Ada", "How can I cross out words in a comment?"),
                ("Bo", "Where is the strike button gone?"),
                ("Cy", "Can I draw a line through text?"),
            )
        ]
    ]
    for conversation in (held, reopened, open_one):
        await cited(client, owner, target["id"], conversation["id"])
    await cited(client, owner, target["id"], held["id"])  # again: nothing changes
    await patch(client, owner, held["id"], status="resolved")
    await patch(client, owner, reopened["id"], status="resolved")
    await post(client, owner, reopened["id"], "incoming")  # the customer came back: the answer did not hold
    organization_id = uuid.UUID(owner.organization_id)
    sessions = client.app.state.sessionmaker  # type: ignore[attr-defined]
    async with tenant_session(sessions, organization_id=organization_id) as db:
        early = await service.learn_from_conversations(db, organization_id, datetime.now(UTC), limit=10)
    assert early == 1  # only the reopened one is settled before a day has passed
    async with tenant_session(sessions, organization_id=organization_id) as db:
        later = datetime.now(UTC) + timedelta(hours=25)
        assert await service.learn_from_conversations(db, organization_id, later, limit=10) == 1
    listed = await client.get(
        f"/orgs/{owner.organization_id}/knowledge/sources/{target['id']}/phrasings", headers=owner.headers
    )
    assert [(item["text"], item["origin"]) for item in listed.json()] == [
        ("How can I cross out words in a comment?", "conversation")
    ]
    results = await search(client, owner, "cross out words in my comment")
    assert results[0]["matched"] == "phrasing"
    unknown = await client.post(
        f"/orgs/{owner.organization_id}/knowledge/sources/{target['id']}/citations",
        json={"conversation_id": str(uuid.uuid4())},
        headers=owner.headers,
    )
    assert unknown.status_code == 404


VERSIONS_OF_PASSAGES = text(
    "SELECT DISTINCT version FROM knowledge_chunks WHERE source_id = :s AND kind = 'passage'"
)


async def test_a_search_during_a_reingestion_sees_one_version_whole(client: AsyncClient) -> None:
    owner = await new_owner(client)
    sections = "\n\n".join(f"## Part {n}\n\nThe alpha procedure, step {n}." for n in range(40))
    source = await article(client, owner, title="Procedures", body=sections)
    assert source["chunk_count"] > 1
    changed = await client.patch(
        f"/orgs/{owner.organization_id}/knowledge/sources/{source['id']}",
        json={"body": sections.replace("alpha", "beta")},
        headers=owner.headers,
    )
    assert changed.json()["version"] == 2
    sessions = client.app.state.sessionmaker  # type: ignore[attr-defined]
    organization_id = uuid.UUID(owner.organization_id)
    seen: list[tuple[int, ...]] = []
    texts: list[tuple[int, str]] = []
    ingesting = asyncio.create_task(run_jobs(client))
    while True:
        finished = ingesting.done()  # before the reading: the last reading is after the ingestion
        async with tenant_session(sessions, organization_id=organization_id) as db:
            versions = await db.execute(
                text(
                    "SELECT DISTINCT version FROM knowledge_chunks WHERE source_id = :s AND kind = 'passage'"
                ),
                {"s": uuid.UUID(source["id"])},
            )
            seen.append(tuple(sorted(row[0] for row in versions)))
        texts += [(r["version"], r["text"]) for r in await search(client, owner, "procedure step", k=1)]
        if finished:
            break
        await asyncio.sleep(0)
    await ingesting
    assert set(seen) <= {(1,), (2,)}, "a moment with passages of both versions"
    assert seen[-1] == (2,)
    assert all(("alpha" in found) == (version == 1) for version, found in texts)


async def test_a_search_never_returns_another_organizations_passages(client: AsyncClient) -> None:
    a, b = await new_owner(client), await new_owner(client)
    theirs = await article(client, a, title="Zebra stripes report", body="Zebras have stripes.")
    await article(client, b, title="Horses", body="Horses have manes.")
    assert [r["source_id"] for r in await search(client, a, "zebra stripes")] == [theirs["id"]]
    assert await search(client, b, "zebra stripes") == []
    assert await search(client, b, "zebra stripes", source_id=theirs["id"]) == []
    phrasing = await client.post(
        f"/orgs/{b.organization_id}/knowledge/sources/{theirs['id']}/phrasings",
        json={"questions": ["x"]},
        headers=b.headers,
    )
    assert phrasing.status_code == 404
