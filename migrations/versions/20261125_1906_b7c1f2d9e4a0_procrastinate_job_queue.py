"""procrastinate job queue

Revision ID: b7c1f2d9e4a0
Revises: 46a1de097b36
Create Date: 2026-11-25 19:06:00+00:00
"""

from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "b7c1f2d9e4a0"
down_revision: str | None = "46a1de097b36"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = Path(__file__).parents[1] / "sql" / "procrastinate-3.10.0.sql"


def upgrade() -> None:
    op.execute(SCHEMA.read_text())


def downgrade() -> None:
    op.execute(
        "DROP TABLE procrastinate_events, procrastinate_periodic_defers, procrastinate_jobs, "
        "procrastinate_workers CASCADE"
    )
    op.execute(
        """
        DO $$
        DECLARE function regprocedure;
        BEGIN
            FOR function IN SELECT oid::regprocedure FROM pg_proc WHERE proname LIKE 'procrastinate\\_%' LOOP
                EXECUTE 'DROP FUNCTION ' || function || ' CASCADE';
            END LOOP;
        END $$
        """
    )
    op.execute(
        "DROP TYPE procrastinate_job_status, procrastinate_job_event_type, procrastinate_job_to_defer_v1"
    )
