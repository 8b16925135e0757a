"""Inboxes through the HTTP API: settings, business hours, allowed origins, the identity secret shown
once and rotated, permissions, other organizations' ids, bad input, races."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from httpx import AsyncClient
from sqlalchemy.engine import make_url

from aisupport.conversations.identity_secret import SecretUnreadable, new_secret, seal, unseal
from aisupport.core.config import Settings
from tests.conftest import Mailbox
from tests.conversations.helpers import BUSINESS_HOURS, configure, created
from tests.organizations.helpers import Person, add_member, new_owner


def _stored_secret(database_url: str, inbox_id: str) -> bytes:
    """The inbox's sealed secret as the database holds it (read as the owner, past row-level security)."""
    owner_url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(owner_url) as conn:
        row = conn.execute(
            "SELECT identity_secret_encrypted FROM inboxes WHERE id = %s", (inbox_id,)
        ).fetchone()
    assert row is not None
    return bytes(row[0])


async def _inbox_count(client: AsyncClient, person: Person) -> int:
    listed = await client.get(f"/orgs/{person.organization_id}/inboxes", headers=person.headers)
    assert listed.status_code == 200
    return len(listed.json()["items"])


async def _audit_actions(client: AsyncClient, owner: Person) -> list[str]:
    log = await client.get(f"/orgs/{owner.organization_id}/audit-log", headers=owner.headers)
    return [event["action"] for event in log.json()["items"]]


async def test_an_inbox_is_created_read_updated_and_deleted(client: AsyncClient) -> None:
    owner = await new_owner(client)
    ids = await configure(client, owner)
    path = f"/orgs/{owner.organization_id}/inboxes/{ids['inbox_id']}"
    got = (await client.get(path, headers=owner.headers)).json()
    assert got["kind"] == "widget"
    assert got["team_id"] == ids["team_id"]
    assert got["sla_policy_id"] == ids["policy_id"]
    assert got["business_hours"] == {
        "time_zone": "Europe/Paris",
        "weekly": BUSINESS_HOURS["weekly"],
        "holidays": ["2026-12-25"],
    }
    assert got["allowed_origins"] == ["https://example.com"]
    assert got["auto_assignment"] is False

    changed = await client.patch(
        path,
        json={
            "name": "Site",
            "auto_assignment": True,
            "team_id": None,
            "business_hours": {"time_zone": "UTC"},
        },
        headers=owner.headers,
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["name"], body["auto_assignment"], body["team_id"]) == ("Site", True, None)
    assert body["business_hours"] == {"time_zone": "UTC", "weekly": {}, "holidays": []}
    assert body["sla_policy_id"] == ids["policy_id"]  # not sent, not changed

    assert (await client.delete(path, headers=owner.headers)).status_code == 204
    assert (await client.get(path, headers=owner.headers)).status_code == 404
    assert (await client.delete(path, headers=owner.headers)).status_code == 404
    actions = await _audit_actions(client, owner)
    assert {"inbox.created", "inbox.updated", "inbox.deleted"} <= set(actions)


async def test_the_identity_secret_is_shown_once_stored_sealed_and_rotated(
    client: AsyncClient, settings: Settings, database_url: str
) -> None:
    owner = await new_owner(client)
    inbox = await created(client, owner, "inboxes", {"name": "Widget", "kind": "widget"})
    secret = inbox["identity_secret"]
    assert secret.startswith("ivs_")
    assert len(secret) > 40
    assert inbox["has_identity_secret"] is True

    # Never returned again: not by a read, not by a list, not by an update.
    path = f"/orgs/{owner.organization_id}/inboxes/{inbox['id']}"
    for response in (
        await client.get(path, headers=owner.headers),
        await client.get(f"/orgs/{owner.organization_id}/inboxes", headers=owner.headers),
        await client.patch(path, json={"name": "W"}, headers=owner.headers),
    ):
        assert response.status_code == 200
        assert secret not in response.text
        assert 'identity_secret"' not in response.text.replace("has_identity_secret", "")

    # Stored sealed: the bytes are not the secret, and they open (only) to it, only for this inbox.
    sealed = _stored_secret(database_url, inbox["id"])
    assert secret.encode() not in sealed
    bound = {"organization_id": uuid.UUID(owner.organization_id), "inbox_id": uuid.UUID(inbox["id"])}
    assert unseal(settings, sealed, **bound) == secret
    with pytest.raises(SecretUnreadable):
        unseal(settings, sealed, organization_id=bound["organization_id"], inbox_id=uuid.uuid4())

    rotated = await client.post(f"{path}/rotate-secret", headers=owner.headers)
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["identity_secret"]
    assert new_secret.startswith("ivs_")
    assert new_secret != secret
    resealed = _stored_secret(database_url, inbox["id"])
    assert unseal(settings, resealed, **bound) == new_secret  # the new one opens, the old one is gone
    assert secret.encode() not in resealed
    assert new_secret.encode() not in resealed
    assert rotated.json()["identity_secret_rotated_at"] >= inbox["identity_secret_rotated_at"]
    assert "inbox.secret_rotated" in await _audit_actions(client, owner)


async def test_an_api_inbox_has_no_identity_secret_nor_origins(client: AsyncClient) -> None:
    owner = await new_owner(client)
    inbox = await created(client, owner, "inboxes", {"name": "API"})
    assert inbox["kind"] == "api"
    assert inbox["identity_secret"] is None
    assert inbox["has_identity_secret"] is False
    path = f"/orgs/{owner.organization_id}/inboxes/{inbox['id']}"
    refused = await client.post(f"{path}/rotate-secret", headers=owner.headers)
    assert refused.status_code == 422
    assert refused.json()["code"] == "no_identity_secret"
    origins = await client.patch(path, json={"allowed_origins": ["https://a.io"]}, headers=owner.headers)
    assert origins.status_code == 422
    assert origins.json()["code"] == "origins_for_widgets_only"
    created_with = await client.post(
        f"/orgs/{owner.organization_id}/inboxes",
        json={"name": "API", "allowed_origins": ["https://a.io"]},
        headers=owner.headers,
    )
    assert created_with.status_code == 422


async def test_origins_are_validated_normalized_and_bounded(client: AsyncClient) -> None:
    owner = await new_owner(client)
    inbox = await created(
        client,
        owner,
        "inboxes",
        {
            "name": "W",
            "kind": "widget",
            "allowed_origins": ["HTTPS://Example.COM:443/", "http://localhost:3000", "https://example.com"],
        },
    )
    assert inbox["allowed_origins"] == ["https://example.com", "http://localhost:3000"]
    for bad in (
        "example.com",
        "javascript:alert(1)",
        "https://example.com/path",
        "https://*.example.com",
        "https://user:pw@example.com",
        "ftp://example.com",
        "https://example.com?x=1",
        "https://exa mple.com",
        "https://example.com:99999",
    ):
        response = await client.post(
            f"/orgs/{owner.organization_id}/inboxes",
            json={"name": "W", "kind": "widget", "allowed_origins": [bad]},
            headers=owner.headers,
        )
        assert response.status_code == 422, bad
    too_many = [f"https://site{n}.example.com" for n in range(21)]
    response = await client.post(
        f"/orgs/{owner.organization_id}/inboxes",
        json={"name": "W", "kind": "widget", "allowed_origins": too_many},
        headers=owner.headers,
    )
    assert response.status_code == 422
    assert await _inbox_count(client, owner) == 1


@pytest.mark.parametrize(
    "hours",
    [
        {"time_zone": "Mars/Olympus_Mons"},
        {"time_zone": "Europe/../../etc/passwd"},
        {"time_zone": ""},
        {"weekly": {}},
        {
            "time_zone": "UTC",
            "weekly": {"monday": [{"start": "09:00", "end": "12:00"}, {"start": "11:00", "end": "13:00"}]},
        },
        {"time_zone": "UTC", "weekly": {"monday": [{"start": "12:00", "end": "09:00"}]}},
        {"time_zone": "UTC", "weekly": {"monday": [{"start": "09:00", "end": "09:00"}]}},
        {"time_zone": "UTC", "weekly": {"monday": [{"start": "24:00", "end": "24:00"}]}},
        {"time_zone": "UTC", "weekly": {"monday": [{"start": "9:00", "end": "12:00"}]}},
        {"time_zone": "UTC", "weekly": {"funday": [{"start": "09:00", "end": "12:00"}]}},
        {"time_zone": "UTC", "holidays": ["2026-02-30"]},
        {"time_zone": "UTC", "holidays": ["2026-13-01"]},
        {"time_zone": "UTC", "holidays": ["25/12/2026"]},
        {"time_zone": "UTC", "holidays": [20261225]},
        {"time_zone": "UTC", "holidays": ["2026-12-25", "2026-12-25"]},
        {"time_zone": "UTC", "extra": True},
    ],
)
async def test_bad_business_hours_are_refused_and_change_nothing(
    client: AsyncClient, hours: dict[str, Any]
) -> None:
    owner = await new_owner(client)
    inbox = await created(client, owner, "inboxes", {"name": "API", "business_hours": BUSINESS_HOURS})
    path = f"/orgs/{owner.organization_id}/inboxes/{inbox['id']}"
    for response in (
        await client.post(
            f"/orgs/{owner.organization_id}/inboxes",
            json={"name": "X", "business_hours": hours},
            headers=owner.headers,
        ),
        await client.patch(path, json={"business_hours": hours}, headers=owner.headers),
    ):
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
    assert await _inbox_count(client, owner) == 1
    assert (await client.get(path, headers=owner.headers)).json()["business_hours"][
        "time_zone"
    ] == "Europe/Paris"


async def test_24_00_closes_a_day_and_adjacent_intervals_are_fine(client: AsyncClient) -> None:
    owner = await new_owner(client)
    hours = {
        "time_zone": "America/New_York",
        "weekly": {"friday": [{"start": "18:00", "end": "24:00"}, {"start": "08:00", "end": "18:00"}]},
    }
    inbox = await created(client, owner, "inboxes", {"name": "API", "business_hours": hours})
    assert inbox["business_hours"]["weekly"]["friday"] == [
        {"start": "08:00", "end": "18:00"},
        {"start": "18:00", "end": "24:00"},
    ]


async def test_bad_input_is_a_problem_and_changes_nothing(client: AsyncClient) -> None:
    owner = await new_owner(client)
    inbox = await created(client, owner, "inboxes", {"name": "API"})
    path = f"/orgs/{owner.organization_id}/inboxes/{inbox['id']}"
    for body in (
        {"name": None},
        {"auto_assignment": None},
        {"allowed_origins": None},
        {"kind": "widget"},  # fixed at creation
        {"name": ""},
        {"name": "x" * 101},
        {"team_id": "not-a-uuid"},
        {"team_id": str(uuid.uuid4())},
        {"sla_policy_id": str(uuid.uuid4())},
        {"auto_assignment": "sometimes"},
    ):
        response = await client.patch(path, json=body, headers=owner.headers)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    unchanged = (await client.get(path, headers=owner.headers)).json()
    assert unchanged == {field: value for field, value in inbox.items() if field != "identity_secret"}
    assert unchanged["name"] == "API"
    assert unchanged["updated_at"] == inbox["updated_at"]
    for body in ({"name": "X", "kind": "email"}, {"name": "X", "team_id": str(uuid.uuid4())}, {}):
        response = await client.post(
            f"/orgs/{owner.organization_id}/inboxes", json=body, headers=owner.headers
        )
        assert response.status_code == 422, body
    assert await _inbox_count(client, owner) == 1


async def test_references_to_another_organization_are_refused(client: AsyncClient) -> None:
    a = await new_owner(client)
    b = await new_owner(client)
    b_ids = await configure(client, b)
    inbox = await created(client, a, "inboxes", {"name": "API"})
    path = f"/orgs/{a.organization_id}/inboxes/{inbox['id']}"
    for body in ({"team_id": b_ids["team_id"]}, {"sla_policy_id": b_ids["policy_id"]}):
        response = await client.patch(path, json=body, headers=a.headers)
        assert response.status_code == 422
        assert response.json()["code"] == "unknown_reference"
    # B's inbox through A's organization, and A's organization to B's owner: not found.
    b_inbox = f"/orgs/{a.organization_id}/inboxes/{b_ids['inbox_id']}"
    assert (await client.get(b_inbox, headers=a.headers)).status_code == 404
    assert (await client.patch(b_inbox, json={"name": "x"}, headers=a.headers)).status_code == 404
    assert (await client.post(f"{b_inbox}/rotate-secret", headers=a.headers)).status_code == 404
    assert (await client.get(f"/orgs/{a.organization_id}/inboxes", headers=b.headers)).status_code == 404


async def test_deleting_a_team_or_policy_leaves_its_inboxes_without(client: AsyncClient) -> None:
    owner = await new_owner(client)
    ids = await configure(client, owner)
    org = f"/orgs/{owner.organization_id}"
    assert (await client.delete(f"{org}/teams/{ids['team_id']}", headers=owner.headers)).status_code == 204
    assert (
        await client.delete(f"{org}/sla-policies/{ids['policy_id']}", headers=owner.headers)
    ).status_code == 204
    inbox = (await client.get(f"{org}/inboxes/{ids['inbox_id']}", headers=owner.headers)).json()
    assert (inbox["team_id"], inbox["sla_policy_id"]) == (None, None)


async def test_admins_manage_inboxes_everyone_reads(client: AsyncClient, mailbox: Mailbox) -> None:
    owner = await new_owner(client)
    inbox = await created(client, owner, "inboxes", {"name": "API"})
    org = f"/orgs/{owner.organization_id}"
    path = f"{org}/inboxes/{inbox['id']}"
    admin = await add_member(client, mailbox, owner, "admin")
    for role in ("agent", "viewer"):
        person = await add_member(client, mailbox, owner, role)
        assert (await client.get(path, headers=person.headers)).status_code == 200
        assert (await client.get(f"{org}/inboxes", headers=person.headers)).status_code == 200
        for method, url, body in (
            ("POST", f"{org}/inboxes", {"name": "X"}),
            ("PATCH", path, {"name": "X"}),
            ("DELETE", path, None),
            ("POST", f"{path}/rotate-secret", None),
        ):
            response = await client.request(method, url, json=body, headers=person.headers)
            assert response.status_code == 403, (role, method, url)
    made = await client.post(f"{org}/inboxes", json={"name": "By admin"}, headers=admin.headers)
    assert made.status_code == 201
    assert (await client.patch(path, json={"name": "Y"}, headers=admin.headers)).status_code == 200


async def test_api_keys_read_and_an_admin_key_sets_up_inboxes(client: AsyncClient) -> None:
    owner = await new_owner(client)
    org = f"/orgs/{owner.organization_id}"
    keys = {}
    for role in ("admin", "agent"):
        key = await client.post(f"{org}/api-keys", json={"name": role, "role": role}, headers=owner.headers)
        keys[role] = {"X-API-Key": key.json()["secret"]}
    made = await client.post(f"{org}/inboxes", json={"name": "K", "kind": "widget"}, headers=keys["admin"])
    assert made.status_code == 201
    assert made.json()["identity_secret"].startswith("ivs_")
    assert (await client.get(f"{org}/inboxes", headers=keys["agent"])).status_code == 200
    assert (await client.post(f"{org}/inboxes", json={"name": "K"}, headers=keys["agent"])).status_code == 403


async def test_racing_deletes_and_rotations_end_cleanly(
    client: AsyncClient, settings: Settings, database_url: str
) -> None:
    owner = await new_owner(client)
    org = f"/orgs/{owner.organization_id}"
    for _ in range(4):
        inbox = await created(client, owner, "inboxes", {"name": "W", "kind": "widget"})
        path = f"{org}/inboxes/{inbox['id']}"
        rotations = await asyncio.gather(
            client.post(f"{path}/rotate-secret", headers=owner.headers),
            client.post(f"{path}/rotate-secret", headers=owner.headers),
        )
        assert [response.status_code for response in rotations] == [200, 200]
        shown = {response.json()["identity_secret"] for response in rotations}
        bound = {"organization_id": uuid.UUID(owner.organization_id), "inbox_id": uuid.UUID(inbox["id"])}
        assert unseal(settings, _stored_secret(database_url, inbox["id"]), **bound) in shown
        statuses = await asyncio.gather(
            client.delete(path, headers=owner.headers),
            client.delete(path, headers=owner.headers),
            client.patch(path, json={"name": "late"}, headers=owner.headers),
        )
        codes = sorted(response.status_code for response in statuses)
        assert codes.count(204) == 1
        assert set(codes) <= {200, 204, 404}, codes


async def test_an_inbox_moved_to_a_team_being_deleted_ends_cleanly(client: AsyncClient) -> None:
    owner = await new_owner(client)
    org = f"/orgs/{owner.organization_id}"
    ids = await configure(client, owner)
    for round_ in range(4):
        if round_:
            team = await created(client, owner, "teams", {"name": f"Team {round_}"})
            policy = await created(client, owner, "sla-policies", {"name": "P"})
            ids = {**ids, "team_id": team["id"], "policy_id": policy["id"]}
        inbox = f"{org}/inboxes/{ids['inbox_id']}"
        statuses = await asyncio.gather(
            client.patch(
                inbox,
                json={"team_id": ids["team_id"], "sla_policy_id": ids["policy_id"]},
                headers=owner.headers,
            ),
            client.delete(f"{org}/teams/{ids['team_id']}", headers=owner.headers),
            client.delete(f"{org}/sla-policies/{ids['policy_id']}", headers=owner.headers),
        )
        codes = [response.status_code for response in statuses]
        assert set(codes) <= {200, 204, 409, 422}, [response.text for response in statuses]
        assert codes[1:] == [204, 204] or 409 in codes
        after = (await client.get(inbox, headers=owner.headers)).json()
        # A deleted team or policy is referenced by no inbox (the inbox may keep an earlier round's).
        if codes[1] == 204:
            assert after["team_id"] != ids["team_id"]
        if codes[2] == 204:
            assert after["sla_policy_id"] != ids["policy_id"]


async def test_identity_secrets_never_reach_the_logs(
    client: AsyncClient, capfd: pytest.CaptureFixture[str]
) -> None:
    owner = await new_owner(client)
    inbox = await created(client, owner, "inboxes", {"name": "W", "kind": "widget"})
    path = f"/orgs/{owner.organization_id}/inboxes/{inbox['id']}"
    rotated = await client.post(f"{path}/rotate-secret", headers=owner.headers)
    logs = capfd.readouterr().err
    assert inbox["id"] in logs  # the requests were logged
    for secret in (inbox["identity_secret"], rotated.json()["identity_secret"]):
        assert secret not in logs
        assert secret.removeprefix("ivs_") not in logs


async def test_the_database_refuses_references_across_organizations(
    client: AsyncClient, database_url: str
) -> None:
    a = await new_owner(client)
    b = await new_owner(client)
    b_ids = await configure(client, b)
    a_inbox = await created(client, a, "inboxes", {"name": "A"})
    owner_url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    statements = (
        ("UPDATE inboxes SET team_id = %s WHERE id = %s", (b_ids["team_id"], a_inbox["id"])),
        ("UPDATE inboxes SET sla_policy_id = %s WHERE id = %s", (b_ids["policy_id"], a_inbox["id"])),
        (
            "INSERT INTO team_members (organization_id, team_id, user_id) VALUES (%s, %s, %s)",
            (a.organization_id, b_ids["team_id"], a.user_id),
        ),
        (
            "INSERT INTO member_availability (organization_id, user_id, status) VALUES (%s, %s, 'online')",
            (a.organization_id, b.user_id),
        ),
    )
    for statement, values in statements:
        with psycopg.connect(owner_url) as conn, pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute(statement, values)


async def test_the_inbox_list_pages_and_keeps_to_its_organization(client: AsyncClient) -> None:
    owner = await new_owner(client)
    other = await new_owner(client)
    await created(client, other, "inboxes", {"name": "Other"})
    made = [(await created(client, owner, "inboxes", {"name": f"I{n}"}))["id"] for n in range(3)]
    org = f"/orgs/{owner.organization_id}"
    first = (await client.get(f"{org}/inboxes?limit=2", headers=owner.headers)).json()
    rest = (
        await client.get(f"{org}/inboxes?limit=2&cursor={first['next_cursor']}", headers=owner.headers)
    ).json()
    assert [item["id"] for item in first["items"] + rest["items"]] == made
    assert rest["next_cursor"] is None
    # A cursor of this list is refused by another organization's list.
    foreign = await client.get(
        f"/orgs/{other.organization_id}/inboxes?cursor={first['next_cursor']}", headers=other.headers
    )
    assert foreign.status_code == 400


def test_a_sealed_secret_survives_a_secret_key_rollover_and_nothing_else(
    make_settings: Callable[..., Settings],
) -> None:
    before = make_settings()
    after = make_settings(SECRET_KEY_PREVIOUS=before.SECRET_KEY)
    unrelated = make_settings()
    bound = {"organization_id": uuid.uuid4(), "inbox_id": uuid.uuid4()}
    secret = new_secret()
    sealed = seal(before, secret, **bound)
    assert seal(before, secret, **bound) != sealed  # a fresh nonce each time
    assert unseal(after, sealed, **bound) == secret  # the previous key still opens it
    for settings, tampered in (
        (unrelated, sealed),
        (before, sealed[:-1] + bytes([sealed[-1] ^ 1])),
        (before, b""),
    ):
        with pytest.raises(SecretUnreadable):
            unseal(settings, tampered, **bound)
