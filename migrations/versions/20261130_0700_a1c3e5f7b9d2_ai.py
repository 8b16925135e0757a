"""ai

Revision ID: a1c3e5f7b9d2
Revises: f2c6a8e0b913
Create Date: 2026-11-30 06:52:13.815683
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "a1c3e5f7b9d2"
down_revision: str | None = "f2c6a8e0b913"
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
TABLES = (
    "ai_decisions",
    "ai_settings",
    "ai_conversations",
    "ai_drafts",
    "ai_usage",
    "ai_budget_months",
    "ai_examples",
    "ai_classifiers",
    "ai_evaluations",
)
INBOX_CHECKS = {
    "ai_mode_known": "ai_mode IN ('off', 'draft', 'auto')",
    "ai_threshold_bounded": "ai_threshold BETWEEN 0 AND 1",
    "ai_max_replies_bounded": "ai_max_replies BETWEEN 1 AND 100",
}


def upgrade() -> None:
    op.create_table(
        "ai_decisions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("answered", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("detail", sa.String(length=200), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.CheckConstraint(
            "answered = (reason IS NULL)", name=op.f("ck_ai_decisions_reason_when_handed_off")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_ai_decisions_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_decisions")),
    )
    op.create_index(
        "ix_ai_decisions_organization_id_created_at", "ai_decisions", ["organization_id", "created_at"]
    )
    op.create_table(
        "ai_budget_months",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("used_tokens", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("used_cost", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("reserved_tokens", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("reserved_cost", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("alerted_percent", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_ai_budget_months_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "month", name=op.f("pk_ai_budget_months")),
    )
    op.create_table(
        "ai_classifiers",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("categories", sa.ARRAY(sa.String(length=100)), nullable=False),
        sa.Column("examples", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("trained_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_ai_classifiers_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_ai_classifiers")),
    )
    op.create_table(
        "ai_evaluations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("parameters", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("figures", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "kind IN ('triage', 'handoff', 'answers')", name=op.f("ck_ai_evaluations_kind_known")
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed')", name=op.f("ck_ai_evaluations_status_known")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_ai_evaluations_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_evaluations")),
        sa.UniqueConstraint("organization_id", "id", name="uq_ai_evaluations_organization_id_id"),
    )
    op.create_index(
        "ix_ai_evaluations_organization_id_created_at_id",
        "ai_evaluations",
        ["organization_id", "created_at", "id"],
        unique=False,
    )
    op.create_table(
        "ai_examples",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("text", sa.String(length=2000), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=True),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("origin IN ('example', 'conversation')", name=op.f("ck_ai_examples_origin_known")),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_ai_examples_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_examples")),
        sa.UniqueConstraint(
            "organization_id", "category", "text", name="uq_ai_examples_organization_id_category_text"
        ),
        sa.UniqueConstraint("organization_id", "id", name="uq_ai_examples_organization_id_id"),
    )
    op.create_index(
        "ix_ai_examples_organization_id_created_at_id",
        "ai_examples",
        ["organization_id", "created_at", "id"],
        unique=False,
    )
    op.create_table(
        "ai_settings",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("base_url", sa.String(length=500), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("api_key_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("max_tokens", sa.Integer(), nullable=False),
        sa.Column("input_price", sa.Float(), nullable=True),
        sa.Column("output_price", sa.Float(), nullable=True),
        sa.Column("monthly_token_budget", sa.BigInteger(), nullable=True),
        sa.Column("monthly_cost_budget", sa.Float(), nullable=True),
        sa.Column("thresholds", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "sensitive_topics",
            sa.ARRAY(sa.String(length=200)),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "provider = 'offline' OR (base_url IS NOT NULL AND model IS NOT NULL)",
            name=op.f("ck_ai_settings_provider_named"),
        ),
        sa.CheckConstraint("provider IN ('offline', 'openai')", name=op.f("ck_ai_settings_provider_known")),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_ai_settings_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_ai_settings")),
    )
    op.create_table(
        "ai_usage",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("feature", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("tokens_in", sa.Integer(), nullable=False),
        sa.Column("tokens_out", sa.Integer(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.CheckConstraint(
            "feature IN ('draft', 'answer', 'triage', 'summary')", name=op.f("ck_ai_usage_feature_known")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_ai_usage_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_usage")),
    )
    op.create_index(
        "ix_ai_usage_organization_id_created_at", "ai_usage", ["organization_id", "created_at"], unique=False
    )
    op.create_table(
        "ai_conversations",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("silenced", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("replies", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("handoff_reason", sa.String(length=32), nullable=True),
        sa.Column("handed_off_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("summary_method", sa.String(length=16), nullable=True),
        sa.Column("summarized_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("triage", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("triaged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "handoff_reason IS NULL OR handoff_reason IN ('low_confidence', 'no_knowledge', "
            "'customer_requested_human', 'sensitive_topic', 'budget_exhausted', 'provider_error', "
            "'max_ai_replies')",
            name=op.f("ck_ai_conversations_handoff_reason_known"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "conversation_id"],
            ["conversations.organization_id", "conversations.id"],
            name="fk_ai_conversations_conversation_same_org",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_ai_conversations_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "conversation_id", name=op.f("pk_ai_conversations")),
    )
    op.create_table(
        "ai_drafts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("citations", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("invalid_citations", sa.Integer(), nullable=False),
        sa.Column("retrieved", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("tokens_in", sa.Integer(), nullable=False),
        sa.Column("tokens_out", sa.Integer(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("degraded", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN ('unchanged', 'edited', 'discarded')",
            name=op.f("ck_ai_drafts_outcome_known"),
        ),
        sa.CheckConstraint(
            "status IN ('ready', 'sent', 'discarded')", name=op.f("ck_ai_drafts_status_known")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "conversation_id"],
            ["conversations.organization_id", "conversations.id"],
            name="fk_ai_drafts_conversation_same_org",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_ai_drafts_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_drafts")),
        sa.UniqueConstraint("organization_id", "id", name="uq_ai_drafts_organization_id_id"),
    )
    op.create_index(
        "ix_ai_drafts_organization_id_conversation_id_created_at",
        "ai_drafts",
        ["organization_id", "conversation_id", "created_at"],
        unique=False,
    )
    op.add_column(
        "inboxes", sa.Column("ai_mode", sa.String(length=8), server_default=sa.text("'off'"), nullable=False)
    )
    op.add_column(
        "inboxes", sa.Column("ai_threshold", sa.Float(), server_default=sa.text("0.7"), nullable=False)
    )
    op.add_column(
        "inboxes", sa.Column("ai_max_replies", sa.Integer(), server_default=sa.text("3"), nullable=False)
    )
    op.add_column("messages", sa.Column("ai", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    for name, condition in INBOX_CHECKS.items():
        op.create_check_constraint(op.f(f"ck_inboxes_{name}"), "inboxes", condition)
    for table in TABLES:
        op.execute(POLICIES.format(table=table))


def downgrade() -> None:
    op.drop_table("ai_decisions")
    op.drop_column("messages", "ai")
    for name in INBOX_CHECKS:
        op.drop_constraint(op.f(f"ck_inboxes_{name}"), "inboxes", type_="check")
    op.drop_column("inboxes", "ai_max_replies")
    op.drop_column("inboxes", "ai_threshold")
    op.drop_column("inboxes", "ai_mode")
    op.drop_index("ix_ai_drafts_organization_id_conversation_id_created_at", table_name="ai_drafts")
    op.drop_table("ai_drafts")
    op.drop_table("ai_conversations")
    op.drop_index("ix_ai_usage_organization_id_created_at", table_name="ai_usage")
    op.drop_table("ai_usage")
    op.drop_table("ai_settings")
    op.drop_index("ix_ai_examples_organization_id_created_at_id", table_name="ai_examples")
    op.drop_table("ai_examples")
    op.drop_index("ix_ai_evaluations_organization_id_created_at_id", table_name="ai_evaluations")
    op.drop_table("ai_evaluations")
    op.drop_table("ai_classifiers")
    op.drop_table("ai_budget_months")
