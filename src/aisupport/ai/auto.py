"""The AI's turn on a customer's message (the `ai:respond` job; decision 0055).

In a `draft` inbox it prepares a draft for the agents. In an `auto` inbox it answers, or hands off to a
person with one reason:

1. `customer_requested_human`: the customer asks for a person, in any words (signals.asks_for_person);
2. `sensitive_topic`: the message touches one of the organization's sensitive topics;
3. `max_ai_replies`: the AI has answered the inbox's most in this conversation;
4. `no_knowledge`: nothing published and public was found for it;
5. `budget_exhausted` / `provider_error`: the provider cannot be used;
6. `low_confidence`: the reply's confidence is below the inbox's threshold, or no citation held.

A hand-off silences the AI in the conversation until a member turns it back on, writes an activity
message with the reason, emits `ai.handoff`, offers the conversation to the inbox's auto-assignment
and stores a summary for the person taking over. The first customer message of a conversation is also
triaged (ai/triage.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aisupport.access.principal import Principal
from aisupport.ai import answering, service, summaries, triage
from aisupport.ai import repository as repo
from aisupport.ai.answering import Ask, Unavailable
from aisupport.ai.compose import Reply
from aisupport.ai.intents import sentence_encoder
from aisupport.ai.metrics import observe_reply
from aisupport.ai.models import AiConversation, AiDecision, AiSettings
from aisupport.ai.signals import asks_for_person, sensitive_topic
from aisupport.conversations import assignment, published
from aisupport.conversations import conversation_repository as conversation_repo
from aisupport.conversations import conversation_service as conversations
from aisupport.conversations.models import Conversation, Inbox
from aisupport.core.config import Settings
from aisupport.core.metrics import AI_AUTO_OUTCOMES
from aisupport.knowledge import service as knowledge

NO_KNOWLEDGE_BELOW = 0.05  # a best passage scoring less shares next to nothing with the message


@dataclass(frozen=True)
class Decision:
    answered: bool
    reason: str | None = None  # the hand-off's
    detail: str | None = None
    confidence: float | None = None


async def respond(
    db: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    organization_id: uuid.UUID,
    conversation_id: uuid.UUID,
    message_id: uuid.UUID,
) -> Decision | None:
    """The AI's turn on one customer message (None: nothing to do: the inbox's AI is off, the AI is
    silenced here, or the message is not the customer's)."""
    message = await repo.message(db, organization_id, message_id)
    conversation = await conversation_repo.conversation(db, organization_id, conversation_id)
    if message is None or conversation is None or message.kind != "incoming":
        return None
    inbox = await repo.inbox(db, organization_id, conversation.inbox_id)
    if inbox is None or inbox.ai_mode == "off":
        return None
    state = await repo.conversation_state(db, organization_id, conversation_id, lock=True)
    ai = await repo.effective_settings(db, organization_id)
    if state.triaged_at is None:
        await triage.triage(db, ai, state, conversation, message.body)
    if inbox.ai_mode == "draft":
        await service.write_draft(db, sessions, settings, organization_id, conversation_id)
        return None
    if state.silenced:
        return None
    decision = await decide(db, sessions, settings, ai, inbox, state, conversation)
    db.add(
        AiDecision(
            organization_id=organization_id,
            conversation_id=conversation_id,
            message_id=message_id,
            answered=decision.answered,
            reason=decision.reason,
            detail=decision.detail[:200] if decision.detail else None,
            confidence=decision.confidence,
        )
    )
    if decision.answered:
        AI_AUTO_OUTCOMES.labels("answered", "").inc()
    else:
        assert decision.reason is not None
        AI_AUTO_OUTCOMES.labels("handoff", decision.reason).inc()
        await hand_off(db, sessions, settings, ai, state, conversation, decision)
    return decision


@dataclass(frozen=True)
class Gate:
    """What an answer must clear, from the inbox and the conversation."""

    threshold: float
    max_replies: int
    replies: int


async def judge(
    db: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    ai: AiSettings,
    gate: Gate,
    ask: Ask,
) -> tuple[Decision, Reply | None]:
    """Whether the AI answers `ask` and with what reply, or which hand-off reason stops it (nothing is
    posted here: the evaluation runs this very function)."""
    encode = sentence_encoder()
    vector = encode([ask.question])[0]
    if asks_for_person(vector, encode):
        return Decision(False, "customer_requested_human"), None
    topic = sensitive_topic(ask.question, vector, list(ai.sensitive_topics), encode)
    if topic is not None:
        return Decision(False, "sensitive_topic", topic), None
    if gate.replies >= gate.max_replies:
        return Decision(False, "max_ai_replies", str(gate.replies)), None
    scope = await triage.out_of_scope(db, ai, ask.organization_id, ask.question, vector)
    if scope is not None:
        return Decision(False, "no_knowledge", scope), None
    passages = await answering.retrieve(db, settings, ask)
    if not passages or passages[0].score < NO_KNOWLEDGE_BELOW:
        return Decision(False, "no_knowledge"), None
    try:
        reply = await answering.write(db, sessions, settings, ai, ask, passages, "answer")
    except Unavailable as unavailable:
        return Decision(False, unavailable.reason, unavailable.detail), None
    observe_reply("answer", reply)
    if not reply.citations or reply.declined:
        return Decision(False, "low_confidence", "no valid citation", 0.0), reply
    if reply.confidence < gate.threshold:
        return Decision(
            False, "low_confidence", f"confidence {reply.confidence:.2f}", reply.confidence
        ), reply
    return Decision(True, confidence=reply.confidence), reply


async def decide(
    db: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    ai: AiSettings,
    inbox: Inbox,
    state: AiConversation,
    conversation: Conversation,
) -> Decision:
    """Answer the conversation's customer (posting the AI's message), or say why not."""
    ask = await service.ask_of(db, conversation.organization_id, conversation.id, customer_facing=True)
    gate = Gate(inbox.ai_threshold, inbox.ai_max_replies, state.replies)
    decision, reply = await judge(db, sessions, settings, ai, gate, ask)
    if not decision.answered:
        return decision
    assert reply is not None
    await conversations.post_message(
        db,
        Principal.ai(conversation.organization_id),
        conversation.id,
        "outgoing",
        reply.text,
        ai=service.reply_json(reply),
    )
    for source_id in dict.fromkeys(citation.source_id for citation in reply.citations):
        await knowledge.cite(db, Principal.ai(conversation.organization_id), source_id, conversation.id)
    state.replies += 1
    state.updated_at = datetime.now(UTC)
    await db.flush()
    return decision


async def hand_off(
    db: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    ai: AiSettings,
    state: AiConversation,
    conversation: Conversation,
    decision: Decision,
) -> None:
    now = datetime.now(UTC)
    state.silenced = True
    state.handoff_reason = decision.reason
    state.handed_off_at = state.updated_at = now
    detail = f" ({decision.detail})" if decision.detail else ""
    principal = Principal.ai(conversation.organization_id)
    await conversations.record_activity(
        db, principal, conversation, f"handed off to a person: {decision.reason}{detail}"
    )
    published.conversation_event(
        db, "ai.handoff", conversation, reason=decision.reason, detail=decision.detail
    )
    await assignment.after_reopening(db, conversation)  # offered to the inbox's auto-assignment if unassigned
    # The provider that just failed (or cannot be paid for) is not asked for the summary.
    provider_usable = decision.reason not in ("provider_error", "budget_exhausted")
    await summaries.summarize(db, sessions, settings, ai, state, conversation.id, provider=provider_usable)
    await db.flush()
