from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable

import pytest
from fastapi import Request
from httpx import AsyncClient

from aisupport.core.config import Settings
from tests.conftest import PASSWORD, bearer, new_email, serve, signup

PROBLEM_FIELDS = {"type", "title", "status", "detail", "code"}


def _assert_problem(
    response_status: int, body: dict[str, object], content_type: str, status: int, code: str
) -> None:
    assert response_status == status
    assert content_type == "application/problem+json"
    assert set(body) >= PROBLEM_FIELDS
    assert body["status"] == status
    assert body["code"] == code


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("GET", "/no/such/route", {}, 404, "not_found"),
        ("DELETE", "/auth/login", {}, 405, "method_not_allowed"),
        (
            "POST",
            "/auth/login",
            {"content": b"email=a", "headers": {"content-type": "text/plain"}},
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/auth/login",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            422,
            "validation_error",
        ),
        ("POST", "/auth/login", {"json": {"email": "a@example.com"}}, 422, "validation_error"),
        ("POST", "/auth/login", {"json": [1, 2, 3]}, 422, "validation_error"),
        (
            "POST",
            "/auth/login",
            {"json": {"email": "a@example.com", "password": "x", "extra": 1}},
            422,
            "validation_error",
        ),
    ],
)
async def test_errors_are_problem_json(
    client: AsyncClient, method: str, path: str, kwargs: dict[str, object], status: int, code: str
) -> None:
    response = await client.request(method, path, **kwargs)  # type: ignore[arg-type]
    _assert_problem(response.status_code, response.json(), response.headers["content-type"], status, code)


async def test_oversized_auth_body_is_413_before_parsing(client: AsyncClient) -> None:
    body = b'{"email": "a@example.com", "password": "' + b"x" * (64 * 1024) + b'"}'
    response = await client.post("/auth/login", content=body, headers={"content-type": "application/json"})
    _assert_problem(
        response.status_code, response.json(), response.headers["content-type"], 413, "payload_too_large"
    )


async def test_oversized_streamed_body_without_length_is_413(client: AsyncClient) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(80):
            yield b"x" * 1024

    response = await client.post(
        "/auth/login", content=chunks(), headers={"content-type": "application/json"}
    )
    _assert_problem(
        response.status_code, response.json(), response.headers["content-type"], 413, "payload_too_large"
    )


async def test_unexpected_exception_is_a_problem_500_without_details(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    async with serve(settings) as client:
        app = client.app  # type: ignore[attr-defined]

        async def explode() -> None:
            raise RuntimeError("secret internal detail")

        app.add_api_route("/test-explode", explode)
        transport = client._transport
        transport.raise_app_exceptions = False  # type: ignore[attr-defined]
        response = await client.get("/test-explode")
    _assert_problem(
        response.status_code, response.json(), response.headers["content-type"], 500, "internal_error"
    )
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text


async def test_request_id_is_echoed_or_generated(client: AsyncClient) -> None:
    echoed = await client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    generated = await client.get("/health/live", headers={"X-Request-ID": "bad id\nwith newline"})
    assert len(generated.headers["x-request-id"]) == 32


async def test_logs_never_carry_passwords_tokens_or_cookies(
    client: AsyncClient, capfd: pytest.CaptureFixture[str]
) -> None:
    email = new_email()
    signed = await signup(client, email=email, transport="cookie")
    access = signed.cookies["access_token"]
    refresh = signed.cookies["refresh_token"]
    await client.get("/auth/me", headers={"X-Request-ID": "req-log-check"})
    await client.post("/auth/login", json={"email": email, "password": "a wrong password"})
    await client.post("/auth/refresh", headers={"X-CSRF-Token": client.cookies["csrf_token"]})
    await client.get("/auth/me", headers=bearer(access))
    logs = capfd.readouterr().err
    assert "req-log-check" in logs  # one line per request, with its id
    assert "path=/auth/me" in logs
    for secret in (PASSWORD, "a wrong password", access, refresh, client.cookies["csrf_token"]):
        assert secret not in logs


async def test_prod_logs_are_json_lines(
    make_settings: Callable[..., Settings], capfd: pytest.CaptureFixture[str]
) -> None:
    import json

    prod = make_settings(
        ENV="prod", SECRET_KEY="p" * 40, SMTP_HOST="127.0.0.1", APP_DATABASE_PASSWORD="a" * 16
    )
    async with serve(prod) as client:
        capfd.readouterr()
        await client.get("/health/live", headers={"X-Request-ID": "json-line"})
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if "json-line" in line]
    assert lines
    assert lines[0]["event"] == "request"
    assert lines[0]["status"] == 200
    assert lines[0]["route"] == "/health/live"
    assert lines[0]["request_id"] == "json-line"


async def test_health_live_and_ready(client: AsyncClient, redis_url: str | None) -> None:
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    expected = {"database": "ok", **({"redis": "ok"} if redis_url else {})}
    assert ready.json()["checks"] == expected


async def test_ready_is_503_problem_when_dependencies_are_down(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        DATABASE_URL="postgresql+psycopg://nobody:nothing@127.0.0.1:1/none",
        REDIS_URL="redis://127.0.0.1:1/0",
    )
    async with serve(settings) as client:
        response = await client.get("/health/ready")
    _assert_problem(response.status_code, response.json(), response.headers["content-type"], 503, "not_ready")
    assert "database" in response.json()["detail"]
    assert "redis" in response.json()["detail"]


async def test_database_outage_is_a_503_problem_not_a_500(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(DATABASE_URL="postgresql+psycopg://nobody:nothing@127.0.0.1:1/none")
    async with serve(settings) as client:
        client._transport.raise_app_exceptions = False  # type: ignore[attr-defined]
        response = await client.post("/auth/login", json={"email": new_email(), "password": PASSWORD})
    _assert_problem(
        response.status_code, response.json(), response.headers["content-type"], 503, "database_unavailable"
    )


async def test_text_postgresql_cannot_store_is_a_422_not_a_500(client: AsyncClient) -> None:
    # Found by the fuzzer: a NUL in a JSON string, or a lone surrogate, used to reach the database.
    for raw in (
        b'{"email": "nul@example.com", "password": "a fine passphrase", "full_name": "a\\u0000b"}',
        b'{"email": "sur@example.com", "password": "a fine passphrase", "full_name": "\\ud800"}',
        b'{"email": "key@example.com", "password": "a fine passphrase", "\\u0000": 1}',
    ):
        response = await client.post(
            "/auth/signup", content=raw, headers={"content-type": "application/json"}
        )
        assert response.status_code == 422, raw
        assert response.json()["code"] == "validation_error"

    form = {"username": "nul\x00@example.com", "password": "a fine passphrase"}
    refused = await client.post("/auth/token", data=form)
    assert refused.status_code == 422
    assert refused.json()["code"] == "validation_error"


@pytest.mark.parametrize("env", ["dev", "prod"])
async def test_an_unexpected_error_is_logged_once_without_locals_or_header_values(
    make_settings: Callable[..., Settings], capfd: pytest.CaptureFixture[str], env: str
) -> None:
    secret = secrets.token_urlsafe(24)  # made at run time: in no source line a traceback could quote
    prod = {"SECRET_KEY": "p" * 40, "APP_DATABASE_PASSWORD": "a" * 16} if env == "prod" else {}
    async with serve(make_settings(ENV=env, **prod)) as client:
        app = client.app  # type: ignore[attr-defined]

        async def explode(request: Request) -> None:
            hidden = f"local-{secret}-{request.headers['authorization']}"  # shown only with locals
            raise RuntimeError(f"boom ({len(hidden)})")

        app.add_api_route("/test-explode", explode)
        capfd.readouterr()
        started = time.monotonic()
        # The app handles the error itself: an exception escaping it would fail this request (and
        # make uvicorn log it a second time).
        response = await client.get(
            "/test-explode",
            headers={"Authorization": f"Bearer {secret}", "Cookie": f"session={secret}; other={secret}"},
        )
        elapsed = time.monotonic() - started
    logs = capfd.readouterr().err
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert elapsed < 5  # rendering a traceback with locals took 15 s
    assert secret not in logs
    assert logs.count("Traceback (most recent call last)") == 1
    assert logs.count("unhandled_exception") == 1
    assert "RuntimeError: boom" in logs
    assert "in explode" in logs  # the traceback names the frame that raised
    error_line = next(line for line in logs.splitlines() if "unhandled_exception" in line)
    assert "/test-explode" in error_line  # with the request's path and id
    assert "request_id" in error_line
    if env == "prod":
        assert json.loads(error_line)["level"] == "error"
    request_lines = [line for line in logs.splitlines() if "status=500" in line or '"status": 500' in line]
    assert len(request_lines) == 1  # and the usual request line
