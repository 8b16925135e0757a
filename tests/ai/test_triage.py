"""Triage of new conversations (issue 14 point 4) and evaluations through the API (point 7): categories
learned from an organization's examples and its agents' tags, applied only above their threshold, never
a silent empty reading; an evaluation of its own labelled set stored with its figures."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
from httpx import AsyncClient
from sqlalchemy.engine import make_url

from tests.ai.helpers import ARTICLE, ai_inbox, ai_state, customer_says, settings_put
from tests.conftest import run_jobs
from tests.conversations.helpers import read
from tests.knowledge.helpers import article
from tests.organizations.helpers import new_owner

EXAMPLES = {
    "billing": [
        "I was charged twice this month",
        "why is there an extra fee on my invoice",
        "refund the double payment please",
        "my card was billed the wrong amount",
        "can I get a copy of my invoice",
        "the subscription price went up without notice",
    ],
    "login": [
        "I can't sign in to my account",
        "the password reset email never arrives",
        "my account is locked after too many attempts",
        "two-factor code is not accepted",
        "I forgot my username",
        "the login page keeps spinning",
    ],
    "shipping": [
        "where is my parcel",
        "the tracking number does not work",
        "my order has not arrived yet",
        "can you deliver to another address",
        "the package arrived damaged",
        "how long does delivery take",
    ],
}


async def _teach(client: AsyncClient, owner_headers: dict[str, str], org: str) -> None:
    rows = [{"category": category, "text": text} for category, texts in EXAMPLES.items() for text in texts]
    added = await client.post(f"/orgs/{org}/ai/examples", json={"examples": rows}, headers=owner_headers)
    assert added.status_code == 201, added.text
    assert added.json() == {"added": 18}
    again = await client.post(f"/orgs/{org}/ai/examples", json={"examples": rows[:2]}, headers=owner_headers)
    assert again.json() == {"added": 0}
    await run_jobs(client)  # the `ai:train` job


async def test_categories_are_learned_from_examples_and_applied_above_their_threshold(
    client: AsyncClient,
) -> None:
    owner = await new_owner(client)
    await _teach(client, owner.headers, owner.organization_id)
    categories = (
        await client.get(f"/orgs/{owner.organization_id}/ai/categories", headers=owner.headers)
    ).json()
    assert [c["category"] for c in categories["categories"]] == ["billing", "login", "shipping"]
    assert categories["classifier"]["examples"] == 18
    assert categories["classifier"]["categories"] == ["billing", "login", "shipping"]

    inbox = await ai_inbox(client, owner, mode="draft")
    await settings_put(
        client, owner, thresholds={"category": 0.0, "priority": 1.0, "language": 0.5, "sentiment": 1.0}
    )
    conversation = await customer_says(
        client, owner, inbox, "I have been charged two times for the same invoice"
    )
    triage = (await ai_state(client, owner, conversation))["triage"]
    assert triage["category"]["value"] == "billing"
    assert triage["category"]["applied"] is True
    assert [alternative["value"] for alternative in triage["category"]["alternatives"]] != []
    for name in ("priority", "language", "sentiment"):
        assert triage[name]["value"] is not None
        assert 0 <= triage[name]["confidence"] <= 1
    assert triage["priority"]["applied"] is False  # a threshold of 1: a suggestion only
    shown = await read(client, owner, conversation)
    assert "billing" in shown["tags"]
    assert shown["priority"] == "none"
    assert shown["custom_attributes"]["language"] == "en"
    assert "sentiment" not in shown["custom_attributes"]

    # Below its threshold, a category is a suggestion only.
    await settings_put(client, owner, thresholds={"category": 1.0})
    other = await customer_says(client, owner, inbox, "where is my parcel, it has not arrived")
    triage = (await ai_state(client, owner, other))["triage"]
    assert triage["category"]["value"] == "shipping"
    assert triage["category"]["applied"] is False
    assert "shipping" not in (await read(client, owner, other))["tags"]


async def test_agents_tags_teach_the_classifier(client: AsyncClient, database_url: str) -> None:
    owner = await new_owner(client)
    await _teach(client, owner.headers, owner.organization_id)
    await settings_put(client, owner, thresholds={"category": 1.0})  # the triage tags nothing itself
    inbox = await ai_inbox(client, owner, mode="draft")
    conversation = await customer_says(client, owner, inbox, "my voucher code is rejected at checkout")
    tagged = await client.patch(
        f"/orgs/{owner.organization_id}/conversations/{conversation}",
        json={"tags": ["billing"]},
        headers=owner.headers,
    )
    assert tagged.status_code == 200, tagged.text
    owner_url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(owner_url) as conn:  # as if the classifier were trained over an hour ago
        conn.execute(
            "UPDATE ai_classifiers SET trained_at = now() - interval '2 hours' WHERE organization_id = %s",
            (owner.organization_id,),
        )
    await customer_says(client, owner, inbox, "hello")  # an AI turn notices and queues the training
    await run_jobs(client)
    categories = (
        await client.get(f"/orgs/{owner.organization_id}/ai/categories", headers=owner.headers)
    ).json()
    assert categories["classifier"]["examples"] == 19


async def test_an_evaluation_of_an_organizations_own_set_runs_through_the_api(client: AsyncClient) -> None:
    owner = await new_owner(client)
    rows = [{"text": text, "label": category} for category, texts in EXAMPLES.items() for text in texts]
    body = {"kind": "triage", "train": rows, "test": [{"text": "I was billed twice", "label": "billing"}]}
    path = f"/orgs/{owner.organization_id}/ai/evaluations"
    requested = await client.post(path, json=body, headers=owner.headers)
    assert requested.status_code == 202, requested.text
    assert requested.json()["status"] == "queued"
    await run_jobs(client)
    done = (await client.get(f"{path}/{requested.json()['id']}", headers=owner.headers)).json()
    assert done["status"] == "done", done
    assert set(done["figures"]) >= {"accuracy", "macro_f1", "ece", "applied_rate", "applied_accuracy"}
    handoff = {
        "kind": "handoff",
        "train": [*rows, *({"text": t, "label": "oos"} for t in ("what is the weather", "tell me a joke"))],
        "val": [
            {"text": "sing me a song", "label": "oos"},
            {"text": "my parcel is late", "label": "shipping"},
        ],
        "test": [
            {"text": "what time is it in Tokyo", "label": "oos"},
            {"text": "refund me", "label": "billing"},
        ],
    }
    requested = await client.post(path, json=handoff, headers=owner.headers)
    await run_jobs(client)
    done = (await client.get(f"{path}/{requested.json()['id']}", headers=owner.headers)).json()
    assert done["status"] == "done", done
    assert set(done["figures"]) >= {"in_scope_accuracy", "oos_precision", "oos_recall", "oos_f1"}
    source = await article(client, owner, **ARTICLE)
    answers = {
        "kind": "answers",
        "queries": [{"query": "How do I reset my password?", "relevant": [source["id"]]}],
    }
    requested = await client.post(path, json=answers, headers=owner.headers)
    assert requested.status_code == 202, requested.text
    await run_jobs(client)
    done = (await client.get(f"{path}/{requested.json()['id']}", headers=owner.headers)).json()
    assert done["status"] == "done", done
    assert (done["figures"]["answer_rate"], done["figures"]["answered_relevant_rate"]) == (1.0, 1.0)
    assert done["figures"]["citation_validity"] == 1.0
    listed = (await client.get(path, headers=owner.headers)).json()
    assert [run["kind"] for run in listed["items"]] == ["triage", "handoff", "answers"]
    missing = await client.get(f"{path}/{uuid.uuid4()}", headers=owner.headers)
    assert missing.status_code == 404
    bad = await client.post(path, json={**body, "train": rows[:4]}, headers=owner.headers)
    assert bad.status_code == 422  # one label only


async def test_two_deletions_of_one_example_are_a_204_and_a_404(client: AsyncClient) -> None:
    owner = await new_owner(client)
    await _teach(client, owner.headers, owner.organization_id)
    path = f"/orgs/{owner.organization_id}/ai/examples"
    example = (await client.get(path, headers=owner.headers)).json()["items"][0]
    answers = await asyncio.gather(
        *(client.delete(f"{path}/{example['id']}", headers=owner.headers) for _ in range(2))
    )
    assert sorted(answer.status_code for answer in answers) == [204, 404]
    categories = (
        await client.get(f"/orgs/{owner.organization_id}/ai/categories", headers=owner.headers)
    ).json()
    assert sum(category["examples"] for category in categories["categories"]) == 17
