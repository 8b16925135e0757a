"""tags: the organization's tag vocabulary, under row-level security

Revision ID: 7e3a9b1c5d20
Revises: 5b7e1d9c3a24
Create Date: 2026-11-29 19:50:00.000000+00:00

Conversations keep carrying tag names in their `tags` array (what lists filter on); this table is the
vocabulary admins manage (decision 0043). The names already in use become its first rows.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7e3a9b1c5d20"
down_revision: str | None = "5b7e1d9c3a24"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tags",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("color", sa.String(length=7), nullable=True),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_tags_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tags")),
        sa.UniqueConstraint("organization_id", "id", name="uq_tags_organization_id_id"),
        sa.UniqueConstraint("organization_id", "name", name="uq_tags_organization_id_name"),
    )
    op.create_index("ix_tags_organization_id_created_at", "tags", ["organization_id", "created_at"])
    op.execute(
        """
        ALTER TABLE tags ENABLE ROW LEVEL SECURITY;
        CREATE POLICY current_read ON tags FOR SELECT USING (organization_id = app_current_org());
        CREATE POLICY current_insert ON tags FOR INSERT WITH CHECK (organization_id = app_current_org());
        CREATE POLICY current_update ON tags FOR UPDATE
            USING (organization_id = app_current_org()) WITH CHECK (organization_id = app_current_org());
        CREATE POLICY current_delete ON tags FOR DELETE USING (organization_id = app_current_org());

        INSERT INTO tags (id, organization_id, name)
        SELECT gen_random_uuid(), organization_id, name
          FROM (SELECT DISTINCT organization_id, unnest(tags) AS name FROM conversations) AS used;
        """
    )


def downgrade() -> None:
    op.drop_table("tags")  # its indexes and policies go with it
