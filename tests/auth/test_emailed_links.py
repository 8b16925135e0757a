"""Emailed links (verify an address, confirm a new one, reset a password) are bound to the account's
state when they were asked for, and die with a password reset, a password change and signing out
everywhere: someone who once had the password, or who registered an address before its owner did,
keeps no link that gives the account back. And a lost verification link can be replaced without
signing in and without telling who has an account."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import text

from aisupport.core.config import Settings
from tests.conftest import PASSWORD, Mailbox, bearer, new_email, run_jobs, serve, signup
from tests.organizations.helpers import Person, login, new_owner

OWNER_PASSWORD = "the owner's brand new passphrase"
ATTACKER_PASSWORD = "the attacker's own passphrase"
LINK_KINDS = ("verify_email", "change_email", "reset_password")
ENDINGS = ("password_reset", "password_change", "logout_all")
PREFIXES = {"verify_email": "ev_", "change_email": "ce_", "reset_password": "pr_"}


async def _sql(client: AsyncClient, query: str, **values: object) -> list[tuple[object, ...]]:
    async with client.app.state.sessionmaker() as db:  # type: ignore[attr-defined]
        result = await db.execute(text(query), values)
        return [tuple(row) for row in result]


async def _account(client: AsyncClient, user_id: str) -> tuple[object, ...]:
    [row] = await _sql(
        client, "SELECT email, email_verified_at IS NOT NULL FROM users WHERE id = :i", i=user_id
    )
    return row


async def _ask_for_link(client: AsyncClient, person: Person, kind: str) -> str:
    """Ask for a link of this kind as `person` (signed in, or by address); returns where it goes."""
    if kind == "verify_email":
        asked = await client.post("/auth/verify-email/resend", headers=person.headers)
        address = person.email
    elif kind == "change_email":
        address = new_email()
        asked = await client.post(
            "/auth/email/change", json={"new_email": address, "password": PASSWORD}, headers=person.headers
        )
    else:
        asked = await client.post("/auth/password/forgot", json={"email": person.email})
        address = person.email
    assert asked.status_code == 202, asked.text
    return address


async def _use_link(client: AsyncClient, kind: str, token: str) -> Response:
    if kind == "reset_password":
        return await client.post(
            "/auth/password/reset", json={"token": token, "new_password": ATTACKER_PASSWORD}
        )
    return await client.post("/auth/verify-email/confirm", json={"token": token})


async def _reset_link(client: AsyncClient, mailbox: Mailbox, email: str) -> str:
    assert (await client.post("/auth/password/forgot", json={"email": email})).status_code == 202
    await run_jobs(client)
    return mailbox.token_sent_to(email, "pr_")


async def _end(
    client: AsyncClient, mailbox: Mailbox, owner: Person, ending: str, reset: str | None = None
) -> None:
    """What the owner does when they fear someone else has the password."""
    if ending == "password_reset":
        token = reset or await _reset_link(client, mailbox, owner.email)
        done = await client.post(
            "/auth/password/reset", json={"token": token, "new_password": OWNER_PASSWORD}
        )
    elif ending == "password_change":
        done = await client.post(
            "/auth/password/change",
            json={"current_password": PASSWORD, "new_password": OWNER_PASSWORD},
            headers=owner.headers,
        )
    else:
        done = await client.post("/auth/logout-all", headers=owner.headers)
    assert done.status_code == 204, done.text


def _assert_dead(response: Response) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_link"


@pytest.mark.parametrize("ending", ENDINGS)
@pytest.mark.parametrize("kind", LINK_KINDS)
async def test_a_link_asked_for_before_the_owner_secured_the_account_is_dead(
    client: AsyncClient, mailbox: Mailbox, kind: str, ending: str
) -> None:
    owner = await new_owner(client)
    intruder = await login(client, owner)  # whoever once had the password
    await run_jobs(client)
    address = await _ask_for_link(client, intruder, kind)
    await run_jobs(client)
    token = mailbox.token_sent_to(address, PREFIXES[kind])
    before = await _account(client, owner.user_id)

    await _end(client, mailbox, owner, ending)
    _assert_dead(await _use_link(client, kind, token))
    email, verified = await _account(client, owner.user_id)
    assert email == owner.email
    assert verified == (before[1] or ending == "password_reset")  # a used reset link proves the address
    if kind == "change_email":  # the attack: a reset to the intruder's address gives them nothing
        await client.post("/auth/password/forgot", json={"email": address})
        await run_jobs(client)
        assert not any("Reset your" in message["Subject"] for message in mailbox.to(address))
    assert (await client.get("/auth/me", headers=intruder.headers)).status_code == 401


@pytest.mark.parametrize("ending", ENDINGS)
@pytest.mark.parametrize("kind", ["verify_email", "change_email"])
async def test_a_link_still_in_the_mail_queue_is_not_made_after_the_owner_secured_the_account(
    client: AsyncClient, mailbox: Mailbox, kind: str, ending: str
) -> None:
    owner = await new_owner(client)
    intruder = await login(client, owner)
    reset = await _reset_link(client, mailbox, owner.email) if ending == "password_reset" else None
    address = await _ask_for_link(client, intruder, kind)  # the job waits (a slow worker)
    sent_before = len(mailbox.to(address))
    await _end(client, mailbox, owner, ending, reset)
    await run_jobs(client)
    links = [m for m in mailbox.to(address)[sent_before:] if f"token={PREFIXES[kind]}" in m.as_string()]
    assert links == []


async def test_a_pre_registered_address_gives_its_owner_the_account_and_the_squatter_nothing(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    """Without REQUIRE_EMAIL_VERIFICATION: someone signs up with another person's address, asks to move
    the account to their own address and for a reset, and waits for the owner to take the account over."""
    victim, squatter_address = new_email(), new_email()
    squatter = (await signup(client, email=victim, password=ATTACKER_PASSWORD)).json()
    squatter_headers = bearer(squatter["access_token"])
    await client.post(
        "/auth/email/change",
        json={"new_email": squatter_address, "password": ATTACKER_PASSWORD},
        headers=squatter_headers,
    )
    await client.post("/auth/password/forgot", json={"email": victim})
    await run_jobs(client)
    change_link = mailbox.token_sent_to(squatter_address, "ce_")
    signup_link = mailbox.token_sent_to(victim, "ev_")  # the victim has it, but did not sign up
    squatter_reset_link = mailbox.token_sent_to(victim, "pr_")

    # The owner finds the address taken and takes the account over with a reset.
    taken = await client.post("/auth/signup", json={"email": victim, "password": OWNER_PASSWORD})
    assert taken.status_code == 409
    own_reset_link = await _reset_link(client, mailbox, victim)
    assert own_reset_link != squatter_reset_link
    reset = await client.post(
        "/auth/password/reset", json={"token": own_reset_link, "new_password": OWNER_PASSWORD}
    )
    assert reset.status_code == 204

    for kind, token in (
        ("change_email", change_link),
        ("verify_email", signup_link),
        ("reset_password", squatter_reset_link),
    ):
        _assert_dead(await _use_link(client, kind, token))
    assert await _account(client, squatter["user"]["id"]) == (victim, True)
    assert (await client.get("/auth/me", headers=squatter_headers)).status_code == 401
    refreshed = await client.post("/auth/refresh", json={"refresh_token": squatter["refresh_token"]})
    assert refreshed.status_code == 401
    wrong = await client.post("/auth/login", json={"email": victim, "password": ATTACKER_PASSWORD})
    assert wrong.status_code == 401


async def test_with_required_verification_signing_up_again_lets_the_address_owner_finish_alone(
    make_settings: Callable[..., Settings], mailbox: Mailbox
) -> None:
    """With REQUIRE_EMAIL_VERIFICATION the squatter cannot sign in; the owner's own sign-up mails a link
    that sets the owner's password (never one that would confirm the squatter's account)."""
    async with serve(make_settings(REQUIRE_EMAIL_VERIFICATION=True)) as client:
        victim = new_email()
        first = await client.post("/auth/signup", json={"email": victim, "password": ATTACKER_PASSWORD})
        await run_jobs(client)
        squatter_link = mailbox.token_sent_to(victim, "ev_")
        again = await client.post("/auth/signup", json={"email": victim, "password": OWNER_PASSWORD})
        assert again.status_code == first.status_code == 202
        assert again.json() == first.json()
        await run_jobs(client)

        finish = mailbox.to(victim)[-1]
        assert "Finish signing up" in finish["Subject"]
        text_body = finish.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert "/reset-password?token=pr_" in text_body
        reset = await client.post(
            "/auth/password/reset",
            json={"token": mailbox.token_sent_to(victim, "pr_"), "new_password": OWNER_PASSWORD},
        )
        assert reset.status_code == 204
        _assert_dead(await _use_link(client, "verify_email", squatter_link))
        signed_in = await client.post("/auth/login", json={"email": victim, "password": OWNER_PASSWORD})
        assert signed_in.status_code == 200, signed_in.text
        assert signed_in.json()["user"]["email_verified"] is True
        refused = await client.post("/auth/login", json={"email": victim, "password": ATTACKER_PASSWORD})
        assert refused.status_code == 401


async def test_a_change_link_dies_when_the_address_changed_through_another(
    client: AsyncClient, mailbox: Mailbox
) -> None:
    owner = await new_owner(client)
    first = await _ask_for_link(client, owner, "change_email")
    second = await _ask_for_link(client, owner, "change_email")
    await run_jobs(client)
    first_link, second_link = mailbox.token_sent_to(first, "ce_"), mailbox.token_sent_to(second, "ce_")
    assert (await _use_link(client, "change_email", second_link)).status_code == 200
    _assert_dead(await _use_link(client, "change_email", first_link))
    assert (await _account(client, owner.user_id))[0] == second


async def test_two_links_used_at_once_change_the_address_once(client: AsyncClient, mailbox: Mailbox) -> None:
    owner = await new_owner(client)
    addresses = [await _ask_for_link(client, owner, "change_email") for _ in range(2)]
    await run_jobs(client)
    links = [mailbox.token_sent_to(address, "ce_") for address in addresses]
    answers = await asyncio.gather(*(_use_link(client, "change_email", link) for link in links))
    assert sorted(answer.status_code for answer in answers) == [200, 400]
    winner = next(answer for answer in answers if answer.status_code == 200)
    assert (await _account(client, owner.user_id))[0] == winner.json()["email"]


async def test_a_lost_verification_link_is_replaced_by_address_without_telling_who_has_an_account(
    make_settings: Callable[..., Settings], mailbox: Mailbox
) -> None:
    async with serve(make_settings(REQUIRE_EMAIL_VERIFICATION=True)) as client:
        waiting, verified, unknown = new_email(), new_email(), new_email()
        for address in (waiting, verified):
            assert (
                await client.post("/auth/signup", json={"email": address, "password": PASSWORD})
            ).status_code == 202
        await run_jobs(client)
        lost = mailbox.token_sent_to(waiting, "ev_")
        assert (
            await _use_link(client, "verify_email", mailbox.token_sent_to(verified, "ev_"))
        ).status_code == 200
        sent = {address: len(mailbox.to(address)) for address in (waiting, verified, unknown)}

        answers = [
            await client.post("/auth/verify-email/request", json={"email": address.upper()})
            for address in (waiting, verified, unknown)
        ]
        assert {answer.status_code for answer in answers} == {202}
        assert len({answer.text for answer in answers}) == 1
        await run_jobs(client)
        assert len(mailbox.to(verified)) == sent[verified]
        assert len(mailbox.to(unknown)) == sent[unknown] == 0
        assert len(mailbox.to(waiting)) == sent[waiting] + 1
        fresh = mailbox.token_sent_to(waiting, "ev_")
        assert fresh != lost
        assert (await _use_link(client, "verify_email", fresh)).status_code == 200
        signed_in = await client.post("/auth/login", json={"email": waiting, "password": PASSWORD})
        assert signed_in.status_code == 200

        for body in ({}, {"email": "not an address"}, {"email": waiting, "extra": 1}):
            refused = await client.post("/auth/verify-email/request", json=body)
            assert refused.status_code == 422
            assert refused.headers["content-type"] == "application/problem+json"


async def test_verification_requests_are_limited_per_address_and_per_ip(
    make_settings: Callable[..., Settings],
) -> None:
    per_address = make_settings(RATE_LIMIT_EMAIL_PER_ACCOUNT="2/hour")
    async with serve(per_address) as client:
        email = new_email()
        answers = [
            (await client.post("/auth/verify-email/request", json={"email": email})).status_code
            for _ in range(3)
        ]
        assert answers == [202, 202, 429]
    async with serve(make_settings(RATE_LIMIT_PASSWORD_FORGOT_PER_IP="2/hour")) as client:
        answers = [
            (await client.post("/auth/verify-email/request", json={"email": new_email()})).status_code
            for _ in range(3)
        ]
        assert answers == [202, 202, 429]
        refused = await client.post("/auth/verify-email/request", json={"email": new_email()})
        assert refused.headers["retry-after"]


async def test_sign_up_mails_an_address_a_limited_number_of_times(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(REQUIRE_EMAIL_VERIFICATION=True, RATE_LIMIT_EMAIL_PER_ACCOUNT="2/hour")
    async with serve(settings) as client:
        email = new_email()
        answers = [
            (await client.post("/auth/signup", json={"email": email, "password": PASSWORD})).status_code
            for _ in range(3)
        ]
        assert answers == [202, 202, 429]
