"""knowledge search at scale: document frequencies kept per organization, lookups in PL/pgSQL

Revision ID: 4b8d2e6f1a37
Revises: d7e2a9c41f05
Create Date: 2026-11-30 04:00:00.000000+00:00

`knowledge_lexemes` holds, for each organization, field (`s` the words' `search`, `g` the letter groups'
`grams`) and lexeme (prefixed as in the vectors), how many of its chunks hold it: kept by statement
triggers on `knowledge_chunks` in the transaction that writes or deletes chunks, so a search reads a
lexeme's document frequency by primary key instead of counting it through the GIN index, and sees the
frequencies of the chunks it sees (decision 0050, "At scale").

`knowledge_word_hits` and `knowledge_gram_hits` keep their arguments and results and become PL/pgSQL:
as SQL functions (not inlinable: SECURITY DEFINER) their one query was planned with its arguments as
unknown parameters, so the filters (`$3 IS NULL OR ...`) looked selective and the planner walked every
chunk of every source through the (organization, source) index instead of the GIN index: 35 ms to
430 ms on 300 chunks. Now the statistics and frequencies are read first, and the candidates' query is
planned with the values (`plan_cache_mode = force_custom_plan`), each candidate's source filtered by its
key. The chunks' GIN indexes no longer keep a pending list (`fastupdate = off`): a search read all of it.
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = "4b8d2e6f1a37"
down_revision: str | None = "d7e2a9c41f05"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POLICIES = """
    ALTER TABLE knowledge_lexemes ENABLE ROW LEVEL SECURITY;
    CREATE POLICY current_read ON knowledge_lexemes FOR SELECT USING (organization_id = app_current_org());
    CREATE POLICY current_insert ON knowledge_lexemes FOR INSERT
        WITH CHECK (organization_id = app_current_org());
    CREATE POLICY current_update ON knowledge_lexemes FOR UPDATE
        USING (organization_id = app_current_org()) WITH CHECK (organization_id = app_current_org());
    CREATE POLICY current_delete ON knowledge_lexemes FOR DELETE
        USING (organization_id = app_current_org());
"""

# The lexemes of a set of chunks (the trigger's transition table), counted once per chunk and field.
CHUNK_LEXEMES = """
    SELECT c.organization_id, 's'::"char" AS field, u.lexeme, count(*) AS chunks
      FROM {rows} c, unnest(c.search) AS u GROUP BY 1, 3
    UNION ALL
    SELECT c.organization_id, 'g'::"char", u.lexeme, count(*)
      FROM {rows} c, unnest(c.grams) AS u GROUP BY 1, 3
"""

# Runs as the writer (row-level security applies). The organizations' chunks are written one
# transaction at a time (an advisory lock per organization, taken in order), so that two ingestions
# never wait on each other's lexemes in opposite orders.
TRIGGERS = f"""
CREATE FUNCTION knowledge_lexemes_counted() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, public
    AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            PERFORM pg_advisory_xact_lock(hashtextextended('knowledge_lexemes ' || o::text, 0))
               FROM (SELECT DISTINCT organization_id AS o FROM added ORDER BY 1) AS orgs;
            INSERT INTO knowledge_lexemes AS l (organization_id, field, lexeme, chunks)
            SELECT * FROM ({CHUNK_LEXEMES.format(rows="added")}) AS n ORDER BY 1, 2, 3
            ON CONFLICT (organization_id, field, lexeme) DO UPDATE SET chunks = l.chunks + excluded.chunks;
        ELSE
            PERFORM pg_advisory_xact_lock(hashtextextended('knowledge_lexemes ' || o::text, 0))
               FROM (SELECT DISTINCT organization_id AS o FROM removed ORDER BY 1) AS orgs;
            -- The organization's own rows may be gone already (deleted with it): nothing to count then.
            UPDATE knowledge_lexemes AS l SET chunks = l.chunks - r.chunks
              FROM ({CHUNK_LEXEMES.format(rows="removed")}) AS r
             WHERE l.organization_id = r.organization_id AND l.field = r.field AND l.lexeme = r.lexeme;
            DELETE FROM knowledge_lexemes AS l
             USING (SELECT DISTINCT organization_id FROM removed) AS r
             WHERE l.organization_id = r.organization_id AND l.chunks <= 0;
        END IF;
        RETURN NULL;
    END
    $$;
CREATE TRIGGER knowledge_chunks_lexemes_added AFTER INSERT ON knowledge_chunks
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION knowledge_lexemes_counted();
CREATE TRIGGER knowledge_chunks_lexemes_removed AFTER DELETE ON knowledge_chunks
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION knowledge_lexemes_counted();
CREATE FUNCTION knowledge_chunks_unchanged() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'knowledge chunks are replaced, never updated (knowledge_lexemes counts them)';
    END
    $$;
CREATE TRIGGER knowledge_chunks_unchanged BEFORE UPDATE OF search, grams, organization_id ON knowledge_chunks
    FOR EACH STATEMENT EXECUTE FUNCTION knowledge_chunks_unchanged();
"""  # noqa: S608 (the migration's own text)

# The GIN indexes take each chunk's lexemes at once instead of in a pending list: a search reads that
# whole list until a vacuum merges it (a freshly ingested corpus of 300 chunks: 184 and 294 pages, 6 and
# 15 ms a lookup), and a source's chunks now arrive in one statement.
GIN_DIRECT = """
    ALTER INDEX ix_knowledge_chunks_search SET (fastupdate = off);
    ALTER INDEX ix_knowledge_chunks_grams SET (fastupdate = off);
    SELECT gin_clean_pending_list('ix_knowledge_chunks_search'::regclass),
           gin_clean_pending_list('ix_knowledge_chunks_grams'::regclass);
"""

# BM25 over one column of the current tenant's chunks (decision 0050), in three steps: the
# organization's statistics; the query's lexemes it has, rarest first, with their document frequencies
# (knowledge_lexemes) and idf; then the candidates, the chunks holding the rarest lexeme or one of the
# next rare ones (in at most 5 % of the chunks, or `rare`) while fewer than `max_candidates` chunks hold
# those already, at most `max_candidates` of them within the filters, each scored over the query's
# lexemes it holds, a lexeme's frequency weighted by where it occurs. Runs as the tables' owner for the
# GIN index (see migration 8a1e4c2b7d65), for app_current_org() only.
HITS = r"""
CREATE FUNCTION knowledge_{name}_hits(
    organization uuid, query_lexemes text[], statuses text[], visibilities text[], in_collection text,
    in_locale text, in_source uuid, with_tags varchar[], k1 float8, b float8, title_weight float8,
    heading_weight float8, rare float8, max_candidates int, lim int
)
    RETURNS TABLE (chunk_id uuid, source_id uuid, kind text, bm25 float8, best_possible float8)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public SET jit = off SET plan_cache_mode = force_custom_plan ROWS 50
    AS $fn$
#variable_conflict use_column
DECLARE
    n float8;
    avgdl float8;
    terms text[];
    idfs float8[];
    best float8;
    wanted tsquery;
BEGIN
    IF $1 IS DISTINCT FROM app_current_org() THEN
        RETURN;
    END IF;
    SELECT greatest(s.chunks, 1),
           CASE WHEN s.chunks > 0 AND s.{total} > 0 THEN s.{total} / s.chunks ELSE 1 END
      INTO n, avgdl
      FROM public.knowledge_stats s WHERE s.organization_id = $1;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT array_agg(t.lexeme ORDER BY t.chunks, t.lexeme),
           array_agg(t.idf ORDER BY t.chunks, t.lexeme),
           sum(t.idf * ($9 + 1)),
           string_agg(quote_literal(t.lexeme), ' | ' ORDER BY t.chunks, t.lexeme)
               FILTER (WHERE t.before = 0
                              OR (t.chunks <= greatest($13, n * 0.05) AND t.before < $14))::tsquery
      INTO terms, idfs, best, wanted
      FROM (SELECT l.lexeme, l.chunks, ln(1 + (n - l.chunks + 0.5) / (l.chunks + 0.5)) AS idf,
                   coalesce(sum(l.chunks) OVER (ORDER BY l.chunks, l.lexeme ROWS
                                                BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before
              FROM public.knowledge_lexemes l
             WHERE l.organization_id = $1 AND l.field = '{field}' AND l.chunks > 0
               AND l.lexeme = ANY (SELECT encode(substr(uuid_send($1), 1, 6), 'base64') || x
                                     FROM unnest($2) AS x WHERE x <> '')) AS t;
    IF terms IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT f.id, f.source_id, f.kind::text,
           sum(t.idf * t.tf * ($9 + 1) / (t.tf + $9 * (1 - $10 + $10 * f.length / avgdl))),
           best
      FROM (SELECT c.id, c.source_id, c.kind, c.{column} AS document, c.{length} AS length
              FROM public.knowledge_chunks c
             WHERE c.{column} @@ wanted AND c.organization_id::text = $1::text
               -- The source's filters, its row found by its key for each chunk: a subquery, never a
               -- join the planner could start from the sources with (or repeat for each chunk).
               AND (SELECT true FROM public.knowledge_sources s
                     WHERE s.id = c.source_id AND s.organization_id = $1
                       AND ($3 IS NULL OR s.status = ANY($3))
                       AND ($4 IS NULL OR s.visibility = ANY($4))
                       AND ($5 IS NULL OR s.collection = $5)
                       AND ($6 IS NULL OR s.locale = $6)
                       AND ($7 IS NULL OR s.id = $7)
                       AND ($8 IS NULL OR s.tags @> $8))
             LIMIT $14) AS f
      CROSS JOIN LATERAL (
          SELECT idfs[array_position(terms, u.lexeme)] AS idf,
                 (SELECT sum(CASE w WHEN 'A' THEN $11 WHEN 'B' THEN $12 ELSE 1 END)
                    FROM unnest(u.weights) AS w) AS tf
            -- The chunk's vector with only the query's lexemes (twice the speed of filtering its unnest).
            FROM unnest(ts_delete(f.document, tsvector_to_array(ts_delete(f.document, terms)))) AS u
      ) AS t
     GROUP BY f.id, f.source_id, f.kind
     ORDER BY 4 DESC, f.id
     LIMIT $15;
END
$fn$;
REVOKE EXECUTE ON FUNCTION knowledge_{name}_hits(
    uuid, text[], text[], text[], text, text, uuid, varchar[],
    float8, float8, float8, float8, float8, int, int
) FROM PUBLIC;
"""
SIGNATURE = (
    "uuid, text[], text[], text[], text, text, uuid, varchar[], "
    "float8, float8, float8, float8, float8, int, int"
)


def upgrade() -> None:
    op.create_table(
        "knowledge_lexemes",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("field", sa.CHAR(length=1), nullable=False),
        sa.Column("lexeme", sa.Text(), nullable=False),
        sa.Column("chunks", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("field IN ('s', 'g')", name=op.f("ck_knowledge_lexemes_field_known")),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_knowledge_lexemes_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "field", "lexeme", name=op.f("pk_knowledge_lexemes")),
    )
    op.execute(POLICIES)
    op.execute(
        "INSERT INTO knowledge_lexemes (organization_id, field, lexeme, chunks) "
        + CHUNK_LEXEMES.format(rows="knowledge_chunks")
    )
    op.execute(TRIGGERS)
    op.execute(GIN_DIRECT)
    op.execute(f"DROP FUNCTION knowledge_word_hits({SIGNATURE}), knowledge_gram_hits({SIGNATURE})")
    op.execute(HITS.format(name="word", column="search", length="length", total="total_length", field="s"))
    op.execute(
        HITS.format(name="gram", column="grams", length="grams_length", total="total_grams_length", field="g")
    )


def downgrade() -> None:
    op.execute(f"DROP FUNCTION knowledge_word_hits({SIGNATURE}), knowledge_gram_hits({SIGNATURE})")
    op.execute(
        "DROP TRIGGER knowledge_chunks_unchanged ON knowledge_chunks;"
        "DROP TRIGGER knowledge_chunks_lexemes_added ON knowledge_chunks;"
        "DROP TRIGGER knowledge_chunks_lexemes_removed ON knowledge_chunks;"
        "DROP FUNCTION knowledge_chunks_unchanged, knowledge_lexemes_counted"
    )
    op.drop_table("knowledge_lexemes")
    op.execute(
        "ALTER INDEX ix_knowledge_chunks_search RESET (fastupdate);"
        "ALTER INDEX ix_knowledge_chunks_grams RESET (fastupdate)"
    )
    # The SQL functions of migration 8a1e4c2b7d65, as they were.
    path = Path(__file__).with_name("20261130_0300_8a1e4c2b7d65_knowledge.py")
    spec = importlib.util.spec_from_file_location("knowledge_8a1e4c2b7d65", path)
    assert spec is not None
    assert spec.loader is not None
    knowledge = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(knowledge)
    op.execute(knowledge.HITS.format(name="word", column="search", length="length", total="total_length"))
    op.execute(
        knowledge.HITS.format(name="gram", column="grams", length="grams_length", total="total_grams_length")
    )
