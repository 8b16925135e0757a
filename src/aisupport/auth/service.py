"""Business rules of sign-up, sign-in, refresh-token rotation and sign-out. Never commits."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.access.cache import evict_after_commit
from aisupport.access.components import AccessComponents
from aisupport.access.errors import invalid_access_token, organization_not_found
from aisupport.access.permissions import Role
from aisupport.access.principal import Principal
from aisupport.access.tenancy import act_as
from aisupport.accounts import repository as users
from aisupport.accounts.errors import email_not_verified
from aisupport.accounts.models import User
from aisupport.accounts.password_policy import check_password, normalize_password
from aisupport.accounts.service import normalize_email
from aisupport.audit import service as audit
from aisupport.audit.service import Actor
from aisupport.auth import activity, errors, repository
from aisupport.auth.devices import device_binding, issue_device_token, trusted_device
from aisupport.auth.models import ActivityKind, AuthSession, RefreshToken, TokenPurpose
from aisupport.core.client import Client
from aisupport.core.db import release_connection
from aisupport.core.errors import Unauthorized
from aisupport.core.jobs import defer
from aisupport.core.metrics import LOGIN_FAILURES, REFRESH_TOKEN_REUSE
from aisupport.core.ratelimit import limit_key
from aisupport.core.security import (
    PasswordHasher,
    derive_key,
    derived_opaque_token,
    new_opaque_token,
    sha256_hex,
)
from aisupport.organizations import repository as org_repository
from aisupport.organizations import service as organizations
from aisupport.organizations.models import ApiKey, Organization, new_slug

log = structlog.get_logger("aisupport.auth")

REFRESH_TOKEN_PREFIX = "rt"


@dataclass(frozen=True)
class AuthComponents(AccessComponents):
    """What the auth service needs besides the database, built once per app: the access layer's
    components, plus password hashing and the keys of refresh and device tokens."""

    passwords: PasswordHasher

    @cached_property
    def _refresh_keys(self) -> tuple[bytes, ...]:
        return tuple(derive_key(secret, "refresh-token-child") for secret in self.secrets)

    @cached_property
    def _device_keys(self) -> tuple[bytes, ...]:
        return tuple(derive_key(secret, "device-token") for secret in self.secrets)

    def device_token(self, user: User, now: datetime) -> str:
        """A new device token for a client that just proved it knows the user's password."""
        expires_at = now + timedelta(days=self.settings.DEVICE_TOKEN_EXPIRE_DAYS)
        binding = device_binding(user.id, user.password_hash)
        return issue_device_token(self._device_keys[0], binding, int(expires_at.timestamp()))

    def trusted_device(self, token: str | None, user: User | None) -> str | None:
        """The id of the device behind `token` if it is a live device token of `user`, else None."""
        if token is None or user is None:
            return None
        binding = device_binding(user.id, user.password_hash)
        return trusted_device(self._device_keys, token, binding, int(datetime.now(UTC).timestamp()))

    def child_refresh_tokens(self, parent: str) -> list[str]:
        """The successor of a refresh token: derived with the current key, or the previous one."""
        return [derived_opaque_token(REFRESH_TOKEN_PREFIX, key, parent) for key in self._refresh_keys]


@dataclass(frozen=True)
class AccessGrant:
    """A new access token for a session that keeps its refresh token (switching organization)."""

    user: User
    organization: Organization
    role: Role
    access_token: str
    expires_in: int


@dataclass(frozen=True)
class SignIn:
    """A fresh access token and the session's current refresh token."""

    user: User
    organization: Organization
    role: Role
    session_id: uuid.UUID
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    csrf_token: str
    # Only when the password was just proved (sign-up, login): the client keeps it to be a trusted device.
    device_token: str | None = None


async def signup(
    db: AsyncSession,
    auth: AuthComponents,
    *,
    email: str,
    password: str,
    full_name: str | None,
    organization_name: str | None,
    client: Client,
) -> SignIn | None:
    """Create a user and their first organization (as owner) and queue the verification email.

    Signs in at once unless REQUIRE_EMAIL_VERIFICATION is on; then it returns None, and a taken address
    gets the same answer (its owner is emailed instead), so sign-up cannot tell which addresses exist.
    """
    settings = auth.settings
    await auth.rate_limiter.hit(settings.rate_limits["signup_ip"], "signup-ip", client.ip or "unknown")
    password = normalize_password(password)
    check_password(password, email=email)
    email_normalized = normalize_email(email)
    # Per address too, before the lookup (so alike for new and taken addresses): each attempt mails it.
    await auth.rate_limiter.hit(
        settings.rate_limits["email_account"], "email-account", limit_key(email_normalized)
    )
    password_hash = await auth.passwords.hash(password)  # before the database: no connection held
    existing = await users.user_by_email(db, email_normalized)
    if existing is not None:
        if not settings.REQUIRE_EMAIL_VERIFICATION:
            raise errors.email_taken()
        await _mail_existing_account(db, existing)
        return None
    user = User(
        id=uuid.uuid4(),
        email=email,
        email_normalized=email_normalized,
        password_hash=password_hash,
        full_name=full_name,
    )
    try:
        await users.add_user(db, user)
    except IntegrityError:  # a concurrent signup with the same address won the race
        raise errors.email_taken() from None
    name = organization_name or f"{full_name or email.split('@')[0]}'s organization"
    organization_id = uuid.uuid4()
    await act_as(db, organization_id=organization_id, user_id=user.id)
    organization = await org_repository.add_organization(
        db, name=name, slug=new_slug(name), organization_id=organization_id
    )
    await org_repository.add_membership(db, organization_id=organization.id, user_id=user.id, role=Role.OWNER)
    await audit.record(
        db, organization.id, "organization.created", actor=Actor(user_id=user.id), client=client
    )
    await activity.record(db, user.id, ActivityKind.SIGNED_UP, client=client)
    await send_verification(db, user)
    log.info("user_signed_up", user_id=str(user.id), organization_id=str(organization.id))
    if settings.REQUIRE_EMAIL_VERIFICATION:
        return None
    return await start_session(db, auth, user, organization, Role.OWNER, client)


async def _mail_existing_account(db: AsyncSession, existing: User) -> None:
    """Sign-up with a taken address (REQUIRE_EMAIL_VERIFICATION): its owner is told, and an account
    never confirmed gets a link to finish signing up by choosing its password. Not a verification link:
    confirming would give the account to whoever chose its password, maybe someone who registered the
    address first to take it over later. The answer stays that of a fresh sign-up."""
    if existing.email_verified:
        await defer(
            db,
            "auth:send_notice",
            to=existing.email,
            template="signup_existing",
            values={"name": existing.full_name, "email": existing.email},
        )
    else:
        await defer(
            db,
            "auth:send_password_reset",
            email_normalized=existing.email_normalized,
            template="finish_signup",
        )


async def send_verification(db: AsyncSession, user: User) -> None:
    """Queue the email that confirms the account's current address, bound to the account as it is now."""
    await defer(
        db,
        "auth:send_email_verification",
        user_id=str(user.id),
        email=user.email,
        purpose=TokenPurpose.VERIFY_EMAIL.value,
        binding=link_binding(user),
    )


def link_binding(user: User) -> str:
    """What an emailed link is bound to: the account's password, address and security stamp. A link
    works only while all three are as they were when it was asked for."""
    state = b"\0".join(
        (user.security_stamp.bytes, user.email_normalized.encode(), user.password_hash.encode())
    )
    return hashlib.sha256(b"account-link/" + state).hexdigest()


async def login(
    db: AsyncSession,
    auth: AuthComponents,
    *,
    email: str,
    password: str,
    organization_id: uuid.UUID | None,
    client: Client,
    device_token: str | None = None,
) -> SignIn:
    """Check the credentials and start a session in the chosen (or first) organization.

    A valid device token of this user (docs/decisions/0019) counts the attempt against that device's
    own limit; every other attempt counts against the account's, shared by all untrusted clients.
    """
    email_normalized = normalize_email(email)
    limits = auth.settings.rate_limits
    await auth.rate_limiter.hit(limits["login_ip"], "login-ip", client.ip or "unknown")
    user = await users.user_by_email(db, email_normalized)
    await release_connection(db)
    device = auth.trusted_device(device_token, user)
    if device is not None:
        await auth.rate_limiter.hit(limits["login_device"], "login-device", device)
    else:
        await auth.rate_limiter.hit(limits["login_account"], "login-account", limit_key(email_normalized))
    # An unknown email is verified against a dummy hash: same work, same answer as a wrong password.
    valid, upgraded_hash = await auth.passwords.verify(
        normalize_password(password), user.password_hash if user else None
    )
    if user is None or not valid or not user.is_active:
        log.info(
            "login_failed", user_id=str(user.id) if user else None, ip=client.ip, trusted_device=bool(device)
        )
        LOGIN_FAILURES.inc()
        if user is None:
            raise errors.invalid_credentials()
        await _record_failed_sign_in(db, user, client)
        raise errors.invalid_credentials(keep_changes=True)
    if auth.settings.REQUIRE_EMAIL_VERIFICATION and not user.email_verified:
        raise email_not_verified()
    if upgraded_hash is not None:
        user.password_hash = upgraded_hash
    await act_as(db, organization_id=None, user_id=user.id)
    organization, role = await _choose_membership(db, user.id, organization_id)
    await act_as(db, organization_id=organization.id, user_id=user.id)
    return await start_session(db, auth, user, organization, role, client)


async def refresh(db: AsyncSession, auth: AuthComponents, *, refresh_token: str, client: Client) -> SignIn:
    """Rotate a refresh token; a rotated token presented again revokes its whole family."""
    settings = auth.settings
    await auth.rate_limiter.hit(settings.rate_limits["refresh_ip"], "refresh-ip", client.ip or "unknown")
    found = await repository.lock_refresh_token(db, sha256_hex(refresh_token))
    if found is None:
        raise errors.invalid_refresh_token()
    token, session = found
    await act_as(db, organization_id=session.organization_id, user_id=session.user_id)
    now = datetime.now(UTC)
    idle_deadline = session.last_used_at + timedelta(days=settings.REFRESH_TOKEN_IDLE_DAYS)
    if session.revoked_at is not None or session.expires_at <= now or idle_deadline <= now:
        raise errors.invalid_refresh_token()

    if token.used_at is None:
        child_token = await _rotate(db, auth, token, session, refresh_token, client, now)
    else:
        repeated = await _repeat_within_grace(db, auth, token, refresh_token, now)
        if repeated is None:
            await _revoke_for_reuse(db, auth, session, client, now)
            raise errors.invalid_refresh_token(keep_changes=True)
        child_token = repeated

    user = await users.user_by_id(db, session.user_id)
    membership = await org_repository.membership_of_user(db, session.user_id, session.organization_id)
    if user is None or not user.is_active or membership is None:
        raise errors.invalid_refresh_token()
    organization, role = membership
    return _sign_in(auth, user, organization, role, session, child_token, now)


async def logout(db: AsyncSession, auth: AuthComponents, session_id: uuid.UUID, client: Client) -> None:
    """Revoke a session's refresh-token family; its access tokens stop working at once."""
    if await repository.revoke_session(db, session_id, reason="logout", now=datetime.now(UTC)):
        log.info("session_revoked", session_id=str(session_id), reason="logout")
        session = await repository.session_by_id(db, session_id)
        if session is not None:
            details = {"session_id": str(session_id)}
            await activity.record(
                db, session.user_id, ActivityKind.SIGNED_OUT, client=client, details=details
            )
    evict_after_commit(db, sessions=[session_id])


async def session_of_refresh_token(db: AsyncSession, refresh_token: str) -> uuid.UUID | None:
    session = await repository.session_by_token_hash(db, sha256_hex(refresh_token))
    return None if session is None else session.id


async def profile(
    db: AsyncSession, user_id: uuid.UUID, organization_id: uuid.UUID
) -> tuple[User, Organization, Role, list[tuple[Organization, Role]]]:
    """The signed-in user, their current organization and role, and all their organizations."""
    found = await org_repository.user_with_memberships(db, user_id)
    user, memberships = found if found else (None, [])
    current = next(((org, role) for org, role in memberships if org.id == organization_id), None)
    if user is None or not user.is_active or current is None:
        raise invalid_access_token()
    return user, current[0], current[1], memberships


@dataclass(frozen=True)
class Identity:
    """What GET /auth/whoami tells a caller about itself."""

    principal: Principal
    organization: Organization
    user: User | None
    api_key: ApiKey | None


async def identify(db: AsyncSession, principal: Principal) -> Identity:
    """The caller's organization and, for a person, the user; for an API key, the key."""
    organization = await org_repository.organization(db, principal.organization_id)
    user, api_key = None, None
    if principal.api_key_id is not None:
        api_key = await org_repository.api_key(db, principal.organization_id, principal.api_key_id)
        found = api_key is not None
    else:
        user = await users.user_by_id(db, principal.person)
        found = user is not None and user.is_active
    if organization is None or not found:  # deleted since the credential was checked: as if revoked
        raise Unauthorized()
    return Identity(principal, organization, user, api_key)


async def _rotate(
    db: AsyncSession,
    auth: AuthComponents,
    token: RefreshToken,
    session: AuthSession,
    refresh_token: str,
    client: Client,
    now: datetime,
) -> str:
    child_token = auth.child_refresh_tokens(refresh_token)[0]
    token.used_at = now
    session.last_used_at = now
    await repository.add_refresh_token(
        db,
        RefreshToken(
            session_id=session.id,
            parent_id=token.id,
            token_hash=sha256_hex(child_token),
            issued_at=now,
            user_agent=client.user_agent,
            ip=client.ip,
        ),
    )
    return child_token


async def _revoke_for_reuse(
    db: AsyncSession, auth: AuthComponents, session: AuthSession, client: Client, now: datetime
) -> None:
    await repository.revoke_session(db, session.id, reason="refresh_token_reuse", now=now)
    REFRESH_TOKEN_REUSE.inc()
    await activity.record(
        db,
        session.user_id,
        ActivityKind.REFRESH_TOKEN_REUSE,
        client=client,
        details={"session_id": str(session.id)},
    )
    evict_after_commit(db, sessions=[session.id])
    await audit.record(
        db,
        session.organization_id,
        "auth.refresh_token_reuse_detected",
        actor=Actor(user_id=session.user_id),
        client=client,
        target=("session", session.id),
    )
    log.warning(
        "security.refresh_token_reuse_detected",
        session_id=str(session.id),
        user_id=str(session.user_id),
        ip=client.ip,
        user_agent=client.user_agent,
    )


async def _repeat_within_grace(
    db: AsyncSession, auth: AuthComponents, token: RefreshToken, refresh_token: str, now: datetime
) -> str | None:
    """A just-rotated token presented again (two tabs, a lost response) gets the same child back."""
    grace = timedelta(seconds=auth.settings.REFRESH_REUSE_GRACE_SECONDS)
    if token.used_at is None or now - token.used_at > grace:
        return None
    child = await repository.child_of(db, token.id)
    if child is None or child.used_at is not None or child.revoked_at is not None:
        return None
    return next(
        (
            candidate
            for candidate in auth.child_refresh_tokens(refresh_token)
            if hmac.compare_digest(child.token_hash, sha256_hex(candidate))
        ),
        None,
    )


async def switch_organization(
    db: AsyncSession,
    auth: AuthComponents,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    organization_id: uuid.UUID,
    client: Client,
) -> AccessGrant:
    """Move a session to another of the user's organizations: a new access token for it, same family."""
    await act_as(db, organization_id=organization_id, user_id=user_id)
    membership = await org_repository.membership_of_user(db, user_id, organization_id)
    user = await users.user_by_id(db, user_id)
    session = await repository.session_by_id(db, session_id)
    if membership is None or user is None or session is None:
        raise organization_not_found()
    organization, role = membership
    session.organization_id = organization.id
    actor = Actor(user_id=user_id)
    await audit.record(db, organization.id, "auth.organization_switched", actor=actor, client=client)
    access_token = auth.access_tokens.encode(
        user_id=user.id, session_id=session.id, organization_id=organization.id, role=role.value
    )
    return AccessGrant(user, organization, role, access_token, auth.access_tokens.ttl_seconds)


async def _record_failed_sign_in(db: AsyncSession, user: User, client: Client) -> None:
    """A wrong password for a known account goes into its activity list and the audit log of each of
    its organizations."""
    await activity.record(db, user.id, ActivityKind.SIGN_IN_FAILED, client=client)
    await record_in_organizations(db, user.id, "auth.sign_in_failed", actor=Actor(), client=client)


async def record_in_organizations(
    db: AsyncSession,
    user_id: uuid.UUID,
    action: str,
    *,
    actor: Actor,
    client: Client,
    details: dict[str, Any] | None = None,
) -> None:
    """An event of the user's account that matters to every organization they belong to: into each
    one's audit log, acting in each in turn."""
    await act_as(db, organization_id=None, user_id=user_id)
    for organization, _, _ in await org_repository.organizations_of_user(db, user_id):
        await act_as(db, organization_id=organization.id, user_id=user_id)
        await audit.record(
            db, organization.id, action, actor=actor, client=client, target=("user", user_id), details=details
        )


async def _choose_membership(
    db: AsyncSession, user_id: uuid.UUID, organization_id: uuid.UUID | None
) -> tuple[Organization, Role]:
    if organization_id is not None:
        membership = await org_repository.membership_of_user(db, user_id, organization_id)
        if membership is None:
            raise errors.not_a_member()
        return membership
    first = await org_repository.organizations_of_user(db, user_id, limit=1)
    if not first:
        raise errors.no_organization()
    organization, role, _ = first[0]
    return organization, role


async def start_session(
    db: AsyncSession,
    auth: AuthComponents,
    user: User,
    organization: Organization,
    role: Role,
    client: Client,
) -> SignIn:
    now = datetime.now(UTC)
    session = await repository.add_session(
        db,
        AuthSession(
            id=uuid.uuid4(),
            user_id=user.id,
            organization_id=organization.id,
            created_at=now,
            expires_at=now + timedelta(days=auth.settings.REFRESH_TOKEN_EXPIRE_DAYS),
            last_used_at=now,
            user_agent=client.user_agent,
            ip=client.ip,
        ),
    )
    refresh_token = new_opaque_token(REFRESH_TOKEN_PREFIX)
    await repository.add_refresh_token(
        db,
        RefreshToken(
            session_id=session.id,
            token_hash=sha256_hex(refresh_token),
            issued_at=now,
            user_agent=client.user_agent,
            ip=client.ip,
        ),
    )
    log.info("session_started", user_id=str(user.id), session_id=str(session.id), ip=client.ip)
    await activity.record(
        db,
        user.id,
        ActivityKind.SIGNED_IN,
        client=client,
        details={"session_id": str(session.id), "organization_id": str(organization.id)},
    )
    target = ("session", session.id)
    await audit.record(
        db, organization.id, "auth.signed_in", actor=Actor(user_id=user.id), client=client, target=target
    )
    sign_in = _sign_in(auth, user, organization, role, session, refresh_token, now)
    # Every session starts from a proved password (sign-up, login, sign-up by invitation): a fresh
    # device token, so each success also gives the device a new failure counter.
    return replace(sign_in, device_token=auth.device_token(user, now))


def _sign_in(
    auth: AuthComponents,
    user: User,
    organization: Organization,
    role: Role,
    session: AuthSession,
    refresh_token: str,
    now: datetime,
) -> SignIn:
    idle_deadline = session.last_used_at + timedelta(days=auth.settings.REFRESH_TOKEN_IDLE_DAYS)
    refresh_deadline = min(session.expires_at, idle_deadline)
    access_token = auth.access_tokens.encode(
        user_id=user.id, session_id=session.id, organization_id=organization.id, role=role.value
    )
    return SignIn(
        user=user,
        organization=organization,
        role=role,
        session_id=session.id,
        access_token=access_token,
        expires_in=auth.access_tokens.ttl_seconds,
        refresh_token=refresh_token,
        refresh_expires_in=max(0, int((refresh_deadline - now).total_seconds())),
        csrf_token=auth.csrf_token(session.id),
    )


async def accept_invitation_by_signing_up(
    db: AsyncSession, auth: AuthComponents, token: str, password: str, full_name: str | None, client: Client
) -> SignIn:
    """Accept an invitation without an account: create it with `password` (its address is verified: the
    link reached it), make them a member, and sign them in to the organization."""
    invitation = await organizations.open_invitation(db, token)
    if await users.user_by_email(db, invitation.email_normalized) is not None:
        raise errors.account_exists()
    password = normalize_password(password)
    check_password(password, email=invitation.email)
    password_hash = await auth.passwords.hash(password)
    try:
        async with db.begin_nested():  # another invitation to the same address, accepted at once
            user = await users.add_user(
                db,
                User(
                    id=uuid.uuid4(),
                    email=invitation.email,
                    email_normalized=invitation.email_normalized,
                    password_hash=password_hash,
                    full_name=full_name,
                    email_verified_at=datetime.now(UTC),
                ),
            )
    except IntegrityError:
        raise errors.account_exists() from None
    organization, role = await organizations.accept_invitation(db, invitation, user, client)
    return await start_session(db, auth, user, organization, role, client)
