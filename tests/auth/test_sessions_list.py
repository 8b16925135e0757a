"""`GET /auth/sessions` follows the list convention: cursor pages, newest sign-in first."""

from __future__ import annotations

from httpx import AsyncClient

from tests.conftest import PASSWORD, bearer, new_email, signup


async def _sign_in(client: AsyncClient, email: str) -> str:
    response = await client.post(
        "/auth/login", json={"email": email, "password": PASSWORD, "transport": "body"}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def test_sessions_are_listed_in_pages_newest_first_marking_the_current_one(client: AsyncClient) -> None:
    email = new_email()
    await signup(client, email=email)
    for _ in range(3):
        await _sign_in(client, email)
    current = await _sign_in(client, email)  # the newest of five sessions
    await signup(client)  # another user's sessions are never listed

    pages, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        response = await client.get("/auth/sessions", params=params, headers=bearer(current))
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"items", "next_cursor"}
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [len(items) for items in pages] == [2, 2, 1]
    sessions = [session for items in pages for session in items]
    assert len({session["id"] for session in sessions}) == 5
    created = [session["created_at"] for session in sessions]
    assert created == sorted(created, reverse=True)
    assert [session["current"] for session in sessions] == [True, False, False, False, False]

    everything = (await client.get("/auth/sessions", headers=bearer(current))).json()
    assert [session["id"] for session in everything["items"]] == [session["id"] for session in sessions]
    assert everything["next_cursor"] is None


async def test_session_list_parameters_are_checked(client: AsyncClient) -> None:
    token = (await signup(client)).json()["access_token"]
    for limit in (0, 101, "many"):
        refused = await client.get("/auth/sessions", params={"limit": limit}, headers=bearer(token))
        assert refused.status_code == 422
        assert refused.headers["content-type"] == "application/problem+json"
    forged = await client.get("/auth/sessions", params={"cursor": "bm90LWEtY3Vyc29y"}, headers=bearer(token))
    assert forged.status_code == 400
    assert forged.json()["code"] == "invalid_cursor"
