"""The widget's visitors, and which conversations an anonymous visitor started."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from aisupport.core.db import Base, TenantOwned, Timestamped


class WidgetVisitor(TenantOwned, Timestamped, Base):
    """Someone using an inbox's widget as one contact: `verified` if they proved an identity (then the
    one row of that contact in that inbox: every device shares it), else anonymous (a contact of their
    own, and only the conversations they started). Visitor tokens name this row; deleting it (the
    contact erased, the inbox deleted) ends them."""

    __tablename__ = "widget_visitors"
    __table_args__ = (
        UniqueConstraint("organization_id", "id", name="uq_widget_visitors_organization_id_id"),
        ForeignKeyConstraint(
            ["organization_id", "inbox_id"],
            ["inboxes.organization_id", "inboxes.id"],
            name="fk_widget_visitors_inbox_same_org",
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["organization_id", "contact_id"],
            ["contacts.organization_id", "contacts.id"],
            name="fk_widget_visitors_contact_same_org",
            ondelete="CASCADE",
        ),
        Index("ix_widget_visitors_organization_id_contact_id", "organization_id", "contact_id"),
        Index("ix_widget_visitors_organization_id_inbox_id", "organization_id", "inbox_id"),
        Index(
            "uq_widget_visitors_verified",
            "organization_id",
            "inbox_id",
            "contact_id",
            unique=True,
            postgresql_where=text("verified"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    inbox_id: Mapped[uuid.UUID] = mapped_column()
    contact_id: Mapped[uuid.UUID] = mapped_column()
    verified: Mapped[bool] = mapped_column(Boolean)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WidgetVisitorConversation(TenantOwned, Base):
    """A conversation an anonymous visitor started: what they may see (a verified visitor sees every
    conversation of their contact in the inbox instead)."""

    __tablename__ = "widget_visitor_conversations"
    __table_args__ = (
        ForeignKeyConstraint(
            ["organization_id", "visitor_id"],
            ["widget_visitors.organization_id", "widget_visitors.id"],
            name="fk_widget_visitor_conversations_visitor_same_org",
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["organization_id", "conversation_id"],
            ["conversations.organization_id", "conversations.id"],
            name="fk_widget_visitor_conversations_conversation_same_org",
            ondelete="CASCADE",
        ),
        Index(
            "ix_widget_visitor_conversations_organization_id_conversation_id",
            "organization_id",
            "conversation_id",
        ),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    visitor_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    conversation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
