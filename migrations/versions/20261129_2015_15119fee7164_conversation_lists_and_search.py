"""conversation lists and full-text search: composite list indexes, per-tenant search vectors

Revision ID: 15119fee7164
Revises: 4c1f8a2e6b90
Create Date: 2026-11-29 20:15:00.000000+00:00

Decision 0041. A GIN index cannot lead with organization_id here (no btree_gin), so what it holds is
made per organization instead: every lexeme of a search vector starts with 8 characters naming the
organization (base64 of the first 6 bytes of its id). A lookup then reads only that organization's
posting lists; it runs in SECURITY DEFINER functions for the current tenant only, as row-level security
keeps non-leakproof operators such as `@@` off the indexes. The search vectors are stored generated
columns (messages: the body, activity excepted; conversations: the subject; contacts: name and email),
with the 'simple' configuration. The lists get btree indexes led by the organization and ending with the
keyset order.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "15119fee7164"
down_revision: str | None = "4c1f8a2e6b90"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Built-ins only (pg_catalog is searched whatever search_path is: a restore sets it empty). The prefix
# is fixed length, so no separator is needed; lexemes are quoted with ' and \ doubled.
FUNCTIONS = r"""
CREATE FUNCTION search_document(organization_id uuid, document text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT coalesce(string_agg(
               '''' || replace(replace(encode(substr(uuid_send($1), 1, 6), 'base64') || lexeme, '\', '\\'),
                               '''', '''''')
               || ''':' || array_to_string(positions, ','), ' '), '')::tsvector
    FROM unnest(to_tsvector('simple'::regconfig, coalesce($2, '')))
    $$;
CREATE FUNCTION search_query(organization_id uuid, query text) RETURNS tsquery
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT regexp_replace(websearch_to_tsquery('simple'::regconfig, $2)::text, '''((?:[^'']|'''')*)''',
                          '''' || encode(substr(uuid_send($1), 1, 6), 'base64') || '\1''', 'g')::tsquery
    $$;
"""

LOOKUPS = r"""
-- The GIN lookups, run as the tables' owner: row-level security would forbid them to the service, as
-- `@@` is not a leakproof operator, so a policy's qual must be checked on a row before it, and the
-- planner falls back to scanning the organization's rows. Each function serves only the current
-- tenant (app_current_org()), and checks the organization on every row it returns. `::text` keeps
-- that check off the organization's btree indexes: the prefixed lexemes already select its rows, and a
-- BitmapAnd with an index over all of them would cost as much as the organization is large. ROWS 100:
-- most searches find fewer, and the page's conversations are then read by key.
CREATE FUNCTION conversation_search_hits(organization_id uuid, query text)
    RETURNS TABLE (conversation_id uuid, rank double precision, source text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public ROWS 100
    AS $$
    WITH tenant AS (SELECT search_query($1, $2) AS q WHERE $1 = app_current_org())
    SELECT c.id, 2 * ts_rank(c.search, tenant.q)::float8, 'subject'
        FROM public.conversations c, tenant
        WHERE c.search @@ tenant.q AND c.organization_id::text = $1::text
    UNION ALL
    SELECT m.conversation_id, ts_rank(m.search, tenant.q)::float8, 'messages'
        FROM public.messages m, tenant
        WHERE m.search @@ tenant.q AND m.organization_id::text = $1::text
    UNION ALL
    SELECT c.id, 2 * ts_rank(k.search, tenant.q)::float8, 'contact'
        FROM public.contacts k, tenant, public.conversations c
        WHERE k.search @@ tenant.q AND k.organization_id::text = $1::text
          AND c.organization_id = k.organization_id AND c.contact_id = k.id
    $$;
-- How many subjects, messages and contacts the planner expects to match (its per-lexeme statistics,
-- which are per organization here): a search newest first walks the conversations above a threshold.
-- VOLATILE only because EXPLAIN is refused in other functions; it reads nothing but the plan.
CREATE FUNCTION conversation_search_estimate(organization_id uuid, query text) RETURNS double precision
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
    DECLARE
        q tsquery := search_query($1, $2);
        plan json;
    BEGIN
        IF $1 IS DISTINCT FROM app_current_org() THEN
            RETURN 0;
        END IF;
        EXECUTE format(
            'EXPLAIN (FORMAT JSON) SELECT 1 FROM public.conversations WHERE search @@ %1$L::tsquery'
            ' UNION ALL SELECT 1 FROM public.messages WHERE search @@ %1$L::tsquery'
            ' UNION ALL SELECT 1 FROM public.contacts WHERE search @@ %1$L::tsquery', q) INTO plan;
        RETURN (plan -> 0 -> 'Plan' ->> 'Plan Rows')::double precision;
    END
    $$;
REVOKE EXECUTE ON FUNCTION conversation_search_hits(uuid, text), conversation_search_estimate(uuid, text)
    FROM PUBLIC;
"""

MESSAGE_DOCUMENT = "CASE WHEN kind <> 'activity' THEN search_document(organization_id, body) END"
SUBJECT_DOCUMENT = "search_document(organization_id, subject)"
CONTACT_DOCUMENT = (
    "search_document(organization_id, coalesce(name, '') || ' ' || coalesce(email, '') || ' ' "
    "|| replace(coalesce(email, ''), '@', ' '))"
)
LISTS = {  # replaced index -> its successor, led by the same columns
    "ix_conversations_organization_id_assignee_id": (
        "ix_conversations_org_assignee_status_activity",
        "assignee_id",
    ),
    "ix_conversations_organization_id_team_id": ("ix_conversations_org_team_status_activity", "team_id"),
    "ix_conversations_organization_id_inbox_id": ("ix_conversations_org_inbox_status_activity", "inbox_id"),
}


def upgrade() -> None:
    op.execute(FUNCTIONS)
    for table, document in (
        ("messages", MESSAGE_DOCUMENT),
        ("conversations", SUBJECT_DOCUMENT),
        ("contacts", CONTACT_DOCUMENT),
    ):
        op.add_column(
            table,
            sa.Column("search", postgresql.TSVECTOR(), sa.Computed(document, persisted=True), nullable=True),
        )
        op.create_index(f"ix_{table}_search", table, ["search"], postgresql_using="gin")
    op.execute(LOOKUPS)
    op.create_index(
        "ix_conversations_org_status_activity",
        "conversations",
        ["organization_id", "status", "last_activity_at", "id"],
    )
    for old, (new, column) in LISTS.items():
        op.create_index(new, "conversations", ["organization_id", column, "status", "last_activity_at", "id"])
        op.drop_index(old, table_name="conversations")


def downgrade() -> None:
    for old, (new, column) in LISTS.items():
        op.create_index(old, "conversations", ["organization_id", column])
        op.drop_index(new, table_name="conversations")
    op.drop_index("ix_conversations_org_status_activity", table_name="conversations")
    for table in ("messages", "conversations", "contacts"):
        op.drop_index(f"ix_{table}_search", table_name=table)
        op.drop_column(table, "search")
    op.execute(
        "DROP FUNCTION conversation_search_estimate(uuid, text), conversation_search_hits(uuid, text), "
        "search_query(uuid, text), search_document(uuid, text)"
    )
