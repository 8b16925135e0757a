"""Business rules of the account's life after sign-up: verifying the address, resetting and changing
the password, changing the address, and the user's sessions. Never commits; mail goes out through jobs
deferred in the request's transaction."""

from __future__ import annotations

import hmac
import uuid
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.access.cache import evict_after_commit
from aisupport.access.errors import invalid_access_token
from aisupport.accounts import repository as users
from aisupport.accounts.models import User
from aisupport.accounts.password_policy import check_password, normalize_password
from aisupport.accounts.service import normalize_email
from aisupport.audit.service import Actor
from aisupport.auth import activity, errors, repository
from aisupport.auth.models import AccountActivity, AccountToken, ActivityKind, AuthSession, TokenPurpose
from aisupport.auth.service import AuthComponents, link_binding, record_in_organizations, send_verification
from aisupport.core.client import Client
from aisupport.core.db import release_connection
from aisupport.core.jobs import defer
from aisupport.core.ratelimit import limit_key
from aisupport.core.security import sha256_hex

log = structlog.get_logger("aisupport.auth")

ADDRESS_PURPOSES = (TokenPurpose.VERIFY_EMAIL.value, TokenPurpose.CHANGE_EMAIL.value)


async def resend_verification(db: AsyncSession, auth: AuthComponents, user_id: uuid.UUID) -> None:
    """Queue a new verification email for the signed-in user, unless the address is already verified."""
    await auth.rate_limiter.hit(auth.settings.rate_limits["email_account"], "email-account", str(user_id))
    user = await _active_user(db, user_id)
    if user.email_verified:
        raise errors.email_already_verified()
    await send_verification(db, user)


async def request_verification(db: AsyncSession, auth: AuthComponents, email: str, client: Client) -> None:
    """Queue a new verification link for an account that has this address and is not verified yet.
    The same work and answer whatever the address: the lookup happens in the job."""
    email_normalized = normalize_email(email)
    limits = auth.settings.rate_limits
    await auth.rate_limiter.hit(limits["forgot_ip"], "verify-request-ip", client.ip or "unknown")
    await auth.rate_limiter.hit(limits["email_account"], "email-account", limit_key(email_normalized))
    await defer(db, "auth:send_verification_by_address", email_normalized=email_normalized)


async def confirm_email(db: AsyncSession, auth: AuthComponents, token: str, client: Client) -> User:
    """Use a verification link: mark the address verified, or apply a requested address change."""
    await auth.rate_limiter.hit(
        auth.settings.rate_limits["account_token_ip"], "account-token-ip", client.ip or "unknown"
    )
    now = datetime.now(UTC)
    found, user = await _use_link(db, token, ADDRESS_PURPOSES, now)
    evict_after_commit(db, users=[user.id])  # the address, or its verification, is in their profile
    if found.purpose == TokenPurpose.VERIFY_EMAIL:
        if not user.email_verified:
            user.email_verified_at = now
            await activity.record(
                db, user.id, ActivityKind.EMAIL_VERIFIED, client=client, details={"email": user.email}
            )
            log.info("email_verified", user_id=str(user.id))
        return user
    old_email, new_email = user.email, found.email
    taken = await users.user_by_email(db, normalize_email(new_email))
    if taken is not None and taken.id != user.id:
        raise errors.email_taken()
    user.email, user.email_normalized, user.email_verified_at = new_email, normalize_email(new_email), now
    await _end_links(db, user, now)  # those sent for the old address, and other requested changes
    details = {"old_email": old_email, "new_email": new_email}
    await activity.record(db, user.id, ActivityKind.EMAIL_CHANGED, client=client, details=details)
    actor = Actor(user_id=user.id)
    await record_in_organizations(
        db, user.id, "auth.email_changed", actor=actor, client=client, details=details
    )
    await defer(
        db,
        "auth:send_notice",
        to=old_email,
        template="email_changed",
        values={"name": user.full_name, "email": old_email, "new_email": new_email},
    )
    log.info("email_changed", user_id=str(user.id))
    return user


async def forgot_password(db: AsyncSession, auth: AuthComponents, email: str, client: Client) -> None:
    """Queue a reset email. The same work and answer whether or not the account exists: the lookup
    happens in the job."""
    email_normalized = normalize_email(email)
    limits = auth.settings.rate_limits
    await auth.rate_limiter.hit(limits["forgot_ip"], "forgot-ip", client.ip or "unknown")
    await auth.rate_limiter.hit(limits["email_account"], "email-account", limit_key(email_normalized))
    await defer(db, "auth:send_password_reset", email_normalized=email_normalized)


async def reset_password(
    db: AsyncSession, auth: AuthComponents, token: str, new_password: str, client: Client
) -> None:
    """Use a reset link: set the new password, sign out every session, tell the user."""
    await auth.rate_limiter.hit(
        auth.settings.rate_limits["account_token_ip"], "account-token-ip", client.ip or "unknown"
    )
    password = normalize_password(new_password)
    now = datetime.now(UTC)
    _, user = await _use_link(db, token, (TokenPurpose.RESET_PASSWORD.value,), now)
    check_password(password, email=user.email)
    # The link reached the account's address and was used: the address is proven, as a verification
    # link would prove it (and someone who registered it first loses the password they chose).
    if not user.email_verified:
        user.email_verified_at = now
        await activity.record(
            db, user.id, ActivityKind.EMAIL_VERIFIED, client=client, details={"email": user.email}
        )
    await _set_password(db, auth, user, password, now, keep_session=None, client=client)


async def change_password(
    db: AsyncSession,
    auth: AuthComponents,
    user_id: uuid.UUID,
    session_id: uuid.UUID | None,
    current_password: str,
    new_password: str,
    client: Client,
) -> None:
    """Change the password of the signed-in user; every other session is signed out."""
    await auth.rate_limiter.hit(auth.settings.rate_limits["login_account"], "password-account", str(user_id))
    user = await _active_user(db, user_id)
    await _check_current_password(db, auth, user, current_password)
    password = normalize_password(new_password)
    check_password(password, email=user.email)
    await _set_password(db, auth, user, password, datetime.now(UTC), keep_session=session_id, client=client)


async def change_email(
    db: AsyncSession,
    auth: AuthComponents,
    user_id: uuid.UUID,
    new_email: str,
    current_password: str,
    client: Client,
) -> None:
    """Queue a confirmation to the new address; the change applies when its link is used."""
    await auth.rate_limiter.hit(auth.settings.rate_limits["email_account"], "email-account", str(user_id))
    user = await _active_user(db, user_id)
    binding = link_binding(user)  # the account as the password's holder saw it
    await _check_current_password(db, auth, user, current_password)
    if normalize_email(new_email) == user.email_normalized:
        raise errors.email_unchanged()
    await activity.record(
        db, user.id, ActivityKind.EMAIL_CHANGE_REQUESTED, client=client, details={"new_email": new_email}
    )
    # A taken address gets the same answer and no email, so this cannot probe for accounts.
    if await users.user_by_email(db, normalize_email(new_email)) is None:
        await defer(
            db,
            "auth:send_email_verification",
            user_id=str(user.id),
            email=new_email,
            purpose=TokenPurpose.CHANGE_EMAIL.value,
            binding=binding,
        )


async def live_sessions(
    db: AsyncSession,
    auth: AuthComponents,
    user_id: uuid.UUID,
    *,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[AuthSession]:
    """A page of the user's sessions that can still refresh, newest sign-in first."""
    idle_since = datetime.now(UTC) - timedelta(days=auth.settings.REFRESH_TOKEN_IDLE_DAYS)
    return await repository.live_sessions_of_user(
        db, user_id, idle_since=idle_since, before=before, limit=limit
    )


async def revoke_session(
    db: AsyncSession, auth: AuthComponents, user_id: uuid.UUID, session_id: uuid.UUID, client: Client
) -> None:
    """Sign out one of the user's own sessions; another user's (or an unknown) session is 404."""
    if await repository.session_of_user(db, session_id, user_id) is None:
        raise errors.session_not_found()
    if await repository.revoke_session(db, session_id, reason="revoked_by_user", now=datetime.now(UTC)):
        log.info("session_revoked", session_id=str(session_id), reason="revoked_by_user")
        details = {"session_id": str(session_id)}
        await activity.record(db, user_id, ActivityKind.SESSION_REVOKED, client=client, details=details)
    evict_after_commit(db, sessions=[session_id])


async def logout_all(db: AsyncSession, auth: AuthComponents, user_id: uuid.UUID, client: Client) -> None:
    """Sign out every session of the user, the current one included, and end every emailed link."""
    now = datetime.now(UTC)
    user = await users.lock_user(db, user_id)
    if user is None or not user.is_active:
        raise invalid_access_token()
    await _end_links(db, user, now)
    revoked = await repository.revoke_sessions_of_user(db, user_id, reason="logout_all", now=now)
    evict_after_commit(db, sessions=revoked, users=[user_id])
    details = {"sessions_revoked": len(revoked)}
    await activity.record(db, user_id, ActivityKind.SIGNED_OUT_EVERYWHERE, client=client, details=details)
    log.info("sessions_revoked", user_id=str(user_id), reason="logout_all", count=len(revoked))


async def activity_list(
    db: AsyncSession, user_id: uuid.UUID, *, before_id: int | None, limit: int
) -> list[AccountActivity]:
    """The signed-in user's account activity, newest first."""
    return await activity.of_user(db, user_id, before_id=before_id, limit=limit)


async def _use_link(
    db: AsyncSession, token: str, purposes: tuple[str, ...], now: datetime
) -> tuple[AccountToken, User]:
    """Spend an emailed link, if it is unused, unexpired, not revoked, and the account is still as it
    was when the link was asked for (same password, address and security stamp)."""
    token_hash = sha256_hex(token)
    # The account's row first, then the link's: every change of the account takes them in this order.
    owner = await repository.owner_of_account_token(db, token_hash)
    user = await users.lock_user(db, owner) if owner else None
    found = await repository.use_account_token(db, token_hash, purposes, now) if user else None
    if found is None or user is None or not user.is_active:
        raise errors.invalid_account_link()
    if not hmac.compare_digest(found.binding, link_binding(user)):
        raise errors.invalid_account_link()
    return found, user


async def _end_links(db: AsyncSession, user: User, now: datetime) -> None:
    """Kill every unused emailed link of the user, and any still waiting in the mail queue."""
    user.security_stamp = uuid.uuid4()
    await db.flush()  # the account's row before its links' and sessions' rows, as everywhere else
    await repository.revoke_account_tokens(db, user.id, now)


async def _active_user(db: AsyncSession, user_id: uuid.UUID) -> User:
    user = await users.user_by_id(db, user_id)
    if user is None or not user.is_active:
        raise invalid_access_token()
    return user


async def _check_current_password(db: AsyncSession, auth: AuthComponents, user: User, password: str) -> None:
    await release_connection(db)
    valid, _ = await auth.passwords.verify(normalize_password(password), user.password_hash)
    if not valid:
        raise errors.invalid_current_password()


async def _set_password(
    db: AsyncSession,
    auth: AuthComponents,
    user: User,
    password: str,
    now: datetime,
    *,
    keep_session: uuid.UUID | None,
    client: Client,
) -> None:
    user.password_hash = await auth.passwords.hash(password)
    await _end_links(db, user, now)  # writes the account's row first (lock order: account, links, sessions)
    reason = "password_changed" if keep_session else "password_reset"
    revoked = await repository.revoke_sessions_of_user(db, user.id, reason=reason, now=now, keep=keep_session)
    evict_after_commit(db, sessions=revoked, users=[user.id])
    kind = ActivityKind.PASSWORD_CHANGED if keep_session else ActivityKind.PASSWORD_RESET
    await activity.record(db, user.id, kind, client=client, details={"sessions_revoked": len(revoked)})
    await defer(
        db,
        "auth:send_notice",
        to=user.email,
        template="password_changed",
        values={"name": user.full_name, "email": user.email, "signed_out_everywhere": keep_session is None},
    )
    log.info(reason, user_id=str(user.id), sessions_revoked=len(revoked))
