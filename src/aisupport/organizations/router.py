"""/orgs: organizations, members, invitations, API keys, the audit log."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from aisupport.access.dependencies import (
    Access,
    Account,
    ClientInfo,
    requires,
)
from aisupport.access.permissions import Permission, Role
from aisupport.access.principal import Principal
from aisupport.accounts.models import User
from aisupport.core.db import DbSession
from aisupport.core.errors import problem_responses
from aisupport.core.pagination import Page, Paging
from aisupport.core.schemas import Timestamp
from aisupport.organizations import errors, service
from aisupport.organizations.models import Membership, Organization
from aisupport.organizations.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    AuditEventOut,
    InvitationCreate,
    InvitationOut,
    MemberOut,
    MemberUpdate,
    MyOrganization,
    OrganizationCreate,
    OrganizationDelete,
    OrganizationOut,
    OrganizationUpdate,
)

router = APIRouter(tags=["organizations"])

OrgReader = Annotated[Principal, Depends(requires(Permission.ORG_READ))]
OrgEditor = Annotated[Principal, Depends(requires(Permission.ORG_UPDATE))]
OrgDeleter = Annotated[Principal, Depends(requires(Permission.ORG_DELETE))]
MemberReader = Annotated[Principal, Depends(requires(Permission.MEMBERS_READ))]
MemberManager = Annotated[Principal, Depends(requires(Permission.MEMBERS_MANAGE))]
InvitationManager = Annotated[Principal, Depends(requires(Permission.INVITATIONS_MANAGE))]
KeyManager = Annotated[Principal, Depends(requires(Permission.API_KEYS_MANAGE))]
AuditReader = Annotated[Principal, Depends(requires(Permission.AUDIT_READ))]
# The errors of the routes' own rules (declared in organizations/errors.py); those of their paths,
# bodies, credentials, permissions and limits are documented without a list (aisupport/openapi.py).
SLUG_TAKEN = problem_responses(errors.SLUG_TAKEN)
LAST_OWNER = problem_responses(errors.LAST_OWNER)


def _member(membership: Membership, user: User) -> MemberOut:
    return MemberOut(
        user_id=membership.user_id,
        email=user.email,
        full_name=user.full_name,
        role=Role(membership.role),
        joined_at=membership.created_at,
    )


def _my_organization(organization: Organization, role: Role) -> MyOrganization:
    return MyOrganization.model_validate(
        {**OrganizationOut.model_validate(organization).model_dump(), "role": role}
    )


@router.get("/orgs", response_model=Page[MyOrganization])
async def list_my_organizations(principal: Account, db: DbSession, paging: Paging) -> Page[MyOrganization]:
    """The organizations you belong to, with your role in each, oldest membership first."""
    rows = await service.my_organizations(db, principal, after=paging.after_time_and_id(), limit=paging.fetch)
    return paging.page(rows, lambda row: (row[2], row[0].id), lambda row: _my_organization(row[0], row[1]))


@router.post(
    "/orgs",
    status_code=status.HTTP_201_CREATED,
    response_model=MyOrganization,
    responses=SLUG_TAKEN,
)
async def create_organization(
    payload: OrganizationCreate, principal: Account, db: DbSession, auth: Access, client: ClientInfo
) -> MyOrganization:
    """Create an organization; you become its owner and can act in it at once under /orgs/{its id}."""
    organization, role = await service.create_organization(
        db, auth, principal, name=payload.name, slug=payload.slug, client=client
    )
    return _my_organization(organization, role)


@router.get("/orgs/{org_id}", response_model=OrganizationOut)
async def get_organization(org_id: uuid.UUID, principal: OrgReader, db: DbSession) -> OrganizationOut:
    """An organization you belong to."""
    return OrganizationOut.model_validate(await service.get_organization(db, principal))


@router.patch("/orgs/{org_id}", response_model=OrganizationOut, responses=SLUG_TAKEN)
async def update_organization(
    org_id: uuid.UUID, payload: OrganizationUpdate, principal: OrgEditor, db: DbSession, client: ClientInfo
) -> OrganizationOut:
    """Rename it, change its slug (unique), or replace its settings."""
    changes = payload.model_dump(exclude_unset=True)
    return OrganizationOut.model_validate(await service.update_organization(db, principal, changes, client))


@router.delete(
    "/orgs/{org_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(errors.CONFIRMATION_MISMATCH),
)
async def delete_organization(
    org_id: uuid.UUID, payload: OrganizationDelete, principal: OrgDeleter, db: DbSession
) -> Response:
    """Delete the organization and all its data at once; `confirm` must repeat its slug. Owners only."""
    await service.delete_organization(db, principal, payload.confirm)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/orgs/{org_id}/members", response_model=Page[MemberOut])
async def list_members(
    org_id: uuid.UUID, principal: MemberReader, db: DbSession, paging: Paging
) -> Page[MemberOut]:
    """The members and their roles, in the order they joined."""
    rows = await service.list_members(db, principal, after=paging.after_time_and_id(), limit=paging.fetch)
    return paging.page(rows, lambda row: (row[0].created_at, row[0].user_id), lambda row: _member(*row))


@router.patch("/orgs/{org_id}/members/{user_id}", response_model=MemberOut, responses=LAST_OWNER)
async def change_member_role(
    org_id: uuid.UUID,
    user_id: uuid.UUID,
    payload: MemberUpdate,
    principal: MemberManager,
    db: DbSession,
    client: ClientInfo,
) -> MemberOut:
    """Change a member's role; it takes effect on their next request."""
    membership, user = await service.change_role(db, principal, user_id, payload.role, client)
    return _member(membership, user)


@router.delete(
    "/orgs/{org_id}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=LAST_OWNER,
)
async def remove_member(
    org_id: uuid.UUID, user_id: uuid.UUID, principal: MemberManager, db: DbSession, client: ClientInfo
) -> Response:
    """Remove a member; their tokens for this organization stop working on their next request."""
    await service.remove_member(db, principal, user_id, client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/orgs/{org_id}/leave", status_code=status.HTTP_204_NO_CONTENT, responses=LAST_OWNER)
async def leave_organization(
    org_id: uuid.UUID, principal: Account, db: DbSession, client: ClientInfo
) -> Response:
    """Leave the organization (the last owner cannot)."""
    await service.leave(db, principal, client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/orgs/{org_id}/invitations",
    status_code=status.HTTP_201_CREATED,
    response_model=InvitationOut,
    responses=problem_responses(errors.ALREADY_MEMBER),
)
async def invite(
    org_id: uuid.UUID,
    payload: InvitationCreate,
    principal: InvitationManager,
    db: DbSession,
    auth: Access,
    client: ClientInfo,
) -> InvitationOut:
    """Invite someone by email, with a role no higher than yours (your address must be verified); the
    link expires in 7 days."""
    invitation = await service.invite(
        db, auth, principal, email=payload.email, role=payload.role, client=client
    )
    return InvitationOut.model_validate(invitation)


@router.get("/orgs/{org_id}/invitations", response_model=Page[InvitationOut])
async def list_invitations(
    org_id: uuid.UUID, principal: InvitationManager, db: DbSession, paging: Paging
) -> Page[InvitationOut]:
    """Pending invitations, oldest first."""
    rows = await service.pending_invitations(
        db, principal, after=paging.after_time_and_id(), limit=paging.fetch
    )
    return paging.page(rows, lambda row: (row.created_at, row.id), InvitationOut.model_validate)


@router.delete("/orgs/{org_id}/invitations/{invitation_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_invitation(
    org_id: uuid.UUID,
    invitation_id: uuid.UUID,
    principal: InvitationManager,
    db: DbSession,
    client: ClientInfo,
) -> Response:
    """Revoke a pending invitation; its link stops working."""
    await service.revoke_invitation(db, principal, invitation_id, client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/orgs/{org_id}/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
)
async def create_api_key(
    org_id: uuid.UUID, payload: ApiKeyCreate, principal: KeyManager, db: DbSession, client: ClientInfo
) -> ApiKeyCreated:
    """Create an API key (role no higher than yours). The secret is in this answer only."""
    key, secret = await service.create_api_key(
        db,
        principal,
        name=payload.name,
        role=Role(payload.role),
        expires_at=payload.expires_at,
        client=client,
    )
    return ApiKeyCreated.model_validate({**ApiKeyOut.model_validate(key).model_dump(), "secret": secret})


@router.get("/orgs/{org_id}/api-keys", response_model=Page[ApiKeyOut])
async def list_api_keys(
    org_id: uuid.UUID, principal: KeyManager, db: DbSession, paging: Paging
) -> Page[ApiKeyOut]:
    """The organization's API keys (never their secrets), oldest first."""
    rows = await service.api_keys(db, principal, after=paging.after_time_and_id(), limit=paging.fetch)
    return paging.page(rows, lambda row: (row.created_at, row.id), ApiKeyOut.model_validate)


@router.delete("/orgs/{org_id}/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_api_key(
    org_id: uuid.UUID, key_id: uuid.UUID, principal: KeyManager, db: DbSession, client: ClientInfo
) -> Response:
    """Revoke an API key at once; using it afterwards is recorded in the audit log."""
    await service.revoke_api_key(db, principal, key_id, client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/orgs/{org_id}/audit-log", response_model=Page[AuditEventOut])
async def audit_log(
    org_id: uuid.UUID,
    principal: AuditReader,
    db: DbSession,
    paging: Paging,
    action: Annotated[str | None, Query(max_length=60)] = None,
    actor_user_id: uuid.UUID | None = None,
    since: Timestamp | None = None,
    until: Timestamp | None = None,
) -> Page[AuditEventOut]:
    """Security-relevant events, newest first, filtered by action, actor and time."""
    position = paging.after(int)
    rows = await service.audit_log(
        db,
        principal,
        before_id=position[0] if position else None,
        limit=paging.fetch,
        action=action,
        actor_user_id=actor_user_id,
        since=since,
        until=until,
    )
    return paging.page(rows, lambda row: (row.id,), AuditEventOut.model_validate)
