"""contacts: the organization's customers, under row-level security

Revision ID: 8d2f4c6a1e07
Revises: ca4d4ee9f9ad
Create Date: 2026-11-29 19:00:00.000000+00:00

Email is unique per organization whatever its case, through one index on lower(email) with the pattern
operator class, which also serves the exact-email filter and prefix search; names have a prefix index
of the same kind (decision 0033). (organization_id, id) is unique so that conversations can refer to a
contact only within its organization.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "8d2f4c6a1e07"
down_revision: str | None = "ca4d4ee9f9ad"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contacts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column(
            "custom_attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_contacts_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
        sa.UniqueConstraint("organization_id", "id", name="uq_contacts_organization_id_id"),
        sa.UniqueConstraint("organization_id", "external_id", name="uq_contacts_organization_id_external_id"),
    )
    op.create_index(
        "ix_contacts_organization_id_created_at_id", "contacts", ["organization_id", "created_at", "id"]
    )
    op.execute(
        """
        CREATE UNIQUE INDEX uq_contacts_organization_id_lower_email
            ON contacts (organization_id, lower(email) text_pattern_ops);
        CREATE INDEX ix_contacts_organization_id_lower_name
            ON contacts (organization_id, lower(name) text_pattern_ops);

        ALTER TABLE contacts ENABLE ROW LEVEL SECURITY;
        CREATE POLICY current_read ON contacts FOR SELECT USING (organization_id = app_current_org());
        CREATE POLICY current_insert ON contacts FOR INSERT WITH CHECK (organization_id = app_current_org());
        CREATE POLICY current_update ON contacts FOR UPDATE
            USING (organization_id = app_current_org()) WITH CHECK (organization_id = app_current_org());
        CREATE POLICY current_delete ON contacts FOR DELETE USING (organization_id = app_current_org());
        """
    )


def downgrade() -> None:
    op.drop_table("contacts")  # its indexes and policies go with it
