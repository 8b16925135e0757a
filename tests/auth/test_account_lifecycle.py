"""Email verification, password reset and change, email change, sessions: through the HTTP API, with
mail delivered by the real worker to a real SMTP server on loopback."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from httpx import AsyncClient
from sqlalchemy import text

from aisupport.core.config import Settings
from aisupport.core.jobs import defer
from tests.conftest import PASSWORD, Mailbox, bearer, new_email, run_jobs, serve, signup

NEW_PASSWORD = "an entirely different passphrase"


async def _login(client: AsyncClient, email: str, password: str = PASSWORD) -> dict[str, str]:
    response = await client.post(
        "/auth/login", json={"email": email, "password": password, "transport": "body"}
    )
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


async def _sql(client: AsyncClient, query: str, **values: object) -> list[tuple[object, ...]]:
    async with client.app.state.sessionmaker() as db:  # type: ignore[attr-defined]
        result = await db.execute(text(query), values)
        rows = [tuple(row) for row in result] if result.returns_rows else []
        await db.commit()
        return rows


async def test_signup_mails_a_verification_link_that_verifies_once(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    email = new_email()
    access = (await signup(client, email=email, full_name="Grace")).json()["access_token"]
    assert (await client.get("/auth/me", headers=bearer(access))).json()["user"]["email_verified"] is False
    await run_jobs(client)

    [message] = mailbox.to(email)
    assert "Confirm your email address" in message["Subject"]
    assert message.get_body(("html",)) is not None
    plain = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Hello Grace" in plain
    assert "http://localhost:3000/verify-email?token=ev_" in plain
    token = mailbox.token_sent_to(email)
    # Only the hash is stored, and the job's arguments never held the secret.
    assert not await _sql(client, "SELECT 1 FROM account_tokens WHERE token_hash = :t", t=token)
    assert not await _sql(client, "SELECT 1 FROM procrastinate_jobs WHERE args::text LIKE :t", t=f"%{token}%")

    confirmed = await client.post("/auth/verify-email/confirm", json={"token": token})
    assert confirmed.status_code == 200
    assert confirmed.json()["email_verified"] is True
    assert (await client.get("/auth/me", headers=bearer(access))).json()["user"]["email_verified"] is True
    again = await client.post("/auth/verify-email/confirm", json={"token": token})
    assert again.status_code == 400
    assert again.json()["code"] == "invalid_link"


async def test_bad_and_expired_verification_tokens_get_one_answer(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    email = new_email()
    await signup(client, email=email)
    await run_jobs(client)
    token = mailbox.token_sent_to(email)
    await _sql(
        client, "UPDATE account_tokens SET expires_at = now() - interval '1 second' WHERE email = :e", e=email
    )
    answers = [
        await client.post("/auth/verify-email/confirm", json={"token": candidate})
        for candidate in (token, "ev_unknown", "x" * 512)
    ]
    assert {(answer.status_code, answer.json()["code"]) for answer in answers} == {(400, "invalid_link")}
    assert len({answer.json()["detail"] for answer in answers}) == 1
    for body in ({}, {"token": ""}, {"token": "x" * 513}, {"token": 5}, {"token": "t", "extra": 1}):
        response = await client.post("/auth/verify-email/confirm", json=body)
        assert response.status_code == 422, body
        assert response.headers["content-type"] == "application/problem+json"


async def test_resend_sends_a_new_link_until_verified(
    client: AsyncClient, mailbox: Mailbox, make_settings: Callable[..., Settings]
) -> None:
    email = new_email()
    access = (await signup(client, email=email)).json()["access_token"]
    resent = await client.post("/auth/verify-email/resend", headers=bearer(access))
    assert resent.status_code == 202
    await run_jobs(client)
    assert len(mailbox.to(email)) == 2
    assert (
        await client.post("/auth/verify-email/confirm", json={"token": mailbox.token_sent_to(email)})
    ).is_success
    verified = await client.post("/auth/verify-email/resend", headers=bearer(access))
    assert verified.status_code == 409
    assert verified.json()["code"] == "email_already_verified"
    assert (await client.post("/auth/verify-email/resend")).status_code == 401

    async with serve(make_settings(RATE_LIMIT_EMAIL_PER_ACCOUNT="1/hour")) as limited:
        token = (await signup(limited)).json()["access_token"]
        assert (await limited.post("/auth/verify-email/resend", headers=bearer(token))).status_code == 202
        refused = await limited.post("/auth/verify-email/resend", headers=bearer(token))
        assert refused.status_code == 429
        assert refused.headers["retry-after"]


async def test_required_verification_gates_sign_in_and_hides_taken_addresses(
    make_settings: Callable[..., Settings], mailbox: Mailbox
) -> None:
    async with serve(make_settings(REQUIRE_EMAIL_VERIFICATION=True)) as client:
        email = new_email()
        body = {"email": email, "password": PASSWORD, "full_name": "Ada"}
        fresh = await client.post("/auth/signup", json=body)
        taken = await client.post("/auth/signup", json={**body, "password": "another good passphrase"})
        assert fresh.status_code == taken.status_code == 202
        assert fresh.json() == taken.json()
        assert fresh.json()["status"] == "verification_required"
        assert "set-cookie" not in fresh.headers

        refused = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
        assert refused.status_code == 403
        assert refused.json()["code"] == "email_not_verified"
        wrong = await client.post("/auth/login", json={"email": email, "password": "not the password"})
        assert wrong.status_code == 401  # the verification state is told only to the password's owner

        await run_jobs(client)
        subjects = sorted(message["Subject"] for message in mailbox.to(email))
        assert len(subjects) == 2
        # The address was never confirmed: its owner gets a link to finish signing up (decision 0017).
        assert any("Finish signing up" in subject for subject in subjects)
        confirmed = await client.post(
            "/auth/verify-email/confirm", json={"token": mailbox.token_sent_to(email, "ev_")}
        )
        assert confirmed.status_code == 200
        assert (await _login(client, email))["access_token"]

        # Once verified, a sign-up with the address only tells its owner.
        await client.post("/auth/signup", json=body)
        await run_jobs(client)
        assert "Someone tried to sign up" in mailbox.to(email)[-1]["Subject"]


async def test_forgot_password_answers_the_same_for_known_and_unknown_addresses(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    email = new_email()
    await signup(client, email=email)
    unknown = new_email()
    known_answer = await client.post("/auth/password/forgot", json={"email": email.upper()})
    unknown_answer = await client.post("/auth/password/forgot", json={"email": unknown})
    assert known_answer.status_code == unknown_answer.status_code == 202
    assert known_answer.json() == unknown_answer.json()
    await run_jobs(client)
    assert any("Reset your" in message["Subject"] for message in mailbox.to(email))
    assert mailbox.to(unknown) == []
    for body in ({}, {"email": "not an address"}, {"email": email, "extra": True}):
        assert (await client.post("/auth/password/forgot", json=body)).status_code == 422


async def test_forgot_password_is_limited_per_address(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings(RATE_LIMIT_EMAIL_PER_ACCOUNT="2/hour")) as client:
        email = new_email()
        answers = [
            (await client.post("/auth/password/forgot", json={"email": email})).status_code for _ in range(3)
        ]
        assert answers == [202, 202, 429]


async def test_reset_sets_the_password_signs_out_everywhere_and_works_once(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    email = new_email()
    first = (await signup(client, email=email)).json()
    second = await _login(client, email)
    await client.post("/auth/password/forgot", json={"email": email})
    await run_jobs(client)
    token = mailbox.token_sent_to(email)
    assert token.startswith("pr_")

    weak = await client.post("/auth/password/reset", json={"token": token, "new_password": "password"})
    assert weak.status_code == 422  # the policy, and the token is still good
    reset = await client.post("/auth/password/reset", json={"token": token, "new_password": NEW_PASSWORD})
    assert reset.status_code == 204
    for session in (first, second):
        assert (await client.get("/auth/me", headers=bearer(session["access_token"]))).status_code == 401
        refreshed = await client.post("/auth/refresh", json={"refresh_token": session["refresh_token"]})
        assert refreshed.status_code == 401
    assert (await client.post("/auth/login", json={"email": email, "password": PASSWORD})).status_code == 401
    assert (await _login(client, email, NEW_PASSWORD))["access_token"]
    again = await client.post(
        "/auth/password/reset", json={"token": token, "new_password": "yet another passphrase"}
    )
    assert again.status_code == 400
    assert again.json()["code"] == "invalid_link"
    await run_jobs(client)
    assert any("password was changed" in message["Subject"] for message in mailbox.to(email))


async def test_a_reset_link_dies_when_the_password_changes(client: AsyncClient, mailbox: Mailbox) -> None:
    email = new_email()
    access = (await signup(client, email=email)).json()["access_token"]
    await client.post("/auth/password/forgot", json={"email": email})
    await run_jobs(client)
    token = mailbox.token_sent_to(email)
    changed = await client.post(
        "/auth/password/change",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(access),
    )
    assert changed.status_code == 204
    late = await client.post(
        "/auth/password/reset", json={"token": token, "new_password": "yet another passphrase"}
    )
    assert late.status_code == 400
    assert late.json()["code"] == "invalid_link"


async def test_change_password_keeps_this_session_and_ends_the_others(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    email = new_email()
    this = (await signup(client, email=email)).json()
    other = await _login(client, email)
    wrong = await client.post(
        "/auth/password/change",
        json={"current_password": "not my password", "new_password": NEW_PASSWORD},
        headers=bearer(this["access_token"]),
    )
    assert wrong.status_code == 403
    assert wrong.json()["code"] == "invalid_current_password"
    weak = await client.post(
        "/auth/password/change",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers=bearer(this["access_token"]),
    )
    assert weak.status_code == 422
    changed = await client.post(
        "/auth/password/change",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(this["access_token"]),
    )
    assert changed.status_code == 204
    assert (await client.get("/auth/me", headers=bearer(this["access_token"]))).status_code == 200
    assert (await client.get("/auth/me", headers=bearer(other["access_token"]))).status_code == 401
    assert (
        await client.post("/auth/refresh", json={"refresh_token": this["refresh_token"]})
    ).status_code == 200
    await run_jobs(client)
    [notice] = [message for message in mailbox.to(email) if "password was changed" in message["Subject"]]
    assert "other sessions were signed out" in notice.get_body(("plain",)).get_content()  # type: ignore[union-attr]


async def test_change_email_applies_on_confirmation_and_tells_the_old_address(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    old, new = new_email(), new_email()
    access = (await signup(client, email=old)).json()["access_token"]
    wrong = await client.post(
        "/auth/email/change", json={"new_email": new, "password": "not my password"}, headers=bearer(access)
    )
    assert wrong.status_code == 403
    asked = await client.post(
        "/auth/email/change", json={"new_email": new, "password": PASSWORD}, headers=bearer(access)
    )
    assert asked.status_code == 202
    assert (await client.get("/auth/me", headers=bearer(access))).json()["user"]["email"] == old
    await run_jobs(client)
    token = mailbox.token_sent_to(new)
    assert token.startswith("ce_")

    confirmed = await client.post("/auth/verify-email/confirm", json={"token": token})
    assert confirmed.status_code == 200
    assert confirmed.json()["email"] == new
    assert confirmed.json()["email_verified"] is True
    await run_jobs(client)
    assert any("email address was changed" in message["Subject"] for message in mailbox.to(old))
    assert (await _login(client, new))["access_token"]
    assert (await client.post("/auth/login", json={"email": old, "password": PASSWORD})).status_code == 401


async def test_change_to_a_taken_address_answers_alike_and_mails_nothing(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    taken = new_email()
    await signup(client, email=taken)
    access = (await signup(client)).json()["access_token"]
    await run_jobs(client)
    before = len(mailbox.to(taken))
    asked = await client.post(
        "/auth/email/change", json={"new_email": taken, "password": PASSWORD}, headers=bearer(access)
    )
    assert asked.status_code == 202
    await run_jobs(client)
    assert len(mailbox.to(taken)) == before


async def test_sessions_are_listed_and_revoked_one_by_one_or_all(client: AsyncClient) -> None:
    email = new_email()
    first = (await signup(client, email=email)).json()
    second = await _login(client, email)
    listed = await client.get("/auth/sessions", headers=bearer(first["access_token"]))
    assert listed.status_code == 200
    sessions = listed.json()["items"]
    assert len(sessions) == 2
    assert [session["current"] for session in sessions].count(True) == 1
    current = next(session for session in sessions if session["current"])
    assert current["ip"] == "203.0.113.10"
    other_id = next(session["id"] for session in sessions if not session["current"])

    stranger = (await signup(client)).json()
    assert (
        await client.delete(f"/auth/sessions/{other_id}", headers=bearer(stranger["access_token"]))
    ).status_code == 404
    assert (
        await client.delete("/auth/sessions/not-a-uuid", headers=bearer(first["access_token"]))
    ).status_code == 422
    assert (await client.get("/auth/me", headers=bearer(second["access_token"]))).status_code == 200

    revoked = await client.delete(f"/auth/sessions/{other_id}", headers=bearer(first["access_token"]))
    assert revoked.status_code == 204
    assert (await client.get("/auth/me", headers=bearer(second["access_token"]))).status_code == 401
    assert (
        len((await client.get("/auth/sessions", headers=bearer(first["access_token"]))).json()["items"]) == 1
    )

    third = await _login(client, email)
    assert (await client.post("/auth/logout-all", headers=bearer(third["access_token"]))).status_code == 204
    for session in (first, third):
        assert (await client.get("/auth/me", headers=bearer(session["access_token"]))).status_code == 401
    assert (await client.get("/auth/me", headers=bearer(stranger["access_token"]))).status_code == 200


async def test_cookie_sessions_need_csrf_for_account_changes(client: AsyncClient) -> None:
    await signup(client, transport="cookie")
    refused = await client.post("/auth/logout-all")
    assert refused.status_code == 403
    assert refused.json()["code"] == "csrf_failed"
    done = await client.post("/auth/logout-all", headers={"X-CSRF-Token": client.cookies["csrf_token"]})
    assert done.status_code == 204
    assert "access_token" not in client.cookies


async def test_purge_deletes_long_ended_sessions_and_tokens(client: AsyncClient, mailbox: Mailbox) -> None:
    email = new_email()
    session = (await signup(client, email=email)).json()
    await run_jobs(client)
    long_ago = datetime.now(UTC) - timedelta(days=30)
    await _sql(client, "UPDATE account_tokens SET expires_at = :t WHERE email = :e", t=long_ago, e=email)
    await client.post("/auth/logout", headers=bearer(session["access_token"]))
    await _sql(
        client,
        "UPDATE auth_sessions SET revoked_at = :t WHERE user_id = (SELECT id FROM users WHERE email = :e)",
        t=long_ago,
        e=email,
    )
    async with client.app.state.sessionmaker() as db:  # type: ignore[attr-defined]
        await defer(db, "auth:purge_expired", timestamp=0)
        await db.commit()
    await run_jobs(client)
    remaining = await _sql(
        client,
        "SELECT (SELECT count(*) FROM auth_sessions s JOIN users u ON u.id = s.user_id WHERE u.email = :e),"
        " (SELECT count(*) FROM account_tokens WHERE email = :e)",
        e=email,
    )
    assert remaining == [(0, 0)]
