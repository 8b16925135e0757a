"""Every model, imported in one place so the metadata is complete for Alembic and the tests."""

from aisupport.accounts.models import User
from aisupport.ai.models import (
    AiBudgetMonth,
    AiClassifier,
    AiConversation,
    AiDecision,
    AiDraft,
    AiEvaluation,
    AiExample,
    AiSettings,
    AiUsage,
)
from aisupport.audit.models import AuditEvent
from aisupport.auth.models import AccountActivity, AccountToken, AuthSession, RefreshToken
from aisupport.contacts.models import Contact
from aisupport.conversations.models import (
    ConversationRating,
    Inbox,
    MemberAvailability,
    SlaPolicy,
    Team,
    TeamMember,
)
from aisupport.core.db import Base
from aisupport.events.models import Event, EventCounter
from aisupport.knowledge.models import (
    KnowledgeChunk,
    KnowledgeCitation,
    KnowledgeEmbedder,
    KnowledgeEmbedding,
    KnowledgeLexeme,
    KnowledgePhrasing,
    KnowledgeSource,
    KnowledgeStats,
)
from aisupport.mail.delivery import EmailDelivery
from aisupport.organizations.models import ApiKey, Invitation, Membership, Organization
from aisupport.webhooks.models import WebhookAttempt, WebhookCursor, WebhookDelivery, WebhookEndpoint
from aisupport.widget.models import WidgetVisitor, WidgetVisitorConversation

__all__ = [
    "AccountActivity",
    "AccountToken",
    "AiBudgetMonth",
    "AiClassifier",
    "AiConversation",
    "AiDecision",
    "AiDraft",
    "AiEvaluation",
    "AiExample",
    "AiSettings",
    "AiUsage",
    "ApiKey",
    "AuditEvent",
    "AuthSession",
    "Base",
    "Contact",
    "ConversationRating",
    "EmailDelivery",
    "Event",
    "EventCounter",
    "Inbox",
    "Invitation",
    "KnowledgeChunk",
    "KnowledgeCitation",
    "KnowledgeEmbedder",
    "KnowledgeEmbedding",
    "KnowledgeLexeme",
    "KnowledgePhrasing",
    "KnowledgeSource",
    "KnowledgeStats",
    "MemberAvailability",
    "Membership",
    "Organization",
    "RefreshToken",
    "SlaPolicy",
    "Team",
    "TeamMember",
    "User",
    "WebhookAttempt",
    "WebhookCursor",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WidgetVisitor",
    "WidgetVisitorConversation",
]


def is_ours(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's include_name hook: procrastinate's tables belong to its own schema SQL, not our models;
    the vectors' HNSW indexes are on expressions (a cast per dimension, migration e4b8c1d7f2a9), which
    alembic cannot compare."""
    if name is None:
        return True
    if type_ == "table":
        return not name.startswith("procrastinate_")
    return not (type_ == "index" and name.startswith("ix_knowledge_embeddings_hnsw_"))
