"""The AI's tables: each organization's AI settings (provider, budget, thresholds), its state in each
conversation, drafts for agents, the usage ledger and the monthly budget counters, the examples its
triage learns from and the classifier trained on them, and evaluation runs."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from aisupport.core.db import AppendOnly, Base, TenantOwned, Timestamped

PROVIDERS = ("offline", "openai")
FEATURES = ("draft", "answer", "triage", "summary")
HANDOFF_REASONS = (
    "low_confidence",
    "no_knowledge",
    "customer_requested_human",
    "sensitive_topic",
    "budget_exhausted",
    "provider_error",
    "max_ai_replies",
)


def _same_org(column: str, table: str, name: str) -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["organization_id", column],
        [f"{table}.organization_id", f"{table}.id"],
        name=name,
        ondelete="CASCADE",
    )


class AiSettings(TenantOwned, Base):
    """An organization's AI: `offline` (answers extracted from its knowledge, classifiers trained on its
    examples; no network) or an OpenAI-compatible chat provider (key sealed, bound to the organization);
    the price of its tokens, its monthly budget, its triage thresholds and the topics it never answers.
    No row: the offline defaults."""

    __tablename__ = "ai_settings"
    __table_args__ = (
        CheckConstraint("provider IN ('offline', 'openai')", name="provider_known"),
        CheckConstraint(
            "provider = 'offline' OR (base_url IS NOT NULL AND model IS NOT NULL)", name="provider_named"
        ),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    provider: Mapped[str] = mapped_column(String(16))
    base_url: Mapped[str | None] = mapped_column(String(500))
    model: Mapped[str | None] = mapped_column(String(200))
    api_key_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    max_tokens: Mapped[int] = mapped_column(Integer)
    # US dollars per million tokens, read from the settings' price table unless set here.
    input_price: Mapped[float | None] = mapped_column(Float)
    output_price: Mapped[float | None] = mapped_column(Float)
    monthly_token_budget: Mapped[int | None] = mapped_column(BigInteger)
    monthly_cost_budget: Mapped[float | None] = mapped_column(Float)  # US dollars
    thresholds: Mapped[dict[str, float]] = mapped_column(JSONB)  # category, priority, language, sentiment
    sensitive_topics: Mapped[list[str]] = mapped_column(ARRAY(String(200)), server_default=text("'{}'"))
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AiConversation(TenantOwned, Base):
    """The AI's state in one conversation: silent after a hand-off until a member turns it back on, how
    many replies it sent, the last hand-off's reason, the summary and the triage."""

    __tablename__ = "ai_conversations"
    __table_args__ = (
        _same_org("conversation_id", "conversations", "fk_ai_conversations_conversation_same_org"),
        CheckConstraint(
            "handoff_reason IS NULL OR handoff_reason IN ("
            + ", ".join(f"'{reason}'" for reason in HANDOFF_REASONS)
            + ")",
            name="handoff_reason_known",
        ),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    conversation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    silenced: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    replies: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    handoff_reason: Mapped[str | None] = mapped_column(String(32))
    handed_off_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    summary: Mapped[str | None] = mapped_column(Text)
    summary_method: Mapped[str | None] = mapped_column(String(16))  # `extractive` or `provider`
    summarized_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    triage: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    triaged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AiDraft(TenantOwned, Timestamped, Base):
    """A reply the AI suggests (not sent): its text, the citations that passed the check (each a chunk
    retrieved for this draft and a quote found in it), how many failed, what was retrieved, and what it
    cost. `outcome` says what the agent did with it: sent `unchanged`, sent `edited`, or `discarded`."""

    __tablename__ = "ai_drafts"
    __table_args__ = (
        _same_org("conversation_id", "conversations", "fk_ai_drafts_conversation_same_org"),
        CheckConstraint("status IN ('ready', 'sent', 'discarded')", name="status_known"),
        CheckConstraint(
            "outcome IS NULL OR outcome IN ('unchanged', 'edited', 'discarded')", name="outcome_known"
        ),
        UniqueConstraint("organization_id", "id", name="uq_ai_drafts_organization_id_id"),
        Index(
            "ix_ai_drafts_organization_id_conversation_id_created_at",
            "organization_id",
            "conversation_id",
            "created_at",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    conversation_id: Mapped[uuid.UUID] = mapped_column()
    body: Mapped[str] = mapped_column(Text)
    citations: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    invalid_citations: Mapped[int] = mapped_column(Integer)
    retrieved: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    confidence: Mapped[float] = mapped_column(Float)
    method: Mapped[str] = mapped_column(String(16))  # `extractive` or `provider`
    model: Mapped[str] = mapped_column(String(200))
    tokens_in: Mapped[int] = mapped_column(Integer)
    tokens_out: Mapped[int] = mapped_column(Integer)
    cost: Mapped[float] = mapped_column(Float)  # US dollars
    latency_ms: Mapped[int] = mapped_column(Integer)
    # Why it was written offline or is empty: `no_knowledge`, `budget_exhausted`, `provider_error`.
    degraded: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(String(16))
    message_id: Mapped[uuid.UUID | None] = mapped_column()  # the message it became
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AiUsage(AppendOnly, TenantOwned, Base):
    """One model call, in the usage ledger: what it was for, which model, tokens, cost and time."""

    __tablename__ = "ai_usage"
    __table_args__ = (
        CheckConstraint("feature IN ('draft', 'answer', 'triage', 'summary')", name="feature_known"),
        Index("ix_ai_usage_organization_id_created_at", "organization_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    feature: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(200))
    tokens_in: Mapped[int] = mapped_column(Integer)
    tokens_out: Mapped[int] = mapped_column(Integer)
    cost: Mapped[float] = mapped_column(Float)  # US dollars
    latency_ms: Mapped[int] = mapped_column(Integer)
    succeeded: Mapped[bool] = mapped_column(Boolean)
    conversation_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AiDecision(AppendOnly, TenantOwned, Base):
    """What the AI decided on one customer message in an `auto` inbox: answered, or handed off and why
    (the answer rate and hand-offs by reason are counted from these)."""

    __tablename__ = "ai_decisions"
    __table_args__ = (
        CheckConstraint(
            "answered = (reason IS NULL)",
            name="reason_when_handed_off",
        ),
        Index("ix_ai_decisions_organization_id_created_at", "organization_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    conversation_id: Mapped[uuid.UUID] = mapped_column()
    message_id: Mapped[uuid.UUID] = mapped_column()
    answered: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(String(200))
    confidence: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AiBudgetMonth(TenantOwned, Base):
    """An organization's spending in one calendar month (UTC): what calls used, and what calls in flight
    have reserved (their max tokens), so that a call starts only if both fit in the budget."""

    __tablename__ = "ai_budget_months"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    used_tokens: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    used_cost: Mapped[float] = mapped_column(Float, server_default=text("0"))
    reserved_tokens: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    reserved_cost: Mapped[float] = mapped_column(Float, server_default=text("0"))
    alerted_percent: Mapped[int] = mapped_column(Integer, server_default=text("0"))  # 0, 80 or 100


class AiExample(TenantOwned, Timestamped, Base):
    """A message and the category it belongs to: given by the organization (`example`), or taken from a
    conversation its agents tagged with a category (`conversation`)."""

    __tablename__ = "ai_examples"
    __table_args__ = (
        CheckConstraint("origin IN ('example', 'conversation')", name="origin_known"),
        UniqueConstraint(
            "organization_id", "category", "text", name="uq_ai_examples_organization_id_category_text"
        ),
        UniqueConstraint("organization_id", "id", name="uq_ai_examples_organization_id_id"),
        Index("ix_ai_examples_organization_id_created_at_id", "organization_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    category: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(String(2000))
    origin: Mapped[str] = mapped_column(String(16))
    conversation_id: Mapped[uuid.UUID | None] = mapped_column()


class AiClassifier(TenantOwned, Base):
    """The category classifier trained on an organization's examples (arrays only, never pickled), and
    the fingerprint of the examples it learned from (a retraining with the same ones is skipped)."""

    __tablename__ = "ai_classifiers"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    data: Mapped[bytes] = mapped_column(LargeBinary)
    categories: Mapped[list[str]] = mapped_column(ARRAY(String(100)))
    examples: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(64))
    trained_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AiEvaluation(TenantOwned, Timestamped, Base):
    """One evaluation run (`triage`, `handoff` or `answers`) on an organization's own labelled set, or a
    public one from the command line: its parameters and its figures, kept to compare runs."""

    __tablename__ = "ai_evaluations"
    __table_args__ = (
        CheckConstraint("kind IN ('triage', 'handoff', 'answers')", name="kind_known"),
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="status_known"),
        UniqueConstraint("organization_id", "id", name="uq_ai_evaluations_organization_id_id"),
        Index("ix_ai_evaluations_organization_id_created_at_id", "organization_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB)
    figures: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(String(500))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
