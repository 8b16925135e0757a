"""knowledge: sources (articles), chunks with weighted search documents, phrasings, corpus statistics

Revision ID: 8a1e4c2b7d65
Revises: 5d2b7e914c3a
Create Date: 2026-11-30 03:00:00.000000+00:00

BM25 is computed in SQL from `knowledge_chunks.search` and `length` and `knowledge_stats` (decision 0050).
As for conversations (decision 0041), the search vectors' lexemes are prefixed with the organization's
8 characters, so one GIN index holds each organization's posting lists apart, and the lookups run in
SECURITY DEFINER functions serving only the current tenant (row-level security keeps `@@` off the index).
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

# A chunk's search vector: the source's title (weight A), the headings (B) and the text (D) in the
# locale's configuration, each lexeme prefixed with the organization's 8 characters (as search_document).
DOCUMENT = r"""
CREATE FUNCTION knowledge_document(
    organization_id uuid, config regconfig, title text, headings text, body text
) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT coalesce(string_agg(
               '''' || replace(replace(encode(substr(uuid_send($1), 1, 6), 'base64') || u.lexeme, '\', '\\'),
                               '''', '''''')
               || ''':' || (SELECT string_agg(p || w, ',') FROM unnest(u.positions, u.weights) AS x(p, w)),
               ' '), '')::tsvector
    FROM unnest(setweight(to_tsvector($2, coalesce($3, '')), 'A')
                || setweight(to_tsvector($2, coalesce($4, '')), 'B')
                || setweight(to_tsvector($2, coalesce($5, '')), 'D')) AS u
    $$;
"""

# BM25 over one column of the current tenant's chunks (decision 0050): candidates are the chunks holding
# one of the query's rare lexemes (in at most 5 % of the chunks, or `rare` of them; always the rarest),
# at most `candidates` of them, within the filters; each is scored with the organization's statistics, a
# lexeme's frequency in a chunk weighted by where it occurs. Runs as the tables' owner for the GIN index
# (see the module's docstring), for app_current_org() only.
HITS = r"""
CREATE FUNCTION knowledge_{name}_hits(
    organization_id uuid, lexemes text[], statuses text[], visibilities text[], collection text,
    locale text, source_id uuid, tags varchar[], k1 float8, b float8, title_weight float8,
    heading_weight float8, rare float8, candidates int, lim int
)
    RETURNS TABLE (chunk_id uuid, source_id uuid, kind text, bm25 float8, best_possible float8)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public SET jit = off ROWS 50
    AS $$
    WITH tenant AS (
        SELECT encode(substr(uuid_send($1), 1, 6), 'base64') AS prefix WHERE $1 = app_current_org()
    ),
    q AS (SELECT DISTINCT tenant.prefix || l AS lexeme FROM tenant, unnest($2) AS l WHERE l <> ''),
    stats AS (
        SELECT greatest(s.chunks, 1)::float8 AS n,
               CASE WHEN s.chunks > 0 AND s.{total} > 0 THEN s.{total} / s.chunks ELSE 1 END AS avgdl
          FROM public.knowledge_stats s WHERE s.organization_id = $1
    ),
    df AS (
        SELECT q.lexeme, (
            SELECT count(*) FROM public.knowledge_chunks c
             WHERE c.{column} @@ quote_literal(q.lexeme)::tsquery AND c.organization_id::text = $1::text
        ) AS df
          FROM q
    ),
    idf AS (
        SELECT df.lexeme, df.df, ln(1 + (stats.n - df.df + 0.5) / (df.df + 0.5)) AS idf
          FROM df, stats WHERE df.df > 0
    ),
    picked AS (
        SELECT lexeme FROM idf WHERE df <= greatest($13, (SELECT n FROM stats) * 0.05)
        UNION
        (SELECT lexeme FROM idf ORDER BY df, lexeme LIMIT 1)
    ),
    found AS (
        SELECT c.id, c.source_id, c.kind, c.{column} AS document, c.{length} AS length
          FROM public.knowledge_chunks c
          JOIN public.knowledge_sources s ON s.organization_id = c.organization_id AND s.id = c.source_id
         WHERE c.{column} @@ (SELECT string_agg(quote_literal(lexeme), ' | ')::tsquery FROM picked)
           AND c.organization_id::text = $1::text
           AND ($3 IS NULL OR s.status = ANY($3))
           AND ($4 IS NULL OR s.visibility = ANY($4))
           AND ($5 IS NULL OR s.collection = $5)
           AND ($6 IS NULL OR s.locale = $6)
           AND ($7 IS NULL OR s.id = $7)
           AND ($8 IS NULL OR s.tags @> $8)
         LIMIT $14
    )
    SELECT f.id, f.source_id, f.kind::text,
           sum(idf.idf * t.tf * ($9 + 1) / (t.tf + $9 * (1 - $10 + $10 * f.length / stats.avgdl))),
           (SELECT sum(idf * ($9 + 1)) FROM idf)
      FROM found f
      CROSS JOIN stats
      CROSS JOIN LATERAL (
          SELECT u.lexeme, (
              SELECT sum(CASE w WHEN 'A' THEN $11 WHEN 'B' THEN $12 ELSE 1 END) FROM unnest(u.weights) AS w
          ) AS tf
            FROM unnest(f.document) AS u
      ) AS t
      JOIN idf ON idf.lexeme = t.lexeme
     GROUP BY f.id, f.source_id, f.kind
     ORDER BY 4 DESC, f.id
     LIMIT $15
    $$;
REVOKE EXECUTE ON FUNCTION knowledge_{name}_hits(
    uuid, text[], text[], text[], text, text, uuid, varchar[],
    float8, float8, float8, float8, float8, int, int
) FROM PUBLIC;
"""


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
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("content_type", sa.String(length=255), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("storage_key", sa.String(length=512), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.CheckConstraint("kind IN ('article', 'document')", name=op.f("ck_knowledge_sources_kind_known")),
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
        sa.Column("page", sa.Integer(), nullable=True),
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
    op.execute(DOCUMENT)
    op.execute(HITS.format(name="word", column="search", length="length", total="total_length"))
    op.execute(HITS.format(name="gram", column="grams", length="grams_length", total="total_grams_length"))


def downgrade() -> None:
    op.execute("DROP FUNCTION knowledge_gram_hits, knowledge_word_hits, knowledge_document")
    for table in reversed(TABLES):
        op.drop_table(table)
