"""Articles made and searched through the API."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient

from tests.conftest import run_jobs
from tests.organizations.helpers import Person


async def article(client: AsyncClient, person: Person, **fields: Any) -> dict[str, Any]:
    """An article, ingested (its job run)."""
    body = {
        "title": "Reset your password",
        "body": "Open Settings, then Security.",
        "status": "published",
        **fields,
    }
    response = await client.post(
        f"/orgs/{person.organization_id}/knowledge/articles", json=body, headers=person.headers
    )
    assert response.status_code == 201, response.text
    await run_jobs(client)
    found = await client.get(
        f"/orgs/{person.organization_id}/knowledge/sources/{response.json()['id']}", headers=person.headers
    )
    answer: dict[str, Any] = found.json()
    return answer


async def search(client: AsyncClient, person: Person, query: str, **options: Any) -> list[dict[str, Any]]:
    response = await client.post(
        f"/orgs/{person.organization_id}/knowledge/search",
        json={"query": query, **options},
        headers=person.headers,
    )
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


async def phrased(client: AsyncClient, person: Person, source_id: str, *questions: str) -> None:
    response = await client.post(
        f"/orgs/{person.organization_id}/knowledge/sources/{source_id}/phrasings",
        json={"questions": list(questions)},
        headers=person.headers,
    )
    assert response.status_code == 201, response.text


async def cited(client: AsyncClient, person: Person, source_id: str, conversation_id: str) -> None:
    response = await client.post(
        f"/orgs/{person.organization_id}/knowledge/sources/{source_id}/citations",
        json={"conversation_id": conversation_id},
        headers=person.headers,
    )
    assert response.status_code == 201, response.text
