from __future__ import annotations

import socket
from collections.abc import Callable

import pytest
from httpx import AsyncClient

from aisupport.core.config import Settings
from tests.conftest import PASSWORD, new_email, serve, signup


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _login(client: AsyncClient, email: str, password: str = PASSWORD) -> int:
    return (await client.post("/auth/login", json={"email": email, "password": password})).status_code


def _assert_429(response_status: int) -> None:
    assert response_status == 429


async def test_login_per_account_limit_is_identical_for_unknown_accounts(
    make_settings: Callable[..., Settings], require_redis: str
) -> None:
    async with serve(make_settings(RATE_LIMIT_LOGIN_PER_ACCOUNT="3/minute")) as client:
        known = new_email()
        await signup(client, email=known)
        unknown = new_email()
        answers = {}
        for email in (known, unknown):
            for _ in range(3):
                assert await _login(client, email, "wrong password") == 401
            blocked = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
            assert blocked.status_code == 429
            assert blocked.headers["content-type"] == "application/problem+json"
            assert 1 <= int(blocked.headers["retry-after"]) <= 60
            answers[email] = (blocked.json()["code"], blocked.json()["title"])
        assert answers[known] == answers[unknown] == ("rate_limited", "Too Many Requests")
        # The limit is per account: another address still gets through.
        assert await _login(client, new_email()) == 401


async def test_login_per_ip_limit(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings(RATE_LIMIT_LOGIN_PER_IP="2/minute"), client_ip="198.51.100.7") as client:
        assert await _login(client, new_email()) == 401
        assert await _login(client, new_email()) == 401
        assert await _login(client, new_email()) == 429
    async with serve(make_settings(RATE_LIMIT_LOGIN_PER_IP="2/minute"), client_ip="198.51.100.8") as other:
        assert await _login(other, new_email()) == 401


async def test_signup_per_ip_limit(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings(RATE_LIMIT_SIGNUP_PER_IP="1/hour")) as client:
        await signup(client)
        blocked = await client.post("/auth/signup", json={"email": new_email(), "password": PASSWORD})
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) > 60


async def test_refresh_per_ip_limit(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings(RATE_LIMIT_REFRESH_PER_IP="1/minute")) as client:
        body = (await signup(client)).json()
        first = await client.post("/auth/refresh", json={"refresh_token": body["refresh_token"]})
        assert first.status_code == 200
        second = await client.post("/auth/refresh", json={"refresh_token": first.json()["refresh_token"]})
        assert second.status_code == 429


async def test_forwarded_for_is_trusted_only_from_listed_proxies(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(RATE_LIMIT_LOGIN_PER_IP="1/minute", FORWARDED_ALLOW_IPS="10.0.0.1")
    async with serve(settings, client_ip="10.0.0.1") as via_proxy:
        for client_ip in ("192.0.2.1", "192.0.2.2"):
            response = await via_proxy.post(
                "/auth/login",
                json={"email": new_email(), "password": PASSWORD},
                headers={"X-Forwarded-For": client_ip},
            )
            assert response.status_code == 401  # two clients behind the proxy, one attempt each
        again = await via_proxy.post(
            "/auth/login",
            json={"email": new_email(), "password": PASSWORD},
            headers={"X-Forwarded-For": "192.0.2.1"},
        )
        assert again.status_code == 429
    async with serve(settings, client_ip="192.0.2.99") as direct:
        for spoofed in ("192.0.2.3", "192.0.2.4"):
            response = await direct.post(
                "/auth/login",
                json={"email": new_email(), "password": PASSWORD},
                headers={"X-Forwarded-For": spoofed},
            )
        assert response.status_code == 429  # the header was ignored: both counted against the socket


async def test_redis_failure_falls_back_to_in_process_counting(
    make_settings: Callable[..., Settings], capfd: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(
        REDIS_URL=f"redis://127.0.0.1:{_closed_port()}/0", RATE_LIMIT_LOGIN_PER_IP="2/minute"
    )
    async with serve(settings) as client:
        assert await _login(client, new_email()) == 401
        assert await _login(client, new_email()) == 401
        assert await _login(client, new_email()) == 429  # never silently unlimited
        assert client.app.state.auth.rate_limiter.degraded  # type: ignore[attr-defined]
    assert "rate_limit_fallback_to_memory" in capfd.readouterr().err


async def test_limits_are_shared_through_redis(
    make_settings: Callable[..., Settings], require_redis: str
) -> None:
    settings = make_settings(RATE_LIMIT_LOGIN_PER_IP="2/minute")
    async with serve(settings) as replica_a, serve(settings) as replica_b:
        assert replica_a.app.state.auth.rate_limiter.backend == "redis"  # type: ignore[attr-defined]
        assert await _login(replica_a, new_email()) == 401
        assert await _login(replica_b, new_email()) == 401
        assert await _login(replica_a, new_email()) == 429


async def test_a_client_host_that_is_not_an_address_is_stored_as_unknown(
    make_settings: Callable[..., Settings],
) -> None:
    async with serve(make_settings(), client_ip="testclient") as client:
        body = (await signup(client)).json()
        refreshed = await client.post("/auth/refresh", json={"refresh_token": body["refresh_token"]})
        assert refreshed.status_code == 200
