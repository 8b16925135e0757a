"""Business rules of organizations: members and roles, invitations, API keys, the audit log.

Never commits. The caller's organization is the principal's; every function acts inside it, and the
request's transaction is already scoped to it (row-level security). Roles never grow past the actor's:
nobody grants, invites or changes a role above their own, and an organization always keeps an owner.

Writes that read a row and then change it lock the organization first (repository.lock_organization),
then the row, so two requests racing on one row end in a clean 404 or 409, never a stale write.

Packages above this one own rows about a member (conversations assigned to them): they register a hook
(`before_member_stands_down`) that runs in the removal's (or demotion's) transaction, before the
membership goes or changes.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.access.cache import evict_after_commit
from aisupport.access.components import AccessComponents
from aisupport.access.errors import organization_not_found, role_does_not_allow
from aisupport.access.permissions import Permission, Role, permissions_of
from aisupport.access.principal import API_KEY_PREFIX, Principal
from aisupport.access.tenancy import act_as
from aisupport.accounts.models import User
from aisupport.accounts.service import normalize_email, verified_user
from aisupport.audit import repository as audit_repository
from aisupport.audit import service as audit
from aisupport.audit.models import AuditEvent
from aisupport.audit.service import Actor
from aisupport.core.client import Client
from aisupport.core.jobs import defer
from aisupport.core.security import sha256_hex
from aisupport.organizations import errors
from aisupport.organizations import repository as repo
from aisupport.organizations.models import ApiKey, Invitation, Membership, Organization, new_slug

log = structlog.get_logger("aisupport.organizations")

INVITATION_TTL = timedelta(days=7)

MemberStandingDownHook = Callable[[AsyncSession, Principal, uuid.UUID, str], Awaitable[None]]
"""(db, principal, user_id, why): `user_id` is about to stop working in the principal's organization:
removed by the principal, leaving (then the principal is them), or made a viewer; `why` says which in a
few words ("left the organization"). Release what is theirs to work on there."""

MEMBER_STANDING_DOWN_HOOKS: list[MemberStandingDownHook] = []


def before_member_stands_down(hook: MemberStandingDownHook) -> MemberStandingDownHook:
    """Register `hook` (usable as a decorator) to run in every removal of a member, every departure and
    every change of a working role to viewer, in its transaction, after the checks and before the
    owners are locked and the membership deleted or changed. A hook that raises fails the whole request
    and changes nothing. (Deleting the whole organization runs none: everything in it goes.)"""
    MEMBER_STANDING_DOWN_HOOKS.append(hook)
    return hook


async def _member_standing_down(db: AsyncSession, principal: Principal, user_id: uuid.UUID, why: str) -> None:
    # Before _keep_an_owner: a hook may wait for work that holds an owner's membership (an assignment
    # to them), which must not wait for the owners' lock in turn.
    for hook in MEMBER_STANDING_DOWN_HOOKS:
        await hook(db, principal, user_id, why)


async def create_organization(
    db: AsyncSession,
    auth: AccessComponents,
    principal: Principal,
    *,
    name: str,
    slug: str | None,
    client: Client,
) -> tuple[Organization, Role]:
    """Create an organization; its creator becomes its owner.

    Organizations are free, so their number is bounded per person and per address: each one would
    otherwise bring a fresh per-organization invitation allowance.
    """
    user_id = principal.person
    limits = auth.settings.rate_limits
    await auth.rate_limiter.hit(limits["org_creation_user"], "org-creation-user", str(user_id))
    await auth.rate_limiter.hit(limits["org_creation_ip"], "org-creation-ip", client.ip or "unknown")
    organization_id = uuid.uuid4()
    await act_as(db, organization_id=organization_id, user_id=user_id)
    try:
        async with db.begin_nested():
            organization = await repo.add_organization(
                db, name=name, slug=slug or new_slug(name), organization_id=organization_id
            )
    except IntegrityError:
        raise errors.slug_taken() from None
    await repo.add_membership(db, organization_id=organization.id, user_id=user_id, role=Role.OWNER)
    evict_after_commit(db, users=[user_id])  # their list of organizations changed
    await audit.record(db, organization.id, "organization.created", actor=principal.actor, client=client)
    return organization, Role.OWNER


async def my_organizations(
    db: AsyncSession, principal: Principal, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[tuple[Organization, Role, datetime]]:
    """The caller's organizations with their role and joining time, oldest membership first."""
    return await repo.organizations_of_user(db, principal.person, after=after, limit=limit)


async def get_organization(db: AsyncSession, principal: Principal) -> Organization:
    organization = await repo.organization(db, principal.organization_id)
    if organization is None:
        raise organization_not_found()
    return organization


async def update_organization(
    db: AsyncSession, principal: Principal, changes: dict[str, Any], client: Client
) -> Organization:
    """Rename, re-slug or replace the settings of the caller's organization."""
    organization = await repo.organization_for_update(db, principal.organization_id)
    if organization is None:  # deleted by a request that went first
        raise organization_not_found()
    for field in ("name", "slug", "settings"):
        if changes.get(field) is not None:
            setattr(organization, field, changes[field])
    try:
        async with db.begin_nested():
            await db.flush()
    except IntegrityError:
        raise errors.slug_taken() from None
    await audit.record(
        db,
        organization.id,
        "organization.updated",
        actor=principal.actor,
        client=client,
        details={"fields": sorted(field for field in changes if changes[field] is not None)},
    )
    evict_after_commit(db, everything=True)  # its name is in every member's profile (rare: renames)
    return organization


async def delete_organization(db: AsyncSession, principal: Principal, confirm: str) -> None:
    """Delete the caller's organization and everything in it; `confirm` must repeat its slug."""
    organization = await repo.organization_for_update(db, principal.organization_id)
    if organization is None:  # deleted by a request that went first
        raise organization_not_found()
    if confirm != organization.slug:
        raise errors.confirmation_mismatch()
    await repo.delete_organization(db, organization.id)
    evict_after_commit(db, everything=True)
    log.warning("organization_deleted", organization_id=str(organization.id), by=str(principal.user_id))


async def list_members(
    db: AsyncSession, principal: Principal, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[tuple[Membership, User]]:
    return await repo.members(db, principal.organization_id, after=after, limit=limit)


async def change_role(
    db: AsyncSession, principal: Principal, user_id: uuid.UUID, role: Role, client: Client
) -> tuple[Membership, User]:
    """Change a member's role: never to or from a role above the actor's; one owner always stays."""
    organization_id = principal.organization_id
    actor_role = await _lock_members_to_manage(db, principal)
    member = await repo.membership(db, organization_id, user_id)
    user = await db.get(User, user_id)
    if member is None or user is None:
        raise errors.member_not_found()
    current = Role(member.role)
    if current.rank > actor_role.rank or role.rank > actor_role.rank:
        raise errors.role_above_yours("give or change")
    if role is Role.VIEWER and current is not Role.VIEWER:
        await _member_standing_down(db, principal, user_id, "made a viewer")
    if current is Role.OWNER and role is not Role.OWNER:
        await _keep_an_owner(db, organization_id, leaving=user_id)
    member.role = role.value
    # Their own principals, and the API keys they created (a key follows its creator's standing).
    evict_after_commit(db, users=[user_id], organizations=[organization_id])
    await audit.record(
        db,
        organization_id,
        "member.role_changed",
        actor=principal.actor,
        client=client,
        target=("user", user_id),
        details={"from": current.value, "to": role.value},
    )
    return member, user


async def remove_member(db: AsyncSession, principal: Principal, user_id: uuid.UUID, client: Client) -> None:
    """Remove a member (not one above the actor's role, not the last owner)."""
    organization_id = principal.organization_id
    actor_role = await _lock_members_to_manage(db, principal)
    member = await repo.membership(db, organization_id, user_id)
    if member is None:
        raise errors.member_not_found()
    if Role(member.role).rank > actor_role.rank:
        raise errors.role_above_yours("remove")
    await _member_standing_down(db, principal, user_id, "removed from the organization")
    if member.role == Role.OWNER:
        await _keep_an_owner(db, organization_id, leaving=user_id)
    await repo.remove_membership(db, organization_id, user_id)
    evict_after_commit(db, users=[user_id], organizations=[organization_id])
    await audit.record(
        db, organization_id, "member.removed", actor=principal.actor, client=client, target=("user", user_id)
    )


async def leave(db: AsyncSession, principal: Principal, client: Client) -> None:
    """Leave the caller's organization; the last owner must hand over first."""
    user_id = principal.person
    await _lock_members(db, principal)
    await _member_standing_down(db, principal, user_id, "left the organization")
    # The stored role, not the token-capped one: a token minted before a promotion to owner must
    # not let the last owner slip out.
    await _keep_an_owner(db, principal.organization_id, leaving=user_id)
    if not await repo.remove_membership(db, principal.organization_id, user_id):
        raise organization_not_found()  # removed by a request that went first
    evict_after_commit(db, users=[user_id], organizations=[principal.organization_id])
    await audit.record(db, principal.organization_id, "member.left", actor=principal.actor, client=client)


async def _lock_members(db: AsyncSession, principal: Principal) -> Role:
    """Take the organization's membership lock and return the actor's role as it is now.

    Membership changes in an organization take turns, and each then reads what the previous one left:
    a target demoted, removed or gone, and an actor demoted or removed while their request waited.
    """
    organization_id = principal.organization_id
    if not await repo.lock_organization(db, organization_id, "members"):
        raise organization_not_found()
    if principal.user_id is None:
        return principal.role
    now = await repo.role_of(db, principal.user_id, organization_id)
    if now is None:
        raise organization_not_found()
    return principal.role.at_most(now)


async def _lock_members_to_manage(db: AsyncSession, principal: Principal) -> Role:
    """The membership lock, for an actor who must still manage members once they hold it."""
    role = await _lock_members(db, principal)
    if Permission.MEMBERS_MANAGE not in permissions_of(role):
        raise role_does_not_allow(Permission.MEMBERS_MANAGE)
    return role


async def _keep_an_owner(db: AsyncSession, organization_id: uuid.UUID, *, leaving: uuid.UUID) -> None:
    """Refuse if `leaving` is the organization's only owner (owners locked: demotions serialize)."""
    owners = await repo.lock_owners(db, organization_id)
    if owners == [leaving]:
        raise errors.last_owner()


async def invite(
    db: AsyncSession, auth: AccessComponents, principal: Principal, *, email: str, role: Role, client: Client
) -> Invitation:
    """Invite someone by email with a role no higher than the inviter's; the link goes out by job.

    Invitation mail carries names the inviter chose, so only a verified inviter may send it, and only
    so many per organization, per inviter (whatever organizations they create) and per address: the
    product's domain is not a relay.
    """
    if role.rank > principal.role.rank:
        raise errors.role_above_yours("invite to")
    await verified_user(db, principal.person)
    limits = auth.settings.rate_limits
    await auth.rate_limiter.hit(limits["invitations_user"], "invitations-user", str(principal.person))
    await auth.rate_limiter.hit(limits["invitations_ip"], "invitations-ip", client.ip or "unknown")
    await auth.rate_limiter.hit(limits["invitations_org"], "invitations-org", str(principal.organization_id))
    organization_id = principal.organization_id
    email_normalized = normalize_email(email)
    if await repo.member_with_email(db, organization_id, email_normalized):
        raise errors.already_member()
    now = datetime.now(UTC)
    invitation = await repo.add_invitation(
        db,
        Invitation(
            organization_id=organization_id,
            email=email,
            email_normalized=email_normalized,
            role=role.value,
            invited_by=principal.user_id,
            created_at=now,
            expires_at=now + INVITATION_TTL,
        ),
    )
    await defer(
        db,
        "organizations:send_invitation",
        organization_id=str(organization_id),
        invitation_id=str(invitation.id),
    )
    await audit.record(
        db,
        organization_id,
        "invitation.created",
        actor=principal.actor,
        client=client,
        target=("invitation", invitation.id),
        details={"email": email, "role": role.value},
    )
    return invitation


async def pending_invitations(
    db: AsyncSession, principal: Principal, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[Invitation]:
    now = datetime.now(UTC)
    return await repo.pending_invitations(db, principal.organization_id, now=now, after=after, limit=limit)


async def revoke_invitation(
    db: AsyncSession, principal: Principal, invitation_id: uuid.UUID, client: Client
) -> None:
    if not await repo.lock_organization(db, principal.organization_id, "keep"):
        raise organization_not_found()
    # Locked: an accept of the same invitation either went first (then it is no longer pending) or waits.
    invitation = await repo.invitation(db, principal.organization_id, invitation_id, lock=True)
    if invitation is None or invitation.accepted_at is not None or invitation.revoked_at is not None:
        raise errors.invitation_not_found()
    invitation.revoked_at = datetime.now(UTC)
    await audit.record(
        db,
        principal.organization_id,
        "invitation.revoked",
        actor=principal.actor,
        client=client,
        target=("invitation", invitation.id),
    )


async def accept_as_signed_in(
    db: AsyncSession, principal: Principal, token: str, client: Client
) -> tuple[Organization, Role]:
    """Accept for the signed-in person, whose verified address must be the invited one."""
    user = await verified_user(db, principal.person)
    return await accept_invitation(db, await open_invitation(db, token), user, client)


async def open_invitation(db: AsyncSession, token: str) -> Invitation:
    """The pending invitation behind a link, locked, with the transaction scoped to its organization
    (whose membership lock it holds: accepting is a membership change)."""
    token_hash = sha256_hex(token)
    organization_id = await repo.organization_of_invitation(db, token_hash)
    if organization_id is None:
        raise errors.invalid_invitation()
    await act_as(db, organization_id=organization_id, user_id=None)
    if not await repo.lock_organization(db, organization_id, "members"):
        raise errors.invalid_invitation()  # the organization was deleted meanwhile
    invitation = await repo.invitation_by_token_hash(db, organization_id, token_hash)
    now = datetime.now(UTC)
    if invitation is None or invitation.accepted_at or invitation.revoked_at or invitation.expires_at <= now:
        raise errors.invalid_invitation()
    return invitation


async def accept_invitation(
    db: AsyncSession, invitation: Invitation, user: User, client: Client
) -> tuple[Organization, Role]:
    """Make `user` a member with the invitation's role, as far as its inviter may still give it; their
    address must be the invited one."""
    if user.email_normalized != invitation.email_normalized:
        raise errors.invitation_for_another_address()
    await act_as(db, organization_id=invitation.organization_id, user_id=user.id)
    role = await _role_the_inviter_can_give(db, invitation)
    if await repo.membership(db, invitation.organization_id, user.id) is not None:
        raise errors.already_member_yourself()
    await repo.add_membership(db, organization_id=invitation.organization_id, user_id=user.id, role=role)
    evict_after_commit(db, users=[user.id])
    invitation.accepted_at = datetime.now(UTC)
    details = {"role": role.value}
    if role.value != invitation.role:
        details["invited_as"] = invitation.role
    await audit.record(
        db,
        invitation.organization_id,
        "invitation.accepted",
        actor=Actor(user_id=user.id),
        client=client,
        target=("invitation", invitation.id),
        details=details,
    )
    organization = await repo.organization(db, invitation.organization_id)
    if organization is None:
        raise errors.invalid_invitation()
    return organization, role


async def _role_the_inviter_can_give(db: AsyncSession, invitation: Invitation) -> Role:
    """The invitation's role, capped at its inviter's current one; refused if the inviter may no longer
    invite (removed, left, account deleted, or demoted below invitations:manage). An invitation admits
    people with the inviter's authority as it is when accepted, not as it was when sent (decision 0025).
    """
    inviter_role = (
        await repo.role_of(db, invitation.invited_by, invitation.organization_id)
        if invitation.invited_by is not None
        else None
    )
    if inviter_role is None or Permission.INVITATIONS_MANAGE not in permissions_of(inviter_role):
        raise errors.invitation_withdrawn()
    return Role(invitation.role).at_most(inviter_role)


async def create_api_key(
    db: AsyncSession,
    principal: Principal,
    *,
    name: str,
    role: Role,
    expires_at: datetime | None,
    client: Client,
) -> tuple[ApiKey, str]:
    """Create a key with a role no higher than its creator's; the secret is returned once."""
    if role.rank > principal.role.rank:
        raise errors.role_above_yours("give a key")
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise errors.expiry_in_the_past()
    secret = f"{API_KEY_PREFIX}_{secrets.token_urlsafe(32)}"
    key = await repo.add_api_key(
        db,
        ApiKey(
            organization_id=principal.organization_id,
            name=name,
            prefix=secret[:10],
            key_hash=sha256_hex(secret),
            role=role.value,
            created_by=principal.user_id,
            created_at=datetime.now(UTC),
            expires_at=expires_at,
        ),
    )
    await audit.record(
        db,
        principal.organization_id,
        "api_key.created",
        actor=principal.actor,
        client=client,
        target=("api_key", key.id),
        details={"name": name, "role": role.value},
    )
    return key, secret


async def api_keys(
    db: AsyncSession, principal: Principal, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[ApiKey]:
    return await repo.api_keys(db, principal.organization_id, after=after, limit=limit)


async def audit_log(
    db: AsyncSession,
    principal: Principal,
    *,
    before_id: int | None,
    limit: int,
    action: str | None,
    actor_user_id: uuid.UUID | None,
    since: datetime | None,
    until: datetime | None,
) -> list[AuditEvent]:
    """A page of the organization's audit log, newest first."""
    return await audit_repository.events(
        db,
        principal.organization_id,
        before_id=before_id,
        limit=limit,
        action=action,
        actor_user_id=actor_user_id,
        since=since,
        until=until,
    )


async def revoke_api_key(db: AsyncSession, principal: Principal, key_id: uuid.UUID, client: Client) -> None:
    """Revoke a key (again: no change, no second audit event)."""
    if not await repo.lock_organization(db, principal.organization_id, "keep"):
        raise organization_not_found()
    key = await repo.api_key(db, principal.organization_id, key_id)  # locked: revocations take turns
    if key is None:
        raise errors.api_key_not_found()
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        evict_after_commit(db, api_keys=[key.id])
        await audit.record(
            db,
            principal.organization_id,
            "api_key.revoked",
            actor=principal.actor,
            client=client,
            target=("api_key", key.id),
        )
