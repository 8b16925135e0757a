"""auto-assignment: a per-inbox cap, the round-robin memory, open conversations by assignee

Revision ID: 4c1f8a2e6b90
Revises: a7c3e5f19b28
Create Date: 2026-11-29 20:10:00.000000+00:00

`inboxes.auto_assignment_limit` caps the open conversations of the inbox that auto-assignment gives one
member (null: no cap); `member_availability.last_assigned_at` is when auto-assignment last gave the
member a conversation (the longest waiting goes next); a partial index counts a member's open
conversations in an inbox (decision 0040). No new table: row-level security is unchanged.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "4c1f8a2e6b90"
down_revision: str | None = "a7c3e5f19b28"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("inboxes", sa.Column("auto_assignment_limit", sa.Integer(), nullable=True))
    op.create_check_constraint(
        op.f("ck_inboxes_auto_assignment_limit_bounded"),
        "inboxes",
        "auto_assignment_limit BETWEEN 1 AND 1000",
    )
    op.add_column(
        "member_availability", sa.Column("last_assigned_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "ix_conversations_open_by_assignee",
        "conversations",
        ["organization_id", "assignee_id", "inbox_id"],
        postgresql_where=sa.text("status <> 'resolved'"),
    )


def downgrade() -> None:
    op.drop_index("ix_conversations_open_by_assignee", table_name="conversations")
    op.drop_column("member_availability", "last_assigned_at")
    op.drop_constraint(op.f("ck_inboxes_auto_assignment_limit_bounded"), "inboxes", type_="check")
    op.drop_column("inboxes", "auto_assignment_limit")
