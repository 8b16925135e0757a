"""The AI's settings and drafts for agents (decision 0055). Never commits.

Settings: `offline` (the default) or an OpenAI-compatible chat provider. The key is sealed, bound to
the organization, write-only; a new base URL without a key drops the old key (a key is never sent to a
host it was not given for).

Drafts: a reply suggested to an agent, never sent by itself. It is written from the conversation and
the organization's published knowledge, internal articles included (an agent reads it before it is
sent; auto-answers, which nobody reads first, use public knowledge only), with the provider when there
is one and it can be used, else offline (`degraded`: why). Sending it, edited or not, posts the agent's
message marked as AI-assisted; its outcome (sent unchanged, edited, discarded) is kept.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aisupport.access.principal import Principal
from aisupport.ai import answering, errors, metrics, signals
from aisupport.ai import repository as repo
from aisupport.ai.answering import Ask, Unavailable
from aisupport.ai.citations import normalised
from aisupport.ai.compose import Reply, extractive
from aisupport.ai.models import AiConversation, AiDraft, AiSettings
from aisupport.audit import service as audit
from aisupport.contacts import service as contacts
from aisupport.conversations import conversation_service as conversations
from aisupport.conversations.models import Message
from aisupport.core.client import Client
from aisupport.core.config import Settings
from aisupport.core.metrics import AI_DRAFT_OUTCOMES
from aisupport.core.outbound import TargetRefused, check_url
from aisupport.core.sealing import seal


async def configure(
    db: AsyncSession,
    settings: Settings,
    principal: Principal,
    fields: dict[str, Any],
    *,
    if_match: int | None,
    client: Client,
) -> AiSettings:
    """Replace the organization's AI settings (`api_key` left out: kept, unless the base URL changes)."""
    organization_id = principal.organization_id
    if fields["provider"] == "openai":
        try:
            check_url(
                httpx.URL(fields["base_url"]), allow_private=settings.AI_PROVIDERS_ALLOW_PRIVATE_NETWORKS
            )
        except (TargetRefused, httpx.InvalidURL) as refused:
            raise errors.provider_refused(str(refused)) from None
    current = await repo.settings_of(db, organization_id, lock=True)
    if if_match is not None and (current.version if current is not None else 0) != if_match:
        raise errors.settings_changed()
    creating = current is None
    ai = current if current is not None else repo.default_settings(organization_id)
    key_given = "api_key" in fields
    api_key = fields.pop("api_key", None)
    moved = ai.base_url != fields.get("base_url")
    for name, value in fields.items():
        setattr(ai, name, value)
    if key_given:
        ai.api_key_sealed = (
            None
            if api_key is None
            else seal(settings, api_key, purpose=answering.SEALED_FOR, bound_to=organization_id.bytes)
        )
    elif moved:
        ai.api_key_sealed = None
    if ai.provider == "offline":
        ai.api_key_sealed = None
    ai.version += 1
    ai.updated_at = datetime.now(UTC)
    if creating:
        try:
            async with db.begin_nested():
                db.add(ai)
                await db.flush()
        except IntegrityError:  # another first configuration at the same moment
            raise errors.settings_changed() from None
    await db.flush()
    await audit.record(
        db,
        organization_id,
        "ai_settings.updated",
        actor=principal.actor,
        client=client,
        target=("organization", organization_id),
        details={"provider": ai.provider, "base_url": ai.base_url, "model": ai.model, "version": ai.version},
    )
    return ai


async def ai_settings(db: AsyncSession, principal: Principal) -> AiSettings:
    return await repo.effective_settings(db, principal.organization_id)


# The AI's copies of an erased contact's words go with them (contacts.on_erase: same transaction).
contacts.on_erase(repo.forget_contact)


# --- Drafts --------------------------------------------------------------------------------------------


async def ask_of(
    db: AsyncSession, organization_id: uuid.UUID, conversation_id: uuid.UUID, *, customer_facing: bool
) -> Ask:
    """The conversation's last customer words, to be answered (422 if the customer has said nothing)."""
    turns = await repo.turns(db, organization_id, conversation_id)
    question = next((turn.text for turn in reversed(turns) if turn.role == "customer"), None)
    if question is None:
        raise errors.nothing_to_answer()
    language = signals.language(question)
    return Ask(
        organization_id,
        conversation_id,
        turns,
        question,
        language.value if language.confidence >= 0.5 else "",
        customer_facing,
    )


async def write_draft(
    db: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    organization_id: uuid.UUID,
    conversation_id: uuid.UUID,
) -> AiDraft:
    """A draft reply for the conversation's agents (not sent)."""
    ai = await repo.effective_settings(db, organization_id)
    ask = await ask_of(db, organization_id, conversation_id, customer_facing=False)
    passages = await answering.retrieve(db, settings, ask)
    degraded = None
    try:
        reply = await answering.write(db, sessions, settings, ai, ask, passages, "draft")
    except Unavailable as unavailable:
        degraded = unavailable.reason
        reply = extractive(ask.question, passages)
    if not reply.text:
        degraded = degraded or "no_knowledge"
    draft = AiDraft(
        id=uuid.uuid4(),
        organization_id=organization_id,
        conversation_id=conversation_id,
        body=reply.text,
        citations=[citation.shown() for citation in reply.citations],
        invalid_citations=reply.invalid_citations,
        retrieved=[
            {"chunk_id": str(p.chunk_id), "source_id": str(p.source_id), "title": p.title, "score": p.score}
            for p in passages
        ],
        confidence=reply.confidence,
        method=reply.method,
        model=reply.model,
        tokens_in=reply.tokens_in,
        tokens_out=reply.tokens_out,
        cost=reply.cost,
        latency_ms=reply.latency_ms,
        degraded=degraded,
        status="ready",
        created_at=datetime.now(UTC),
    )
    db.add(draft)
    await db.flush()
    metrics.observe_reply("draft", reply)
    return draft


async def create_draft(
    db: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    principal: Principal,
    conversation_id: uuid.UUID,
) -> AiDraft:
    await conversations.get_conversation(db, principal, conversation_id)  # 404 if not of the organization
    return await write_draft(db, sessions, settings, principal.organization_id, conversation_id)


async def get_draft(
    db: AsyncSession, principal: Principal, conversation_id: uuid.UUID, draft_id: uuid.UUID
) -> AiDraft:
    draft = await repo.draft(db, principal.organization_id, draft_id)
    if draft is None or draft.conversation_id != conversation_id:
        raise errors.draft_not_found()
    return draft


async def _undecided(
    db: AsyncSession, principal: Principal, conversation_id: uuid.UUID, draft_id: uuid.UUID
) -> AiDraft:
    draft = await repo.draft(db, principal.organization_id, draft_id, lock=True)
    if draft is None or draft.conversation_id != conversation_id:
        raise errors.draft_not_found()
    if draft.status != "ready":
        raise errors.draft_decided(draft.status)
    return draft


async def send_draft(
    db: AsyncSession, principal: Principal, conversation_id: uuid.UUID, draft_id: uuid.UUID, body: str | None
) -> tuple[AiDraft, Message]:
    """Send the draft as the caller's outgoing message, as it is or as `body` (edited); 409 if it was
    sent or discarded already (two agents sending it at once: one message)."""
    draft = await _undecided(db, principal, conversation_id, draft_id)
    text = draft.body if body is None else body
    if not text.strip():
        raise errors.nothing_to_answer()
    edited = normalised(text) != normalised(draft.body)
    kept = [
        citation
        for citation in draft.citations
        if not edited or normalised(citation["quote"]) in normalised(text)
    ]
    message, _ = await conversations.post_message(
        db,
        principal,
        conversation_id,
        "outgoing",
        text,
        ai={"draft_id": str(draft.id), "edited": edited, "citations": kept},
    )
    draft.status = "sent"
    draft.outcome = "edited" if edited else "unchanged"
    draft.message_id = message.id
    draft.decided_at = datetime.now(UTC)
    await db.flush()
    AI_DRAFT_OUTCOMES.labels(draft.outcome).inc()
    return draft, message


async def discard_draft(
    db: AsyncSession, principal: Principal, conversation_id: uuid.UUID, draft_id: uuid.UUID
) -> AiDraft:
    draft = await _undecided(db, principal, conversation_id, draft_id)
    draft.status = "discarded"
    draft.outcome = "discarded"
    draft.decided_at = datetime.now(UTC)
    await db.flush()
    AI_DRAFT_OUTCOMES.labels("discarded").inc()
    return draft


# --- The AI in a conversation --------------------------------------------------------------------------


async def conversation_ai(
    db: AsyncSession, principal: Principal, conversation_id: uuid.UUID
) -> AiConversation:
    await conversations.get_conversation(db, principal, conversation_id)
    state = await repo.find_state(db, principal.organization_id, conversation_id)
    return state or AiConversation(
        organization_id=principal.organization_id, conversation_id=conversation_id, silenced=False, replies=0
    )


async def set_silenced(
    db: AsyncSession, principal: Principal, conversation_id: uuid.UUID, silenced: bool
) -> AiConversation:
    """Silence the AI in a conversation, or let it answer again after a hand-off (its reply count starts
    again); an activity message says who did."""
    conversation = await conversations.get_conversation(db, principal, conversation_id)
    state = await repo.conversation_state(db, principal.organization_id, conversation_id, lock=True)
    if state.silenced != silenced:
        state.silenced = silenced
        if not silenced:
            state.replies = 0
        state.updated_at = datetime.now(UTC)
        await conversations.record_activity(
            db, principal, conversation, "silenced the AI" if silenced else "turned the AI back on"
        )
        await db.flush()
    return state


def reply_json(reply: Reply) -> dict[str, Any]:
    return {"citations": [citation.shown() for citation in reply.citations], "confidence": reply.confidence}
