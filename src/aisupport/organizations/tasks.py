"""Jobs of the organizations domain: invitation emails."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from procrastinate import JobContext

from aisupport.accounts.models import User
from aisupport.core.jobs import RETRY, jobs, services_of
from aisupport.core.security import new_opaque_token, sha256_hex
from aisupport.core.tenancy import tenant_session
from aisupport.mail.delivery import already_sent, send_once
from aisupport.mail.mailer import Templates
from aisupport.organizations import repository
from aisupport.organizations.service import INVITATION_TTL

TEMPLATES = "aisupport.organizations"  # organizations/templates/email/
INVITATION_TOKEN_PREFIX = "inv"


@jobs.task(name="organizations:send_invitation", retry=RETRY, pass_context=True)
async def send_invitation(context: JobContext, organization_id: str, invitation_id: str) -> None:
    """Mail the invitation link; the secret is made here and only its hash kept."""
    services = services_of(context)
    settings = services.settings
    async with tenant_session(services.sessionmaker, organization_id=uuid.UUID(organization_id)) as db:
        invitation = await repository.invitation(db, uuid.UUID(organization_id), uuid.UUID(invitation_id))
        organization = await repository.organization(db, uuid.UUID(organization_id))
        if invitation is None or organization is None or await already_sent(db, context):
            return
        if invitation.accepted_at or invitation.revoked_at or invitation.expires_at <= datetime.now(UTC):
            return
        inviter = await db.get(User, invitation.invited_by) if invitation.invited_by else None
        token = new_opaque_token(INVITATION_TOKEN_PREFIX)
        invitation.token_hash = sha256_hex(token)
        message = Templates(settings, TEMPLATES).message(
            "invitation",
            to=invitation.email,
            email=invitation.email,
            organization=organization.name,
            inviter=(inviter.full_name or inviter.email) if inviter else organization.name,
            role=invitation.role,
            days=INVITATION_TTL.days,
            link=f"{settings.PUBLIC_APP_URL}/accept-invitation?token={token}",
        )
        await send_once(db, context, message, secret=token)
