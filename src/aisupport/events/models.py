"""The outbox: one row per event, numbered per organization in commit order."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from aisupport.core.db import Base, TenantOwned


class Event(TenantOwned, Base):
    """An event of an organization: `sequence` is its place in the organization's order (1, 2, ...,
    in the order the changes committed, no gaps), `id` its sortable unique id (UUIDv7)."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_occurred_at_organization_id", "occurred_at", "organization_id"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(unique=True)
    type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The conversation it is about (None for a contact's), and whether a customer may never see it (a
    # note, an activity line): what a visitor's stream filters on.
    conversation_id: Mapped[uuid.UUID | None] = mapped_column()
    private: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)


class EventCounter(TenantOwned, Base):
    """The organization's last event sequence. A committing transaction with events takes the next
    numbers with one `UPDATE ... RETURNING` just before COMMIT, so the numbers follow commit order."""

    __tablename__ = "event_counters"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    last_sequence: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    # The organization has an enabled webhook endpoint: a commit with events queues the dispatch job.
    webhooks: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
