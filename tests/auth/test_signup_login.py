from __future__ import annotations

import uuid
from collections.abc import Callable

import bcrypt
import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.core.config import Settings
from tests.conftest import PASSWORD, bearer, new_email, serve, signup


async def test_signup_creates_user_and_owned_organization_and_signs_in(client: AsyncClient) -> None:
    email = new_email()
    response = await signup(
        client, email=email, full_name="Ada Lovelace", organization_name="Analytical Engines"
    )
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["user"]["email"] == email
    assert body["user"]["full_name"] == "Ada Lovelace"
    assert body["organization"]["name"] == "Analytical Engines"
    assert body["role"] == "owner"
    assert body["refresh_token"].startswith("rt_")
    me = await client.get("/auth/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["organizations"] == [{**body["organization"], "role": "owner"}]


async def test_signup_derives_organization_name(client: AsyncClient) -> None:
    body = (await signup(client, full_name="Grace")).json()
    assert body["organization"]["name"] == "Grace's organization"
    assert body["organization"]["slug"].startswith("grace-s-organization-")


async def test_signup_with_cookie_transport_answers_like_login(client: AsyncClient) -> None:
    response = await signup(client, transport="cookie")
    assert "refresh_token" not in response.json()
    assert {"access_token", "refresh_token", "csrf_token"} <= set(response.cookies)


async def test_existing_email_is_409_whatever_its_case(client: AsyncClient) -> None:
    email = new_email()
    await signup(client, email=email)
    again = await client.post("/auth/signup", json={"email": email.upper(), "password": PASSWORD})
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["code"] == "email_taken"


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("short1!", "password_too_short"),
        ("x" * 129, "password_too_long"),
        ("password1", "password_too_common"),
        ("Iloveyou", "password_too_common"),
    ],
)
async def test_password_policy_rejects_with_a_clear_422(
    client: AsyncClient, password: str, code: str
) -> None:
    email = new_email()
    response = await client.post("/auth/signup", json={"email": email, "password": password})
    assert response.status_code == 422
    assert response.json()["code"] == code
    login = await client.post("/auth/login", json={"email": email, "password": password})
    assert login.status_code == 401  # nothing was created


async def test_password_equal_to_email_is_rejected(client: AsyncClient) -> None:
    email = new_email()
    response = await client.post("/auth/signup", json={"email": email, "password": email})
    assert response.json()["code"] == "password_too_common"


@pytest.mark.parametrize("password", ["пароль-для-входа", "🔐🔐🔐🔐🔐🔐🔐🔐", "y" * 128, "ab cd ef gh"])
async def test_any_unicode_up_to_128_characters_is_accepted_untruncated(
    client: AsyncClient, password: str
) -> None:
    email = new_email()
    assert (await client.post("/auth/signup", json={"email": email, "password": password})).status_code == 201
    ok = await client.post("/auth/login", json={"email": email, "password": password})
    assert ok.status_code == 200
    truncated = await client.post("/auth/login", json={"email": email, "password": password[:-1]})
    assert truncated.status_code == 401


@pytest.mark.parametrize("email", ["not-an-email", "a@", "@example.com", "a b@example.com", ""])
async def test_invalid_email_is_422(client: AsyncClient, email: str) -> None:
    response = await client.post("/auth/signup", json={"email": email, "password": PASSWORD})
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert PASSWORD not in response.text


async def test_login_returns_tokens_user_organization_and_role(client: AsyncClient) -> None:
    email = new_email()
    created = (await signup(client, email=email)).json()
    response = await client.post(
        "/auth/login", json={"email": email.upper(), "password": PASSWORD, "transport": "body"}
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "access_token", "token_type", "expires_in", "user", "organization", "role", "refresh_token",
        "refresh_expires_in", "device_token",
    }  # fmt: skip
    assert body["user"]["id"] == created["user"]["id"]
    assert body["organization"]["id"] == created["organization"]["id"]
    assert body["expires_in"] == 3600
    assert response.headers["cache-control"] == "no-store"


async def test_unknown_email_and_wrong_password_answer_identically(client: AsyncClient) -> None:
    email = new_email()
    await signup(client, email=email)
    wrong = await client.post("/auth/login", json={"email": email, "password": "not the password"})
    unknown = await client.post("/auth/login", json={"email": new_email(), "password": "not the password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["code"] == "invalid_credentials"
    assert wrong.headers["www-authenticate"] == unknown.headers["www-authenticate"] == "Bearer"
    assert set(wrong.headers) - {"x-request-id"} == set(unknown.headers) - {"x-request-id"}


async def test_login_into_a_named_organization_or_403(client: AsyncClient) -> None:
    email = new_email()
    created = (await signup(client, email=email)).json()
    org_id = created["organization"]["id"]
    ok = await client.post(
        "/auth/login", json={"email": email, "password": PASSWORD, "organization_id": org_id}
    )
    assert ok.json()["organization"]["id"] == org_id
    other = await client.post(
        "/auth/login", json={"email": email, "password": PASSWORD, "organization_id": str(uuid.uuid4())}
    )
    assert other.status_code == 403
    assert other.json()["code"] == "not_a_member"


async def test_bcrypt_hash_is_verified_and_upgraded_to_argon2id(
    client: AsyncClient, make_settings: Callable[..., Settings]
) -> None:
    email = new_email()
    await signup(client, email=email)
    legacy = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    sessionmaker = client.app.state.sessionmaker  # type: ignore[attr-defined]
    async with sessionmaker() as db, db.begin():
        await _set_hash(db, email, legacy)
    assert (await client.post("/auth/login", json={"email": email, "password": PASSWORD})).status_code == 200
    async with sessionmaker() as db:
        stored = (
            await db.execute(
                text("SELECT password_hash FROM users WHERE email_normalized = :e"), {"e": email}
            )
        ).scalar_one()
    assert stored.startswith("$argon2id$")
    assert (await client.post("/auth/login", json={"email": email, "password": PASSWORD})).status_code == 200


async def test_long_password_against_bcrypt_hash_is_a_clean_401(client: AsyncClient) -> None:
    email = new_email()
    await signup(client, email=email)
    legacy = bcrypt.hashpw(b"x" * 72, bcrypt.gensalt(rounds=4)).decode()
    sessionmaker = client.app.state.sessionmaker  # type: ignore[attr-defined]
    async with sessionmaker() as db, db.begin():
        await _set_hash(db, email, legacy)
    response = await client.post("/auth/login", json={"email": email, "password": "x" * 100})
    assert response.status_code == 401  # bcrypt would have truncated to 72 bytes and said yes


async def _set_hash(db: AsyncSession, email: str, password_hash: str) -> None:
    await db.execute(
        text("UPDATE users SET password_hash = :h WHERE email_normalized = :e"),
        {"h": password_hash, "e": email},
    )


async def test_oauth2_password_form_for_swagger(client: AsyncClient) -> None:
    email = new_email()
    await signup(client, email=email)
    response = await client.post("/auth/token", data={"username": email, "password": PASSWORD})
    assert response.status_code == 200
    token = response.json()["access_token"]
    assert (await client.get("/auth/me", headers=bearer(token))).status_code == 200
    bad = await client.post("/auth/token", data={"username": email, "password": "wrong password"})
    assert bad.status_code == 401
    schema = (await client.get("/openapi.json")).json()
    flows = schema["components"]["securitySchemes"]["BearerToken"]["flows"]
    assert flows["password"]["tokenUrl"] == "/auth/token"


async def test_email_uniqueness_is_enforced_by_the_database(
    make_settings: Callable[..., Settings],
) -> None:
    async with serve(make_settings()) as client:
        email = new_email()
        await signup(client, email=email)
        sessionmaker = client.app.state.sessionmaker  # type: ignore[attr-defined]
        async with sessionmaker() as db:
            with pytest.raises(Exception, match="uq_users_email_normalized"):
                await db.execute(
                    text(
                        "INSERT INTO users (id, email, email_normalized, password_hash)"
                        " VALUES (:id, :e, :e, 'x')"
                    ),
                    {"id": uuid.uuid4(), "e": email},
                )
