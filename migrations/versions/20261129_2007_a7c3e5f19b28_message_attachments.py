"""message attachments: files uploaded to a conversation, attached to one message, under row-level security

Revision ID: a7c3e5f19b28
Revises: a7c3e9f1b2d4
Create Date: 2026-11-29 20:00:00.000000+00:00

A row per file kept in object storage (aisupport.storage, decision 0037): uploaded to a conversation
first (message_id null), attached to one message when a message names it (decision 0038). Both
references name the organization (composite foreign keys, hence the new (organization_id, id) key on
messages). app_orgs_with_stale_uploads(cutoff) tells the purge job, which has no tenant yet, which
organizations have uploads never attached since before `cutoff`: only their ids come back.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7c3e5f19b28"
down_revision: str | None = "a7c3e9f1b2d4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "message_attachments"


def upgrade() -> None:
    op.create_unique_constraint("uq_messages_organization_id_id", "messages", ["organization_id", "id"])
    op.create_table(
        TABLE,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_key", sa.String(length=512), nullable=False),
        sa.Column("uploaded_by_type", sa.String(length=20), nullable=False),
        sa.Column("uploaded_by_id", sa.Uuid(), nullable=True),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("size > 0", name=op.f("ck_message_attachments_size_positive")),
        sa.CheckConstraint(
            "(message_id IS NULL) = (position IS NULL)",
            name=op.f("ck_message_attachments_position_when_attached"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_message_attachments_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "conversation_id"],
            ["conversations.organization_id", "conversations.id"],
            name="fk_message_attachments_conversation_same_org",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "message_id"],
            ["messages.organization_id", "messages.id"],
            name="fk_message_attachments_message_same_org",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_attachments")),
        sa.UniqueConstraint("organization_id", "id", name="uq_message_attachments_organization_id_id"),
        sa.UniqueConstraint("storage_key", name="uq_message_attachments_storage_key"),
    )
    op.create_index(
        "ix_message_attachments_organization_id_message_id", TABLE, ["organization_id", "message_id"]
    )
    op.create_index(
        "ix_message_attachments_organization_id_conversation_id",
        TABLE,
        ["organization_id", "conversation_id"],
    )
    op.create_index(
        "ix_message_attachments_unattached_organization_id_created_at",
        TABLE,
        ["organization_id", "created_at"],
        postgresql_where=sa.text("message_id IS NULL"),
    )
    op.execute(
        f"""
        ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY;
        CREATE POLICY current_read ON {TABLE} FOR SELECT USING (organization_id = app_current_org());
        CREATE POLICY current_insert ON {TABLE} FOR INSERT WITH CHECK (organization_id = app_current_org());
        CREATE POLICY current_update ON {TABLE} FOR UPDATE
            USING (organization_id = app_current_org()) WITH CHECK (organization_id = app_current_org());
        CREATE POLICY current_delete ON {TABLE} FOR DELETE USING (organization_id = app_current_org());
        """
    )
    op.execute(
        """
        -- The purge job's one look across organizations: which have uploads never attached, made before
        -- the cutoff. Only organization ids come back; the job then works in each one's own tenant.
        CREATE FUNCTION app_orgs_with_stale_uploads(timestamptz) RETURNS SETOF uuid
            LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
            AS $$ SELECT DISTINCT organization_id FROM public.message_attachments
                   WHERE message_id IS NULL AND created_at < $1 $$;
        -- The service role is granted it by `aisupport migrate` (core/tenancy.py); nobody else.
        REVOKE EXECUTE ON FUNCTION app_orgs_with_stale_uploads(timestamptz) FROM PUBLIC;
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION app_orgs_with_stale_uploads(timestamptz)")
    op.drop_table(TABLE)  # its indexes and policies go with it
    op.drop_constraint("uq_messages_organization_id_id", "messages", type_="unique")
