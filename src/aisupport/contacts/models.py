"""The organization's customers (contacts)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Computed, DateTime, Index, String, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from aisupport.core.db import Base, TenantOwned, Timestamped

CONTACT_DOCUMENT = (
    "search_document(organization_id, coalesce(name, '') || ' ' || coalesce(email, '') || ' ' "
    "|| replace(coalesce(email, ''), '@', ' '))"
)


class Contact(TenantOwned, Timestamped, Base):
    """A customer of the organization. An erased contact keeps its row (so what refers to it still
    does) with every personal field emptied and `erased_at` set (decision 0033)."""

    __tablename__ = "contacts"
    __table_args__ = (
        # Lets other tenant tables (conversations) reference a contact only within its organization.
        UniqueConstraint("organization_id", "id", name="uq_contacts_organization_id_id"),
        UniqueConstraint("organization_id", "external_id", name="uq_contacts_organization_id_external_id"),
        Index("ix_contacts_organization_id_created_at_id", "organization_id", "created_at", "id"),
        Index("ix_contacts_search", "search", postgresql_using="gin"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(40))
    external_id: Mapped[str | None] = mapped_column(String(255))
    custom_attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Name and email for the conversations' full-text search (decision 0041); the address also as its
    # two halves, so the domain alone finds it.
    search: Mapped[str | None] = mapped_column(
        TSVECTOR, Computed(CONTACT_DOCUMENT, persisted=True), deferred=True, deferred_raiseload=True
    )


# One index for email: unique per organization whatever its case, and it serves the `email` filter
# (equality) and prefix search alike: `lower(x) LIKE 'prefix%'` can use a btree only with the pattern
# operator class when the database's collation is not C (decision 0033). Led by the organization like
# every tenant index.
Index(
    "uq_contacts_organization_id_lower_email",
    Contact.organization_id,
    func.lower(Contact.email).label("lower_email"),
    unique=True,
    postgresql_ops={"lower_email": "text_pattern_ops"},
)
Index(
    "ix_contacts_organization_id_lower_name",
    Contact.organization_id,
    func.lower(Contact.name).label("lower_name"),
    postgresql_ops={"lower_name": "text_pattern_ops"},
)
