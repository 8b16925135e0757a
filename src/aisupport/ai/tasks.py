"""Jobs of the AI: its turn on a customer's message, training the category classifier, a summary on
resolve, budget alerts by mail, and evaluations asked for through the API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import structlog
from procrastinate import JobContext
from sqlalchemy import select

from aisupport.accounts.models import User
from aisupport.ai import auto, evaluation, summaries, triage
from aisupport.ai import repository as repo
from aisupport.ai.budget import ALERT_TASK
from aisupport.ai.models import AiClassifier
from aisupport.core.db import scoped
from aisupport.core.jobs import RETRY, jobs, services_of
from aisupport.core.tenancy import tenant_session
from aisupport.mail.delivery import already_sent, send_once
from aisupport.mail.mailer import Templates
from aisupport.organizations import repository as organizations
from aisupport.organizations.models import Membership

log = structlog.get_logger("aisupport.ai")

TEMPLATES = "aisupport.ai"  # ai/templates/email/
RETRAIN_AFTER = timedelta(hours=1)  # conversations tagged since may have taught it new phrasings


@jobs.task(name="ai:respond", retry=RETRY, pass_context=True)
async def respond(context: JobContext, organization_id: str, conversation_id: str, message_id: str) -> None:
    """The AI's turn on a customer's message (ai/auto.py), one at a time per conversation."""
    services = services_of(context)
    organization = uuid.UUID(organization_id)
    async with tenant_session(services.sessionmaker, organization_id=organization) as db:
        decision = await auto.respond(
            db,
            services.sessionmaker,
            services.settings,
            organization,
            uuid.UUID(conversation_id),
            uuid.UUID(message_id),
        )
        trained = await db.scalar(scoped(select(AiClassifier.trained_at), AiClassifier, organization))
        if trained is not None and trained < datetime.now(UTC) - RETRAIN_AFTER:
            await triage.queue_training(db, organization)
    if decision is not None:
        log.info("ai_turn", answered=decision.answered, reason=decision.reason)


@jobs.task(name=triage.TRAIN_TASK, retry=RETRY, pass_context=True)
async def train(context: JobContext, organization_id: str) -> None:
    services = services_of(context)
    organization = uuid.UUID(organization_id)
    async with tenant_session(services.sessionmaker, organization_id=organization) as db:
        trained = await triage.train(db, organization)
    log.info("ai_classifier_trained", examples=trained.examples if trained else 0)


@jobs.task(name="ai:summarize", retry=RETRY, pass_context=True)
async def summarize(context: JobContext, organization_id: str, conversation_id: str) -> None:
    """A resolved conversation's summary (in an inbox whose AI is on)."""
    services = services_of(context)
    organization = uuid.UUID(organization_id)
    async with tenant_session(services.sessionmaker, organization_id=organization) as db:
        ai = await repo.effective_settings(db, organization)
        state = await repo.conversation_state(db, organization, uuid.UUID(conversation_id), lock=True)
        await summaries.summarize(
            db, services.sessionmaker, services.settings, ai, state, state.conversation_id
        )


@jobs.task(name=ALERT_TASK, retry=RETRY, pass_context=True)
async def budget_alert(context: JobContext, organization_id: str, percent: int, month: str) -> None:
    """Mail the organization's owners and admins that its AI reached `percent`% of this month's budget."""
    services = services_of(context)
    settings = services.settings
    organization_uuid = uuid.UUID(organization_id)
    async with tenant_session(services.sessionmaker, organization_id=organization_uuid) as db:
        if await already_sent(db, context):
            return
        organization = await organizations.organization(db, organization_uuid)
        if organization is None:
            return
        emails = (
            await db.scalars(
                scoped(
                    select(User.email).join(Membership, Membership.user_id == User.id),
                    Membership,
                    organization_uuid,
                )
                .where(Membership.role.in_(("owner", "admin")))
                .order_by(User.email)
            )
        ).all()
        if not emails:
            return
        message = Templates(settings, TEMPLATES).message(
            "budget", to=", ".join(emails), organization=organization.name, percent=percent, month=month
        )
        await send_once(db, context, message)


@jobs.task(name=evaluation.EVALUATE_TASK, retry=RETRY, pass_context=True)
async def evaluate(context: JobContext, organization_id: str, evaluation_id: str) -> None:
    """An evaluation asked for through the API, on the organization's own labelled set."""
    services = services_of(context)
    await evaluation.run_requested(
        services.sessionmaker, services.settings, uuid.UUID(organization_id), uuid.UUID(evaluation_id)
    )
