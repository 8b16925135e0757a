from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
from httpx import AsyncClient
from sqlalchemy import text

from aisupport.core.config import Settings
from tests.conftest import bearer, serve, signup


async def _refresh(client: AsyncClient, token: str) -> tuple[int, dict[str, object]]:
    response = await client.post("/auth/refresh", json={"refresh_token": token})
    return response.status_code, response.json()


async def _live_tokens(client: AsyncClient, session_id: str) -> int:
    sessionmaker = client.app.state.sessionmaker  # type: ignore[attr-defined]
    async with sessionmaker() as db:
        return int(
            (
                await db.execute(
                    text(
                        "SELECT count(*) FROM refresh_tokens t JOIN auth_sessions s ON s.id = t.session_id"
                        " WHERE s.id = :sid AND s.revoked_at IS NULL AND t.used_at IS NULL"
                        " AND t.revoked_at IS NULL"
                    ),
                    {"sid": uuid.UUID(session_id)},
                )
            ).scalar_one()
        )


def _sid(access_token: str) -> str:
    import jwt

    return str(jwt.decode(access_token, options={"verify_signature": False})["sid"])


async def test_refresh_rotates_and_the_old_token_stops_working(
    make_settings: Callable[..., Settings],
) -> None:
    async with serve(make_settings(REFRESH_REUSE_GRACE_SECONDS=0)) as client:
        first = (await signup(client)).json()
        status, second = await _refresh(client, first["refresh_token"])
        assert status == 200
        assert second["refresh_token"] != first["refresh_token"]
        assert second["refresh_token"].startswith("rt_")
        assert (await client.get("/auth/me", headers=bearer(str(second["access_token"])))).status_code == 200
        status, body = await _refresh(client, first["refresh_token"])
        assert status == 401
        assert body["code"] == "invalid_refresh_token"


async def test_reuse_of_a_rotated_token_revokes_the_whole_family(
    make_settings: Callable[..., Settings], capfd: object
) -> None:
    async with serve(make_settings(REFRESH_REUSE_GRACE_SECONDS=0)) as client:
        first = (await signup(client)).json()
        _, second = await _refresh(client, first["refresh_token"])
        _, third = await _refresh(client, str(second["refresh_token"]))
        status, _ = await _refresh(client, first["refresh_token"])  # a thief replays an old token
        assert status == 401
        status, _ = await _refresh(client, str(third["refresh_token"]))  # the newest dies too
        assert status == 401
        me = await client.get("/auth/me", headers=bearer(str(third["access_token"])))
        assert me.status_code == 401
        assert await _live_tokens(client, _sid(first["access_token"])) == 0
    logs = capfd.readouterr().err  # type: ignore[attr-defined]
    assert "refresh_token_reuse_detected" in logs
    for token in (first["refresh_token"], second["refresh_token"], third["refresh_token"]):
        assert str(token) not in logs


async def test_predecessor_within_grace_gets_the_same_new_token(
    make_settings: Callable[..., Settings],
) -> None:
    async with serve(make_settings(REFRESH_REUSE_GRACE_SECONDS=10)) as client:
        first = (await signup(client)).json()
        _, second = await _refresh(client, first["refresh_token"])
        status, again = await _refresh(client, first["refresh_token"])  # second tab, lost response
        assert status == 200
        assert again["refresh_token"] == second["refresh_token"]
        assert await _live_tokens(client, _sid(first["access_token"])) == 1
        _, third = await _refresh(client, str(second["refresh_token"]))
        # Once the child was itself rotated, the grandparent is a replay: the family dies.
        status, _ = await _refresh(client, first["refresh_token"])
        assert status == 401
        assert (await _refresh(client, str(third["refresh_token"])))[0] == 401


async def test_grace_window_closes(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings(REFRESH_REUSE_GRACE_SECONDS=1)) as client:
        first = (await signup(client)).json()
        _, second = await _refresh(client, first["refresh_token"])
        await asyncio.sleep(1.2)
        assert (await _refresh(client, first["refresh_token"]))[0] == 401
        assert (await _refresh(client, str(second["refresh_token"])))[0] == 401


async def test_twenty_concurrent_refreshes_leave_exactly_one_live_token(client: AsyncClient) -> None:
    for _ in range(3):
        first = (await signup(client)).json()
        results = await asyncio.gather(*(_refresh(client, first["refresh_token"]) for _ in range(20)))
        statuses = [status for status, _ in results]
        assert statuses == [200] * 20
        assert len({body["refresh_token"] for _, body in results}) == 1
        assert await _live_tokens(client, _sid(first["access_token"])) == 1


async def test_logout_revokes_refresh_and_access_tokens_and_is_repeatable(client: AsyncClient) -> None:
    body = (await signup(client)).json()
    headers = bearer(body["access_token"])
    assert (await client.get("/auth/me", headers=headers)).status_code == 200
    response = await client.post("/auth/logout", headers=headers)
    assert response.status_code == 204
    me = await client.get("/auth/me", headers=headers)
    assert me.status_code == 401
    assert me.json()["code"] == "invalid_token"
    assert (await _refresh(client, body["refresh_token"]))[0] == 401
    assert (await client.post("/auth/logout", headers=headers)).status_code == 204
    assert (await client.post("/auth/logout")).status_code == 204


async def test_logout_with_the_refresh_token_in_the_body(client: AsyncClient) -> None:
    body = (await signup(client)).json()
    response = await client.post("/auth/logout", json={"refresh_token": body["refresh_token"]})
    assert response.status_code == 204
    assert (await client.get("/auth/me", headers=bearer(body["access_token"]))).status_code == 401


async def test_logout_of_one_session_leaves_the_others(client: AsyncClient) -> None:
    email = "u-" + uuid.uuid4().hex[:10] + "@example.com"
    first = (await signup(client, email=email)).json()
    second = (
        await client.post(
            "/auth/login",
            json={"email": email, "password": "correct horse battery staple", "transport": "body"},
        )
    ).json()
    await client.post("/auth/logout", headers=bearer(first["access_token"]))
    assert (await client.get("/auth/me", headers=bearer(second["access_token"]))).status_code == 200


async def test_logout_is_seen_by_another_replica_through_redis(
    make_settings: Callable[..., Settings], require_redis: str
) -> None:
    settings = make_settings(SESSION_CACHE_TTL_SECONDS=60)
    async with serve(settings) as replica_a, serve(settings) as replica_b:
        body = (await signup(replica_a)).json()
        headers = bearer(body["access_token"])
        assert (
            await replica_b.get("/auth/me", headers=headers)
        ).status_code == 200  # cached as live in Redis
        assert (await replica_a.post("/auth/logout", headers=headers)).status_code == 204
        assert (await replica_b.get("/auth/me", headers=headers)).status_code == 401


@pytest.mark.parametrize(
    "change",
    [
        "last_used_at = now() - interval '8 days'",  # idle longer than REFRESH_TOKEN_IDLE_DAYS
        "expires_at = now() - interval '1 second'",  # past the family's absolute lifetime
    ],
)
async def test_idle_or_expired_session_cannot_refresh(client: AsyncClient, change: str) -> None:
    body = (await signup(client)).json()
    sessionmaker = client.app.state.sessionmaker  # type: ignore[attr-defined]
    async with sessionmaker() as db, db.begin():
        await db.execute(
            text(f"UPDATE auth_sessions SET {change} WHERE id = :sid"),  # noqa: S608 - constant SQL
            {"sid": uuid.UUID(_sid(body["access_token"]))},
        )
    assert (await _refresh(client, body["refresh_token"]))[0] == 401


async def test_only_the_hash_of_a_refresh_token_is_stored(client: AsyncClient) -> None:
    import hashlib

    body = (await signup(client)).json()
    sessionmaker = client.app.state.sessionmaker  # type: ignore[attr-defined]
    async with sessionmaker() as db:
        row = (
            await db.execute(
                text("SELECT token_hash, ip::text, user_agent FROM refresh_tokens WHERE session_id = :sid"),
                {"sid": uuid.UUID(_sid(body["access_token"]))},
            )
        ).one()
    assert row.token_hash == hashlib.sha256(body["refresh_token"].encode()).hexdigest()
    assert row.ip.startswith("203.0.113.10")
    assert row.user_agent.startswith("python-httpx")
