from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from httpx import AsyncClient

from aisupport.core.config import Settings
from aisupport.core.security import derive_key, key_id
from tests.conftest import bearer, serve, signup


def _claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def _forge(
    settings: Settings, claims: dict[str, Any], *, key: bytes | None = None, kid: str | None = None
) -> str:
    signing_key = key or derive_key(settings.SECRET_KEY, "jwt")
    return jwt.encode(
        claims, signing_key, algorithm="HS256", headers={"kid": kid or key_id(signing_key), "typ": "at+jwt"}
    )


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_access_token_carries_the_documented_claims(client: AsyncClient, settings: Settings) -> None:
    token = (await signup(client)).json()["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"
    assert header["kid"] == key_id(derive_key(settings.SECRET_KEY, "jwt"))
    claims = _claims(token)
    assert {"sub", "sid", "org", "role", "iat", "exp", "iss", "aud", "typ"} <= set(claims)
    assert claims["typ"] == "access"
    assert claims["iss"] == "aisupport"
    assert claims["aud"] == "aisupport-api"
    assert claims["exp"] - claims["iat"] == 3600


async def test_me_reads_the_cookie_and_the_header_wins(client: AsyncClient) -> None:
    first = await signup(client, transport="cookie")
    assert (await client.get("/auth/me")).json()["user"]["id"] == first.json()["user"]["id"]
    second = (await signup(client)).json()
    me = await client.get("/auth/me", headers=bearer(second["access_token"]))
    assert me.json()["user"]["id"] == second["user"]["id"]
    garbage = await client.get("/auth/me", headers=bearer("garbage"))
    assert garbage.status_code == 401  # a bad header is not rescued by a good cookie
    for header in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer  ", "token abc"):
        other_scheme = await client.get("/auth/me", headers={"Authorization": header})
        assert other_scheme.status_code == 401, header
        assert other_scheme.json()["code"] == "invalid_token"


async def test_no_credentials_is_401_with_www_authenticate(client: AsyncClient) -> None:
    response = await client.get("/auth/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not_authenticated"


def _bad_tokens(settings: Settings, good: str) -> dict[str, str]:
    claims = _claims(good)
    header, payload, signature = good.split(".")
    now = int(time.time())
    other_key = derive_key("another-secret-key-of-sufficient-length!!", "jwt")
    return {
        "alg_none": _b64({"alg": "none", "typ": "JWT", "kid": jwt.get_unverified_header(good)["kid"]})
        + "."
        + _b64(claims)
        + ".",
        "tampered_payload": f"{header}.{_b64({**claims, 'role': 'owner', 'sub': claims['sid']})}.{signature}",
        "tampered_signature": f"{header}.{payload}.{signature[:-4]}AAAA",
        "wrong_audience": _forge(settings, {**claims, "aud": "someone-else"}),
        "wrong_issuer": _forge(settings, {**claims, "iss": "evil"}),
        "expired": _forge(settings, {**claims, "iat": now - 7200, "exp": now - 3600}),
        "unknown_kid": _forge(settings, claims, key=other_key),
        "known_kid_wrong_key": _forge(
            settings, claims, key=other_key, kid=jwt.get_unverified_header(good)["kid"]
        ),
        "wrong_type": _forge(settings, {**claims, "typ": "refresh"}),
        "missing_sid": _forge(settings, {k: v for k, v in claims.items() if k != "sid"}),
        "hs512": jwt.encode(
            claims,
            derive_key(settings.SECRET_KEY, "jwt"),
            algorithm="HS512",
            headers={"kid": jwt.get_unverified_header(good)["kid"]},
        ),
        "malformed": "abc.def",
        "not_base64": "!!!.???.***",
        "empty_segments": "..",
    }


async def test_every_kind_of_bad_token_gets_the_same_401(client: AsyncClient, settings: Settings) -> None:
    good = (await signup(client)).json()["access_token"]
    answers = {}
    for name, token in _bad_tokens(settings, good).items():
        response = await client.get("/auth/me", headers=bearer(token))
        assert response.status_code == 401, name
        assert response.headers["www-authenticate"] == "Bearer", name
        answers[name] = response.json()
    assert len({json.dumps(body, sort_keys=True) for body in answers.values()}) == 1
    assert next(iter(answers.values()))["code"] == "invalid_token"
    assert (await client.get("/auth/me", headers=bearer(good))).status_code == 200


async def test_refresh_token_is_refused_as_access_token(client: AsyncClient) -> None:
    body = (await signup(client)).json()
    response = await client.get("/auth/me", headers=bearer(body["refresh_token"]))
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


async def test_access_token_is_refused_as_refresh_token(client: AsyncClient) -> None:
    body = (await signup(client)).json()
    response = await client.post("/auth/refresh", json={"refresh_token": body["access_token"]})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_refresh_token"


async def test_previous_key_keeps_verifying_during_rollover(make_settings: Callable[..., Settings]) -> None:
    old = make_settings()
    async with serve(old) as client:
        token = (await signup(client)).json()["access_token"]
    rotated = make_settings(SECRET_KEY="n" * 48, SECRET_KEY_PREVIOUS=old.SECRET_KEY)
    async with serve(rotated) as client:
        assert (await client.get("/auth/me", headers=bearer(token))).status_code == 200
        fresh = (await signup(client)).json()["access_token"]
        assert jwt.get_unverified_header(fresh)["kid"] == key_id(derive_key("n" * 48, "jwt"))
    retired = make_settings(SECRET_KEY="n" * 48)
    async with serve(retired) as client:
        assert (await client.get("/auth/me", headers=bearer(token))).status_code == 401
        assert (await client.get("/auth/me", headers=bearer(fresh))).status_code == 200


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
async def test_configured_algorithm_is_the_only_one_accepted(
    make_settings: Callable[..., Settings], alg: str
) -> None:
    async with serve(make_settings(JWT_ALG=alg)) as client:
        token = (await signup(client)).json()["access_token"]
        assert jwt.get_unverified_header(token)["alg"] == alg
        assert (await client.get("/auth/me", headers=bearer(token))).status_code == 200
