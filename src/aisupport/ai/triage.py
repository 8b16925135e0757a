"""Triage of a new conversation (decision 0057): its category, priority, language and sentiment, each
with a confidence. A value is applied (the category as a tag, the priority, the language and sentiment
as custom attributes) only at or above the organization's threshold for it; below, it is kept as a
suggestion. Nothing is left silently empty: a reading that cannot be made says why.

Categories are the organization's own: learned from the examples it gives and from the conversations
its agents tagged with a category (their first customer message), by a classifier trained per
organization (ai/intents.py) and trained again by the `ai:train` job when they change."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.access.principal import Principal
from aisupport.ai.intents import IntentModel, Prediction, sentence_encoder
from aisupport.ai.models import AiClassifier, AiConversation, AiExample, AiSettings
from aisupport.ai.signals import Reading, language, sentiment, urgency
from aisupport.conversations import conversation_service as conversations
from aisupport.conversations.models import Conversation, Message
from aisupport.core.db import rows_of, scoped
from aisupport.core.jobs import defer_once

OUT_OF_SCOPE = "oos"  # the category of examples of what the organization does not handle
MIN_EXAMPLES = 2  # per category, to be learned
FROM_CONVERSATIONS = 5000  # the most recent tagged conversations learned from
TRAIN_TASK = "ai:train"


async def examples(db: AsyncSession, organization_id: uuid.UUID) -> list[tuple[str, str]]:
    """(text, category): the organization's examples, and the first customer message of its recent
    conversations tagged with one of their categories."""
    given = [
        (text, category)
        for text, category in (
            await db.execute(
                scoped(select(AiExample.text, AiExample.category), AiExample, organization_id).order_by(
                    AiExample.category, AiExample.text
                )
            )
        ).all()
    ]
    categories = sorted({category for _, category in given})
    if not categories:
        return []
    first_message = (
        scoped(select(Message.body), Message, organization_id)
        .where(Message.conversation_id == Conversation.id, Message.kind == "incoming")
        .order_by(Message.created_at, Message.id)
        .limit(1)
        .scalar_subquery()
    )
    applied_by_triage = (
        scoped(select(AiConversation.triage["category"]["value"].astext), AiConversation, organization_id)
        .where(
            AiConversation.conversation_id == Conversation.id,
            AiConversation.triage["category"]["applied"].astext == "true",
        )
        .scalar_subquery()
    )
    tagged = (
        await db.execute(
            scoped(select(Conversation.tags, first_message, applied_by_triage), Conversation, organization_id)
            .where(Conversation.tags.overlap(categories))
            .order_by(Conversation.created_at.desc())
            .limit(FROM_CONVERSATIONS)
        )
    ).all()
    # A category the triage applied itself teaches it nothing (it would only learn its own guesses).
    learned = [
        (body, tag) for tags, body, own in tagged if body for tag in tags if tag in categories and tag != own
    ]
    return given + learned


def fingerprint(rows: list[tuple[str, str]]) -> str:
    digest = hashlib.sha256()
    for text, category in sorted(rows):
        digest.update(f"{category}\x1f{text}\x1e".encode())
    return digest.hexdigest()


async def train(db: AsyncSession, organization_id: uuid.UUID) -> AiClassifier | None:
    """Train the organization's category classifier again if its examples changed (None: fewer than two
    categories with MIN_EXAMPLES each; any previous classifier is removed)."""
    rows = await examples(db, organization_id)
    counts: dict[str, int] = {}
    for _, category in rows:
        counts[category] = counts.get(category, 0) + 1
    usable = [(text, category) for text, category in rows if counts[category] >= MIN_EXAMPLES]
    current = await db.scalar(rows_of(AiClassifier, organization_id))
    if len({category for _, category in usable}) < 2:
        if current is not None:
            await db.delete(current)
        return None
    mark = fingerprint(usable)
    if current is not None and current.fingerprint == mark:
        return current
    encode = sentence_encoder()
    model = await asyncio.to_thread(
        IntentModel.fit, [text for text, _ in usable], [category for _, category in usable], encode=encode
    )
    if current is None:
        current = AiClassifier(organization_id=organization_id)
        db.add(current)
    current.data = model.to_bytes()
    current.categories = list(model.labels)
    current.examples = len(usable)
    current.fingerprint = mark
    current.trained_at = datetime.now(UTC)
    await db.flush()
    return current


_loaded: dict[uuid.UUID, tuple[datetime, IntentModel]] = {}  # the last classifier read, per organization


async def classifier(db: AsyncSession, organization_id: uuid.UUID) -> IntentModel | None:
    trained = await db.scalar(scoped(select(AiClassifier.trained_at), AiClassifier, organization_id))
    if trained is None:
        return None
    cached = _loaded.get(organization_id)
    if cached is None or cached[0] != trained:
        data = await db.scalar(scoped(select(AiClassifier.data), AiClassifier, organization_id))
        if data is None:
            return None
        cached = (trained, IntentModel.from_bytes(data))
        _loaded[organization_id] = cached
    return cached[1]


def _entry(reading: Reading | None, threshold: float, why_not: str | None = None) -> dict[str, Any]:
    if reading is None:
        return {"value": None, "confidence": 0.0, "applied": False, "reason": why_not}
    return {**reading.shown(), "applied": reading.confidence >= threshold, "threshold": threshold}


def category_entry(
    model: IntentModel | None, prediction: Prediction | None, threshold: float
) -> dict[str, Any]:
    if model is None or prediction is None:
        return _entry(None, threshold, "no_categories")
    entry = _entry(Reading(prediction.label, prediction.confidence), threshold)
    entry["alternatives"] = [
        {"value": label, "confidence": round(confidence, 4)} for label, confidence in prediction.alternatives
    ]
    return entry


async def read_many(
    db: AsyncSession, ai: AiSettings, organization_id: uuid.UUID, texts: list[str]
) -> list[dict[str, dict[str, Any]]]:
    """The four readings of each message, each with whether it clears its threshold."""
    thresholds = ai.thresholds
    encode = sentence_encoder()
    vectors = encode(texts)
    model = await classifier(db, organization_id)
    predictions = (
        model.predict(texts, encode=encode, vectors=vectors) if model is not None else [None] * len(texts)
    )
    return [
        {
            "category": category_entry(model, prediction, thresholds["category"]),
            "priority": _entry(urgency(text), thresholds["priority"]),
            "language": _entry(language(text), thresholds["language"]),
            "sentiment": _entry(sentiment(vector, encode), thresholds["sentiment"]),
        }
        for text, vector, prediction in zip(texts, vectors, predictions, strict=True)
    ]


def outside(prediction: Prediction, threshold: float) -> bool:
    """A message the organization's categories do not cover: its best category is `oos` (the examples
    of what it does not handle), or its best category matches it too weakly (`scope` below the
    threshold)."""
    return prediction.label == OUT_OF_SCOPE or prediction.scope < threshold


async def out_of_scope(
    db: AsyncSession, ai: AiSettings, organization_id: uuid.UUID, text: str, vector: np.ndarray
) -> str | None:
    """Why the message is outside what the organization covers, when it set a scope threshold and has
    a classifier (None: inside, or not checked)."""
    threshold = ai.thresholds.get("scope")
    if threshold is None:
        return None
    model = await classifier(db, organization_id)
    if model is None:
        return None
    prediction = model.predict([text], encode=sentence_encoder(), vectors=vector[None, :])[0]
    if not outside(prediction, threshold):
        return None
    return f"out of scope ({prediction.label}, scope {prediction.scope:.3f})"


async def triage(
    db: AsyncSession,
    ai: AiSettings,
    state: AiConversation,
    conversation: Conversation,
    text: str,
) -> None:
    """Triage the conversation on its first customer message and apply what clears its threshold."""
    readings = (await read_many(db, ai, conversation.organization_id, [text]))[0]
    changes: dict[str, Any] = {}
    category = readings["category"]
    if (
        category["applied"]
        and category["value"] not in conversation.tags
        and category["value"] != OUT_OF_SCOPE
    ):
        changes["tags"] = [*conversation.tags, category["value"]]
    priority = readings["priority"]
    if priority["applied"] and conversation.priority == "none":
        changes["priority"] = priority["value"]
    attributes = {
        name: readings[name]["value"]
        for name in ("language", "sentiment")
        if readings[name]["applied"] and name not in conversation.custom_attributes
    }
    if attributes:
        changes["custom_attributes"] = {**conversation.custom_attributes, **attributes}
    if changes:
        await conversations.update_conversation(
            db, Principal.ai(conversation.organization_id), conversation.id, changes, if_match=None
        )
    state.triage = readings
    state.triaged_at = state.updated_at = datetime.now(UTC)
    await db.flush()


async def categories(db: AsyncSession, organization_id: uuid.UUID) -> list[tuple[str, int]]:
    return [
        (category, count)
        for category, count in (
            await db.execute(
                scoped(select(AiExample.category, func.count()), AiExample, organization_id)
                .group_by(AiExample.category)
                .order_by(AiExample.category)
            )
        ).all()
    ]


async def add_examples(
    db: AsyncSession, organization_id: uuid.UUID, rows: list[tuple[str, str]], origin: str = "example"
) -> int:
    """Add (text, category) examples (one already there is skipped) and queue the classifier's training;
    how many were new."""
    added = 0
    for start in range(0, len(rows), 1000):
        values = [
            {
                "id": uuid.uuid4(),
                "organization_id": organization_id,
                "category": category,
                "text": text,
                "origin": origin,
            }
            for text, category in rows[start : start + 1000]
        ]
        inserted = await db.execute(
            insert(AiExample).values(values).on_conflict_do_nothing().returning(AiExample.id)
        )
        added += len(inserted.all())
    if added:
        await queue_training(db, organization_id)
    return added


async def queue_training(db: AsyncSession, organization_id: uuid.UUID) -> None:
    await defer_once(db, TRAIN_TASK, f"{TRAIN_TASK}:{organization_id}", organization_id=str(organization_id))
