"""People and organizations for the organization tests, made through the HTTP API."""

from __future__ import annotations

from dataclasses import dataclass

from httpx import AsyncClient

from tests.conftest import PASSWORD, Mailbox, bearer, new_email, run_jobs, signup


@dataclass
class Person:
    email: str
    access_token: str
    refresh_token: str
    user_id: str
    organization_id: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)


def person_from(body: dict[str, object], email: str) -> Person:
    return Person(
        email=email,
        access_token=str(body["access_token"]),
        refresh_token=str(body.get("refresh_token", "")),
        user_id=str(body["user"]["id"]),  # type: ignore[index]
        organization_id=str(body["organization"]["id"]),  # type: ignore[index]
    )


async def new_owner(client: AsyncClient) -> Person:
    """Someone who just signed up: owner of a fresh organization."""
    email = new_email()
    return person_from((await signup(client, email=email)).json(), email)


async def verify(client: AsyncClient, mailbox: Mailbox, person: Person) -> None:
    await run_jobs(client)
    response = await client.post(
        "/auth/verify-email/confirm", json={"token": mailbox.token_sent_to(person.email, "ev_")}
    )
    assert response.status_code == 200, response.text


async def ensure_verified(client: AsyncClient, mailbox: Mailbox, person: Person) -> None:
    me = await client.get("/auth/me", headers=person.headers)
    if not me.json()["user"]["email_verified"]:
        await verify(client, mailbox, person)


async def add_member(
    client: AsyncClient, mailbox: Mailbox, owner: Person, role: str, organization_id: str | None = None
) -> Person:
    """A new person invited into `owner`'s organization (or `organization_id`, one of the owner's) with
    `role`, who accepted by signing up."""
    email = new_email()
    token = await invite(client, mailbox, owner, email, role, organization_id)
    accepted = await client.post(
        "/invitations/accept", json={"token": token, "password": PASSWORD, "transport": "body"}
    )
    assert accepted.status_code == 201, accepted.text
    return person_from(accepted.json(), email)


async def invite(
    client: AsyncClient,
    mailbox: Mailbox,
    inviter: Person,
    email: str,
    role: str,
    organization_id: str | None = None,
) -> str:
    """Invite `email` with `role` into `organization_id` (default: the inviter's token organization);
    returns the token of the link mailed."""
    await ensure_verified(client, mailbox, inviter)  # only verified people invite
    invited = await client.post(
        f"/orgs/{organization_id or inviter.organization_id}/invitations",
        json={"email": email, "role": role},
        headers=inviter.headers,
    )
    assert invited.status_code == 201, invited.text
    await run_jobs(client)
    return mailbox.token_sent_to(email)


async def join(
    client: AsyncClient, mailbox: Mailbox, inviter: Person, person: Person, role: str, organization_id: str
) -> None:
    """`person` (who has an account) joins `organization_id` with `role`, accepting while signed in."""
    token = await invite(client, mailbox, inviter, person.email, role, organization_id)
    await ensure_verified(client, mailbox, person)
    accepted = await client.post("/invitations/accept", json={"token": token}, headers=person.headers)
    assert accepted.status_code == 200, accepted.text


async def new_organization(client: AsyncClient, person: Person, name: str = "Second Co") -> str:
    """A further organization created by `person` (its owner); returns its id."""
    created = await client.post("/orgs", json={"name": name}, headers=person.headers)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def login(client: AsyncClient, person: Person, organization_id: str | None = None) -> Person:
    body: dict[str, object] = {"email": person.email, "password": PASSWORD, "transport": "body"}
    if organization_id:
        body["organization_id"] = organization_id
    response = await client.post("/auth/login", json=body)
    assert response.status_code == 200, response.text
    return person_from(response.json(), person.email)
