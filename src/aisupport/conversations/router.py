"""/orgs/{org_id}: inboxes, SLA policies, teams and their members, agent availability."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from aisupport.access.dependencies import ClientInfo, requires
from aisupport.access.permissions import Permission
from aisupport.access.principal import Principal
from aisupport.accounts.models import User
from aisupport.conversations import errors, service
from aisupport.conversations.models import Inbox, TeamMember
from aisupport.conversations.schemas import (
    AvailabilityOut,
    AvailabilityUpdate,
    InboxCreate,
    InboxOut,
    InboxUpdate,
    InboxWithSecret,
    Priority,
    SlaPolicyCreate,
    SlaPolicyOut,
    SlaPolicyUpdate,
    SlaTargets,
    TeamCreate,
    TeamMemberAdd,
    TeamMemberOut,
    TeamOut,
    TeamUpdate,
)
from aisupport.core.config import Settings
from aisupport.core.db import DbSession
from aisupport.core.errors import problem_responses
from aisupport.core.pagination import Page, Paging

router = APIRouter(tags=["inboxes"])

Reader = Annotated[Principal, Depends(requires(Permission.INBOXES_READ))]
InboxManager = Annotated[Principal, Depends(requires(Permission.INBOXES_MANAGE))]
TeamManager = Annotated[Principal, Depends(requires(Permission.TEAMS_MANAGE))]
AvailabilitySetter = Annotated[Principal, Depends(requires(Permission.AVAILABILITY_SET))]


async def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(settings_of)]
INBOX_REFERENCES = problem_responses(errors.UNKNOWN_REFERENCE)


def _inbox(inbox: Inbox) -> InboxOut:
    return InboxOut.model_validate(
        {
            "id": inbox.id,
            "name": inbox.name,
            "kind": inbox.kind,
            "team_id": inbox.team_id,
            "sla_policy_id": inbox.sla_policy_id,
            "auto_assignment": inbox.auto_assignment,
            "auto_assignment_limit": inbox.auto_assignment_limit,
            "business_hours": inbox.business_hours,
            "allowed_origins": inbox.allowed_origins,
            "ai_mode": inbox.ai_mode,
            "ai_threshold": inbox.ai_threshold,
            "ai_max_replies": inbox.ai_max_replies,
            "has_identity_secret": inbox.identity_secret_encrypted is not None,
            "identity_secret_rotated_at": inbox.identity_secret_rotated_at,
            "created_at": inbox.created_at,
            "updated_at": inbox.updated_at,
        }
    )


def _inbox_with_secret(inbox: Inbox, secret: str | None) -> InboxWithSecret:
    return InboxWithSecret.model_validate({**_inbox(inbox).model_dump(), "identity_secret": secret})


def _team_member(member: TeamMember, user: User) -> TeamMemberOut:
    return TeamMemberOut(
        user_id=member.user_id, email=user.email, full_name=user.full_name, added_at=member.created_at
    )


# --- SLA policies -------------------------------------------------------------------------------------


@router.get("/orgs/{org_id}/sla-policies", response_model=Page[SlaPolicyOut])
async def list_sla_policies(
    org_id: uuid.UUID, principal: Reader, db: DbSession, paging: Paging
) -> Page[SlaPolicyOut]:
    """The organization's SLA policies, oldest first."""
    rows = await service.sla_policies(db, principal, after=paging.after_time_and_id(), limit=paging.fetch)
    return paging.page(rows, lambda row: (row.created_at, row.id), SlaPolicyOut.model_validate)


@router.post("/orgs/{org_id}/sla-policies", status_code=status.HTTP_201_CREATED, response_model=SlaPolicyOut)
async def create_sla_policy(
    org_id: uuid.UUID, payload: SlaPolicyCreate, principal: InboxManager, db: DbSession, client: ClientInfo
) -> SlaPolicyOut:
    """Create an SLA policy: first-response, next-response and resolution targets (minutes) per priority."""
    policy = await service.create_sla_policy(
        db, principal, name=payload.name, targets=_targets(payload.targets), client=client
    )
    return SlaPolicyOut.model_validate(policy)


@router.get("/orgs/{org_id}/sla-policies/{policy_id}", response_model=SlaPolicyOut)
async def get_sla_policy(
    org_id: uuid.UUID, policy_id: uuid.UUID, principal: Reader, db: DbSession
) -> SlaPolicyOut:
    """One SLA policy."""
    return SlaPolicyOut.model_validate(await service.sla_policy(db, principal, policy_id))


@router.patch("/orgs/{org_id}/sla-policies/{policy_id}", response_model=SlaPolicyOut)
async def update_sla_policy(
    org_id: uuid.UUID,
    policy_id: uuid.UUID,
    payload: SlaPolicyUpdate,
    principal: InboxManager,
    db: DbSession,
    client: ClientInfo,
) -> SlaPolicyOut:
    """Rename the policy or replace all its targets."""
    changes = {
        "name": payload.name,
        "targets": None if payload.targets is None else _targets(payload.targets),
    }
    return SlaPolicyOut.model_validate(
        await service.update_sla_policy(db, principal, policy_id, changes, client)
    )


@router.delete("/orgs/{org_id}/sla-policies/{policy_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_sla_policy(
    org_id: uuid.UUID, policy_id: uuid.UUID, principal: InboxManager, db: DbSession, client: ClientInfo
) -> Response:
    """Delete the policy; the inboxes that used it keep none."""
    await service.delete_sla_policy(db, principal, policy_id, client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _targets(targets: Mapping[Priority, SlaTargets]) -> dict[str, dict[str, int]]:
    return {priority: value.model_dump(exclude_none=True) for priority, value in targets.items()}


# --- Teams ----------------------------------------------------------------------------------------------


@router.get("/orgs/{org_id}/teams", response_model=Page[TeamOut])
async def list_teams(org_id: uuid.UUID, principal: Reader, db: DbSession, paging: Paging) -> Page[TeamOut]:
    """The organization's teams, oldest first."""
    rows = await service.teams(db, principal, after=paging.after_time_and_id(), limit=paging.fetch)
    return paging.page(rows, lambda row: (row.created_at, row.id), TeamOut.model_validate)


@router.post(
    "/orgs/{org_id}/teams",
    status_code=status.HTTP_201_CREATED,
    response_model=TeamOut,
    responses=problem_responses(errors.TEAM_NAME_TAKEN),
)
async def create_team(
    org_id: uuid.UUID, payload: TeamCreate, principal: TeamManager, db: DbSession, client: ClientInfo
) -> TeamOut:
    """Create a team; its name is unique in the organization."""
    team = await service.create_team(
        db, principal, name=payload.name, description=payload.description, client=client
    )
    return TeamOut.model_validate(team)


@router.get("/orgs/{org_id}/teams/{team_id}", response_model=TeamOut)
async def get_team(org_id: uuid.UUID, team_id: uuid.UUID, principal: Reader, db: DbSession) -> TeamOut:
    """One team."""
    return TeamOut.model_validate(await service.team(db, principal, team_id))


@router.patch(
    "/orgs/{org_id}/teams/{team_id}",
    response_model=TeamOut,
    responses=problem_responses(errors.TEAM_NAME_TAKEN),
)
async def update_team(
    org_id: uuid.UUID,
    team_id: uuid.UUID,
    payload: TeamUpdate,
    principal: TeamManager,
    db: DbSession,
    client: ClientInfo,
) -> TeamOut:
    """Rename the team or change its description (null clears it)."""
    changes = payload.model_dump(exclude_unset=True)
    return TeamOut.model_validate(await service.update_team(db, principal, team_id, changes, client))


@router.delete("/orgs/{org_id}/teams/{team_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_team(
    org_id: uuid.UUID, team_id: uuid.UUID, principal: TeamManager, db: DbSession, client: ClientInfo
) -> Response:
    """Delete the team: its members leave it, its inboxes keep no team."""
    await service.delete_team(db, principal, team_id, client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/orgs/{org_id}/teams/{team_id}/members", response_model=Page[TeamMemberOut])
async def list_team_members(
    org_id: uuid.UUID, team_id: uuid.UUID, principal: Reader, db: DbSession, paging: Paging
) -> Page[TeamMemberOut]:
    """The team's members, in the order they were added."""
    rows = await service.team_members(
        db, principal, team_id, after=paging.after_time_and_id(), limit=paging.fetch
    )
    return paging.page(rows, lambda row: (row[0].created_at, row[0].user_id), lambda row: _team_member(*row))


@router.post(
    "/orgs/{org_id}/teams/{team_id}/members",
    status_code=status.HTTP_201_CREATED,
    response_model=TeamMemberOut,
    responses=problem_responses(errors.ALREADY_IN_TEAM, errors.NOT_A_MEMBER),
)
async def add_team_member(
    org_id: uuid.UUID,
    team_id: uuid.UUID,
    payload: TeamMemberAdd,
    principal: TeamManager,
    db: DbSession,
    client: ClientInfo,
) -> TeamMemberOut:
    """Put a member of the organization in the team (a member may be in several teams)."""
    return _team_member(*await service.add_team_member(db, principal, team_id, payload.user_id, client))


@router.delete("/orgs/{org_id}/teams/{team_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_team_member(
    org_id: uuid.UUID,
    team_id: uuid.UUID,
    user_id: uuid.UUID,
    principal: TeamManager,
    db: DbSession,
    client: ClientInfo,
) -> Response:
    """Take a member out of the team."""
    await service.remove_team_member(db, principal, team_id, user_id, client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- Availability ---------------------------------------------------------------------------------------


@router.get("/orgs/{org_id}/availability", response_model=Page[AvailabilityOut])
async def list_availability(
    org_id: uuid.UUID, principal: Reader, db: DbSession, paging: Paging
) -> Page[AvailabilityOut]:
    """Every member's availability (`offline` until they set it), by user id."""
    position = paging.after(uuid.UUID)
    rows = await service.availability(
        db, principal, after=position[0] if position else None, limit=paging.fetch
    )
    return paging.page(
        rows,
        lambda row: (row[0],),
        lambda row: AvailabilityOut(user_id=row[0], status=row[1] or "offline", updated_at=row[2]),
    )


@router.put("/orgs/{org_id}/members/me/availability", response_model=AvailabilityOut)
async def set_my_availability(
    org_id: uuid.UUID, payload: AvailabilityUpdate, principal: AvailabilitySetter, db: DbSession
) -> AvailabilityOut:
    """Set your own availability in this organization: `online`, `away` or `offline`."""
    row = await service.set_my_availability(db, principal, payload.status)
    return AvailabilityOut(user_id=row.user_id, status=row.status, updated_at=row.updated_at)


# --- Inboxes --------------------------------------------------------------------------------------------


@router.get("/orgs/{org_id}/inboxes", response_model=Page[InboxOut])
async def list_inboxes(org_id: uuid.UUID, principal: Reader, db: DbSession, paging: Paging) -> Page[InboxOut]:
    """The organization's inboxes, oldest first (never their identity secrets)."""
    rows = await service.inboxes(db, principal, after=paging.after_time_and_id(), limit=paging.fetch)
    return paging.page(rows, lambda row: (row.created_at, row.id), _inbox)


@router.post(
    "/orgs/{org_id}/inboxes",
    status_code=status.HTTP_201_CREATED,
    response_model=InboxWithSecret,
    responses=INBOX_REFERENCES,
)
async def create_inbox(
    org_id: uuid.UUID,
    payload: InboxCreate,
    principal: InboxManager,
    db: DbSession,
    settings: AppSettings,
    client: ClientInfo,
) -> InboxWithSecret:
    """Create an inbox. A widget inbox's identity-verification secret is in this answer only."""
    fields = payload.model_dump()
    inbox, secret = await service.create_inbox(db, settings, principal, fields, client)
    return _inbox_with_secret(inbox, secret)


@router.get("/orgs/{org_id}/inboxes/{inbox_id}", response_model=InboxOut)
async def get_inbox(org_id: uuid.UUID, inbox_id: uuid.UUID, principal: Reader, db: DbSession) -> InboxOut:
    """One inbox (never its identity secret)."""
    return _inbox(await service.inbox(db, principal, inbox_id))


@router.patch(
    "/orgs/{org_id}/inboxes/{inbox_id}",
    response_model=InboxOut,
    responses=problem_responses(errors.UNKNOWN_REFERENCE, errors.ORIGINS_FOR_WIDGETS_ONLY),
)
async def update_inbox(
    org_id: uuid.UUID,
    inbox_id: uuid.UUID,
    payload: InboxUpdate,
    principal: InboxManager,
    db: DbSession,
    client: ClientInfo,
) -> InboxOut:
    """Change an inbox's name, team, SLA policy, auto-assignment (and its cap), business hours or
    allowed origins."""
    # The fields sent, each whole (a nested exclude_unset would drop business hours' defaults).
    dumped = payload.model_dump()
    changes = {field: dumped[field] for field in payload.model_fields_set}
    return _inbox(await service.update_inbox(db, principal, inbox_id, changes, client))


@router.delete("/orgs/{org_id}/inboxes/{inbox_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_inbox(
    org_id: uuid.UUID, inbox_id: uuid.UUID, principal: InboxManager, db: DbSession, client: ClientInfo
) -> Response:
    """Delete the inbox."""
    await service.delete_inbox(db, principal, inbox_id, client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/orgs/{org_id}/inboxes/{inbox_id}/rotate-secret",
    response_model=InboxWithSecret,
    responses=problem_responses(errors.NO_IDENTITY_SECRET),
)
async def rotate_inbox_secret(
    org_id: uuid.UUID,
    inbox_id: uuid.UUID,
    principal: InboxManager,
    db: DbSession,
    settings: AppSettings,
    client: ClientInfo,
) -> InboxWithSecret:
    """Replace a widget inbox's identity-verification secret: the new one is in this answer only, the
    old one stops working at once."""
    inbox, secret = await service.rotate_identity_secret(db, settings, principal, inbox_id, client)
    return _inbox_with_secret(inbox, secret)
