"""help centre: an organization named by its public slug, before any tenant is known

Revision ID: c3f9d2a6e184
Revises: 8a1e4c2b7d65
Create Date: 2026-11-30 03:10:00.000000+00:00

The public help-centre API (docs/knowledge.md) names an organization by its slug; this function answers
only its id (the slug is already public), for the service's role.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "c3f9d2a6e184"
down_revision: str | None = "8a1e4c2b7d65"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION organization_of_slug(text) RETURNS uuid
            LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
            AS $$ SELECT id FROM public.organizations WHERE slug = $1 $$;
        REVOKE EXECUTE ON FUNCTION organization_of_slug(text) FROM PUBLIC;
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION organization_of_slug(text)")
