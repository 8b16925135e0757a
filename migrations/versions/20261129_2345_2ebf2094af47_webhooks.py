"""webhooks: endpoints, deliveries, attempts and the dispatcher's cursor, under row-level security

Revision ID: 2ebf2094af47
Revises: 7f90a3734835
Create Date: 2026-11-29 23:45:00.000000+00:00

`event_counters.webhooks` says an organization has an enabled endpoint: a commit with events then
queues the dispatch job in its transaction (decision 0048).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2ebf2094af47"
down_revision: str | None = "7f90a3734835"
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
TABLES = ("webhook_endpoints", "webhook_cursors", "webhook_deliveries", "webhook_attempts")


def _organization(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["organization_id"],
        ["organizations.id"],
        name=op.f(f"fk_{table}_organization_id_organizations"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.add_column(
        "event_counters", sa.Column("webhooks", sa.Boolean(), server_default=sa.text("false"), nullable=False)
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("event_types", sa.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("disabled_reason", sa.String(length=200), nullable=True),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("previous_secret_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        _organization("webhook_endpoints"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
        sa.UniqueConstraint("organization_id", "id", name="uq_webhook_endpoints_organization_id_id"),
    )
    op.create_table(
        "webhook_cursors",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        _organization("webhook_cursors"),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_webhook_cursors")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("event_sequence", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        _organization("webhook_deliveries"),
        sa.ForeignKeyConstraint(
            ["organization_id", "endpoint_id"],
            ["webhook_endpoints.organization_id", "webhook_endpoints.id"],
            name="fk_webhook_deliveries_endpoint_same_org",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("organization_id", "id", name="uq_webhook_deliveries_organization_id_id"),
    )
    op.create_index(
        "ix_webhook_deliveries_endpoint_created",
        "webhook_deliveries",
        ["organization_id", "endpoint_id", "created_at", "id"],
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("delivery_id", sa.Uuid(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("response_excerpt", sa.Text(), nullable=True),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        _organization("webhook_attempts"),
        sa.ForeignKeyConstraint(
            ["organization_id", "delivery_id"],
            ["webhook_deliveries.organization_id", "webhook_deliveries.id"],
            name="fk_webhook_attempts_delivery_same_org",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
    )
    op.create_index(
        "ix_webhook_attempts_delivery", "webhook_attempts", ["organization_id", "delivery_id", "attempted_at"]
    )
    op.execute("".join(POLICIES.format(table=table) for table in TABLES))
    op.execute(
        """
        -- For the metrics only: how many deliveries wait (first tries and retries) in every organization,
        -- and since when the oldest; counts and a time, nothing of any organization's data.
        CREATE FUNCTION webhook_backlog() RETURNS TABLE (pending bigint, oldest timestamptz)
            LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
            AS $$ SELECT count(*), min(created_at) FROM public.webhook_deliveries WHERE status = 'pending' $$;
        REVOKE EXECUTE ON FUNCTION webhook_backlog() FROM PUBLIC;
        CREATE INDEX ix_webhook_deliveries_pending ON webhook_deliveries (created_at)
            WHERE status = 'pending';
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION webhook_backlog()")
    for table in reversed(TABLES):
        op.drop_table(table)
    op.drop_column("event_counters", "webhooks")
