from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, IPvAnyAddress

from aisupport.access.permissions import Permission, Role
from aisupport.auth.devices import DEVICE_TOKEN_MAX_LENGTH
from aisupport.auth.models import ActivityKind
from aisupport.core.schemas import RequestModel
from aisupport.organizations import schemas as organization_schemas

Transport = Literal["cookie", "body"]

# Generous bounds on input; the password policy itself answers with its own clear errors.
PASSWORD_INPUT_MAX = 1024


class SignupRequest(RequestModel):
    email: EmailStr
    password: str = Field(max_length=PASSWORD_INPUT_MAX)
    full_name: str | None = Field(default=None, min_length=1, max_length=200)
    organization_name: str | None = Field(default=None, min_length=1, max_length=200)
    transport: Transport = "cookie"


class LoginRequest(RequestModel):
    email: EmailStr
    password: str = Field(max_length=PASSWORD_INPUT_MAX)
    organization_id: uuid.UUID | None = None
    transport: Transport = "cookie"
    device_token: str | None = Field(
        default=None,
        max_length=DEVICE_TOKEN_MAX_LENGTH,
        description="The `device_token` of this client's last sign-in (body transport; browsers send the "
        "device cookie instead). With it, failed attempts count against this device only, so others "
        "failing on the same address cannot lock it out.",
    )


class PasswordGrantForm(BaseModel):
    """OAuth2's password grant (RFC 6749, section 4.3) as a form: `username` is the email."""

    grant_type: Literal["password"] | None = None
    username: str
    password: str = Field(json_schema_extra={"format": "password"})
    scope: str = ""
    client_id: str | None = None
    client_secret: str | None = Field(default=None, json_schema_extra={"format": "password"})


class RefreshRequest(RequestModel):
    refresh_token: str = Field(min_length=1, max_length=4096)


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    email_verified: bool
    full_name: str | None
    created_at: datetime


class OrganizationSummary(BaseModel):
    """An organization as sign-in answers name it (the full one is `OrganizationOut`, under /orgs)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    slug: str


class MembershipOut(OrganizationSummary):
    role: Role


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")
    user: UserOut
    organization: OrganizationSummary
    role: Role
    refresh_token: str | None = Field(default=None, description="Only with transport=body.")
    refresh_expires_in: int | None = Field(default=None, description="Only with transport=body.")
    device_token: str | None = Field(
        default=None,
        description="Only with transport=body, after a password was proved (sign-up, login): keep it "
        "and send it with the next login from this client. Browsers get it as an HttpOnly cookie.",
    )


class MeResponse(BaseModel):
    user: UserOut
    organization: OrganizationSummary
    role: Role
    organizations: list[MembershipOut]


class UserIdentity(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    full_name: str | None


class ApiKeyIdentity(BaseModel):
    """The calling API key, as its list shows it (never the secret)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None


class WhoAmI(BaseModel):
    """Who is calling, whatever the credential: a person's access token (bearer or cookie) or an API key."""

    kind: Literal["user", "api_key"]
    organization: OrganizationSummary = Field(description="The organization this credential acts in.")
    role: Role = Field(description="The effective role: what this request is authorized as.")
    permissions: list[Permission] = Field(description="What this request may do (docs/permissions.md).")
    user: UserIdentity | None = Field(description="The signed-in person (kind=user), else null.")
    api_key: ApiKeyIdentity | None = Field(description="The API key (kind=api_key), else null.")


class SignupPending(BaseModel):
    """Sign-up with REQUIRE_EMAIL_VERIFICATION: no session until the address is confirmed."""

    status: Literal["verification_required"] = "verification_required"
    detail: str = "Check your email: the link in it confirms your address, then you can sign in."


class Accepted(BaseModel):
    detail: str


ACCOUNT_TOKEN_MAX = 512


class EmailTokenRequest(RequestModel):
    token: str = Field(min_length=1, max_length=ACCOUNT_TOKEN_MAX)


class ForgotPasswordRequest(RequestModel):
    email: EmailStr


class VerificationRequest(RequestModel):
    email: EmailStr


class ResetPasswordRequest(RequestModel):
    token: str = Field(min_length=1, max_length=ACCOUNT_TOKEN_MAX)
    new_password: str = Field(max_length=PASSWORD_INPUT_MAX)


class ChangePasswordRequest(RequestModel):
    current_password: str = Field(max_length=PASSWORD_INPUT_MAX)
    new_password: str = Field(max_length=PASSWORD_INPUT_MAX)


class ChangeEmailRequest(RequestModel):
    new_email: EmailStr
    password: str = Field(max_length=PASSWORD_INPUT_MAX)


class SessionOut(BaseModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None
    ip: str | None
    current: bool


class SwitchOrganization(RequestModel):
    organization_id: uuid.UUID


class ActivityOut(BaseModel):
    """One security event of your account. `details` depend on the kind: `session_id` and
    `organization_id` for sign-ins and sign-outs, `old_email`/`new_email` for address changes,
    `sessions_revoked` for password changes and signing out everywhere."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    occurred_at: datetime
    kind: ActivityKind
    ip: IPvAnyAddress | None
    user_agent: str | None
    details: dict[str, Any]


class InvitationAccept(RequestModel):
    token: str = Field(min_length=1, max_length=512)
    # For someone without an account: the invitation creates it.
    password: str | None = Field(default=None, max_length=PASSWORD_INPUT_MAX)
    full_name: str | None = Field(default=None, min_length=1, max_length=200)
    transport: Transport = "cookie"


class InvitationAccepted(BaseModel):
    organization: organization_schemas.OrganizationOut
    role: Role
