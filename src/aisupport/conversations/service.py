"""Business rules of the conversations domain's configuration: SLA policies, teams and their members,
agent availability, inboxes (business hours, allowed origins, the identity-verification secret).

Never commits. Every function acts in the principal's organization. A write that reads a row and then
changes it first holds the organization (organizations.repository.lock_organization, "keep": not
deleted meanwhile), then locks the row, so two requests racing on one row end in a clean 404 or 409.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.access.errors import organization_not_found
from aisupport.access.principal import Principal
from aisupport.accounts.models import User
from aisupport.audit import service as audit
from aisupport.conversations import assignment, errors, identity_secret
from aisupport.conversations import repository as repo
from aisupport.conversations import sla_repository as timers
from aisupport.conversations.models import Inbox, MemberAvailability, SlaPolicy, Team, TeamMember
from aisupport.core.client import Client
from aisupport.core.config import Settings
from aisupport.core.errors import AppError
from aisupport.core.jobs import defer
from aisupport.organizations import repository as organizations

# --- Shared ---------------------------------------------------------------------------------------------


async def hold_organization(db: AsyncSession, principal: Principal) -> None:
    if not await organizations.lock_organization(db, principal.organization_id, "keep"):
        raise organization_not_found()  # deleted by a request that went first


async def one_of(
    db: AsyncSession,
    principal: Principal,
    model: type[repo.Row],
    row_id: uuid.UUID,
    not_found: Callable[[], AppError],
    *,
    lock: bool = False,
) -> repo.Row:
    """The organization's inbox, team, tag or SLA policy `row_id`, else `not_found()`. With `lock`, for a
    change: the organization held first, then the row locked until the transaction ends."""
    if lock:
        await hold_organization(db, principal)
    found = await repo.one(db, model, principal.organization_id, row_id, lock=lock)
    if found is None:
        raise not_found()
    return found


async def _refresh_sla(db: AsyncSession, organization_id: uuid.UUID, inbox_ids: list[uuid.UUID]) -> None:
    """Have the running SLA clocks of these inboxes' conversations recomputed (a job, committed with
    this change: there may be many; the breach job recomputes a conversation before marking it)."""
    if inbox_ids:
        await defer(
            db,
            "conversations:refresh_sla",
            organization_id=str(organization_id),
            inbox_ids=sorted(str(inbox_id) for inbox_id in inbox_ids),
        )


async def _check_references(db: AsyncSession, organization_id: uuid.UUID, changes: dict[str, Any]) -> None:
    """The team and SLA policy an inbox is given exist in the organization, and stay until commit."""
    if changes.get("team_id") is not None and not await repo.exists(
        db, Team, organization_id, changes["team_id"]
    ):
        raise errors.unknown_team()
    policy_id = changes.get("sla_policy_id")
    if policy_id is not None and not await repo.exists(db, SlaPolicy, organization_id, policy_id):
        raise errors.unknown_sla_policy()


# --- SLA policies -------------------------------------------------------------------------------------


async def create_sla_policy(
    db: AsyncSession, principal: Principal, *, name: str, targets: dict[str, Any], client: Client
) -> SlaPolicy:
    """Create an SLA policy (targets in minutes per priority)."""
    await hold_organization(db, principal)
    policy = await repo.add(
        db,
        SlaPolicy(
            organization_id=principal.organization_id,
            name=name,
            targets=targets,
            created_at=datetime.now(UTC),
        ),
    )
    await audit.record(
        db,
        principal.organization_id,
        "sla_policy.created",
        actor=principal.actor,
        client=client,
        target=("sla_policy", policy.id),
    )
    return policy


async def sla_policies(
    db: AsyncSession, principal: Principal, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[SlaPolicy]:
    return await repo.page_of(db, SlaPolicy, principal.organization_id, after=after, limit=limit)


async def sla_policy(db: AsyncSession, principal: Principal, policy_id: uuid.UUID) -> SlaPolicy:
    policy = await one_of(db, principal, SlaPolicy, policy_id, errors.sla_policy_not_found)
    return policy


async def update_sla_policy(
    db: AsyncSession, principal: Principal, policy_id: uuid.UUID, changes: dict[str, Any], client: Client
) -> SlaPolicy:
    """Rename the policy or replace its targets."""
    policy = await one_of(db, principal, SlaPolicy, policy_id, errors.sla_policy_not_found, lock=True)
    fields = sorted(field for field in ("name", "targets") if changes.get(field) is not None)
    for field in fields:
        setattr(policy, field, changes[field])
    await db.flush()
    if "targets" in fields:
        await _refresh_sla(
            db,
            principal.organization_id,
            await timers.inbox_ids_with_policy(db, principal.organization_id, policy_id),
        )
    await audit.record(
        db,
        principal.organization_id,
        "sla_policy.updated",
        actor=principal.actor,
        client=client,
        target=("sla_policy", policy.id),
        details={"fields": fields},
    )
    return policy


async def delete_sla_policy(
    db: AsyncSession, principal: Principal, policy_id: uuid.UUID, client: Client
) -> None:
    """Delete the policy; the inboxes that used it keep none."""
    await hold_organization(db, principal)
    detached = await timers.inbox_ids_with_policy(db, principal.organization_id, policy_id)
    # Inboxes first, then the policy: the order an inbox update takes them, so the two never deadlock.
    await repo.detach_inboxes(db, principal.organization_id, sla_policy_id=policy_id)
    if await repo.one(db, SlaPolicy, principal.organization_id, policy_id, lock=True) is None:
        raise errors.sla_policy_not_found()
    await repo.remove(db, SlaPolicy, principal.organization_id, policy_id)
    await _refresh_sla(db, principal.organization_id, detached)
    await audit.record(
        db,
        principal.organization_id,
        "sla_policy.deleted",
        actor=principal.actor,
        client=client,
        target=("sla_policy", policy_id),
    )


# --- Teams ----------------------------------------------------------------------------------------------


async def create_team(
    db: AsyncSession, principal: Principal, *, name: str, description: str | None, client: Client
) -> Team:
    """Create a team (names are unique in the organization)."""
    await hold_organization(db, principal)
    try:
        async with db.begin_nested():
            team = await repo.add(
                db,
                Team(
                    organization_id=principal.organization_id,
                    name=name,
                    description=description,
                    created_at=datetime.now(UTC),
                ),
            )
    except IntegrityError:
        raise errors.team_name_taken() from None
    await audit.record(
        db,
        principal.organization_id,
        "team.created",
        actor=principal.actor,
        client=client,
        target=("team", team.id),
        details={"name": name},
    )
    return team


async def teams(
    db: AsyncSession, principal: Principal, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[Team]:
    return await repo.page_of(db, Team, principal.organization_id, after=after, limit=limit)


async def team(db: AsyncSession, principal: Principal, team_id: uuid.UUID) -> Team:
    found = await one_of(db, principal, Team, team_id, errors.team_not_found)
    return found


async def update_team(
    db: AsyncSession, principal: Principal, team_id: uuid.UUID, changes: dict[str, Any], client: Client
) -> Team:
    """Rename the team or change its description."""
    found = await one_of(db, principal, Team, team_id, errors.team_not_found, lock=True)
    if changes.get("name") is not None:
        found.name = changes["name"]
    if "description" in changes:
        found.description = changes["description"]
    try:
        async with db.begin_nested():
            await db.flush()
    except IntegrityError:
        raise errors.team_name_taken() from None
    return found


async def delete_team(db: AsyncSession, principal: Principal, team_id: uuid.UUID, client: Client) -> None:
    """Delete the team: its members leave it, its inboxes and conversations keep no team (their
    assignees stay)."""
    await hold_organization(db, principal)
    # Its members' and conversations' rows go after the assignment lock, as everywhere (assignment.py).
    await assignment.lock_assignments(db, principal.organization_id)
    # Inboxes first, then the team: the order an inbox update takes them, so the two never deadlock.
    await repo.detach_inboxes(db, principal.organization_id, team_id=team_id)
    found = await repo.one(db, Team, principal.organization_id, team_id, lock=True)
    if found is None:
        raise errors.team_not_found()
    await repo.remove(db, Team, principal.organization_id, team_id)
    await audit.record(
        db,
        principal.organization_id,
        "team.deleted",
        actor=principal.actor,
        client=client,
        target=("team", team_id),
        details={"name": found.name},
    )


async def add_team_member(
    db: AsyncSession, principal: Principal, team_id: uuid.UUID, user_id: uuid.UUID, client: Client
) -> tuple[TeamMember, User]:
    """Put a member of the organization in the team (422 for anyone else, 409 if already in)."""
    organization_id = principal.organization_id
    await hold_organization(db, principal)
    if not await repo.exists(db, Team, organization_id, team_id):
        raise errors.team_not_found()
    if not await repo.hold_membership(db, organization_id, user_id):
        raise errors.not_a_member()
    if not await repo.add_team_member(db, organization_id, team_id, user_id):
        raise errors.already_in_team()
    added = await db.get(TeamMember, (organization_id, team_id, user_id))
    user = await db.get(User, user_id)
    assert added is not None
    assert user is not None
    await audit.record(
        db,
        organization_id,
        "team.member_added",
        actor=principal.actor,
        client=client,
        target=("team", team_id),
        details={"user_id": str(user_id)},
    )
    return added, user


async def remove_team_member(
    db: AsyncSession, principal: Principal, team_id: uuid.UUID, user_id: uuid.UUID, client: Client
) -> None:
    """Take a member out of the team; their open conversations of the team become unassigned."""
    organization_id = principal.organization_id
    await hold_organization(db, principal)
    await assignment.lock_assignments(db, organization_id)  # nobody picks them meanwhile
    if not await repo.exists(db, Team, organization_id, team_id):
        raise errors.team_not_found()
    if not await repo.remove_team_member(db, organization_id, team_id, user_id):
        raise errors.team_member_not_found()
    await assignment.release_team_member(db, principal, team_id, user_id)
    await audit.record(
        db,
        organization_id,
        "team.member_removed",
        actor=principal.actor,
        client=client,
        target=("team", team_id),
        details={"user_id": str(user_id)},
    )


async def team_members(
    db: AsyncSession,
    principal: Principal,
    team_id: uuid.UUID,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[tuple[TeamMember, User]]:
    if await repo.one(db, Team, principal.organization_id, team_id) is None:
        raise errors.team_not_found()
    return await repo.team_members(db, principal.organization_id, team_id, after=after, limit=limit)


# --- Availability ---------------------------------------------------------------------------------------


async def set_my_availability(db: AsyncSession, principal: Principal, status: str) -> MemberAvailability:
    """The caller's own availability in this organization (not audited: it changes all day)."""
    user_id = principal.person
    if not await repo.hold_membership(db, principal.organization_id, user_id):
        raise organization_not_found()  # removed while the request waited
    return await repo.set_availability(db, principal.organization_id, user_id, status, datetime.now(UTC))


async def availability(
    db: AsyncSession, principal: Principal, *, after: uuid.UUID | None, limit: int
) -> list[tuple[uuid.UUID, str | None, datetime | None]]:
    return await repo.availability(db, principal.organization_id, after=after, limit=limit)


# --- Inboxes --------------------------------------------------------------------------------------------


async def create_inbox(
    db: AsyncSession, settings: Settings, principal: Principal, fields: dict[str, Any], client: Client
) -> tuple[Inbox, str | None]:
    """Create an inbox; a widget inbox gets its identity secret, returned here once."""
    organization_id = principal.organization_id
    await hold_organization(db, principal)
    await _check_references(db, organization_id, fields)
    now = datetime.now(UTC)
    inbox = Inbox(id=uuid.uuid4(), organization_id=organization_id, created_at=now, updated_at=now, **fields)
    secret = None
    if inbox.kind == "widget":
        secret = identity_secret.new_secret()
        inbox.identity_secret_encrypted = identity_secret.seal(
            settings, secret, organization_id=organization_id, inbox_id=inbox.id
        )
        inbox.identity_secret_rotated_at = now
    await repo.add(db, inbox)
    await audit.record(
        db,
        organization_id,
        "inbox.created",
        actor=principal.actor,
        client=client,
        target=("inbox", inbox.id),
        details={"name": inbox.name, "kind": inbox.kind},
    )
    return inbox, secret


async def inboxes(
    db: AsyncSession, principal: Principal, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[Inbox]:
    return await repo.page_of(db, Inbox, principal.organization_id, after=after, limit=limit)


async def inbox(db: AsyncSession, principal: Principal, inbox_id: uuid.UUID) -> Inbox:
    found = await one_of(db, principal, Inbox, inbox_id, errors.inbox_not_found)
    return found


async def update_inbox(
    db: AsyncSession, principal: Principal, inbox_id: uuid.UUID, changes: dict[str, Any], client: Client
) -> Inbox:
    """Change an inbox's settings (`changes`: the fields sent; null clears the nullable ones)."""
    organization_id = principal.organization_id
    found = await one_of(db, principal, Inbox, inbox_id, errors.inbox_not_found, lock=True)
    if "allowed_origins" in changes and found.kind != "widget" and changes["allowed_origins"]:
        raise errors.origins_for_widgets_only()
    await _check_references(db, organization_id, changes)
    clock_changed = any(
        field in changes and changes[field] != getattr(found, field)
        for field in ("sla_policy_id", "business_hours")
    )
    for field, value in changes.items():
        setattr(found, field, value)
    found.updated_at = datetime.now(UTC)
    await db.flush()
    if clock_changed:
        await _refresh_sla(db, organization_id, [inbox_id])
    await audit.record(
        db,
        organization_id,
        "inbox.updated",
        actor=principal.actor,
        client=client,
        target=("inbox", inbox_id),
        details={"fields": sorted(changes)},
    )
    return found


async def delete_inbox(db: AsyncSession, principal: Principal, inbox_id: uuid.UUID, client: Client) -> None:
    found = await one_of(db, principal, Inbox, inbox_id, errors.inbox_not_found, lock=True)
    await repo.remove(db, Inbox, principal.organization_id, inbox_id)
    await audit.record(
        db,
        principal.organization_id,
        "inbox.deleted",
        actor=principal.actor,
        client=client,
        target=("inbox", inbox_id),
        details={"name": found.name},
    )


async def rotate_identity_secret(
    db: AsyncSession, settings: Settings, principal: Principal, inbox_id: uuid.UUID, client: Client
) -> tuple[Inbox, str]:
    """Replace a widget inbox's identity secret; the new one is returned here once, the old one stops
    verifying at once."""
    found = await one_of(db, principal, Inbox, inbox_id, errors.inbox_not_found, lock=True)
    if found.kind != "widget":
        raise errors.no_identity_secret()
    secret = identity_secret.new_secret()
    found.identity_secret_encrypted = identity_secret.seal(
        settings, secret, organization_id=found.organization_id, inbox_id=found.id
    )
    found.identity_secret_rotated_at = found.updated_at = datetime.now(UTC)
    await db.flush()
    await audit.record(
        db,
        principal.organization_id,
        "inbox.secret_rotated",
        actor=principal.actor,
        client=client,
        target=("inbox", inbox_id),
    )
    return found, secret


def identity_secret_of(settings: Settings, inbox: Inbox) -> str | None:
    """The inbox's identity secret in clear, for verifying a visitor's signed identity (the widget API)."""
    if inbox.identity_secret_encrypted is None:
        return None
    return identity_secret.unseal(
        settings, inbox.identity_secret_encrypted, organization_id=inbox.organization_id, inbox_id=inbox.id
    )
