"""Jobs of the auth domain: account emails and the purge of expired sessions and tokens.

The secret links are created here, in the job, not in the request: the job's arguments (stored in the
queue table) never hold a token, and the token row is committed only once its email went out. A link
asked for by a signed-in user carries the binding of the account as the request saw it: if the password,
the address or the security stamp changed while the job waited, no link is made.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from procrastinate import JobContext
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.accounts import repository as users
from aisupport.accounts.models import User
from aisupport.auth import repository
from aisupport.auth.models import AccountToken, TokenPurpose
from aisupport.auth.service import link_binding
from aisupport.core.jobs import RETRY, jobs, services_of
from aisupport.core.security import new_opaque_token, sha256_hex
from aisupport.mail.delivery import EmailDelivery, already_sent, send_once
from aisupport.mail.mailer import Templates

log = structlog.get_logger("aisupport.auth")

TOKEN_PREFIXES = {
    TokenPurpose.VERIFY_EMAIL: "ev",
    TokenPurpose.CHANGE_EMAIL: "ce",
    TokenPurpose.RESET_PASSWORD: "pr",
}
TEMPLATES = "aisupport.auth"  # auth/templates/email/
RESET_TEMPLATES = ("password_reset", "finish_signup")
RETENTION = timedelta(days=7)  # ended sessions and used tokens stay this long for support questions
ACTIVITY_RETENTION = timedelta(days=365)  # the user's account activity list


@jobs.task(name="auth:send_email_verification", retry=RETRY, pass_context=True)
async def send_email_verification(
    context: JobContext, user_id: str, email: str, purpose: str, binding: str | None = None
) -> None:
    """Mail a link that confirms `email` (the account's address, or the new one it asked for), if the
    account is still as it was when the link was asked for (`binding`)."""
    services = services_of(context)
    async with services.sessionmaker() as db:
        user = await users.user_by_id(db, uuid.UUID(user_id))
        if user is None or not user.is_active or await already_sent(db, context):
            return
        if binding is None or binding != link_binding(user):
            return  # password, address or stamp changed (or a job queued before links were bound)
        if purpose == TokenPurpose.VERIFY_EMAIL and (user.email_verified or user.email != email):
            return  # verified meanwhile, or the address changed: this link would be useless
        await _mail_address_link(context, db, user, TokenPurpose(purpose), email)


@jobs.task(name="auth:send_verification_by_address", retry=RETRY, pass_context=True)
async def send_verification_by_address(context: JobContext, email_normalized: str) -> None:
    """Mail a new verification link if an active, unverified account has this address; else nothing."""
    services = services_of(context)
    async with services.sessionmaker() as db:
        user = await users.user_by_email(db, email_normalized)
        if user is None or not user.is_active or user.email_verified or await already_sent(db, context):
            return
        await _mail_address_link(context, db, user, TokenPurpose.VERIFY_EMAIL, user.email)


async def _mail_address_link(
    context: JobContext, db: AsyncSession, user: User, purpose: TokenPurpose, email: str
) -> None:
    services = services_of(context)
    settings = services.settings
    hours = settings.EMAIL_VERIFICATION_TTL_HOURS
    token = await _issue(db, user, purpose, email, timedelta(hours=hours))
    page = "verify-email" if purpose == TokenPurpose.VERIFY_EMAIL else "confirm-email-change"
    message = Templates(settings, TEMPLATES).message(
        purpose,
        to=email,
        name=user.full_name,
        email=email,
        hours=hours,
        link=f"{settings.PUBLIC_APP_URL}/{page}?token={token}",
    )
    await send_once(db, context, message, secret=token)
    await db.commit()


@jobs.task(name="auth:send_password_reset", retry=RETRY, pass_context=True)
async def send_password_reset(
    context: JobContext, email_normalized: str, template: str = "password_reset"
) -> None:
    """Mail a reset link if an active account has this address; otherwise do nothing. `finish_signup`
    words it for an account whose address was never confirmed (sign-up again with a taken address)."""
    services = services_of(context)
    settings = services.settings
    async with services.sessionmaker() as db:
        user = await users.user_by_email(db, email_normalized)
        if user is None or not user.is_active or await already_sent(db, context):
            return
        if template not in RESET_TEMPLATES:
            raise ValueError(f"unknown reset template {template!r}")
        minutes = settings.PASSWORD_RESET_TTL_MINUTES
        token = await _issue(db, user, TokenPurpose.RESET_PASSWORD, user.email, timedelta(minutes=minutes))
        message = Templates(settings, TEMPLATES).message(
            template,
            to=user.email,
            name=user.full_name,
            email=user.email,
            minutes=minutes,
            link=f"{settings.PUBLIC_APP_URL}/reset-password?token={token}",
        )
        await send_once(db, context, message, secret=token)
        await db.commit()


@jobs.task(name="auth:send_notice", retry=RETRY, pass_context=True)
async def send_notice(context: JobContext, to: str, template: str, values: dict[str, Any]) -> None:
    """Mail an informational message (password changed, address changed, sign-up attempt)."""
    services = services_of(context)
    async with services.sessionmaker() as db:
        if await already_sent(db, context):
            return
        message = Templates(services.settings, TEMPLATES).message(template, to=to, **values)
        await send_once(db, context, message)
        await db.commit()


@jobs.periodic(cron="17 * * * *", periodic_id="purge-expired")
@jobs.task(name="auth:purge_expired", queueing_lock="auth:purge_expired", pass_context=True)
async def purge_expired(context: JobContext, timestamp: int) -> None:
    """Hourly: delete sessions, refresh tokens and account tokens that ended over a week ago, and
    account activity older than a year."""
    services = services_of(context)
    now = datetime.now(UTC)
    idle = timedelta(days=services.settings.REFRESH_TOKEN_IDLE_DAYS)
    async with services.sessionmaker() as db:
        await db.execute(delete(EmailDelivery).where(EmailDelivery.sent_at < now - RETENTION))
        sessions, tokens = await repository.purge_expired(
            db, before=now - RETENTION, idle_before=now - idle - RETENTION
        )
        activity = await repository.purge_activity(db, before=now - ACTIVITY_RETENTION)
        await db.commit()
    await context.app.job_manager.delete_old_jobs(nb_hours=int(RETENTION.total_seconds() // 3600))
    log.info("purged_expired", sessions=sessions, account_tokens=tokens, account_activity=activity)


async def _issue(db: AsyncSession, user: User, purpose: TokenPurpose, email: str, ttl: timedelta) -> str:
    token = new_opaque_token(TOKEN_PREFIXES[purpose])
    await repository.add_account_token(
        db,
        AccountToken(
            user_id=user.id,
            purpose=purpose.value,
            token_hash=sha256_hex(token),
            email=email,
            binding=link_binding(user),
            expires_at=datetime.now(UTC) + ttl,
        ),
    )
    return token
