"""knowledge embeddings: embedders configured per organization, vectors by chunk content

Revision ID: e4b8c1d7f2a9
Revises: 4b8d2e6f1a37
Create Date: 2026-11-30 05:00:00.000000+00:00

Needs the pgvector extension (the embedded PostgreSQL ships it; elsewhere a superuser may have to create
it first). Vectors are stored at the model's own dimension; each dimension common among embedding models
has an HNSW index (cosine, over the vector as halfvec: up to 4,000 dimensions); a vector of another
dimension is searched exactly (decision 0052). A chunk's `embedding_key` hashes what a model is given
for it (the first 600 characters of its source's title, its headings and its text; a phrasing's text), as
repository.embedding_key does.
"""

from collections.abc import Sequence

import pgvector.sqlalchemy
import sqlalchemy as sa
from alembic import op

revision: str = "e4b8c1d7f2a9"
down_revision: str | None = "4b8d2e6f1a37"
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
INDEXED_DIMENSIONS = (384, 768, 1024, 1536, 3072)

EMBEDDING_KEY = r"""
UPDATE knowledge_chunks c
   SET embedding_key = encode(sha256(convert_to(
           CASE c.kind WHEN 'phrasing' THEN 'phrasing' || E'\n' || c.text
           ELSE 'passage' || E'\n' || left(s.title || E'\n' || array_to_string(c.heading_path, ' > ')
                || E'\n' || c.text, 600) END, 'UTF8')), 'hex')
  FROM knowledge_sources s
 WHERE s.organization_id = c.organization_id AND s.id = c.source_id
"""


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.add_column("knowledge_chunks", sa.Column("embedding_key", sa.String(length=64), nullable=True))
    op.execute(EMBEDDING_KEY)
    op.alter_column("knowledge_chunks", "embedding_key", nullable=False)
    op.create_index(
        "ix_knowledge_chunks_organization_id_embedding_key",
        "knowledge_chunks",
        ["organization_id", "embedding_key"],
    )
    op.create_table(
        "knowledge_embedders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("base_url", sa.String(length=500), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("dimensions", sa.Integer(), nullable=True),
        sa.Column("request_dimensions", sa.Boolean(), nullable=False),
        sa.Column("query_prefix", sa.String(length=100), nullable=False),
        sa.Column("document_prefix", sa.String(length=100), nullable=False),
        sa.Column("input_type", sa.Boolean(), nullable=False),
        sa.Column("api_key_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("baseline", sa.Float(), nullable=True),
        sa.Column("embedded", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.CheckConstraint(
            "state IN ('building', 'serving', 'retired', 'failed')",
            name=op.f("ck_knowledge_embedders_state_known"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_knowledge_embedders_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_embedders")),
        sa.UniqueConstraint("organization_id", "id", name="uq_knowledge_embedders_organization_id_id"),
    )
    for state in ("serving", "building"):
        op.create_index(
            f"uq_knowledge_embedders_one_{state}",
            "knowledge_embedders",
            ["organization_id"],
            unique=True,
            postgresql_where=sa.text(f"state = '{state}'"),
        )
    op.create_table(
        "knowledge_embeddings",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("embedder_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("dimensions", sa.Integer(), nullable=False),
        sa.Column("embedding", pgvector.sqlalchemy.vector.VECTOR(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_knowledge_embeddings_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "embedder_id"],
            ["knowledge_embedders.organization_id", "knowledge_embedders.id"],
            name="fk_knowledge_embeddings_embedder_same_org",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "organization_id", "embedder_id", "key", name=op.f("pk_knowledge_embeddings")
        ),
    )
    for dimensions in INDEXED_DIMENSIONS:
        op.execute(
            f"CREATE INDEX ix_knowledge_embeddings_hnsw_{dimensions} ON knowledge_embeddings "
            f"USING hnsw ((embedding::halfvec({dimensions})) halfvec_cosine_ops) "
            f"WHERE dimensions = {dimensions}"
        )
    op.execute(
        "".join(POLICIES.format(table=table) for table in ("knowledge_embedders", "knowledge_embeddings"))
    )


def downgrade() -> None:
    op.drop_table("knowledge_embeddings")
    op.drop_table("knowledge_embedders")
    op.drop_index("ix_knowledge_chunks_organization_id_embedding_key", table_name="knowledge_chunks")
    op.drop_column("knowledge_chunks", "embedding_key")
