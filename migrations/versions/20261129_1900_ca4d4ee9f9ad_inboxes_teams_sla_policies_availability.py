"""inboxes, teams and their members, SLA policies, member availability

Revision ID: ca4d4ee9f9ad
Revises: 3c9e2a7d51b4
Create Date: 2026-11-29 19:00:00.000000+00:00

Every table is tenant-owned, under row-level security with one policy per command, and refers to the
others by (organization_id, id), so no row can point into another organization. Team members and
availability refer to the membership itself: a member removed from the organization leaves their
teams and loses their availability with it (ON DELETE CASCADE).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "ca4d4ee9f9ad"
down_revision: str | None = "3c9e2a7d51b4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("sla_policies", "teams", "team_members", "member_availability", "inboxes")


def _organization(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["organization_id"],
        ["organizations.id"],
        name=op.f(f"fk_{table}_organization_id_organizations"),
        ondelete="CASCADE",
    )


def _created_at() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "sla_policies",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "targets",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        _created_at(),
        _organization("sla_policies"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_policies")),
        sa.UniqueConstraint("organization_id", "id", name="uq_sla_policies_organization_id_id"),
    )
    op.create_index(
        "ix_sla_policies_organization_id_created_at", "sla_policies", ["organization_id", "created_at"]
    )
    op.create_table(
        "teams",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        _created_at(),
        _organization("teams"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teams")),
        sa.UniqueConstraint("organization_id", "id", name="uq_teams_organization_id_id"),
        sa.UniqueConstraint("organization_id", "name", name="uq_teams_organization_id_name"),
    )
    op.create_index("ix_teams_organization_id_created_at", "teams", ["organization_id", "created_at"])
    op.create_table(
        "team_members",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("team_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        _created_at(),
        _organization("team_members"),
        sa.ForeignKeyConstraint(
            ["organization_id", "team_id"],
            ["teams.organization_id", "teams.id"],
            name="fk_team_members_team_same_org",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "user_id"],
            ["memberships.organization_id", "memberships.user_id"],
            name="fk_team_members_membership_same_org",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "team_id", "user_id", name=op.f("pk_team_members")),
    )
    op.create_index("ix_team_members_organization_id_user_id", "team_members", ["organization_id", "user_id"])
    op.create_table(
        "member_availability",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "status IN ('online', 'away', 'offline')", name=op.f("ck_member_availability_status_known")
        ),
        _organization("member_availability"),
        sa.ForeignKeyConstraint(
            ["organization_id", "user_id"],
            ["memberships.organization_id", "memberships.user_id"],
            name="fk_member_availability_membership_same_org",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "user_id", name=op.f("pk_member_availability")),
    )
    op.create_table(
        "inboxes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("team_id", sa.Uuid(), nullable=True),
        sa.Column("sla_policy_id", sa.Uuid(), nullable=True),
        sa.Column("auto_assignment", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("business_hours", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "allowed_origins",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("identity_secret_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("identity_secret_rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        _created_at(),
        sa.CheckConstraint("kind IN ('api', 'widget')", name=op.f("ck_inboxes_kind_known")),
        _organization("inboxes"),
        sa.ForeignKeyConstraint(
            ["organization_id", "team_id"],
            ["teams.organization_id", "teams.id"],
            name="fk_inboxes_team_same_org",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "sla_policy_id"],
            ["sla_policies.organization_id", "sla_policies.id"],
            name="fk_inboxes_sla_policy_same_org",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inboxes")),
        sa.UniqueConstraint("organization_id", "id", name="uq_inboxes_organization_id_id"),
    )
    op.create_index("ix_inboxes_organization_id_created_at", "inboxes", ["organization_id", "created_at"])
    op.create_index("ix_inboxes_organization_id_team_id", "inboxes", ["organization_id", "team_id"])
    op.create_index(
        "ix_inboxes_organization_id_sla_policy_id", "inboxes", ["organization_id", "sla_policy_id"]
    )
    for table in TABLES:
        op.execute(
            f"""
            ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
            CREATE POLICY tenant_select ON {table} FOR SELECT
                USING (organization_id = app_current_org());
            CREATE POLICY tenant_insert ON {table} FOR INSERT
                WITH CHECK (organization_id = app_current_org());
            CREATE POLICY tenant_update ON {table} FOR UPDATE
                USING (organization_id = app_current_org()) WITH CHECK (organization_id = app_current_org());
            CREATE POLICY tenant_delete ON {table} FOR DELETE USING (organization_id = app_current_org());
            """
        )


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)  # its indexes and policies go with it
