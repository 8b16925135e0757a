"""knowledge: sources (articles), chunks with weighted search documents, phrasings, corpus statistics

Revision ID: 8a1e4c2b7d65
Revises: 5d2b7e914c3a
Create Date: 2026-11-30 03:00:00.000000+00:00

BM25 is computed in SQL from `knowledge_chunks.search` and `length` and `knowledge_stats` (decision 0050).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "8a1e4c2b7d65"
down_revision: str | None = "5d2b7e914c3a"
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
TABLES = ("knowledge_sources", "knowledge_chunks", "knowledge_phrasings", "knowledge_stats")
NOW = sa.text("now()")


def _organization(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["organization_id"],
        ["organizations.id"],
        name=op.f(f"fk_{table}_organization_id_organizations"),
        ondelete="CASCADE",
    )


def _source(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["organization_id", "source_id"],
        ["knowledge_sources.organization_id", "knowledge_sources.id"],
        name=f"fk_{table}_source_same_org",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "knowledge_sources",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("slug", sa.String(length=120), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("visibility", sa.String(length=16), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("collection", sa.String(length=100), nullable=True),
        sa.Column("tags", sa.ARRAY(sa.String(length=50)), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("ingest_status", sa.String(length=16), nullable=False),
        sa.Column("ingest_error", sa.String(length=500), nullable=True),
        sa.Column("chunk_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.CheckConstraint("kind IN ('article')", name=op.f("ck_knowledge_sources_kind_known")),
        sa.CheckConstraint(
            "status IN ('draft', 'published', 'archived')", name=op.f("ck_knowledge_sources_status_known")
        ),
        sa.CheckConstraint(
            "visibility IN ('public', 'internal')", name=op.f("ck_knowledge_sources_visibility_known")
        ),
        sa.CheckConstraint(
            "ingest_status IN ('queued', 'processing', 'ready', 'failed')",
            name=op.f("ck_knowledge_sources_ingest_status_known"),
        ),
        _organization("knowledge_sources"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_sources")),
        sa.UniqueConstraint("organization_id", "id", name="uq_knowledge_sources_organization_id_id"),
        sa.UniqueConstraint("organization_id", "slug", name="uq_knowledge_sources_organization_id_slug"),
    )
    op.create_index(
        "ix_knowledge_sources_organization_id_created_at_id",
        "knowledge_sources",
        ["organization_id", "created_at", "id"],
    )
    op.create_table(
        "knowledge_chunks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("heading_path", sa.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("char_start", sa.Integer(), nullable=False),
        sa.Column("char_end", sa.Integer(), nullable=False),
        sa.Column("length", sa.Float(), nullable=False),
        sa.Column("search", postgresql.TSVECTOR(), nullable=False),
        sa.Column("grams", postgresql.TSVECTOR(), nullable=False),
        sa.Column("grams_length", sa.Float(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.CheckConstraint("kind IN ('passage', 'phrasing')", name=op.f("ck_knowledge_chunks_kind_known")),
        _organization("knowledge_chunks"),
        _source("knowledge_chunks"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_chunks")),
        sa.UniqueConstraint("organization_id", "id", name="uq_knowledge_chunks_organization_id_id"),
    )
    op.create_index(
        "ix_knowledge_chunks_organization_id_source_id",
        "knowledge_chunks",
        ["organization_id", "source_id", "ordinal"],
    )
    op.create_index("ix_knowledge_chunks_search", "knowledge_chunks", ["search"], postgresql_using="gin")
    op.create_index("ix_knowledge_chunks_grams", "knowledge_chunks", ["grams"], postgresql_using="gin")
    op.create_table(
        "knowledge_phrasings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source_id", sa.Uuid(), nullable=False),
        sa.Column("text", sa.String(length=1000), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.CheckConstraint(
            "origin IN ('api', 'conversation')", name=op.f("ck_knowledge_phrasings_origin_known")
        ),
        _organization("knowledge_phrasings"),
        _source("knowledge_phrasings"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_phrasings")),
        sa.UniqueConstraint("organization_id", "id", name="uq_knowledge_phrasings_organization_id_id"),
    )
    op.create_index(
        "ix_knowledge_phrasings_organization_id_source_id",
        "knowledge_phrasings",
        ["organization_id", "source_id"],
    )
    op.create_table(
        "knowledge_stats",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("chunks", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("total_length", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("total_grams_length", sa.Float(), server_default=sa.text("0"), nullable=False),
        _organization("knowledge_stats"),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_knowledge_stats")),
    )
    op.execute("".join(POLICIES.format(table=table) for table in TABLES))


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
