"""events: the outbox and the per-organization event counter, under row-level security

Revision ID: 7f90a3734835
Revises: 15119fee7164
Create Date: 2026-11-29 23:30:00.000000+00:00

Every event is written here in the transaction of the change that caused it, numbered per organization
in commit order (decision 0046). The purge job finds organizations with events past the retention
through a SECURITY DEFINER function (organization ids only), then deletes as each one's tenant.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "7f90a3734835"
down_revision: str | None = "15119fee7164"
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


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=True),
        sa.Column("private", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_events_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "sequence", name=op.f("pk_events")),
        sa.UniqueConstraint("id", name=op.f("uq_events_id")),
    )
    op.create_index("ix_events_occurred_at_organization_id", "events", ["occurred_at", "organization_id"])
    op.create_table(
        "event_counters",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_event_counters_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_event_counters")),
    )
    op.execute(POLICIES.format(table="events") + POLICIES.format(table="event_counters"))
    op.execute(
        """
        CREATE FUNCTION organizations_with_events_before(timestamptz) RETURNS SETOF uuid
            LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
            AS $$ SELECT DISTINCT organization_id FROM public.events WHERE occurred_at < $1 $$;
        REVOKE EXECUTE ON FUNCTION organizations_with_events_before(timestamptz) FROM PUBLIC;
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION organizations_with_events_before(timestamptz)")
    op.drop_table("event_counters")
    op.drop_table("events")
