"""principal lookups in one round trip, through row-level security; the audit actor's kind

Revision ID: 3c9e2a7d51b4
Revises: fdfb7f84e946
Create Date: 2026-11-29 18:00:00.000000+00:00

Authenticating a request asks, for a session: is it live, and what is the user's role in the
organization acted in; for an API key: which key, in which organization, and its creator's role. Each
function names its tenant (set_config, local to the statement's transaction) before reading, so the
tables' policies apply; run on a connection in autocommit, each is one statement, one round trip.
SECURITY INVOKER: they run as the service's role, bound by row-level security like any query.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3c9e2a7d51b4"
down_revision: str | None = "fdfb7f84e946"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "audit_events",
        sa.Column("actor_kind", sa.String(length=20), server_default="anonymous", nullable=False),
    )
    op.execute(
        "UPDATE audit_events SET actor_kind = CASE WHEN actor_user_id IS NOT NULL THEN 'member'"
        " WHEN actor_api_key_id IS NOT NULL THEN 'api_key' ELSE 'anonymous' END"
    )
    op.execute(
        """
        CREATE FUNCTION session_principal(p_session uuid, p_user uuid, p_organization uuid)
            RETURNS TABLE (live boolean, role text)
            LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, public
        AS $$
        BEGIN
            PERFORM set_config('app.current_org', p_organization::text, true),
                    set_config('app.current_user', p_user::text, true);
            RETURN QUERY
                SELECT s.revoked_at IS NULL AND s.expires_at > now(), m.role::text
                  FROM auth_sessions s
                  LEFT JOIN memberships m ON m.organization_id = p_organization AND m.user_id = s.user_id
                 WHERE s.id = p_session AND s.user_id = p_user;
        END
        $$;

        CREATE FUNCTION api_key_principal(p_key_hash text)
            RETURNS TABLE (
                organization_id uuid, id uuid, role text, expires_at timestamptz,
                revoked_at timestamptz, last_used_at timestamptz, creator_role text
            )
            LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, public
        AS $$
        DECLARE
            organization uuid := organization_of_api_key(p_key_hash);
        BEGIN
            IF organization IS NULL THEN
                RETURN;
            END IF;
            PERFORM set_config('app.current_org', organization::text, true),
                    set_config('app.current_user', '', true);
            RETURN QUERY
                SELECT k.organization_id, k.id, k.role::text, k.expires_at, k.revoked_at, k.last_used_at,
                       m.role::text
                  FROM api_keys k
                  LEFT JOIN memberships m
                         ON m.organization_id = k.organization_id AND m.user_id = k.created_by
                 WHERE k.organization_id = organization AND k.key_hash = p_key_hash;
        END
        $$;
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION api_key_principal(text); DROP FUNCTION session_principal(uuid, uuid, uuid)")
    op.drop_column("audit_events", "actor_kind")
