from __future__ import annotations

from collections.abc import Callable
from http.cookies import SimpleCookie

import pytest
from httpx import AsyncClient, Response

from aisupport.core.config import Settings
from tests.conftest import serve, signup


def _set_cookies(response: Response) -> dict[str, dict[str, str | bool]]:
    parsed: dict[str, dict[str, str | bool]] = {}
    for header in response.headers.get_list("set-cookie"):
        cookie = SimpleCookie()
        cookie.load(header)
        for name, morsel in cookie.items():
            parsed[name] = {key: morsel[key] for key in morsel if morsel[key]}
            parsed[name]["raw"] = header
    return parsed


async def test_cookie_flags_without_cookie_secure(client: AsyncClient) -> None:
    cookies = _set_cookies(await signup(client, transport="cookie"))
    assert set(cookies) == {"access_token", "refresh_token", "csrf_token", "device_token"}
    assert cookies["access_token"]["path"] == "/"
    assert cookies["refresh_token"]["path"] == "/auth"
    assert cookies["device_token"]["path"] == "/auth"
    assert cookies["access_token"]["httponly"] is True
    assert cookies["refresh_token"]["httponly"] is True
    assert cookies["device_token"]["httponly"] is True
    assert "httponly" not in cookies["csrf_token"]
    assert int(str(cookies["device_token"]["max-age"])) == 365 * 24 * 3600
    for cookie in cookies.values():
        assert "secure" not in cookie
        assert cookie["samesite"] == "lax"
    assert int(str(cookies["access_token"]["max-age"])) == 3600


@pytest.mark.parametrize("samesite", ["strict", "none"])
async def test_cookie_flags_with_cookie_secure(make_settings: Callable[..., Settings], samesite: str) -> None:
    settings = make_settings(COOKIE_SECURE=True, COOKIE_SAMESITE=samesite, ACCESS_TOKEN_EXPIRE_MINUTES=5)
    async with serve(settings, base_url="https://testserver") as client:
        response = await signup(client, transport="cookie")
        cookies = _set_cookies(response)
        assert set(cookies) == {
            "__Host-access_token",
            "__Secure-refresh_token",
            "__Host-csrf_token",
            "__Secure-device_token",
        }
        for cookie in cookies.values():
            assert cookie["secure"] is True
            assert cookie["samesite"] == samesite
            assert "domain" not in cookie
        assert cookies["__Host-access_token"]["path"] == "/"
        assert cookies["__Host-csrf_token"]["path"] == "/"
        assert cookies["__Secure-refresh_token"]["path"] == "/auth"
        assert cookies["__Secure-device_token"]["path"] == "/auth"
        assert cookies["__Secure-device_token"]["httponly"] is True
        assert int(str(cookies["__Host-access_token"]["max-age"])) == 300  # never outlives the token
        refresh_max_age = int(str(cookies["__Secure-refresh_token"]["max-age"]))
        assert 0 < refresh_max_age <= 7 * 24 * 3600  # the idle timeout, shorter than the 30-day family
        me = await client.get("/auth/me")
        assert me.status_code == 200
        csrf = client.cookies["__Host-csrf_token"]
        refreshed = await client.post("/auth/refresh", headers={"X-CSRF-Token": csrf})
        assert refreshed.status_code == 200
        assert "refresh_token" not in refreshed.json()


async def test_cookie_refresh_needs_the_csrf_header(client: AsyncClient) -> None:
    await signup(client, transport="cookie")
    missing = await client.post("/auth/refresh")
    assert missing.status_code == 403
    assert missing.json()["code"] == "csrf_failed"
    wrong = await client.post("/auth/refresh", headers={"X-CSRF-Token": "0" * 64})
    assert wrong.status_code == 403
    ok = await client.post("/auth/refresh", headers={"X-CSRF-Token": client.cookies["csrf_token"]})
    assert ok.status_code == 200
    assert "refresh_token" not in ok.json()
    assert ok.cookies["refresh_token"].startswith("rt_")


async def test_csrf_cookie_from_another_session_is_refused(client: AsyncClient) -> None:
    await signup(client, transport="cookie")
    mine = client.cookies["csrf_token"]
    other = (await signup(client, transport="body")).json()  # body transport: leaves the cookies alone
    assert other["access_token"]
    async with AsyncClient(transport=client._transport, base_url="http://testserver") as attacker:
        attacker.cookies.set("refresh_token", client.cookies["refresh_token"], path="/auth")
        forged = "f" * 64
        attacker.cookies.set("csrf_token", forged)
        response = await attacker.post("/auth/refresh", headers={"X-CSRF-Token": forged})
        assert response.status_code == 403
    assert mine


async def test_cookie_authenticated_unsafe_request_checks_origin(client: AsyncClient) -> None:
    await signup(client, transport="cookie")
    csrf = client.cookies["csrf_token"]
    evil = await client.post("/auth/logout", headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"})
    assert evil.status_code == 403
    assert evil.json()["code"] == "origin_not_allowed"
    assert (await client.get("/auth/me")).status_code == 200  # nothing was revoked
    allowed = await client.post(
        "/auth/logout", headers={"X-CSRF-Token": csrf, "Origin": "http://localhost:3000"}
    )
    assert allowed.status_code == 204
    assert not client.cookies.get("access_token")


async def test_cookie_logout_needs_csrf(client: AsyncClient) -> None:
    await signup(client, transport="cookie")
    assert (await client.post("/auth/logout")).status_code == 403
    assert (await client.get("/auth/me")).status_code == 200


async def test_bearer_and_body_tokens_need_no_csrf(client: AsyncClient) -> None:
    body = (await signup(client, transport="body")).json()
    refreshed = await client.post(
        "/auth/refresh",
        json={"refresh_token": body["refresh_token"]},
        headers={"Origin": "https://evil.example"},
    )
    assert refreshed.status_code == 200
    logout = await client.post(
        "/auth/logout",
        headers={
            "Authorization": f"Bearer {refreshed.json()['access_token']}",
            "Origin": "https://evil.example",
        },
    )
    assert logout.status_code == 204


async def test_logout_clears_the_cookies(client: AsyncClient) -> None:
    await signup(client, transport="cookie")
    response = await client.post("/auth/logout", headers={"X-CSRF-Token": client.cookies["csrf_token"]})
    assert response.status_code == 204
    cleared = _set_cookies(response)
    assert set(cleared) == {"access_token", "refresh_token", "csrf_token"}
    for cookie in cleared.values():
        assert str(cookie["max-age"]) == "0"
    assert (await client.get("/auth/me")).status_code == 401


async def test_cors_preflight_allows_configured_origin_with_credentials(client: AsyncClient) -> None:
    response = await client.options(
        "/auth/login",
        headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert response.headers["access-control-allow-credentials"] == "true"
    denied = await client.options(
        "/auth/login", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in denied.headers
    assert denied.status_code == 400
    assert denied.headers["content-type"] == "application/problem+json"
    assert denied.json()["code"] == "cors_preflight_refused"


async def test_browser_sessions_survive_a_key_rollover(make_settings: Callable[..., Settings]) -> None:
    old = make_settings()
    async with serve(old) as client:
        await signup(client, transport="cookie")
        jar = client.cookies
    rotated = make_settings(SECRET_KEY="r" * 48, SECRET_KEY_PREVIOUS=old.SECRET_KEY)
    async with serve(rotated) as client:
        client.cookies = jar
        assert (await client.get("/auth/me")).status_code == 200
        response = await client.post("/auth/refresh", headers={"X-CSRF-Token": jar["csrf_token"]})
        assert response.status_code == 200
        assert client.cookies["csrf_token"] != jar["csrf_token"]  # re-issued under the new key
