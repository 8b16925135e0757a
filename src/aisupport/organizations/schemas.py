from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, IPvAnyAddress, JsonValue

from aisupport.access.permissions import Role
from aisupport.core.json_limits import JsonObjectBounds
from aisupport.core.schemas import RequestModel, Timestamp

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,78}[a-z0-9])?$"
ApiKeyRole = Literal["admin", "agent", "viewer"]
# Settings are configuration, not data: small and shallow (decision 0021).
SETTINGS_BOUNDS = JsonObjectBounds(max_depth=8, max_items=1000, max_bytes=32 * 1024)


class OrganizationCreate(RequestModel):
    name: str = Field(min_length=1, max_length=200)
    slug: str | None = Field(default=None, pattern=SLUG_PATTERN)


class OrganizationUpdate(RequestModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    slug: str | None = Field(default=None, pattern=SLUG_PATTERN)
    settings: Annotated[dict[str, JsonValue], SETTINGS_BOUNDS] | None = Field(
        default=None, description=f"Replaces the whole settings object. {SETTINGS_BOUNDS.describe()}"
    )


class OrganizationDelete(RequestModel):
    confirm: str = Field(pattern=SLUG_PATTERN, description="The organization's slug, typed again.")


class OrganizationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    slug: str
    settings: dict[str, Any]
    created_at: datetime


class MyOrganization(OrganizationOut):
    role: Role


class MemberOut(BaseModel):
    user_id: uuid.UUID
    email: str
    full_name: str | None
    role: Role
    joined_at: datetime


class MemberUpdate(RequestModel):
    role: Role


class InvitationCreate(RequestModel):
    email: EmailStr
    role: Role


class InvitationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    role: Role
    invited_by: uuid.UUID | None
    created_at: datetime
    expires_at: datetime


class ApiKeyCreate(RequestModel):
    name: str = Field(min_length=1, max_length=100)
    role: ApiKeyRole = "agent"
    expires_at: Timestamp | None = None


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str
    role: Role
    created_by: uuid.UUID | None
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    secret: str = Field(description="Shown once; only its hash is stored.")


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    occurred_at: datetime
    action: str
    actor_user_id: uuid.UUID | None
    actor_api_key_id: uuid.UUID | None
    target_type: str | None
    target_id: str | None
    ip: IPvAnyAddress | None
    user_agent: str | None
    details: dict[str, Any]
