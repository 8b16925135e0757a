"""conversations and their messages, numbered per organization, under row-level security

Revision ID: 5b7e1d9c3a24
Revises: 8d2f4c6a1e07
Create Date: 2026-11-29 19:30:00.000000+00:00

Each organization numbers its conversations 1, 2, 3... through one counter row of its own
(conversation_counters), taken with `UPDATE ... RETURNING` in the creating transaction: creations in
one organization queue on that row, other organizations never wait (decision 0036). idempotency_keys
holds the `Idempotency-Key`s of creating requests and their answers. Every reference
names the organization (composite foreign keys), so no row can point into another organization.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "5b7e1d9c3a24"
down_revision: str | None = "8d2f4c6a1e07"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("conversation_counters", "conversations", "messages", "idempotency_keys")


def upgrade() -> None:
    op.create_table(
        "conversation_counters",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("last_number", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_conversation_counters_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_conversation_counters")),
    )
    op.create_table(
        "conversations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("inbox_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=10), server_default=sa.text("'open'"), nullable=False),
        sa.Column("snoozed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("priority", sa.String(length=10), server_default=sa.text("'none'"), nullable=False),
        sa.Column("assignee_id", sa.Uuid(), nullable=True),
        sa.Column("team_id", sa.Uuid(), nullable=True),
        sa.Column(
            "tags", postgresql.ARRAY(sa.String(length=50)), server_default=sa.text("'{}'"), nullable=False
        ),
        sa.Column(
            "custom_attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("first_response_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_message_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reopened_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column(
            "last_activity_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "status IN ('open', 'pending', 'snoozed', 'resolved')", name=op.f("ck_conversations_status_known")
        ),
        sa.CheckConstraint(
            "priority IN ('none', 'low', 'normal', 'high', 'urgent')",
            name=op.f("ck_conversations_priority_known"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_conversations_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "inbox_id"],
            ["inboxes.organization_id", "inboxes.id"],
            name="fk_conversations_inbox_same_org",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "contact_id"],
            ["contacts.organization_id", "contacts.id"],
            name="fk_conversations_contact_same_org",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "assignee_id"],
            ["memberships.organization_id", "memberships.user_id"],
            name="fk_conversations_assignee_same_org",
            ondelete="SET NULL (assignee_id)",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "team_id"],
            ["teams.organization_id", "teams.id"],
            name="fk_conversations_team_same_org",
            ondelete="SET NULL (team_id)",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
        sa.UniqueConstraint("organization_id", "id", name="uq_conversations_organization_id_id"),
        sa.UniqueConstraint("organization_id", "number", name="uq_conversations_organization_id_number"),
    )
    op.create_index(
        "ix_conversations_organization_id_last_activity_at_id",
        "conversations",
        ["organization_id", "last_activity_at", "id"],
    )
    op.create_index(
        "ix_conversations_organization_id_assignee_id", "conversations", ["organization_id", "assignee_id"]
    )
    op.create_index(
        "ix_conversations_organization_id_contact_id", "conversations", ["organization_id", "contact_id"]
    )
    op.create_index(
        "ix_conversations_organization_id_inbox_id", "conversations", ["organization_id", "inbox_id"]
    )
    op.create_index(
        "ix_conversations_organization_id_team_id", "conversations", ["organization_id", "team_id"]
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("private", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("author_type", sa.String(length=20), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=True),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "kind IN ('incoming', 'outgoing', 'note', 'activity')", name=op.f("ck_messages_kind_known")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_messages_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "conversation_id"],
            ["conversations.organization_id", "conversations.id"],
            name="fk_messages_conversation_same_org",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
    )
    op.create_index(
        "ix_messages_organization_id_conversation_id_created_at_id",
        "messages",
        ["organization_id", "conversation_id", "created_at", "id"],
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_idempotency_keys_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "key", name=op.f("pk_idempotency_keys")),
    )
    for table in TABLES:
        op.execute(
            f"""
            ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
            CREATE POLICY current_read ON {table} FOR SELECT USING (organization_id = app_current_org());
            CREATE POLICY current_insert ON {table} FOR INSERT
                WITH CHECK (organization_id = app_current_org());
            CREATE POLICY current_update ON {table} FOR UPDATE
                USING (organization_id = app_current_org()) WITH CHECK (organization_id = app_current_org());
            CREATE POLICY current_delete ON {table} FOR DELETE USING (organization_id = app_current_org());
            """
        )


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)  # its indexes and policies go with it
