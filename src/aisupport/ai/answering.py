"""A reply to a conversation, from the organization's knowledge (decision 0055): the passages retrieved
for the customer's last words, then the reply written from them (offline, extracted; or by the
organization's chat provider, within its budget), its citations checked. Used by drafts for agents and by
auto-answers; neither sends anything here."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aisupport.ai import budget
from aisupport.ai.citations import Passage
from aisupport.ai.compose import Reply, Turn, extractive, messages_for, read_provider_reply
from aisupport.ai.models import AiSettings
from aisupport.core.config import Settings
from aisupport.core.sealing import SecretUnreadable, unseal
from aisupport.knowledge import service as knowledge
from aisupport.knowledge.repository import Filters
from aisupport.llm.chat import Completion, complete
from aisupport.llm.client import Endpoint, ProviderError

T = TypeVar("T")
PASSAGES = 4  # retrieved for a reply
SEALED_FOR = "ai-provider-key"
LANGUAGE_NAMES = {
    "en": "English",
    "es": "Spanish",
    "pt": "Portuguese",
    "fr": "French",
    "de": "German",
    "it": "Italian",
    "nl": "Dutch",
}


class Unavailable(Exception):
    """The provider cannot be used for this reply: `budget_exhausted` or `provider_error`."""

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Ask:
    """What a reply is for: the conversation so far (oldest first) and the words to answer."""

    organization_id: uuid.UUID
    conversation_id: uuid.UUID | None
    turns: list[Turn]
    question: str
    language: str  # ISO 639-1, or "" if unknown
    customer_facing: bool  # only published, public knowledge


async def retrieve(db: AsyncSession, settings: Settings, ask: Ask) -> list[Passage]:
    filters = Filters(statuses=["published"], visibilities=["public"] if ask.customer_facing else None)
    found = await knowledge.search(
        db,
        settings,
        ask.organization_id,
        ask.question,
        filters,
        k=PASSAGES,
        min_score=0.0,
        locale=ask.language or "en",
    )
    return [
        Passage(result.passage.id, result.source.id, result.source.title, result.passage.text, result.score)
        for result in found.results
    ]


def provider_key(settings: Settings, ai: AiSettings) -> str | None:
    if ai.api_key_sealed is None:
        return None
    try:
        return unseal(settings, ai.api_key_sealed, purpose=SEALED_FOR, bound_to=ai.organization_id.bytes)
    except SecretUnreadable:
        raise Unavailable(
            "provider_error", "the provider's key cannot be read (sealing keys rotated?)"
        ) from None


async def write(
    db: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    ai: AiSettings,
    ask: Ask,
    passages: list[Passage],
    feature: str,
) -> Reply:
    """The reply, offline or from the provider, written to the usage ledger (raises Unavailable when the
    provider cannot be used: the caller decides whether to fall back or hand off)."""
    if ai.provider == "offline" or not passages:
        started = time.monotonic()
        reply = extractive(ask.question, passages)
        reply.latency_ms = round((time.monotonic() - started) * 1000)
        budget.record(
            db,
            ask.organization_id,
            budget.Call(feature, reply.model, 0, 0, 0.0, reply.latency_ms, True, ask.conversation_id),
        )
        return reply
    language = LANGUAGE_NAMES.get(ask.language, "the customer's language")

    def read(completion: Completion) -> Reply:
        reply = read_provider_reply(completion.text, passages, completion.model)
        reply.tokens_in, reply.tokens_out = completion.tokens_in, completion.tokens_out
        reply.latency_ms = completion.latency_ms
        reply.cost = budget.cost_of(settings, ai, completion.tokens_in, completion.tokens_out)
        return reply

    messages = messages_for(ask.turns, passages, language)
    return await call_provider(
        sessions, settings, ai, messages, feature, ask.conversation_id, read, json_object=True
    )


async def call_provider(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    ai: AiSettings,
    messages: list[dict[str, str]],
    feature: str,
    conversation_id: uuid.UUID | None,
    read: Callable[[Completion], T],
    *,
    json_object: bool = False,
) -> T:
    """One call of the organization's chat provider within its budget, read by `read` (which raises
    ProviderError for an answer it cannot use), reserved before and settled after in the ledger, failed
    or not. Raises Unavailable (`budget_exhausted`, `provider_error`)."""
    assert ai.base_url is not None
    assert ai.model is not None
    reservation = await budget.reserve(sessions, settings, ai, sum(len(m["content"]) for m in messages))
    if reservation is None:
        raise Unavailable("budget_exhausted")
    started = time.monotonic()
    tokens_in = tokens_out = 0
    model, failure = ai.model, None
    try:
        completion = await complete(
            Endpoint(ai.base_url, provider_key(settings, ai)),
            ai.model,
            messages,
            max_tokens=ai.max_tokens,
            json_object=json_object,
            allow_private=settings.AI_PROVIDERS_ALLOW_PRIVATE_NETWORKS,
            seconds=settings.AI_REQUEST_SECONDS,
            retries=settings.AI_RETRIES,
        )
        tokens_in, tokens_out, model = completion.tokens_in, completion.tokens_out, completion.model
        result = read(completion)
    except (ProviderError, Unavailable) as failed:
        failure = str(failed)
    call = budget.Call(
        feature,
        model,
        tokens_in,
        tokens_out,
        budget.cost_of(settings, ai, tokens_in, tokens_out),
        round((time.monotonic() - started) * 1000),
        failure is None,
        conversation_id,
    )
    await budget.settle(sessions, ai, reservation, call)
    if failure is not None:
        raise Unavailable("provider_error", failure)
    return result
