"""conversation lists and full-text search: composite list indexes, tag keys, per-tenant search vectors

Revision ID: 15119fee7164
Revises: 5b7e1d9c3a24
Create Date: 2026-11-29 20:15:00.000000+00:00

Decision 0041. A GIN index cannot lead with organization_id here (no btree_gin), so what it holds is
made per organization instead: every lexeme of a search vector, and every tag key, starts with 8
characters naming the organization (base64 of the first 6 bytes of its id). A lookup then reads only
that organization's posting lists. The search vectors are stored generated columns (messages: the
body, activity excepted; conversations: the subject; contacts: name and email), with the 'simple'
configuration. The lists get btree indexes led by the organization and ending with the keyset order.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "15119fee7164"
down_revision: str | None = "5b7e1d9c3a24"
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
CREATE FUNCTION tenant_keys(organization_id uuid, keys varchar[]) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT array(SELECT encode(substr(uuid_send($1), 1, 6), 'base64') || key FROM unnest($2) AS key) $$;
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
    op.create_index(
        "ix_conversations_tag_keys",
        "conversations",
        [sa.text("tenant_keys(organization_id, tags)")],
        postgresql_using="gin",
    )
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
    op.drop_index("ix_conversations_tag_keys", table_name="conversations")
    for table in ("messages", "conversations", "contacts"):
        op.drop_index(f"ix_{table}_search", table_name=table)
        op.drop_column(table, "search")
    op.execute(
        "DROP FUNCTION tenant_keys(uuid, varchar[]), search_query(uuid, text), search_document(uuid, text)"
    )
