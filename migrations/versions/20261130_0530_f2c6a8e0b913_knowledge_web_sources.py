"""knowledge web sources: pages by URL and sitemaps, re-synced on a schedule

Revision ID: f2c6a8e0b913
Revises: e4b8c1d7f2a9
Create Date: 2026-11-30 05:30:00.000000+00:00

`knowledge_organizations_to_sync()` names the organizations with a web source due for a sync (ids only),
for the periodic job (decision 0053).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f2c6a8e0b913"
down_revision: str | None = "e4b8c1d7f2a9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("knowledge_sources", sa.Column("url", sa.String(length=2000), nullable=True))
    op.add_column("knowledge_sources", sa.Column("parent_id", sa.Uuid(), nullable=True))
    op.add_column("knowledge_sources", sa.Column("max_pages", sa.Integer(), nullable=True))
    op.add_column("knowledge_sources", sa.Column("sync_hours", sa.Integer(), nullable=True))
    op.add_column("knowledge_sources", sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("knowledge_sources", sa.Column("next_sync_at", sa.DateTime(timezone=True), nullable=True))
    op.drop_constraint(op.f("ck_knowledge_sources_kind_known"), "knowledge_sources", type_="check")
    op.create_check_constraint(
        op.f("ck_knowledge_sources_kind_known"),
        "knowledge_sources",
        "kind IN ('article', 'document', 'web', 'sitemap')",
    )
    op.create_foreign_key(
        "fk_knowledge_sources_parent_same_org",
        "knowledge_sources",
        "knowledge_sources",
        ["organization_id", "parent_id"],
        ["organization_id", "id"],
        ondelete="CASCADE",
    )
    op.create_index(
        "ix_knowledge_sources_organization_id_parent_id",
        "knowledge_sources",
        ["organization_id", "parent_id"],
    )
    op.create_index(
        "ix_knowledge_sources_next_sync_at",
        "knowledge_sources",
        ["next_sync_at"],
        postgresql_where=sa.text("next_sync_at IS NOT NULL"),
    )
    op.execute(
        """
        CREATE FUNCTION knowledge_organizations_to_sync(due timestamptz) RETURNS SETOF uuid
            LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
            AS $$ SELECT DISTINCT organization_id FROM public.knowledge_sources
                   WHERE next_sync_at IS NOT NULL AND next_sync_at <= due $$;
        REVOKE EXECUTE ON FUNCTION knowledge_organizations_to_sync(timestamptz) FROM PUBLIC;
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION knowledge_organizations_to_sync(timestamptz)")
    op.execute("DELETE FROM knowledge_sources WHERE kind IN ('web', 'sitemap')")
    op.drop_index("ix_knowledge_sources_next_sync_at", table_name="knowledge_sources")
    op.drop_index("ix_knowledge_sources_organization_id_parent_id", table_name="knowledge_sources")
    op.drop_constraint("fk_knowledge_sources_parent_same_org", "knowledge_sources", type_="foreignkey")
    op.drop_constraint(op.f("ck_knowledge_sources_kind_known"), "knowledge_sources", type_="check")
    op.create_check_constraint(
        op.f("ck_knowledge_sources_kind_known"), "knowledge_sources", "kind IN ('article', 'document')"
    )
    for column in ("next_sync_at", "synced_at", "sync_hours", "max_pages", "parent_id", "url"):
        op.drop_column("knowledge_sources", column)
