"""The audit log's table: append-only (the service's role may insert and read, never update or delete)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    String,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from aisupport.core.db import AppendOnly, Base, TenantOwned


class AuditEvent(TenantOwned, AppendOnly, Base):
    """An append-only record of a security-relevant event in an organization."""

    __tablename__ = "audit_events"
    __table_args__ = (
        ForeignKeyConstraint(
            ["organization_id", "actor_api_key_id"],
            ["api_keys.organization_id", "api_keys.id"],
            name="fk_audit_events_actor_api_key_same_org",
        ),
        Index("ix_audit_events_organization_id_id", "organization_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    action: Mapped[str] = mapped_column(String(60))
    # member, api_key, widget_visitor, ai, system, or anonymous (nobody known: a failed sign-in)
    actor_kind: Mapped[str] = mapped_column(String(20), server_default="anonymous")
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor_api_key_id: Mapped[uuid.UUID | None]
    target_type: Mapped[str | None] = mapped_column(String(40))
    target_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(String(512))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
