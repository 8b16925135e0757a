"""knowledge citations: a source cited in a conversation, learned from once it stays resolved

Revision ID: d7e2a9c41f05
Revises: c3f9d2a6e184
Create Date: 2026-11-30 03:20:00.000000+00:00

`organizations_with_citations_to_learn()` names the organizations with citations not learned from yet
(ids only), for the hourly job (decision 0050).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d7e2a9c41f05"
down_revision: str | None = "c3f9d2a6e184"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POLICIES = """
    ALTER TABLE knowledge_citations ENABLE ROW LEVEL SECURITY;
    CREATE POLICY current_read ON knowledge_citations FOR SELECT USING (organization_id = app_current_org());
    CREATE POLICY current_insert ON knowledge_citations FOR INSERT
        WITH CHECK (organization_id = app_current_org());
    CREATE POLICY current_update ON knowledge_citations FOR UPDATE
        USING (organization_id = app_current_org()) WITH CHECK (organization_id = app_current_org());
    CREATE POLICY current_delete ON knowledge_citations FOR DELETE
        USING (organization_id = app_current_org());
"""


def upgrade() -> None:
    op.create_table(
        "knowledge_citations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("reopened_count", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("learned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.CheckConstraint(
            "outcome IN ('learned', 'reopened', 'nothing_to_learn')",
            name=op.f("ck_knowledge_citations_outcome_known"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_knowledge_citations_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "source_id"],
            ["knowledge_sources.organization_id", "knowledge_sources.id"],
            name="fk_knowledge_citations_source_same_org",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "conversation_id"],
            ["conversations.organization_id", "conversations.id"],
            name="fk_knowledge_citations_conversation_same_org",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_citations")),
        sa.UniqueConstraint(
            "organization_id",
            "source_id",
            "conversation_id",
            name="uq_knowledge_citations_source_conversation",
        ),
    )
    op.create_index(
        "ix_knowledge_citations_to_learn",
        "knowledge_citations",
        ["organization_id", "created_at"],
        postgresql_where=sa.text("learned_at IS NULL"),
    )
    op.create_index(
        "ix_knowledge_citations_organization_id_conversation_id",
        "knowledge_citations",
        ["organization_id", "conversation_id"],
    )
    op.execute(POLICIES)
    op.execute(
        """
        CREATE FUNCTION organizations_with_citations_to_learn() RETURNS SETOF uuid
            LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
            AS $$ SELECT DISTINCT organization_id FROM public.knowledge_citations WHERE learned_at IS NULL $$;
        REVOKE EXECUTE ON FUNCTION organizations_with_citations_to_learn() FROM PUBLIC;
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION organizations_with_citations_to_learn()")
    op.drop_table("knowledge_citations")
