"""Merging two contacts and erasing one, through the HTTP API, with their audit events."""

from __future__ import annotations

import uuid
from typing import Any

from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.contacts.models import Contact
from aisupport.contacts.service import HOOKS
from aisupport.core.errors import AppError
from tests.contacts.helpers import contacts_url, create_contact, unique_email
from tests.organizations.helpers import Person, new_owner


async def _audit(client: AsyncClient, owner: Person, action: str) -> list[dict[str, Any]]:
    log = await client.get(
        f"/orgs/{owner.organization_id}/audit-log", params={"action": action}, headers=owner.headers
    )
    assert log.status_code == 200
    items: list[dict[str, Any]] = log.json()["items"]
    return items


async def test_merge_fills_empty_fields_unites_attributes_and_deletes_the_other(client: AsyncClient) -> None:
    owner = await new_owner(client)
    url = contacts_url(owner.organization_id)
    merged_email = unique_email("merged")
    kept = await create_contact(
        client,
        owner,
        name="Kept Name",
        custom_attributes={"plan": "pro", "kept_only": 1},
        last_seen_at="2026-10-01T00:00:00Z",
    )
    merged = await create_contact(
        client,
        owner,
        name="Merged Name",
        email=merged_email,
        phone="+1 555 0100",
        external_id="crm-7",
        custom_attributes={"plan": "free", "merged_only": True},
        last_seen_at="2026-11-01T00:00:00Z",
    )
    answer = await client.post(
        f"{url}/{kept['id']}/merge", json={"merged_contact_id": merged["id"]}, headers=owner.headers
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["id"] == kept["id"]
    assert body["name"] == "Kept Name"  # the kept contact's value wins where it has one
    assert (body["email"], body["phone"], body["external_id"]) == (merged_email, "+1 555 0100", "crm-7")
    assert body["custom_attributes"] == {"plan": "pro", "kept_only": 1, "merged_only": True}
    assert body["last_seen_at"].startswith("2026-11-01")  # the later of the two
    assert body["created_at"] == kept["created_at"]
    assert (await client.get(f"{url}/{merged['id']}", headers=owner.headers)).status_code == 404
    assert [item["id"] for item in (await client.get(url, headers=owner.headers)).json()["items"]] == [
        kept["id"]
    ]
    # The email and external id moved: looking them up finds the kept contact.
    found = await client.get(url, params={"email": merged_email}, headers=owner.headers)
    assert [item["id"] for item in found.json()["items"]] == [kept["id"]]

    (event,) = await _audit(client, owner, "contact.merged")
    assert event["target_type"] == "contact"
    assert event["target_id"] == kept["id"]
    assert event["actor_user_id"] == owner.user_id
    assert event["details"] == {
        "merged_contact_id": merged["id"],
        "filled": ["email", "external_id", "phone"],
    }


async def test_merge_refusals_change_nothing(client: AsyncClient) -> None:
    owner = await new_owner(client)
    url = contacts_url(owner.organization_id)
    one = await create_contact(client, owner, name="One")
    two = await create_contact(client, owner, name="Two", custom_attributes={"k": "x" * 9000})
    three = await create_contact(client, owner, name="Three", custom_attributes={"j": "y" * 9000})

    itself = await client.post(
        f"{url}/{one['id']}/merge", json={"merged_contact_id": one["id"]}, headers=owner.headers
    )
    assert itself.status_code == 422
    assert itself.json()["code"] == "merge_with_itself"
    missing = await client.post(
        f"{url}/{one['id']}/merge", json={"merged_contact_id": str(uuid.uuid4())}, headers=owner.headers
    )
    assert missing.status_code == 404
    assert missing.json()["code"] == "contact_not_found"
    for body in ({}, {"merged_contact_id": "nope"}, {"merged_contact_id": two["id"], "extra": 1}):
        bad = await client.post(f"{url}/{one['id']}/merge", json=body, headers=owner.headers)
        assert bad.status_code == 422, body
    too_large = await client.post(
        f"{url}/{two['id']}/merge", json={"merged_contact_id": three["id"]}, headers=owner.headers
    )
    assert too_large.status_code == 422
    assert too_large.json()["code"] == "attributes_too_large"
    listed = (await client.get(url, headers=owner.headers)).json()["items"]
    assert listed == [one, two, three]
    assert await _audit(client, owner, "contact.merged") == []


async def test_erase_empties_the_contact_and_records_only_that_it_happened(client: AsyncClient) -> None:
    owner = await new_owner(client)
    url = contacts_url(owner.organization_id)
    email = unique_email("forget-me")
    contact = await create_contact(
        client,
        owner,
        name="Forget Me",
        email=email,
        phone="+33 1 23 45 67 89",
        external_id="crm-9",
        custom_attributes={"address": "1 rue X"},
        last_seen_at="2026-11-01T00:00:00Z",
    )
    item = f"{url}/{contact['id']}"
    erased = await client.post(f"{item}/erase", headers=owner.headers)
    assert erased.status_code == 204
    body = (await client.get(item, headers=owner.headers)).json()
    assert body["erased_at"] is not None
    personal = ("name", "email", "phone", "external_id", "last_seen_at")
    assert {field: body[field] for field in personal} == dict.fromkeys(personal)
    assert body["custom_attributes"] == {}
    assert (await client.get(url, headers=owner.headers)).json()["items"] == []  # lists leave it out

    (event,) = await _audit(client, owner, "contact.erased")
    assert (event["target_type"], event["target_id"], event["details"]) == ("contact", contact["id"], {})
    # Nothing of what was removed is anywhere in the audit log.
    log = (await client.get(f"/orgs/{owner.organization_id}/audit-log", headers=owner.headers)).text
    for value in ("Forget Me", email, "crm-9", "1 rue X", "45 67"):
        assert value not in log

    # Erased is final: no second erasure, no update, no merge either way; the address is free again.
    again = await client.post(f"{item}/erase", headers=owner.headers)
    assert again.status_code == 409
    assert again.json()["code"] == "contact_erased"
    assert (await client.patch(item, json={"name": "Back"}, headers=owner.headers)).status_code == 409
    other = await create_contact(client, owner, name="Other", email=email, external_id="crm-9")
    for kept, merged in ((contact, other), (other, contact)):
        refused = await client.post(
            f"{url}/{kept['id']}/merge", json={"merged_contact_id": merged["id"]}, headers=owner.headers
        )
        assert refused.status_code == 409, refused.text
    assert len(await _audit(client, owner, "contact.erased")) == 1
    assert (await client.get(f"{url}/{other['id']}", headers=owner.headers)).json() == other


async def test_hooks_run_inside_the_merge_and_the_erasure(client: AsyncClient) -> None:
    """What other packages hold about a contact (conversations, to come) is moved or removed by their
    hooks, in the same transaction, while the contacts are still there; a hook that fails fails all."""
    owner = await new_owner(client)
    url = contacts_url(owner.organization_id)
    calls: list[tuple[Any, ...]] = []

    async def moved(
        db: AsyncSession, organization_id: uuid.UUID, kept_id: uuid.UUID, merged_id: uuid.UUID
    ) -> None:
        present = await db.scalar(select(func.count()).select_from(Contact).where(Contact.id == merged_id))
        calls.append(("merge", str(organization_id), str(kept_id), str(merged_id), present))

    async def erased(db: AsyncSession, organization_id: uuid.UUID, contact_id: uuid.UUID) -> None:
        email = await db.scalar(select(Contact.email).where(Contact.id == contact_id))
        calls.append(("erase", str(organization_id), str(contact_id), email))

    async def refuses(db: AsyncSession, organization_id: uuid.UUID, *ids: uuid.UUID) -> None:
        raise AppError(409, "hook_refused", "A hook refused.")

    kept = await create_contact(client, owner, name="Kept")
    merged = await create_contact(client, owner, name="Merged")
    email = unique_email()
    target = await create_contact(client, owner, email=email)
    HOOKS.merge.append(moved)
    HOOKS.erase.append(erased)
    try:
        merge = await client.post(
            f"{url}/{kept['id']}/merge", json={"merged_contact_id": merged["id"]}, headers=owner.headers
        )
        assert merge.status_code == 200
        assert (await client.post(f"{url}/{target['id']}/erase", headers=owner.headers)).status_code == 204
    finally:
        HOOKS.merge.remove(moved)
        HOOKS.erase.remove(erased)
    org = owner.organization_id
    assert calls == [("merge", org, kept["id"], merged["id"], 1), ("erase", org, target["id"], email)]

    one = await create_contact(client, owner, name="One")
    two = await create_contact(client, owner, name="Two")
    HOOKS.merge.append(refuses)
    HOOKS.erase.append(refuses)
    try:
        merge = await client.post(
            f"{url}/{one['id']}/merge", json={"merged_contact_id": two["id"]}, headers=owner.headers
        )
        assert merge.status_code == 409
        assert (await client.post(f"{url}/{two['id']}/erase", headers=owner.headers)).status_code == 409
    finally:
        HOOKS.merge.remove(refuses)
        HOOKS.erase.remove(refuses)
    for contact in (one, two):
        assert (await client.get(f"{url}/{contact['id']}", headers=owner.headers)).json() == contact
    assert len(await _audit(client, owner, "contact.merged")) == 1
    assert len(await _audit(client, owner, "contact.erased")) == 1
