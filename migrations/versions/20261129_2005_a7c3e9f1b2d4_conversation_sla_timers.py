"""conversation SLA timers, snooze wake-ups, idempotency-key purge: columns, indexes, discovery

Revision ID: a7c3e9f1b2d4
Revises: 7e3a9b1c5d20
Create Date: 2026-11-29 20:05:00.000000+00:00

Each conversation keeps its SLA clocks (decision 0039): when each started, when it is due, when it
was breached; next response also when it was met; the targets in force and the pending/snoozed pauses
of the resolution clock. The periodic jobs find the organizations with due work through SECURITY
DEFINER functions (row-level security hides every organization from a session without a tenant),
each a range scan on a partial index that holds only running, unmarked clocks (or snoozed
conversations, or keys), so its cost follows the work due, not the number of organizations.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "a7c3e9f1b2d4"
down_revision: str | None = "7e3a9b1c5d20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMES = (
    "sla_first_response_started_at",
    "sla_first_response_due_at",
    "sla_first_response_breached_at",
    "sla_next_response_started_at",
    "sla_next_response_due_at",
    "sla_next_response_breached_at",
    "sla_next_response_met_at",
    "sla_resolution_started_at",
    "sla_resolution_due_at",
    "sla_resolution_breached_at",
)

# A clock still to be marked breached: running (not met, not stopped) and not marked yet. The same
# conditions as conversations/sla.py (UNMARKED) and the models' indexes.
FIRST = (
    "sla_first_response_due_at IS NOT NULL AND sla_first_response_breached_at IS NULL"
    " AND first_response_at IS NULL AND status <> 'resolved'"
)
NEXT = (
    "sla_next_response_due_at IS NOT NULL AND sla_next_response_breached_at IS NULL"
    " AND sla_next_response_started_at IS NOT NULL AND sla_next_response_met_at IS NULL"
)
RESOLUTION = (
    "sla_resolution_due_at IS NOT NULL AND sla_resolution_breached_at IS NULL AND status <> 'resolved'"
)
INDEXES = {
    "ix_conversations_sla_first_response_due": ("sla_first_response_due_at", FIRST),
    "ix_conversations_sla_next_response_due": ("sla_next_response_due_at", NEXT),
    "ix_conversations_sla_resolution_due": ("sla_resolution_due_at", RESOLUTION),
    "ix_conversations_snoozed_until": ("snoozed_until", "status = 'snoozed'"),
}


def upgrade() -> None:
    for name in TIMES:
        op.add_column("conversations", sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    op.add_column("conversations", sa.Column("sla_targets", postgresql.JSONB(astext_type=sa.Text())))
    op.add_column(
        "conversations",
        sa.Column(
            "sla_pauses",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
    )
    for name, (column, where) in INDEXES.items():
        op.create_index(name, "conversations", [column, "organization_id"], postgresql_where=sa.text(where))
    op.create_index(
        "ix_idempotency_keys_created_at_organization_id",
        "idempotency_keys",
        ["created_at", "organization_id"],
    )
    op.execute(
        f"""
        -- The organizations with conversation work due at $1: an SLA clock run out and not marked, or
        -- a snooze ended. Only organization ids come back; the job then acts in each as its tenant.
        CREATE FUNCTION organizations_with_sla_due(timestamptz) RETURNS SETOF uuid
            LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
            AS $$
                SELECT organization_id FROM public.conversations
                 WHERE sla_first_response_due_at <= $1 AND {FIRST}
                UNION
                SELECT organization_id FROM public.conversations
                 WHERE sla_next_response_due_at <= $1 AND {NEXT}
                UNION
                SELECT organization_id FROM public.conversations
                 WHERE sla_resolution_due_at <= $1 AND {RESOLUTION}
            $$;
        CREATE FUNCTION organizations_with_snoozes_due(timestamptz) RETURNS SETOF uuid
            LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
            AS $$
                SELECT DISTINCT organization_id FROM public.conversations
                 WHERE status = 'snoozed' AND snoozed_until <= $1
            $$;
        CREATE FUNCTION organizations_with_idempotency_keys_before(timestamptz) RETURNS SETOF uuid
            LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
            AS $$ SELECT DISTINCT organization_id FROM public.idempotency_keys WHERE created_at < $1 $$;
        -- The service role is granted them by `aisupport migrate` (core/tenancy.py); nobody else.
        REVOKE EXECUTE ON FUNCTION organizations_with_sla_due(timestamptz),
            organizations_with_snoozes_due(timestamptz),
            organizations_with_idempotency_keys_before(timestamptz) FROM PUBLIC;
        """  # noqa: S608 (constants of this file, no input)
    )


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION organizations_with_idempotency_keys_before(timestamptz);"
        " DROP FUNCTION organizations_with_snoozes_due(timestamptz);"
        " DROP FUNCTION organizations_with_sla_due(timestamptz)"
    )
    op.drop_index("ix_idempotency_keys_created_at_organization_id", table_name="idempotency_keys")
    for name in reversed(INDEXES):
        op.drop_index(name, table_name="conversations")
    for name in ("sla_pauses", "sla_targets", *reversed(TIMES)):
        op.drop_column("conversations", name)
