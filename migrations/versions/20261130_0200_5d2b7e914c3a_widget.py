"""widget: visitors, the conversations anonymous visitors started, conversation ratings

Revision ID: 5d2b7e914c3a
Revises: 2ebf2094af47
Create Date: 2026-11-30 02:00:00.000000+00:00

`widget_inbox(inbox_id)` names a widget inbox's organization and allowed origins before any tenant is
known (a browser's preflight carries no credential): nothing else of the inbox (decision 0049).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5d2b7e914c3a"
down_revision: str | None = "2ebf2094af47"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POLICIES = """
    ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
    CREATE POLICY current_read ON {table} FOR SELECT USING (organization_id = app_current_org());
    CREATE POLICY current_insert ON {table} FOR INSERT WITH CHECK (organization_id = app_current_org());
    CREATE POLICY current_update ON {table} FOR UPDATE
        USING (organization_id = app_current_org()) WITH CHECK (organization_id = app_current_org());
    CREATE POLICY current_delete ON {table} FOR DELETE USING (organization_id = app_current_org());
"""
TABLES = ("widget_visitors", "widget_visitor_conversations", "conversation_ratings")


def _organization(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["organization_id"],
        ["organizations.id"],
        name=op.f(f"fk_{table}_organization_id_organizations"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "widget_visitors",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("inbox_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column(
            "last_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        _organization("widget_visitors"),
        sa.ForeignKeyConstraint(
            ["organization_id", "inbox_id"],
            ["inboxes.organization_id", "inboxes.id"],
            name="fk_widget_visitors_inbox_same_org",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "contact_id"],
            ["contacts.organization_id", "contacts.id"],
            name="fk_widget_visitors_contact_same_org",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_widget_visitors")),
        sa.UniqueConstraint("organization_id", "id", name="uq_widget_visitors_organization_id_id"),
    )
    op.create_index(
        "ix_widget_visitors_organization_id_contact_id", "widget_visitors", ["organization_id", "contact_id"]
    )
    op.create_index(
        "ix_widget_visitors_organization_id_inbox_id", "widget_visitors", ["organization_id", "inbox_id"]
    )
    op.create_index(
        "uq_widget_visitors_verified",
        "widget_visitors",
        ["organization_id", "inbox_id", "contact_id"],
        unique=True,
        postgresql_where=sa.text("verified"),
    )
    op.create_table(
        "widget_visitor_conversations",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("visitor_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        _organization("widget_visitor_conversations"),
        sa.ForeignKeyConstraint(
            ["organization_id", "visitor_id"],
            ["widget_visitors.organization_id", "widget_visitors.id"],
            name="fk_widget_visitor_conversations_visitor_same_org",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "conversation_id"],
            ["conversations.organization_id", "conversations.id"],
            name="fk_widget_visitor_conversations_conversation_same_org",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "organization_id", "visitor_id", "conversation_id", name=op.f("pk_widget_visitor_conversations")
        ),
    )
    op.create_index(
        "ix_widget_visitor_conversations_organization_id_conversation_id",
        "widget_visitor_conversations",
        ["organization_id", "conversation_id"],
    )
    op.create_table(
        "conversation_ratings",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("comment", sa.String(length=2000), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "score BETWEEN 1 AND 5", name=op.f("ck_conversation_ratings_score_between_1_and_5")
        ),
        _organization("conversation_ratings"),
        sa.ForeignKeyConstraint(
            ["organization_id", "conversation_id"],
            ["conversations.organization_id", "conversations.id"],
            name="fk_conversation_ratings_conversation_same_org",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "conversation_id", name=op.f("pk_conversation_ratings")),
    )
    op.execute("".join(POLICIES.format(table=table) for table in TABLES))
    op.execute(
        """
        CREATE FUNCTION widget_inbox(uuid) RETURNS TABLE (organization_id uuid, allowed_origins jsonb)
            LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
            AS $$ SELECT organization_id, allowed_origins FROM public.inboxes
                  WHERE id = $1 AND kind = 'widget' $$;
        REVOKE EXECUTE ON FUNCTION widget_inbox(uuid) FROM PUBLIC;
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION widget_inbox(uuid)")
    for table in reversed(TABLES):
        op.drop_table(table)
