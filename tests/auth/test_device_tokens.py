"""Device tokens (OWASP device cookies): strangers guessing at an address cannot lock its owner out."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from hypothesis import given
from hypothesis import strategies as st

from aisupport.auth.devices import device_binding, issue_device_token, trusted_device
from aisupport.core.config import Settings
from aisupport.core.security import derive_key
from tests.conftest import PASSWORD, bearer, new_email, serve, signup

WRONG = "not the password at all"
STRANGER_IPS = ("198.51.100.21", "198.51.100.22", "198.51.100.23")


def _limited(make_settings: Callable[..., Settings], **overrides: Any) -> Settings:
    """The production limits on login per account and per device; the per-IP limit out of the way."""
    return make_settings(
        RATE_LIMIT_LOGIN_PER_ACCOUNT="10 per 15 minutes",
        RATE_LIMIT_LOGIN_PER_DEVICE="10 per 15 minutes",
        **overrides,
    )


@asynccontextmanager
async def _from(app_client: AsyncClient, ip: str) -> AsyncIterator[AsyncClient]:
    """Another client (own IP, empty cookie jar) of the same app."""
    transport = ASGITransport(app=app_client.app, client=(ip, 50000))  # type: ignore[attr-defined]
    async with AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def _login(client: AsyncClient, email: str, password: str = PASSWORD, **fields: Any) -> int:
    response = await client.post("/auth/login", json={"email": email, "password": password, **fields})
    return response.status_code


async def _strangers_fail(client: AsyncClient, email: str, times: int = 12) -> list[int]:
    """Wrong passwords for `email` from several addresses, none with a device token."""
    answers = []
    for attempt in range(times):
        async with _from(client, STRANGER_IPS[attempt % len(STRANGER_IPS)]) as stranger:
            answers.append(await _login(stranger, email, WRONG))
    return answers


async def test_strangers_failing_on_an_address_do_not_lock_out_its_owner_device(
    make_settings: Callable[..., Settings],
) -> None:
    async with serve(_limited(make_settings)) as owner:
        email = new_email()
        await signup(owner, email=email, transport="cookie")
        assert await _login(owner, email) == 200  # signed in before: this browser holds a device cookie
        assert owner.cookies.get("device_token", path="/auth")

        answers = await _strangers_fail(owner, email)
        assert answers == [401] * 10 + [429] * 2  # the owner's login counted against their device

        assert await _login(owner, email) == 200  # the owner, with their device cookie
        async with _from(owner, "198.51.100.99") as newcomer:
            refused = await newcomer.post("/auth/login", json={"email": email, "password": PASSWORD})
            assert refused.status_code == 429  # untrusted clients stay locked out, right password or not
            assert refused.json()["code"] == "rate_limited"


async def test_body_transport_clients_send_their_device_token_in_the_body(
    make_settings: Callable[..., Settings],
) -> None:
    async with serve(_limited(make_settings)) as client:
        email = new_email()
        signed_up = (await signup(client, email=email, transport="body")).json()
        device_token = signed_up["device_token"]
        assert device_token.startswith("dt_")
        assert "device_token" not in client.cookies  # body transport leaves the cookie jar alone

        assert 429 in await _strangers_fail(client, email)
        assert await _login(client, email) == 429  # without the token: untrusted

        answer = await client.post(
            "/auth/login",
            json={"email": email, "password": PASSWORD, "transport": "body", "device_token": device_token},
        )
        assert answer.status_code == 200, answer.text
        renewed = answer.json()["device_token"]
        assert renewed.startswith("dt_")
        assert renewed != device_token
        assert (
            await client.get("/auth/me", headers=bearer(answer.json()["access_token"]))
        ).status_code == 200


async def test_a_cookie_login_answer_keeps_the_device_token_out_of_the_body(client: AsyncClient) -> None:
    email = new_email()
    await signup(client, email=email, transport="body")
    answer = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200
    assert "device_token" not in answer.json()
    assert answer.cookies["device_token"].startswith("dt_")


async def test_forged_foreign_and_outdated_device_tokens_are_untrusted(
    make_settings: Callable[..., Settings],
) -> None:
    settings = _limited(make_settings)
    async with serve(settings) as client:
        email = new_email()
        owner = (await signup(client, email=email, transport="body")).json()
        other = (await signup(client, email=new_email(), transport="body")).json()
        async with serve(make_settings()) as elsewhere:  # the same user, signed with another SECRET_KEY
            foreign_key = (
                await elsewhere.post(
                    "/auth/login", json={"email": email, "password": PASSWORD, "transport": "body"}
                )
            ).json()["device_token"]
        own = owner["device_token"]
        flipped = own[:-2] + ("A" if own[-2] != "A" else "B") + own[-1]
        assert 429 in await _strangers_fail(client, email)

        for token in (other["device_token"], flipped, foreign_key, "dt_", "dt_" + "A" * 80, "garbage"):
            for cookie in (False, True):
                async with _from(client, "198.51.100.50") as attacker:
                    if cookie:
                        attacker.cookies.set("device_token", token, path="/auth")
                        status = await _login(attacker, email)
                    else:
                        status = await _login(attacker, email, device_token=token)
                assert status == 429, (token, cookie)

        assert await _login(client, email, device_token=own) == 200  # the real one still works
        too_long = await client.post(
            "/auth/login", json={"email": email, "password": PASSWORD, "device_token": "dt_" + "A" * 200}
        )
        assert too_long.status_code == 422


async def test_a_password_change_ends_the_trust_in_every_device(
    make_settings: Callable[..., Settings],
) -> None:
    async with serve(_limited(make_settings)) as client:
        email = new_email()
        signed_up = (await signup(client, email=email, transport="body")).json()
        changed = await client.post(
            "/auth/password/change",
            headers=bearer(signed_up["access_token"]),
            json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
        )
        assert changed.status_code == 204
        assert 429 in await _strangers_fail(client, email)
        # Whoever kept a device token from before the change is an untrusted client now.
        old_device = signed_up["device_token"]
        assert await _login(client, email, "a brand new passphrase", device_token=old_device) == 429


async def test_failures_with_a_device_token_lock_only_that_device(
    make_settings: Callable[..., Settings],
) -> None:
    async with serve(_limited(make_settings)) as client:
        email = new_email()
        laptop = (await signup(client, email=email, transport="body")).json()["device_token"]
        phone_login = await client.post(
            "/auth/login", json={"email": email, "password": PASSWORD, "transport": "body"}
        )
        phone = phone_login.json()["device_token"]

        answers = [await _login(client, email, WRONG, device_token=laptop) for _ in range(11)]
        assert answers[:10] == [401] * 10
        assert answers[10] == 429
        locked = await client.post(
            "/auth/login", json={"email": email, "password": PASSWORD, "device_token": laptop}
        )
        assert locked.status_code == 429
        assert int(locked.headers["retry-after"]) >= 1

        assert await _login(client, email, device_token=phone) == 200  # another device of the owner
        async with _from(client, "198.51.100.60") as untrusted:
            assert await _login(untrusted, email) == 200  # the account's counter was not touched


async def test_device_tokens_survive_a_key_rollover(make_settings: Callable[..., Settings]) -> None:
    old = _limited(make_settings)
    async with serve(old) as client:
        email = new_email()
        device_token = (await signup(client, email=email, transport="body")).json()["device_token"]
    rotated = _limited(make_settings, SECRET_KEY="r" * 48, SECRET_KEY_PREVIOUS=old.SECRET_KEY)
    async with serve(rotated) as client:
        assert 429 in await _strangers_fail(client, email)
        assert await _login(client, email, device_token=device_token) == 200


KEY = derive_key("k" * 48, "device-token")
BINDING = device_binding(uuid.UUID(int=7), "$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA")


def test_device_tokens_are_bound_to_user_password_key_and_expiry() -> None:
    token = issue_device_token(KEY, BINDING, expires_at=2_000)
    device = trusted_device([KEY], token, BINDING, now=1_000)
    assert device is not None
    assert len(device) == 32
    assert trusted_device([KEY], token, BINDING, now=2_000) is None  # expired
    assert trusted_device([derive_key("other" * 10, "device-token")], token, BINDING, now=1_000) is None
    assert trusted_device([KEY], token, device_binding(uuid.UUID(int=8), "x"), now=1_000) is None
    changed_password = device_binding(uuid.UUID(int=7), "$argon2id$another")
    assert trusted_device([KEY], token, changed_password, now=1_000) is None
    assert issue_device_token(KEY, BINDING, expires_at=2_000) != token  # a new device id every time


@given(st.text(max_size=200))
def test_any_string_is_untrusted_and_never_raises(text: str) -> None:
    assert trusted_device([KEY], text, BINDING, now=0) is None
    assert trusted_device([KEY], "dt_" + text, BINDING, now=0) is None


async def test_device_tokens_never_reach_the_logs(
    client: AsyncClient, capfd: pytest.CaptureFixture[str]
) -> None:
    email = new_email()
    device_token = (await signup(client, email=email, transport="cookie")).cookies["device_token"]
    await _login(client, email, WRONG)
    await _login(client, email, WRONG, device_token=device_token)
    renewed = await client.post(
        "/auth/login", json={"email": email, "password": PASSWORD, "transport": "body"}
    )
    logs = capfd.readouterr().err
    assert "login_failed" in logs
    for secret in (device_token, renewed.json()["device_token"]):
        assert secret not in logs
